"""The STPer training job (``jaxcpn train-stper``): PPO on the green CPN, then a table against the baselines.

Usage:
    jaxcpn train-stper                          # quick preset, minutes on 2 CPU cores
    jaxcpn train-stper --variant stper-l --num-seeds 3
    jaxcpn train-stper --preset paper           # until the curves flatten: 3 seeds x 6.1M steps, < 30 min
    jaxcpn train-stper --resume runs/stper-stper-20250101-120000
    jaxcpn train-stper --devices 0              # env batch split over all devices
    jaxcpn train-stper --distributed --coordinator-address host0:1234 \
        --num-processes 2 --process-id 0        # multi-host (docs/scaling.md)

(``python scripts/train_stper.py`` is the same job.) Writes a run folder (default
``runs/stper-<variant>-<timestamp>``, see :mod:`agents.runs`): ``config.json``, ``metrics.csv``
(one row per update and seed), Orbax checkpoints under ``checkpoints/`` (at every chunk
boundary), ``learning_curves.png`` (cumulative reward and explained variance) and
``summary.json`` / ``summary.txt`` (the final table).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Literal

import jax
import numpy as np
import tyro

from agents import outputs, runs, sharding
from agents.checks import flag, require_positive
from agents.cli import parse_with_presets
from agents.seeds import seed_keys
from agents.stper.baselines import CPN_POLICIES, rollout_cpn
from agents.stper.instance import InstanceArgs, check_record, instance_record, make_instance
from agents.stper.ppo import PPOConfig, RunnerState, make_trainer, network_policy

JOB = "train-stper"
METRIC_NAMES = (
    "episode_return", "slot_profit", "mean_delay", "miss_rate", "explained_variance",
    "entropy", "approx_kl", "clip_fraction", "policy_loss", "value_loss",
)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training run of STPer / STPer-L / STPer-M with PPO."""

    ppo: Annotated[PPOConfig, tyro.conf.OmitArgPrefixes] = PPOConfig()
    """PPO and network hyperparameters (flags without prefix, e.g. --variant, --num-envs)."""
    instance: Annotated[InstanceArgs, tyro.conf.OmitArgPrefixes] = InstanceArgs()
    """The CPN instance: real series (--price-csv, --hydro-csv) and generator settings (--kappa, ...)."""
    preset: Literal["quick", "paper"] = "quick"
    """Starting values of every field: quick (2 CPU cores, < 10 min) or paper (GPU scale)."""
    num_seeds: int = 1
    """Independent training seeds, run as one vmapped program."""
    seed: int = 0
    """Base seed (seed i of the run uses fold_in(PRNGKey(seed), i))."""
    chunk_updates: int = 10
    """Updates per jitted chunk: the progress bar, metrics and checkpoints advance per chunk."""
    run_dir: Path | None = None
    """Run folder of a fresh run (must not hold a run); default runs/stper-<variant>-<timestamp>."""
    resume: Path | None = None
    """Continue the run in this folder from its last checkpoint (its config.json is used)."""
    eval_episodes: int = 16
    """Parallel evaluation episodes of every policy (the coordinate ascent's cost grows with it)."""
    eval_seed: int = 12345
    """Seed of the evaluation episodes (the same episodes for every policy)."""
    tensorboard: bool = False
    """Also write every metric as TensorBoard scalars under <run-dir>/tensorboard (needs tensorboardX)."""
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

    def __post_init__(self):
        # Refused here, before any work (tyro turns the ValueError into a usage error, exit 2).
        require_positive(self, "num_seeds", "chunk_updates", "eval_episodes")
        require_positive(self, "num_processes", allow_none=True)
        runs.check_run_flags(self)
        if not self.distributed:
            given = [flag(name) for name in ("coordinator_address", "num_processes", "process_id")
                     if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} given without --distributed: they only apply to a "
                                 "multi-process run (add --distributed or drop them)")
        if self.process_id is not None and (self.process_id < 0 or (
                self.num_processes is not None and self.process_id >= self.num_processes)):
            bound = "" if self.num_processes is None else f", < --num-processes={self.num_processes}"
            raise ValueError(f"--process-id={self.process_id} is invalid: must be an integer >= 0{bound}")


PRESETS = {
    "quick": TrainConfig(),
    "paper": TrainConfig(
        preset="paper",
        # The paper gives no PPO budget: train until the curves flatten. At 256 envs the training
        # return of STPer rises to ~3M env steps and then moves < 1% (docs/results.md, "Paper
        # presets"); 1000 updates = 6.1M steps per seed leave room past that, for 3 seeds.
        ppo=PPOConfig(num_envs=256, num_steps=24, num_updates=1000),
        num_seeds=3, chunk_updates=25, eval_episodes=64,
    ),
}


def parse_config(argv: list[str]) -> TrainConfig:
    """Parses ``argv`` with the chosen ``--preset`` as the defaults."""
    return parse_with_presets(TrainConfig, PRESETS, argv, __doc__)


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """Metrics CSV as ``{name: (num_seeds, num_updates)}`` plus ``env_steps (num_updates,)``."""
    data = runs.read_metrics(path, ("env_steps", *METRIC_NAMES))
    data["env_steps"] = data["env_steps"][0]
    return data


def plot_curves(metrics_paths: dict[str, Path], out_path: Path) -> Path:
    """PNG of the cumulative (episode) reward and explained variance vs env steps (Fig. 3 metrics).

    Args:
        metrics_paths: ``{label: metrics.csv}``, one line (mean, band = std over seeds) each.
    """
    plt = outputs.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, path in metrics_paths.items():
        data = read_metrics(path)
        for ax, name in zip(axes, ("episode_return", "explained_variance")):
            outputs.mean_band(ax, data["env_steps"], data[name], f"{label} ({data[name].shape[0]} seeds)")
    for ax, title in zip(axes, ("cumulative reward (episode profit)", "explained variance of V")):
        ax.set_xlabel("env steps (per seed)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    return outputs.save_figure(fig, out_path)


def instance_params(config: TrainConfig):
    """The run's CPN instance (seed ``--instance-seed``, ``--price-csv`` ..., ``--kappa`` ...)."""
    return make_instance(config.instance, config.ppo.env_config, config.ppo.instance_seed)


def train(config: TrainConfig, run_dir: Path, interrupt_after: int | None = None, env_params=None) -> RunnerState:
    """Runs (or resumes) the training in ``run_dir``; returns the final batched runner state.

    ``env_params``: the instance (default :func:`instance_params`). ``interrupt_after`` stops
    after that many updates as if interrupted (for tests).
    """
    ppo = config.ppo
    trainer = make_trainer(ppo, env_params=instance_params(config) if env_params is None else env_params)
    mesh = sharding.make_mesh(config.devices)
    init, _ = sharding.sharded_trainer_fns(trainer, mesh, 1, num_seeds=config.num_seeds)
    programs = {}

    def chunk(runner, n):
        if n not in programs:  # one compiled program per chunk size
            programs[n] = sharding.sharded_trainer_fns(trainer, mesh, n, num_seeds=config.num_seeds)[1]
        return programs[n](runner)

    steps_per_update = ppo.num_envs * ppo.num_steps

    board = runs.TensorBoardLog(run_dir) if config.tensorboard else None

    def write(path, metrics, done):
        runs.append_metrics(path, metrics, METRIC_NAMES, done, "update",
                            {"env_steps": lambda step: step * steps_per_update})
        if board is not None:
            board.write(metrics, METRIC_NAMES, done)

    def postfix(metrics):
        last = {k: float(np.nanmean(np.asarray(metrics[k])[:, -1])) for k in ("episode_return",
                                                                              "explained_variance", "entropy")}
        return dict(ret=f"{last['episode_return']:.0f}", ev=f"{last['explained_variance']:.2f}",
                    ent=f"{last['entropy']:.1f}")

    runner = init(np.asarray(seed_keys(config.seed, config.num_seeds)))  # host keys: valid in multi-process runs
    try:
        return runs.train_in_chunks(
            run_dir, runner, ppo.num_updates, config.chunk_updates, chunk, write,
            place=lambda r: sharding.shard_runner(r, mesh, batch_dim=1), postfix=postfix,
            desc=f"{ppo.variant} x{config.num_seeds}", unit="upd", interrupt_after=interrupt_after)
    finally:
        if board is not None:
            board.close()  # writes what is still queued (an interrupted run keeps its scalars too)


def evaluate(config: TrainConfig, runner: RunnerState, env_params=None) -> dict:
    """Profit, delay and misses of each seed's trained policy and of Random, Greedy, the coordinate ascent, and
    the conflict-free upper bound on the profit (``"bound"``, :mod:`agents.stper.bounds`)."""
    trainer = make_trainer(config.ppo, env_params=instance_params(config) if env_params is None else env_params)
    env, params = trainer.env, trainer.env_params
    key = jax.random.PRNGKey(config.eval_seed)

    # One program plays every seed's trained policy (its variables an argument) and the baselines that
    # return destinations (lax.switch on the policy's index, one env step for all): compiled once, not once
    # per seed and baseline. Random returns routes too (another step), so it has its own program.
    switched = ("greedy", "coord-ascent")

    def play(index, variables, k):
        branches = [lambda k, state: network_policy(trainer.network, variables)(k, env, state, params)] + [
            functools.partial(lambda name, k, state: CPN_POLICIES[name](k, env, state, params), name)
            for name in switched]
        return rollout_cpn(lambda k, env, state, params: jax.lax.switch(index, branches, k, state), env, params, k,
                           config.eval_episodes)

    play = jax.jit(play)
    some_variables = jax.tree.map(lambda x: x[0], runner.train_state.params)

    def summarise(policy, variables=None):
        if policy in switched:
            metrics = play(1 + switched.index(policy), some_variables, key)
        elif policy is None:
            metrics = play(0, variables, key)
        else:
            metrics = jax.jit(lambda k: rollout_cpn(CPN_POLICIES[policy], env, params, k, config.eval_episodes))(key)
        profit = np.asarray(metrics["profit"])
        return dict(slot_profit=float(profit.mean()), episode_profit=float(profit.sum(0).mean()),
                    mean_delay=float(np.asarray(metrics["mean_delay"]).mean()),
                    miss_rate=float(np.asarray(metrics["miss_rate"]).mean()),
                    bound_slot_profit=float(np.asarray(metrics["bound"]).mean()),
                    bound_episode_profit=float(np.asarray(metrics["bound"]).sum(0).mean()))

    per_seed = [summarise(None, jax.tree.map(lambda x: x[s], runner.train_state.params))
                for s in range(config.num_seeds)]
    row = {k: float(np.mean([p[k] for p in per_seed])) for k in per_seed[0]}
    row["slot_profit_std"] = float(np.std([p["slot_profit"] for p in per_seed]))
    row["per_seed_slot_profit"] = [p["slot_profit"] for p in per_seed]
    results = {config.ppo.variant: row}
    results.update({name: summarise(name) for name in ("random", "greedy", "coord-ascent")})
    # The bound of the slots each policy played: the same for all (same key and exogenous inputs;
    # with compute sharing the bound takes the queues empty, so it does not depend on the policy).
    greedy = results["greedy"]
    results["bound"] = dict(slot_profit=greedy["bound_slot_profit"], episode_profit=greedy["bound_episode_profit"],
                            mean_delay=float("nan"), miss_rate=float("nan"))
    for row in results.values():
        row["fraction_of_bound"] = row["slot_profit"] / row.get("bound_slot_profit", row["slot_profit"])
    return results


def format_table(config: TrainConfig, results: dict) -> str:
    """One-screen table of the evaluation."""
    lines = [
        f"Evaluation on the CPN instance (seed {config.ppo.instance_seed}): the same {config.eval_episodes} "
        f"episodes of {config.ppo.episode_length} slots for every policy; trained policy = argmax, "
        f"mean over {config.num_seeds} seed(s). bound = the conflict-free upper bound on any policy's "
        "profit in the same slots (no policy reaches it where link conflicts bind).",
        "",
        f"{'policy':<12} {'profit/slot':>12} {'episode profit':>15} {'mean delay (s)':>15} {'miss rate':>10} {'of bound':>10}",
    ]
    for name, row in results.items():
        profit = f"{row['slot_profit']:.2f}"
        if "slot_profit_std" in row and config.num_seeds > 1:
            profit += f"±{row['slot_profit_std']:.2f}"
        delay_misses = (f"{row['mean_delay']:>15.3f} {row['miss_rate']:>10.3%}" if name != "bound"
                        else f"{'-':>15} {'-':>10}")
        lines.append(f"{name:<12} {profit:>12} {row['episode_profit']:>15.1f} {delay_misses} "
                     f"{row['fraction_of_bound']:>10.1%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``jaxcpn train-stper``: trains (or resumes), evaluates and writes the run folder."""
    argv = sys.argv[1:] if argv is None else argv
    config = parse_config(argv)
    if config.distributed:
        sharding.initialize_distributed(config.coordinator_address, config.num_processes, config.process_id)
    if config.resume is not None:
        run_dir = config.resume
        saved = runs.load_run_config(JOB, TrainConfig, run_dir)
        longer = runs.resume_overrides(argv, TrainConfig, allowed=("num_updates", "devices", "tensorboard"))
        ppo = dataclasses.replace(saved.ppo, num_updates=config.ppo.num_updates) if "num_updates" in longer else saved.ppo
        config = dataclasses.replace(saved, ppo=ppo, resume=run_dir, run_dir=run_dir,
                                     devices=config.devices if "devices" in longer else saved.devices,
                                     tensorboard=config.tensorboard if "tensorboard" in longer else saved.tensorboard)
        check_record(runs.read_json(run_dir / "instance.json"), run_dir)
        print(f"resuming {run_dir} (its config.json" + (f"; --num-updates {ppo.num_updates})" if longer else ")"))
    else:
        run_dir = config.run_dir or runs.default_run_dir(f"stper-{config.ppo.variant}")
        config = dataclasses.replace(config, run_dir=run_dir)
        runs.start_run(JOB, config, run_dir)
        runs.write_json(run_dir / "instance.json", instance_record(config.instance))
    runs.append_history(run_dir, argv, num_updates=config.ppo.num_updates)
    print(f"run folder: {run_dir}")
    start = time.perf_counter()
    params = instance_params(config)
    try:
        runner = train(config, run_dir, env_params=params)
    except KeyboardInterrupt:
        return 130
    train_seconds = time.perf_counter() - start
    plot_curves({config.ppo.variant: run_dir / "metrics.csv"}, run_dir / "learning_curves.png")
    results = evaluate(config, runner, env_params=params)
    table = format_table(config, results)
    (run_dir / "summary.txt").write_text(table + "\n")
    (run_dir / "summary.json").write_text(json.dumps(dict(results=results, train_seconds=train_seconds), indent=2))
    print(f"\ntraining: {train_seconds:.0f} s; total: {time.perf_counter() - start:.0f} s\n")
    print(table)
    return 0


def plot_main(argv: list[str] | None = None) -> int:
    """``jaxcpn plot-stper-curves``: learning curves of several run folders in one PNG."""

    @dataclasses.dataclass(frozen=True)
    class PlotArgs:
        """Training curves of train-stper run folders (e.g. STPer, STPer-L, STPer-M) in one figure."""

        runs: tuple[Path, ...]
        """Run folders of `jaxcpn train-stper`."""
        out: Path
        """PNG to write."""

    args = tyro.cli(PlotArgs, args=sys.argv[1:] if argv is None else argv)
    paths = {}
    for run_dir in args.runs:
        variant = runs.load_run_config(JOB, TrainConfig, run_dir).ppo.variant
        paths[f"{variant} ({run_dir.name})" if variant in {p.split(' ')[0] for p in paths} else variant] = (
            run_dir / "metrics.csv")
    plot_curves(paths, args.out)
    return 0
