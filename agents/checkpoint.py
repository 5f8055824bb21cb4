"""Orbax checkpoint helpers shared by the trainers (PPO here; reusable by DDQN).

A checkpoint is any pytree of arrays (e.g. a PPO ``RunnerState``: network parameters, Adam
state, environment state, PRNG key, update counter). Restoring needs a *target* of the same
structure (typically the freshly initialised state), whose non-array parts (``apply_fn``,
``tx`` of a ``TrainState``) are reused as they are.
"""

from __future__ import annotations

import csv

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


def checkpoint_manager(directory: str | Path, max_to_keep: int | None = 2) -> ocp.CheckpointManager:
    """A ``CheckpointManager`` over ``directory`` (created if missing), keeping the last few."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    return ocp.CheckpointManager(directory, options=options)


def save_checkpoint(directory: str | Path, step: int, state: Any, max_to_keep: int | None = 2) -> None:
    """Saves the pytree ``state`` as step ``step`` under ``directory`` and waits for the write."""
    manager = checkpoint_manager(directory, max_to_keep)
    manager.save(int(step), args=ocp.args.StandardSave(jax.device_get(state)), force=True)
    manager.wait_until_finished()
    manager.close()


def latest_step(directory: str | Path) -> int | None:
    """Latest saved step under ``directory``, or ``None`` if there is no checkpoint."""
    if not Path(directory).exists():
        return None
    manager = checkpoint_manager(directory)
    step = manager.latest_step()
    manager.close()
    return step


def restore_checkpoint(directory: str | Path, target: Any, step: int | None = None) -> tuple[Any, int]:
    """Restores step ``step`` (default: the latest) into the structure of ``target``.

    Returns:
        ``(state, step)``.

    Raises:
        FileNotFoundError: no checkpoint under ``directory``.
    """
    manager = checkpoint_manager(directory)
    step = manager.latest_step() if step is None else step
    if step is None:
        manager.close()
        raise FileNotFoundError(f"no checkpoint under {directory}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    manager.close()
    return restored, int(step)


def delete_steps_after(directory: str | Path, step: int) -> None:
    """Deletes the checkpoints under ``directory`` saved after ``step`` (a run resuming at ``step``
    saves those steps again)."""
    manager = checkpoint_manager(directory, max_to_keep=None)
    for later in [s for s in manager.all_steps() if s > step]:
        manager.delete(later)
    manager.close()


def truncate_metrics(path: str | Path, last_step: int) -> None:
    """Drops metrics-CSV rows whose first column (the step) is after ``last_step``.

    Rows written after the checkpoint a resume restarts from would otherwise appear twice.
    """
    path = Path(path)
    if not path.exists():
        return
    with path.open() as f:
        rows = list(csv.reader(f))
    kept = [rows[0]] + [r for r in rows[1:] if int(r[0]) <= last_step]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(kept)
