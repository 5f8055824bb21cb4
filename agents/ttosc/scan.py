"""The TTOSC DDQN scan (``jaxcpn scan-ttosc``): learning rate x epsilon schedule, one vmapped program.

Every field of the grid (learning rate, epsilon start, end and anneal length) is dynamic
(:class:`agents.ttosc.ddqn.DDQNHyperparams`), so the whole grid times the seeds is ONE compiled
program, its run axis split over the devices (:func:`agents.scan.train_runs`). The final return
of a run is its mean frame reward over its last finished episodes. The base DDQN is a small one
(M = 3, K = 10, 40 episodes) so that a default scan takes CPU minutes; a scan's run equals the
``jaxcpn train-ttosc`` run with the same DDQN flags and seed.

Usage:
    jaxcpn scan-ttosc                                           # small default grid
    jaxcpn scan-ttosc --learning-rates 1e-3 1e-2 --epsilon-anneals 10 20 --num-seeds 3

Writes ``scan.csv``, ``scan_summary.csv`` and ``scan.png`` to ``--out`` and prints the best
configs.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import tyro

from agents import runs, sharding
from agents.checks import require_nonempty, require_positive
from agents.scan import padded_runs, report, train_runs, write_outputs
from agents.ttosc.ddqn import DDQNConfig, DDQNHyperparams, make_trainer

FIELDS = DDQNHyperparams._fields
"""The grid: every field is vmapped."""


@dataclasses.dataclass(frozen=True)
class ScanConfig:
    """A seeds x grid scan of the TTOSC DDQN's learning rate and epsilon schedule (one program)."""

    ddqn: Annotated[DDQNConfig, tyro.conf.OmitArgPrefixes] = DDQNConfig(
        num_cells=3, num_services=10, num_envs=4, num_episodes=40, epsilon_episodes=20, num_gru_layers=1, hidden=64,
        learning_starts=64)
    """Base DDQN config (flags without prefix, e.g. --num-cells); grid values override its dynamic fields."""
    learning_rates: tuple[float, ...] = (1e-3, 1e-2)
    """Adam learning rates."""
    epsilon_starts: tuple[float, ...] = (0.5,)
    """Initial exploration rates."""
    epsilon_ends: tuple[float, ...] = (0.01,)
    """Final exploration rates."""
    epsilon_anneals: tuple[float, ...] = (10.0, 20.0)
    """Episodes of the linear epsilon anneal."""
    num_seeds: int = 2
    """Seeds per config."""
    seed: int = 0
    """Base seed (seed s uses fold_in(PRNGKey(seed), s), as train-ttosc)."""
    devices: int = 0
    """Devices to split the runs over (0 = all local devices)."""
    chunk_iterations: int = 24
    """Frames per jitted chunk (the progress bar advances per chunk)."""
    last_episodes: int = 2
    """The final return of a run is its mean frame reward over its last this many finished episode batches."""
    top: int = 5
    """Best configs printed."""
    out: Path | None = None
    """Output folder; default runs/scan-ttosc-<timestamp>."""

    def __post_init__(self):
        require_nonempty(self, "learning_rates", "epsilon_starts", "epsilon_ends", "epsilon_anneals")
        if min(self.learning_rates) <= 0 or min(self.epsilon_anneals) <= 0:
            raise ValueError(f"--learning-rates={self.learning_rates} and --epsilon-anneals={self.epsilon_anneals} "
                             "are invalid: every value must be > 0")
        for name in ("epsilon_starts", "epsilon_ends"):
            if not all(0.0 <= v <= 1.0 for v in getattr(self, name)):
                raise ValueError(f"--{name.replace('_', '-')}={getattr(self, name)} is invalid: must be in [0, 1]")
        require_positive(self, "num_seeds", "chunk_iterations", "last_episodes", "top")


def grid_points(config: ScanConfig) -> list[dict]:
    """The grid as ``{learning_rate, epsilon_start, epsilon_end, epsilon_episodes}`` dicts."""
    return [dict(zip(FIELDS, values)) for values in itertools.product(
        config.learning_rates, config.epsilon_starts, config.epsilon_ends, config.epsilon_anneals)]


def run_scan(ddqn: DDQNConfig, points: list[dict], num_seeds: int, seed: int, mesh,
             chunk_iterations: int = 24, progress: bool = True) -> dict:
    """Trains every grid point x seed as ONE vmapped program split over ``mesh``.

    Returns:
        As :func:`agents.stper.scan.run_scan`, with metrics ``(C, S, frames)`` and ``env_steps``
        counting frames.
    """
    from tqdm import tqdm

    trainer = make_trainer(ddqn)
    runs_, keys, extra = padded_runs(list(range(len(points))), num_seeds, seed, mesh)
    hparams = DDQNHyperparams(*(np.array([points[i][name] for i, _ in runs_], np.float32) for name in FIELDS))
    total = ddqn.num_iterations
    bar = tqdm(total=len(points) * num_seeds * total, unit="run-frame", disable=not progress,
               desc=f"TTOSC scan {len(points)}x{num_seeds} on {mesh.size} dev")
    metrics, run_seconds, compile_seconds = train_runs(
        trainer, lambda r, n, h: trainer.train_chunk(r, n, None, h), keys, hparams, mesh, total, chunk_iterations,
        bar, len(points) * num_seeds, "episode_reward")
    bar.close()
    metrics = {name: values[: len(points) * num_seeds].reshape(len(points), num_seeds, total)
               for name, values in metrics.items()}
    return dict(metrics=metrics, run_seconds=run_seconds, compile_seconds=compile_seconds,
                env_steps=len(points) * num_seeds * total * ddqn.num_envs, padded_runs=extra)


def final_episode_rewards(metrics: dict, last_episodes: int) -> np.ndarray:
    """``(C, S)`` mean of each run's last ``last_episodes`` finite ``episode_reward`` values."""
    rewards = metrics["episode_reward"]
    out = np.full(rewards.shape[:2], np.nan)
    for index in np.ndindex(*rewards.shape[:2]):
        finished = rewards[index][np.isfinite(rewards[index])]
        if finished.size:
            out[index] = finished[-last_episodes:].mean()
    return out


def main(argv: list[str] | None = None) -> int:
    """``jaxcpn scan-ttosc``: runs the grid and writes the scan's files."""
    config = tyro.cli(ScanConfig, args=sys.argv[1:] if argv is None else argv, description=__doc__)
    mesh = sharding.make_mesh(config.devices)
    points = grid_points(config)
    out = config.out or runs.default_run_dir("scan-ttosc")
    print(f"{len(points)} configs x {config.num_seeds} seeds on {mesh.size} device(s); output: {out}")
    result = run_scan(config.ddqn, points, config.num_seeds, config.seed, mesh, config.chunk_iterations)
    summary = write_outputs(out, points, final_episode_rewards(result["metrics"], config.last_episodes), FIELDS,
                            "final mean frame reward")
    report(result, summary, FIELDS, config.top, f"env frames over {mesh.size} device(s)", "final frame reward")
    return 0
