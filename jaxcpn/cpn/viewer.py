"""Pictures of the green CPN: one slot as a PNG, an episode as an animated GIF (matplotlib).

A slot's picture shows the topology (node size = computing power, green ring = hydropower node
with its hydro share, link width = bandwidth), the slot's electricity price and hydro level,
and every task's route from its user's access node to its destination, labelled with its
link-conflict offset and delay; a task that misses its deadline is drawn in red, dashed.

Host-side only (NumPy + matplotlib, imported lazily); the numbers come from the env's own pure
functions (:meth:`GreenCPN.evaluate_slot`, :func:`routing_tables`), so the picture shows
exactly what ``step`` computes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax
import numpy as np

from jaxcpn.cpn import model
from jaxcpn.cpn.env import GreenCPN, routing_tables
from jaxcpn.cpn.types import CPNParams, CPNState


def layout(adjacency: np.ndarray, iterations: int = 200, seed: int = 0) -> np.ndarray:
    """``(N, 2)`` node positions in [0, 1]^2 by a deterministic force-directed (Fruchterman-Reingold) layout."""
    adjacency = np.asarray(adjacency, bool)
    n = adjacency.shape[0]
    if n == 1:
        return np.array([[0.5, 0.5]])
    angle = 2 * np.pi * np.arange(n) / n
    pos = 0.5 + 0.4 * np.stack([np.cos(angle), np.sin(angle)], 1)
    pos += np.random.default_rng(seed).normal(0.0, 0.01, pos.shape)
    k = 1.0 / np.sqrt(n)
    temperature = 0.1
    for _ in range(iterations):
        delta = pos[:, None, :] - pos[None, :, :]
        dist = np.maximum(np.linalg.norm(delta, axis=-1), 1e-3)
        force = (k**2 / dist**2 - adjacency * dist / k)[..., None] * delta
        move = force.sum(1)
        length = np.maximum(np.linalg.norm(move, axis=-1, keepdims=True), 1e-9)
        pos += move / length * np.minimum(length, temperature)
        temperature *= 0.98
    pos -= pos.min(0)
    return 0.05 + 0.9 * pos / np.maximum(pos.max(0), 1e-9)


def slot_numbers(env: GreenCPN, params: CPNParams, state: CPNState, action) -> dict:
    """What a slot's picture shows, from the env's pure functions (one jitted call).

    Returns:
        ``info`` (the step's info dict), ``inputs`` (workload, price, discount), ``routes``
        ``(U, H + 1)`` node sequences and ``hop_mask`` ``(U, H)``, as NumPy.
    """
    def numbers(state, action, params):
        _, next_hop = routing_tables(params)
        routes, hop_mask = jax.vmap(model.route, in_axes=(0, 0, 0, None))(
            next_hop, params.user_node, action, env.config.hops)
        return dict(info=env.evaluate_slot(state, action, params, next_hop=next_hop),
                    inputs=env.slot_inputs(state, params), routes=routes, hop_mask=hop_mask)

    return jax.device_get(jax.jit(numbers)(state, jax.numpy.asarray(action, jax.numpy.int32), params))


def render_slot(env: GreenCPN, params: CPNParams, state: CPNState, action, ax=None, positions=None):
    """Draws the current slot of ``state`` scheduled to ``action``.

    Args:
        env, params, state: the environment, its (unbatched) instance and the slot's state.
        action: ``(U,)`` int destination node of each task.
        ax: matplotlib axes to draw into (a new figure when ``None``).
        positions: ``(N, 2)`` node positions (default :func:`layout` of the topology).

    Returns:
        The matplotlib figure.
    """
    from jaxcpn.cpn.env import check_action
    import matplotlib.pyplot as plt

    action = np.asarray(action)
    check_action(action, env.config)
    numbers = slot_numbers(env, params, state, action)
    info, (_, price, discount) = numbers["info"], numbers["inputs"]
    p = jax.device_get(params)
    adjacency = np.asarray(p.adjacency, bool)
    pos = layout(adjacency) if positions is None else np.asarray(positions)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 6))
    else:
        fig = ax.figure
    ax.clear()
    bandwidth = np.asarray(p.bandwidth)
    top = max(float(bandwidth.max()), 1e-9)
    for i, j in zip(*np.nonzero(np.triu(adjacency, 1))):
        ax.plot(*pos[[i, j]].T, color="0.8", lw=0.5 + 3.0 * bandwidth[i, j] / top, zorder=1)
    nodes, mask = numbers["routes"], numbers["hop_mask"]
    colors = plt.get_cmap("tab10")
    labels: dict[int, int] = {}
    for u in range(nodes.shape[0]):
        path = np.concatenate([nodes[u, :1], nodes[u, 1:][mask[u]]])
        miss = bool(info["deadline_miss"][u])
        jitter = (u - nodes.shape[0] / 2) * 0.004  # parallel routes stay apart
        xy = pos[path] + jitter
        style = dict(color="red" if miss else colors(u % 10), lw=1.6, ls="--" if miss else "-", zorder=2, alpha=0.9)
        if len(path) > 1:
            ax.plot(*xy.T, **style)
            ax.annotate("", xy=xy[-1], xytext=xy[-2], arrowprops=dict(arrowstyle="->", color=style["color"]))
        anchor = int(path[-1])  # labels stack below the destination node
        row = labels.get(anchor, 0)
        labels[anchor] = row + 1
        ax.annotate(f"u{u}: wait +{info['offset'][u]:.2f}s, delay {info['delay'][u]:.2f}s", pos[anchor], fontsize=6,
                    color=style["color"], xytext=(14, -12 - 7 * row), textcoords="offset points", zorder=4)
    power = np.asarray(p.power)
    green = np.asarray(p.green, bool)
    share = np.asarray(p.hydro_share)
    sizes = 150 + 650 * power / max(float(power.max()), 1e-9)
    ax.scatter(*pos.T, s=sizes, c=np.where(green, "tab:green", "tab:blue"), alpha=0.35, zorder=3,
               edgecolors=np.where(green, "darkgreen", "navy"), linewidths=2)
    for n in range(len(power)):
        label = f"{n}\n{power[n]:.1f} TF" + (f"\nhydro {share[n]:.0%}, x{discount[n]:.2f}" if green[n] else "")
        ax.annotate(label, pos[n], ha="center", va="center", fontsize=6, zorder=5)
    profit = float(info["profit"])
    misses = int(np.sum(info["deadline_miss"]))
    ax.set_title(f"slot {int(state.time)} (series hour {int(state.start + state.time)}): price {float(price):.2f}, "
                 f"profit {profit:.2f}, {misses}/{len(action)} deadline misses", fontsize=9)
    ax.set_xlim(-0.05, 1.1)
    ax.set_ylim(-0.05, 1.05)
    ax.set_axis_off()
    return fig


def render_episode(env: GreenCPN, params: CPNParams, key: jax.Array, act: Callable, path: Path,
                   num_slots: int | None = None, fps: float = 2.0) -> Path:
    """Plays ``num_slots`` slots (default one episode) and writes them as an animated GIF.

    Args:
        act: ``act(key, obs, state) -> (U,) action`` for each slot (a policy closed over its
            parameters; a recurrent policy keeps its carry in the closure).
        path: the ``.gif`` to write (its folder is created).

    Returns:
        ``path``.
    """
    from jaxcpn.animation import play, save_gif

    num_slots = env.config.episode_length if num_slots is None else num_slots
    steps = play(env, params, key, act, num_slots)
    positions = layout(np.asarray(params.adjacency))

    def draw(i, fig):
        fig.clear()
        state, action, _ = steps[i]
        render_slot(env, params, state, action, ax=fig.add_subplot(), positions=positions)

    return save_gif(draw, len(steps), path, fps, (7, 6))
