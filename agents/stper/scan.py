"""The STPer PPO scan (``jaxcpn scan-stper``): learning rate x clip x entropy x GAE lambda, vmapped.

Every run of the grid (times seeds) is one element of a ``vmap`` over
:class:`agents.stper.ppo.PPOHyperparams` and keys, split over the devices
(:func:`agents.scan.train_runs`). The GCN and LSTM widths change array shapes, so each (GCN
width, LSTM width) pair is its own compiled program, run one after the other. A scan's run
equals the ``jaxcpn train-stper`` run with the same PPO flags and seed.

Usage:
    jaxcpn scan-stper                                   # small default grid, CPU minutes
    jaxcpn scan-stper --learning-rates 3e-4 1e-3 3e-3 --ent-coefs 0 0.01 --num-seeds 4
    XLA_FLAGS=--xla_force_host_platform_device_count=2 jaxcpn scan-stper   # 2 CPU devices

Writes ``scan.csv`` (one row per config and seed), ``scan_summary.csv`` (one row per config:
mean and std of the final return over seeds) and ``scan.png`` to ``--out``, and prints the best
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
from agents.stper.ppo import PPOConfig, PPOHyperparams, make_trainer

DYNAMIC = PPOHyperparams._fields
"""Grid fields that are vmapped (one compiled program serves all their values)."""
POINT_FIELDS = ("gcn_width", "lstm_width", *DYNAMIC)


@dataclasses.dataclass(frozen=True)
class ScanConfig:
    """A seeds x grid scan of PPO hyperparameters for STPer (or an ablation)."""

    ppo: Annotated[PPOConfig, tyro.conf.OmitArgPrefixes] = PPOConfig(
        num_envs=16, num_steps=24, num_updates=30, num_minibatches=4, fusion_hidden=(64,), head_hidden=(32,))
    """Base PPO config (flags without prefix); grid values override its fields."""
    learning_rates: tuple[float, ...] = (3e-4, 1e-3)
    """Adam learning rates (vmapped)."""
    clip_ranges: tuple[float, ...] = (0.1, 0.2)
    """PPO clip ranges (vmapped)."""
    ent_coefs: tuple[float, ...] = (0.0, 0.01)
    """Entropy coefficients (vmapped)."""
    gae_lambdas: tuple[float, ...] = (0.95,)
    """GAE lambdas (vmapped)."""
    gcn_widths: tuple[int, ...] = (16,)
    """GCN / demand-embedding widths d (one compiled program each)."""
    lstm_widths: tuple[int, ...] = (32,)
    """LSTM hidden sizes (one compiled program each)."""
    num_seeds: int = 2
    """Seeds per config."""
    seed: int = 0
    """Base seed (seed s uses fold_in(PRNGKey(seed), s), as train-stper)."""
    devices: int = 0
    """Devices to split the runs over (0 = all local devices)."""
    chunk_updates: int = 10
    """Updates per jitted chunk (the progress bar advances per chunk)."""
    last_updates: int = 5
    """The final return of a run is its mean episode return over its last this many updates."""
    top: int = 5
    """Best configs printed."""
    out: Path | None = None
    """Output folder; default runs/scan-<variant>-<timestamp>."""

    def __post_init__(self):
        require_nonempty(self, "learning_rates", "clip_ranges", "ent_coefs", "gae_lambdas", "gcn_widths",
                         "lstm_widths")
        require_positive(self, "num_seeds", "chunk_updates", "last_updates", "top")


def grid_points(config: ScanConfig) -> list[dict]:
    """The grid as a list of ``{gcn_width, lstm_width, learning_rate, clip_eps, ent_coef, gae_lambda}``."""
    return [dict(zip(POINT_FIELDS, values)) for values in itertools.product(
        config.gcn_widths, config.lstm_widths, config.learning_rates, config.clip_ranges, config.ent_coefs,
        config.gae_lambdas)]


def point_config(ppo: PPOConfig, point: dict) -> PPOConfig:
    """The plain PPO config of one grid point (what a separate training run of it uses)."""
    return dataclasses.replace(ppo, embed_dim=point["gcn_width"], lstm_hidden=point["lstm_width"],
                               **{name: point[name] for name in DYNAMIC})


def run_scan(ppo: PPOConfig, points: list[dict], num_seeds: int, seed: int, mesh,
             chunk_updates: int = 10, progress: bool = True) -> dict:
    """Trains every grid point x seed; one vmapped program (per width pair) sharded over ``mesh``.

    Returns:
        ``metrics``: ``{name: (C, S, num_updates)}`` float arrays for the ``C`` points and ``S``
        seeds; ``run_seconds`` (execution, compiles excluded), ``compile_seconds``,
        ``env_steps`` (total over all runs) and ``padded_runs`` (dummy runs added so the run
        axis divides the device count).
    """
    from tqdm import tqdm

    groups: dict[tuple[int, int], list[int]] = {}
    for index, point in enumerate(points):
        groups.setdefault((point["gcn_width"], point["lstm_width"]), []).append(index)
    metrics: dict[str, np.ndarray] = {}
    run_seconds = compile_seconds = 0.0
    padded = 0
    bar = tqdm(total=len(points) * num_seeds * ppo.num_updates, unit="run-upd", disable=not progress,
               desc=f"scan {len(points)}x{num_seeds} on {mesh.size} dev")
    for (gcn_width, lstm_width), indices in groups.items():
        trainer = make_trainer(dataclasses.replace(ppo, embed_dim=gcn_width, lstm_hidden=lstm_width))
        runs_, keys, extra = padded_runs(indices, num_seeds, seed, mesh)
        padded += extra
        hparams = PPOHyperparams(*(np.array([points[i][name] for i, _ in runs_], np.float32) for name in DYNAMIC))
        group_metrics, run_s, compile_s = train_runs(
            trainer, lambda r, n, h, trainer=trainer: trainer.train_chunk(r, n, h), keys, hparams, mesh,
            ppo.num_updates, chunk_updates, bar, len(indices) * num_seeds, "episode_return")
        run_seconds += run_s
        compile_seconds += compile_s
        for name, values in group_metrics.items():
            values = values[: len(indices) * num_seeds].reshape(len(indices), num_seeds, ppo.num_updates)
            if name not in metrics:
                metrics[name] = np.full((len(points), num_seeds, ppo.num_updates), np.nan, np.float32)
            metrics[name][indices] = values
    bar.close()
    env_steps = len(points) * num_seeds * ppo.num_updates * ppo.num_envs * ppo.num_steps
    return dict(metrics=metrics, run_seconds=run_seconds, compile_seconds=compile_seconds, env_steps=env_steps,
                padded_runs=padded)


def final_returns(metrics: dict, last_updates: int) -> np.ndarray:
    """``(C, S)`` mean episode return over the last ``last_updates`` updates of each run."""
    return np.nanmean(metrics["episode_return"][..., -last_updates:], axis=-1)


def main(argv: list[str] | None = None) -> int:
    """``jaxcpn scan-stper``: runs the grid and writes the scan's files."""
    config = tyro.cli(ScanConfig, args=sys.argv[1:] if argv is None else argv, description=__doc__)
    mesh = sharding.make_mesh(config.devices)
    points = grid_points(config)
    out = config.out or runs.default_run_dir(f"scan-{config.ppo.variant}")
    print(f"{len(points)} configs x {config.num_seeds} seeds on {mesh.size} device(s); output: {out}")
    result = run_scan(config.ppo, points, config.num_seeds, config.seed, mesh, config.chunk_updates)
    summary = write_outputs(out, points, final_returns(result["metrics"], config.last_updates), POINT_FIELDS,
                            "final episode return")
    report(result, summary, POINT_FIELDS, config.top, f"env steps over {mesh.size} device(s)", "final return")
    return 0
