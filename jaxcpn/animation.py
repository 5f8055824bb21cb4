"""What both environments' viewers share: play an episode on the host, save frames as a GIF."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax
import numpy as np


def play(env, params, key: jax.Array, act: Callable, num_steps: int, dtype=None) -> list[tuple]:
    """Plays ``num_steps`` steps from a reset; returns ``(state, action, step_env key)`` per step.

    Args:
        act: ``act(key, obs, state) -> action`` (a policy closed over its parameters).
        dtype: NumPy dtype the actions are cast to (``None``: as returned).

    The third element is the key ``env.step`` hands to ``step_env`` (so a viewer can replay the
    step exactly); ``env.step`` auto-resets at episode ends.
    """
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"play: num_steps={num_steps!r} is invalid: must be an int >= 1")
    key, reset_key = jax.random.split(key)
    obs, state = env.reset(reset_key, params)
    steps = []
    for _ in range(num_steps):
        key, act_key, step_key = jax.random.split(key, 3)
        action = np.asarray(act(act_key, obs, state), dtype)
        steps.append((state, action, jax.random.split(step_key)[0]))
        obs, state, *_ = env.step(step_key, state, action, params)
    return steps


def save_gif(draw: Callable, num_frames: int, path: Path, fps: float, figsize: tuple[float, float]) -> Path:
    """Writes ``draw(i, fig)`` for ``i < num_frames`` as an animated GIF at ``path`` (folder created)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    fig = plt.figure(figsize=figsize)
    animation = FuncAnimation(fig, lambda i: draw(i, fig), frames=num_frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    animation.save(path, writer=PillowWriter(fps=fps))
    plt.close(fig)
    return path
