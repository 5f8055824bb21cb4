"""Train the STPer PPO agent (or an ablation) on the green CPN and compare it with the baselines.

Usage:
    python scripts/train_stper.py                          # quick preset, minutes on 2 CPU cores
    python scripts/train_stper.py --variant stper-l --num-seeds 3
    python scripts/train_stper.py --preset paper           # paper scale, meant for a GPU
    python scripts/train_stper.py --resume runs/stper-stper-20250101-120000
    python scripts/train_stper.py --devices 0              # env batch split over all devices
    python scripts/train_stper.py --distributed --coordinator-address host0:1234 \
        --num-processes 2 --process-id 0                   # multi-host (docs/scaling.md)

Writes a run folder (default ``runs/stper-<variant>-<timestamp>``): ``config.json`` (the
resolved config), ``metrics.csv`` (one row per update and seed), Orbax checkpoints under
``checkpoints/`` (at every chunk boundary), ``learning_curves.png`` (cumulative reward and
explained variance) and ``summary.json`` / ``summary.txt`` (the final table).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Literal

import jax
import numpy as np
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.cli import parse_with_presets
from agents.seeds import seed_keys  # noqa: E402
from agents import checkpoint, sharding  # noqa: E402
from agents.stper.baselines import CPN_POLICIES, rollout_cpn  # noqa: E402
from agents.stper.ppo import PPOConfig, RunnerState, make_trainer, network_policy  # noqa: E402

METRIC_NAMES = (
    "episode_return", "slot_profit", "mean_delay", "miss_rate", "explained_variance",
    "entropy", "approx_kl", "clip_fraction", "policy_loss", "value_loss",
)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training run of STPer / STPer-L / STPer-M with PPO."""

    ppo: Annotated[PPOConfig, tyro.conf.OmitArgPrefixes] = PPOConfig()
    """PPO and network hyperparameters (flags without prefix, e.g. --variant, --num-envs)."""
    preset: Literal["quick", "paper"] = "quick"
    """Starting values of every field: quick (2 CPU cores, < 10 min) or paper (GPU scale)."""
    num_seeds: int = 1
    """Independent training seeds, run as one vmapped program."""
    seed: int = 0
    """Base seed (seed i of the run uses fold_in(PRNGKey(seed), i))."""
    chunk_updates: int = 10
    """Updates per jitted chunk: the progress bar, metrics and checkpoints advance per chunk."""
    run_dir: Path | None = None
    """Run folder; default runs/stper-<variant>-<timestamp>."""
    resume: Path | None = None
    """Continue the run in this folder from its last checkpoint (its config.json is used)."""
    eval_episodes: int = 16
    """Parallel evaluation episodes of every policy (the Oracle's cost grows with it)."""
    eval_seed: int = 12345
    """Seed of the evaluation episodes (the same episodes for every policy)."""
    devices: int = 1
    """Devices to split the env batch over (0 = all; num_envs must be divisible by it)."""
    distributed: bool = False
    """Join a multi-process run with jax.distributed.initialize before anything else (docs/scaling.md)."""
    coordinator_address: str | None = None
    """With --distributed: process 0's host:port (omit to let JAX detect SLURM / Open MPI)."""
    num_processes: int | None = None
    """With --distributed: number of processes."""
    process_id: int | None = None
    """With --distributed: this process's id in [0, num_processes)."""


PRESETS = {
    "quick": TrainConfig(),
    "paper": TrainConfig(
        preset="paper",
        ppo=PPOConfig(num_envs=2048, num_steps=24, num_updates=2000, num_minibatches=32,
                      learning_rate=3e-4, lstm_hidden=64, fusion_hidden=(256, 256), head_hidden=(128,)),
        num_seeds=3, chunk_updates=50, eval_episodes=256,
    ),
}


def parse_config(argv: list[str]) -> TrainConfig:
    """Parses ``argv`` with the chosen ``--preset`` as the defaults."""
    return parse_with_presets(TrainConfig, PRESETS, argv, __doc__)


def config_to_json(config: TrainConfig) -> dict:
    data = dataclasses.asdict(config)
    return json.loads(json.dumps(data, default=str))


def config_from_json(data: dict) -> TrainConfig:
    ppo = data["ppo"]
    ppo = PPOConfig(**{**ppo, "fusion_hidden": tuple(ppo["fusion_hidden"]), "head_hidden": tuple(ppo["head_hidden"])})
    fields = {**data, "ppo": ppo}
    for name in ("run_dir", "resume"):
        fields[name] = None if fields[name] is None else Path(fields[name])
    return TrainConfig(**fields)


class Run:
    """A training run: the vmapped trainer, its run folder and the host loop."""

    def __init__(self, config: TrainConfig):
        self.config = config
        self.trainer = make_trainer(config.ppo)
        self.mesh = sharding.make_mesh(config.devices)
        keys = seed_keys(config.seed, config.num_seeds)
        self.init, _ = sharding.sharded_trainer_fns(self.trainer, self.mesh, 1, num_seeds=config.num_seeds)
        self.keys = np.asarray(keys)  # host value: valid jit input in a multi-process run too
        self._chunks = {}

    def chunk(self, runner: RunnerState, num_updates: int):
        """Runs ``num_updates`` updates of every seed (one compiled program per chunk size)."""
        if num_updates not in self._chunks:
            _, self._chunks[num_updates] = sharding.sharded_trainer_fns(
                self.trainer, self.mesh, num_updates, num_seeds=self.config.num_seeds)
        return self._chunks[num_updates](runner)

    def initial_state(self) -> RunnerState:
        return self.init(self.keys)

    def place(self, runner: RunnerState) -> RunnerState:
        """``runner`` (e.g. restored) in the layout of the training program."""
        return sharding.shard_runner(runner, self.mesh, batch_dim=1)


def write_metrics(path: Path, metrics: dict, first_update: int, env_steps_per_update: int) -> None:
    """Appends ``(num_seeds, n)`` metrics as rows ``update, seed, env_steps, ...``."""
    new = not path.exists()
    host = {k: np.asarray(jax.device_get(v)) for k, v in metrics.items()}
    num_seeds, n = host["episode_return"].shape
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["update", "seed", "env_steps", *METRIC_NAMES])
        for j in range(n):
            update = first_update + j + 1
            for s in range(num_seeds):
                writer.writerow([update, s, update * env_steps_per_update, *(f"{host[k][s, j]:.6g}" for k in METRIC_NAMES)])


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """Metrics CSV as ``{name: (num_seeds, num_updates)}`` plus ``env_steps (num_updates,)``."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    seeds = sorted({int(r["seed"]) for r in rows})
    out = {}
    for name in ("env_steps", *METRIC_NAMES):
        out[name] = np.array([[float(r[name]) for r in rows if int(r["seed"]) == s] for s in seeds])
    out["env_steps"] = out["env_steps"][0]
    return out


def plot_curves(metrics_path: Path, out_path: Path, label: str) -> None:
    """PNG of the cumulative (episode) reward and the explained variance vs env steps (Fig. 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = read_metrics(metrics_path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, name, title in ((axes[0], "episode_return", "cumulative reward (episode profit)"),
                            (axes[1], "explained_variance", "explained variance of V")):
        values = data[name]
        mean, std = np.nanmean(values, 0), np.nanstd(values, 0)
        ax.plot(data["env_steps"], mean, label=label)
        ax.fill_between(data["env_steps"], mean - std, mean + std, alpha=0.25)
        ax.set_xlabel("env steps (per seed)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)


def train(config: TrainConfig, run_dir: Path, interrupt_after: int | None = None) -> RunnerState:
    """Runs (or resumes) the training in ``run_dir``; returns the final batched runner state.

    ``interrupt_after`` stops after that many updates as if interrupted (for tests).
    """
    from tqdm import tqdm

    run = Run(config)
    ppo = config.ppo
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = run_dir / "checkpoints"
    metrics_path = run_dir / "metrics.csv"
    runner = run.initial_state()
    done = 0
    if checkpoint.latest_step(ckpt_dir) is not None:
        runner, done = checkpoint.restore_checkpoint(ckpt_dir, runner)
        runner = run.place(runner)
        checkpoint.truncate_metrics(metrics_path, done)
    elif metrics_path.exists():
        metrics_path.unlink()
    steps_per_update = ppo.num_envs * ppo.num_steps
    stop = ppo.num_updates if interrupt_after is None else min(ppo.num_updates, interrupt_after)
    bar = tqdm(total=ppo.num_updates, initial=done, desc=f"{ppo.variant} x{config.num_seeds}", unit="upd")
    try:
        while done < stop:
            n = min(config.chunk_updates, ppo.num_updates - done)
            runner, metrics = run.chunk(runner, n)
            jax.block_until_ready(metrics)
            write_metrics(metrics_path, metrics, done, steps_per_update)
            done += n
            checkpoint.save_checkpoint(ckpt_dir, done, runner)
            last = {k: float(np.nanmean(np.asarray(v)[:, -1])) for k, v in metrics.items()}
            bar.update(n)
            bar.set_postfix(ret=f"{last['episode_return']:.0f}", ev=f"{last['explained_variance']:.2f}",
                            ent=f"{last['entropy']:.1f}")
    except KeyboardInterrupt:
        bar.close()
        print(f"\ninterrupted: last checkpoint at update {checkpoint.latest_step(ckpt_dir)}; "
              f"continue with --resume {run_dir}")
        raise
    bar.close()
    return runner


def evaluate(config: TrainConfig, runner: RunnerState) -> dict:
    """Profit, delay and misses of each seed's trained policy and of Random, Greedy, Oracle."""
    trainer = make_trainer(config.ppo)
    env, params = trainer.env, trainer.env_params
    key = jax.random.PRNGKey(config.eval_seed)

    def summarise(metrics):
        profit = np.asarray(metrics["profit"])
        return dict(slot_profit=float(profit.mean()), episode_profit=float(profit.sum(0).mean()),
                    mean_delay=float(np.asarray(metrics["mean_delay"]).mean()),
                    miss_rate=float(np.asarray(metrics["miss_rate"]).mean()))

    results = {}
    per_seed = []
    for s in range(config.num_seeds):
        variables = jax.tree.map(lambda x: x[s], runner.train_state.params)
        policy = network_policy(trainer.network, variables)
        per_seed.append(summarise(jax.jit(lambda k: rollout_cpn(policy, env, params, k, config.eval_episodes))(key)))
    row = {k: float(np.mean([p[k] for p in per_seed])) for k in per_seed[0]}
    row["slot_profit_std"] = float(np.std([p["slot_profit"] for p in per_seed]))
    row["per_seed_slot_profit"] = [p["slot_profit"] for p in per_seed]
    results[config.ppo.variant] = row
    for name in ("random", "greedy", "oracle"):
        policy = CPN_POLICIES[name]
        results[name] = summarise(jax.jit(lambda k: rollout_cpn(policy, env, params, k, config.eval_episodes))(key))
    for row in results.values():
        row["fraction_of_oracle"] = row["slot_profit"] / results["oracle"]["slot_profit"]
    return results


def format_table(config: TrainConfig, results: dict) -> str:
    """One-screen table of the evaluation."""
    lines = [
        f"Evaluation on the CPN instance (seed {config.ppo.instance_seed}): the same {config.eval_episodes} "
        f"episodes of {config.ppo.episode_length} slots for every policy; trained policy = argmax, "
        f"mean over {config.num_seeds} seed(s).",
        "",
        f"{'policy':<10} {'profit/slot':>12} {'episode profit':>15} {'mean delay (s)':>15} {'miss rate':>10} {'of Oracle':>10}",
    ]
    for name, row in results.items():
        profit = f"{row['slot_profit']:.2f}"
        if "slot_profit_std" in row and config.num_seeds > 1:
            profit += f"±{row['slot_profit_std']:.2f}"
        lines.append(
            f"{name:<10} {profit:>12} {row['episode_profit']:>15.1f} {row['mean_delay']:>15.3f} "
            f"{row['miss_rate']:>10.3%} {row['fraction_of_oracle']:>10.1%}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    config = parse_config(argv)
    if config.distributed:
        sharding.initialize_distributed(config.coordinator_address, config.num_processes, config.process_id)
    if config.resume is not None:
        run_dir = config.resume
        config = dataclasses.replace(config_from_json(json.loads((run_dir / "config.json").read_text())),
                                     resume=run_dir, run_dir=run_dir)
        print(f"resuming {run_dir} (its config.json; other flags ignored)")
    else:
        run_dir = config.run_dir or Path("runs") / f"stper-{config.ppo.variant}-{time.strftime('%Y%m%d-%H%M%S')}"
        config = dataclasses.replace(config, run_dir=run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config_to_json(config), indent=2))
    print(f"run folder: {run_dir}")
    start = time.perf_counter()
    try:
        runner = train(config, run_dir)
    except KeyboardInterrupt:
        return 130
    train_seconds = time.perf_counter() - start
    plot_curves(run_dir / "metrics.csv", run_dir / "learning_curves.png", config.ppo.variant)
    results = evaluate(config, runner)
    table = format_table(config, results)
    (run_dir / "summary.txt").write_text(table + "\n")
    (run_dir / "summary.json").write_text(json.dumps(dict(results=results, train_seconds=train_seconds), indent=2))
    print(f"\ntraining: {train_seconds:.0f} s; total: {time.perf_counter() - start:.0f} s\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
