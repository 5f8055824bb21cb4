"""Hyperparameter scans as one vmapped, device-sharded program: STPer's PPO or TTOSC's DDQN.

Every run of the grid (learning rate x clip x entropy coefficient x GAE lambda, times seeds) is
one element of a ``vmap`` over :class:`agents.stper.ppo.PPOHyperparams` and keys, and that run axis
is split over the devices (``NamedSharding(mesh, P("batch"))``). The GCN and LSTM widths
change array shapes, so each (GCN width, LSTM width) pair is its own compiled program, run one
after the other. Seed ``s`` uses ``fold_in(PRNGKey(seed), s)`` as scripts/train_stper.py does,
so a scan's run equals the training run of the same config and seed.

TTOSC (``python scripts/scan.py ttosc ...``): the grid is learning rate x epsilon schedule
(start, end, anneal length) of the DDQN, all vmapped (:class:`agents.ttosc.ddqn.DDQNHyperparams`):
one compiled program for the whole grid. The final return of a run is its mean frame reward
over its last finished episodes.

Usage:
    python scripts/scan.py                                   # STPer, small default grid, CPU minutes
    python scripts/scan.py --learning-rates 3e-4 1e-3 3e-3 --ent-coefs 0 0.01 --num-seeds 4
    XLA_FLAGS=--xla_force_host_platform_device_count=2 python scripts/scan.py   # 2 CPU devices
    python scripts/scan.py ttosc --learning-rates 1e-3 1e-2 --epsilon-anneals 10 20   # TTOSC DDQN

Writes ``scan.csv`` (one row per config and seed), ``scan_summary.csv`` (one row per config:
mean and std of the final return over seeds), ``scan.png`` (final return per config with its
seed spread) to the output folder and prints the best configs.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import sys
import time
from pathlib import Path
from typing import Annotated

import jax
import numpy as np
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import sharding  # noqa: E402
from agents.ttosc.ddqn import DDQNConfig, DDQNHyperparams  # noqa: E402
from agents.ttosc.ddqn import make_trainer as make_ddqn_trainer  # noqa: E402
from agents.stper.ppo import PPOConfig, PPOHyperparams, make_trainer  # noqa: E402

DYNAMIC = PPOHyperparams._fields
"""Grid fields that are vmapped (one compiled program serves all their values)."""
POINT_FIELDS = ("gcn_width", "lstm_width", *DYNAMIC)
TTOSC_FIELDS = DDQNHyperparams._fields
"""The TTOSC grid: every field is vmapped."""


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
    """Base seed (seed s uses fold_in(PRNGKey(seed), s), as train_stper.py)."""
    devices: int = 0
    """Devices to split the runs over (0 = all local devices)."""
    chunk_updates: int = 10
    """Updates per jitted chunk (the progress bar advances per chunk)."""
    last_updates: int = 5
    """The final return of a run is its mean episode return over its last this many updates."""
    top: int = 5
    """Best configs printed."""
    out_dir: Path | None = None
    """Output folder; default runs/scan-<variant>-<timestamp>."""

    def __post_init__(self):
        for name in ("learning_rates", "clip_ranges", "ent_coefs", "gae_lambdas", "gcn_widths", "lstm_widths"):
            if not getattr(self, name):
                raise ValueError(f"ScanConfig.{name} is empty: give at least one value")
        for name in ("num_seeds", "chunk_updates", "last_updates", "top"):
            if getattr(self, name) < 1:
                raise ValueError(f"ScanConfig.{name}={getattr(self, name)!r} is invalid: must be >= 1")


@dataclasses.dataclass(frozen=True)
class TTOSCScanConfig:
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
    """Base seed (seed s uses fold_in(PRNGKey(seed), s), as train_ttosc.py)."""
    devices: int = 0
    """Devices to split the runs over (0 = all local devices)."""
    chunk_iterations: int = 24
    """Frames per jitted chunk (the progress bar advances per chunk)."""
    last_episodes: int = 2
    """The final return of a run is its mean frame reward over its last this many finished episode batches."""
    top: int = 5
    """Best configs printed."""
    out_dir: Path | None = None
    """Output folder; default runs/scan-ttosc-<timestamp>."""

    def __post_init__(self):
        for name in ("learning_rates", "epsilon_starts", "epsilon_ends", "epsilon_anneals"):
            values = getattr(self, name)
            if not values:
                raise ValueError(f"--{name.replace('_', '-')} is empty: give at least one value")
        if min(self.learning_rates) <= 0 or min(self.epsilon_anneals) <= 0:
            raise ValueError(f"--learning-rates={self.learning_rates} and --epsilon-anneals={self.epsilon_anneals} "
                             "are invalid: every value must be > 0")
        for name in ("epsilon_starts", "epsilon_ends"):
            if not all(0.0 <= v <= 1.0 for v in getattr(self, name)):
                raise ValueError(f"--{name.replace('_', '-')}={getattr(self, name)} is invalid: must be in [0, 1]")
        for name in ("num_seeds", "chunk_iterations", "last_episodes", "top"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')}={getattr(self, name)!r} is invalid: must be >= 1")


def ttosc_grid_points(config: TTOSCScanConfig) -> list[dict]:
    """The TTOSC grid as ``{learning_rate, epsilon_start, epsilon_end, epsilon_episodes}`` dicts."""
    return [dict(zip(TTOSC_FIELDS, values)) for values in itertools.product(
        config.learning_rates, config.epsilon_starts, config.epsilon_ends, config.epsilon_anneals)]


def run_ttosc_scan(ddqn: DDQNConfig, points: list[dict], num_seeds: int, seed: int, mesh,
                   chunk_iterations: int = 24, progress: bool = True) -> dict:
    """Trains every TTOSC grid point x seed as ONE vmapped program split over ``mesh``.

    Returns:
        As :func:`run_scan`, with metrics ``(C, S, frames)`` and ``env_steps`` counting frames.
    """
    from tqdm import tqdm

    trainer = make_ddqn_trainer(ddqn)
    runs, keys, extra = padded_runs(list(range(len(points))), num_seeds, seed, mesh)
    hparams = DDQNHyperparams(*(np.array([points[i][name] for i, _ in runs], np.float32) for name in TTOSC_FIELDS))
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


def grid_points(config: ScanConfig) -> list[dict]:
    """The grid as a list of ``{gcn_width, lstm_width, learning_rate, clip_eps, ent_coef, gae_lambda}``."""
    return [dict(zip(POINT_FIELDS, values)) for values in itertools.product(
        config.gcn_widths, config.lstm_widths, config.learning_rates, config.clip_ranges, config.ent_coefs,
        config.gae_lambdas)]


def point_config(ppo: PPOConfig, point: dict) -> PPOConfig:
    """The plain PPO config of one grid point (what a separate training run of it uses)."""
    return dataclasses.replace(ppo, embed_dim=point["gcn_width"], lstm_hidden=point["lstm_width"],
                               **{name: point[name] for name in DYNAMIC})


def seed_key(seed: int, index: int) -> jax.Array:
    """Key of seed ``index``: row ``index`` of ``agents.cli.seed_keys(seed, n)``, as every script."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), index)


def train_runs(trainer, chunk_call, keys: np.ndarray, hparams, mesh, total: int, chunk_size: int, bar,
               runs_per_step: int, postfix_metric: str) -> tuple[dict, float, float]:
    """Trains ``R`` runs (keys ``(R, 2)``, hparams batched ``(R,)``) as one vmapped program split over ``mesh``.

    ``chunk_call(runner, n, hparams)`` runs ``n`` steps of one run. Returns the metrics
    ``{name: (R, total)}``, the execution seconds and the compile seconds.
    """
    split = sharding.batch_sharding(mesh)
    start = time.perf_counter()
    # Each run's initial state by the one-run program, stacked: jit(vmap(init)) of the LSTM
    # variants hung at 0% CPU on JAX 0.10.2 CPU (DESIGN.md section D); the result is the same.
    init = jax.jit(trainer.init)
    runner = jax.device_put(jax.tree.map(lambda *xs: np.stack(xs), *(jax.device_get(init(k)) for k in keys)), split)
    chunk_sizes = sorted({min(chunk_size, total - done) for done in range(0, total, chunk_size)})
    compiled = {
        n: jax.jit(jax.vmap(lambda r, h, n=n: chunk_call(r, n, h)), in_shardings=(split, split),
                   out_shardings=(split, split)).lower(runner, hparams).compile()
        for n in chunk_sizes
    }
    jax.block_until_ready(runner)
    compile_seconds = time.perf_counter() - start
    run_seconds = 0.0
    chunks = []
    done = 0
    while done < total:
        n = min(chunk_size, total - done)
        start = time.perf_counter()
        runner, chunk_metrics = compiled[n](runner, hparams)
        chunk_metrics = jax.device_get(chunk_metrics)
        run_seconds += time.perf_counter() - start
        chunks.append(chunk_metrics)
        done += n
        bar.update(n * runs_per_step)
        recent = np.asarray(chunk_metrics[postfix_metric])
        recent = recent[np.isfinite(recent)]
        bar.set_postfix(ret=f"{recent.mean():.3g}" if recent.size else "-")
    metrics = {name: np.concatenate([np.asarray(c[name]) for c in chunks], axis=1) for name in chunks[0]}
    return metrics, run_seconds, compile_seconds


def padded_runs(indices: list[int], num_seeds: int, seed: int, mesh) -> tuple[list[tuple[int, int]], np.ndarray, int]:
    """``(point, seed)`` runs padded (by repeating the last) to a multiple of the device count, their keys."""
    runs = [(i, s) for i in indices for s in range(num_seeds)]
    extra = -len(runs) % mesh.size
    runs = runs + [runs[-1]] * extra
    return runs, np.stack([np.asarray(seed_key(seed, s)) for _, s in runs]), extra


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
        runs, keys, extra = padded_runs(indices, num_seeds, seed, mesh)
        padded += extra
        hparams = PPOHyperparams(*(np.array([points[i][name] for i, _ in runs], np.float32) for name in DYNAMIC))
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


def write_outputs(out_dir: Path, points: list[dict], finals: np.ndarray, fields: tuple[str, ...] = POINT_FIELDS,
                  ylabel: str = "final episode return") -> list[dict]:
    """Writes scan.csv, scan_summary.csv and scan.png; returns the summary rows, best first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "scan.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["config", *fields, "seed", "final_return"])
        for c, point in enumerate(points):
            for s in range(finals.shape[1]):
                writer.writerow([c, *(point[k] for k in fields), s, f"{finals[c, s]:.6g}"])
    summary = [dict(config=c, **point, mean=float(np.mean(finals[c])), std=float(np.std(finals[c])),
                    min=float(np.min(finals[c])), max=float(np.max(finals[c]))) for c, point in enumerate(points)]
    summary.sort(key=lambda row: -row["mean"])
    with (out_dir / "scan_summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    order = [row["config"] for row in summary]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(points) + 2), 4.2))
    x = np.arange(len(points))
    ax.errorbar(x, [finals[c].mean() for c in order], yerr=[finals[c].std() for c in order], fmt="o", capsize=3,
                label="mean ± std over seeds")
    for position, c in enumerate(order):
        ax.scatter(np.full(finals.shape[1], position), finals[c], s=10, color="grey", alpha=0.6)
    ax.set_xticks(x, [str(c) for c in order])
    ax.set_xlabel("config (see scan_summary.csv), best first")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "scan.png", dpi=120)
    plt.close(fig)
    return summary


def main_ttosc(argv: list[str]) -> int:
    """``scan.py ttosc ...``: the DDQN grid of TTOSC."""
    config = tyro.cli(TTOSCScanConfig, args=argv, description=__doc__)
    mesh = sharding.make_mesh(config.devices)
    points = ttosc_grid_points(config)
    out_dir = config.out_dir or Path("runs") / f"scan-ttosc-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"{len(points)} configs x {config.num_seeds} seeds on {mesh.size} device(s); output: {out_dir}")
    result = run_ttosc_scan(config.ddqn, points, config.num_seeds, config.seed, mesh, config.chunk_iterations)
    finals = final_episode_rewards(result["metrics"], config.last_episodes)
    summary = write_outputs(out_dir, points, finals, TTOSC_FIELDS, "final mean frame reward")
    rate = result["env_steps"] / result["run_seconds"]
    print(f"\ncompile {result['compile_seconds']:.1f} s, run {result['run_seconds']:.1f} s: "
          f"{rate:,.0f} (runs x env frames)/s over {mesh.size} device(s)\n")
    print(f"best {min(config.top, len(summary))} of {len(summary)} configs (final frame reward, mean ± std over seeds):")
    for row in summary[: config.top]:
        settings = ", ".join(f"{k}={row[k]:g}" for k in TTOSC_FIELDS)
        print(f"  #{row['config']:<3} {row['mean']:10.3f} ± {row['std']:6.3f}   {settings}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ttosc"]:
        return main_ttosc(argv[1:])
    if argv[:1] == ["stper"]:
        argv = argv[1:]
    config = tyro.cli(ScanConfig, args=argv, description=__doc__)
    mesh = sharding.make_mesh(config.devices)
    points = grid_points(config)
    out_dir = config.out_dir or Path("runs") / f"scan-{config.ppo.variant}-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"{len(points)} configs x {config.num_seeds} seeds on {mesh.size} device(s); output: {out_dir}")
    result = run_scan(config.ppo, points, config.num_seeds, config.seed, mesh, config.chunk_updates)
    finals = final_returns(result["metrics"], config.last_updates)
    summary = write_outputs(out_dir, points, finals)
    rate = result["env_steps"] / result["run_seconds"]
    print(f"\ncompile {result['compile_seconds']:.1f} s, run {result['run_seconds']:.1f} s: "
          f"{rate:,.0f} (runs x env steps)/s over {mesh.size} device(s)\n")
    print(f"best {min(config.top, len(summary))} of {len(summary)} configs (final return, mean ± std over seeds):")
    for row in summary[: config.top]:
        settings = ", ".join(f"{k}={row[k]:g}" for k in POINT_FIELDS)
        print(f"  #{row['config']:<3} {row['mean']:10.1f} ± {row['std']:6.1f}   {settings}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
