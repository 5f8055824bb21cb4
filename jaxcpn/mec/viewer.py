"""Pictures of the two-timescale MEC: one frame as a PNG, an episode as an animated GIF (matplotlib).

A frame's picture has three panels: (a) the deployment of every ES (service x ES heat map of the
frame's arrivals, deployed services outlined), (b) where the frame's tasks went (source ES x
destination ES or cloud, task counts), (c) each service's split between its own ES, the other
ESs and the cloud. The schedules are the env's own (:meth:`TwoTimescaleMEC.schedule_slot`, slot
by slot with the same warm starts as ``step``), so the picture shows what ``step`` computes.
Host-side only; matplotlib is imported lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax
import numpy as np

from jaxcpn.mec.env import TwoTimescaleMEC
from jaxcpn.mec.types import MECParams, MECState, check_deployment


def frame_flows(env: TwoTimescaleMEC, params: MECParams, state: MECState, deployment,
                key: jax.Array) -> dict[str, np.ndarray]:
    """Plays the frame decided in ``state`` with ``deployment`` (``step_env``, key ``key``).

    The slots' schedules are recomputed with the env's scheduler and the warm starts ``step``
    uses, so they are the ones ``step`` played (for an env built with a ``schedule_fn``, e.g.
    a DDPG actor, the picture shows the default convex scheduler instead).

    Returns:
        ``arrivals`` (M, K) tasks of the played frame, ``flows`` (M, K, M + 1) expected tasks
        sent from each cell to each ES / the cloud (last column), ``deployment`` (M, K) bool,
        ``mean_delay`` (s) and ``frame`` (its index).
    """
    deployment = np.asarray(deployment, bool)
    check_deployment(deployment, params)
    def play(key, state, deployment, params):
        _, played, _, _, _, info = env.step_env(key, state, deployment, params)

        def slot(previous, arrivals):
            schedule = env.schedule_slot(arrivals, deployment, params, warm_start=previous)
            return schedule, arrivals[..., None] * schedule

        _, flows = jax.lax.scan(slot, state.schedule, played.arrivals)
        return played, info["mean_delay"], flows.sum(0)

    played, mean_delay, flows = jax.device_get(jax.jit(play)(key, state, jax.numpy.asarray(deployment), params))
    return dict(arrivals=np.asarray(played.arrivals).sum(0), flows=np.asarray(flows, np.float64),
                deployment=deployment, mean_delay=float(mean_delay), frame=int(played.frame))


def render_frame(env: TwoTimescaleMEC, params: MECParams, state: MECState, deployment, key: jax.Array,
                 fig=None):
    """Draws the frame decided in ``state`` with ``deployment`` ((M, K) bool); returns the figure."""
    import matplotlib.pyplot as plt

    data = frame_flows(env, params, state, deployment, key)
    arrivals, flows, deployment = data["arrivals"], data["flows"], data["deployment"]
    m, k = arrivals.shape
    if fig is None:
        fig = plt.figure(figsize=(13, 4.2))
    fig.clear()
    axes = fig.subplots(1, 3, gridspec_kw=dict(width_ratios=[max(k, 4), m + 2, max(k, 4)]))
    image = axes[0].imshow(arrivals, aspect="auto", cmap="Blues")
    rows, cols = np.nonzero(deployment)
    axes[0].scatter(cols, rows, marker="s", s=60, facecolors="none", edgecolors="darkorange", linewidths=1.5,
                    label="deployed")
    axes[0].set_xlabel("service k")
    axes[0].set_ylabel("edge server m")
    axes[0].set_yticks(range(m))
    axes[0].set_title("(a) arrivals of the frame; deployed = orange", fontsize=9)
    fig.colorbar(image, ax=axes[0], fraction=0.04)
    routed = flows.sum(1)  # (M, M + 1)
    image = axes[1].imshow(routed, aspect="auto", cmap="Oranges")
    for i in range(m):
        for j in range(m + 1):
            axes[1].annotate(f"{routed[i, j]:.0f}", (j, i), ha="center", va="center", fontsize=7)
    axes[1].set_xticks(range(m + 1), [str(j) for j in range(m)] + ["cloud"])
    axes[1].set_yticks(range(m))
    axes[1].set_xlabel("served at")
    axes[1].set_ylabel("from cell m")
    axes[1].set_title("(b) where the tasks went", fontsize=9)
    local = np.array([sum(flows[i, s, i] for i in range(m)) for s in range(k)])
    cloud = flows[..., m].sum(0)
    other = flows.sum((0, 2)) - local - cloud
    x = np.arange(k)
    axes[2].bar(x, local, label="own ES", color="tab:green")
    axes[2].bar(x, other, bottom=local, label="other ES", color="tab:blue")
    axes[2].bar(x, cloud, bottom=local + other, label="cloud", color="tab:gray")
    axes[2].set_xlabel("service k")
    axes[2].set_ylabel("tasks")
    axes[2].set_title("(c) per service: served where", fontsize=9)
    axes[2].legend(fontsize=7)
    fig.suptitle(f"MEC frame {data['frame']}: {arrivals.sum():.0f} tasks, mean delay {data['mean_delay']:.3f} s, "
                 f"{100 * cloud.sum() / max(arrivals.sum(), 1e-9):.0f}% to the cloud", fontsize=10)
    fig.tight_layout()
    return fig


def render_episode(env: TwoTimescaleMEC, params: MECParams, key: jax.Array, act: Callable, path: Path,
                   num_frames: int | None = None, fps: float = 1.0) -> Path:
    """Plays ``num_frames`` frames (default one episode) and writes them as an animated GIF.

    Args:
        act: ``act(key, obs, state) -> (M, K) bool`` deployment of each frame.
        path: the ``.gif`` to write (its folder is created).
    """
    from jaxcpn.animation import play, save_gif

    num_frames = env.config.frames_per_episode if num_frames is None else num_frames
    steps = play(env, params, key, act, num_frames, dtype=bool)
    return save_gif(lambda i, fig: render_frame(env, params, *steps[i], fig=fig), len(steps), path, fps, (13, 4.2))
