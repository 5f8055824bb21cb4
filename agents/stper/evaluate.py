"""Evaluation jobs of STPer: the baselines on one instance, and a saved run against them.

    jaxcpn evaluate-cpn                   # Random, Greedy, coordinate ascent: default instance, 256 parallel episodes
    jaxcpn evaluate-cpn --kappa 3e-4 --num-envs 1024
    jaxcpn evaluate-stper --run runs/stper-stper-<stamp>                 # reproduces the run's summary
    jaxcpn evaluate-stper --run RUN --kappa 1e-4 --render pictures/     # another instance, and pictures
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import jax
import tyro

from agents.stper.baselines import CPN_POLICIES, rollout_cpn
from agents.stper.instance import InstanceArgs
from agents.stper.train import TrainConfig, evaluate, format_table, instance_params
from jaxcpn.cpn import CPNConfig, GreenCPN, generate_instance, validate_params


@dataclasses.dataclass(frozen=True)
class Args:
    """Evaluate baseline policies on parallel episodes of one instance."""

    seed: int = 0
    """Instance and rollout seed."""
    num_envs: int = 256
    """Parallel episodes per policy."""
    num_nodes: int = 10
    """Compute nodes."""
    num_users: int = 10
    """Users (one task each per slot)."""
    episode_length: int = 24
    """Slots (hours) per episode."""
    kappa: float | None = None
    """Energy coefficient; the calibrated default when not given."""
    policies: tuple[str, ...] = ("random", "greedy", "coord-ascent")
    """Which of random (the paper's: random routes), random-shortest, greedy, coord-ascent, mpc (horizon-3
    clairvoyant look-ahead; with --compute-sharing off it is coord-ascent) to run."""
    compute_sharing: bool = False
    """Processor sharing with node queues carried to the next slot (CPNConfig.compute_sharing, beyond the paper)."""


def evaluate_baselines(args: Args) -> dict:
    """Rolls out each policy on ``args.num_envs`` episodes, prints the table, returns its rows."""
    unknown = sorted(set(args.policies) - set(CPN_POLICIES))
    if unknown:
        raise ValueError(f"--policies: unknown {unknown}; allowed: {sorted(CPN_POLICIES)}")
    config = CPNConfig(num_nodes=args.num_nodes, num_users=args.num_users, episode_length=args.episode_length,
                       compute_sharing=args.compute_sharing)
    overrides = {} if args.kappa is None else {"kappa": args.kappa}
    params = validate_params(generate_instance(jax.random.PRNGKey(args.seed), config, **overrides), config)
    env = GreenCPN(config)
    rows = {}
    for name in args.policies:
        start = time.perf_counter()
        run = jax.jit(lambda key, policy=CPN_POLICIES[name]: rollout_cpn(policy, env, params, key, args.num_envs))
        metrics = jax.device_get(run(jax.random.PRNGKey(args.seed + 1)))
        rows[name] = dict(
            episode_profit=float(metrics["profit"].sum(0).mean()),
            episode_profit_std=float(metrics["profit"].sum(0).std()),
            mean_delay=float(metrics["mean_delay"].mean()),
            miss_rate=float(metrics["miss_rate"].mean()),
            bound_episode_profit=float(metrics["bound"].sum(0).mean()),
            seconds=time.perf_counter() - start,
        )
    print(f"green CPN, N={config.num_nodes}, U={config.num_users}, T={config.episode_length}, "
          f"kappa={float(params.kappa):g}, compute sharing {'on' if config.compute_sharing else 'off'}, "
          f"{args.num_envs} episodes per policy")
    print(f"{'policy':<16} {'profit/episode':>16} {'mean delay (s)':>15} {'deadline misses':>16} {'of bound':>9} "
          f"{'time (s)':>9}")
    for name, r in rows.items():
        print(f"{name:<16} {r['episode_profit']:>9.1f} ± {r['episode_profit_std']:<5.1f} {r['mean_delay']:>15.3f} "
              f"{100 * r['miss_rate']:>15.1f}% {r['episode_profit'] / r['bound_episode_profit']:>9.1%} "
              f"{r['seconds']:>9.1f}")
    bound = next(iter(rows.values()))["bound_episode_profit"]  # the same slots for every policy (same key)
    print(f"{'bound':<16} {bound:>9.1f}  (conflict-free upper bound on any policy's profit in these episodes)")
    return rows


def main(argv: list[str] | None = None) -> int:
    """``jaxcpn evaluate-cpn``."""
    evaluate_baselines(tyro.cli(Args, args=sys.argv[1:] if argv is None else argv))
    return 0


# ----------------------------------------------------------------------------- a saved run


@dataclasses.dataclass(frozen=True)
class RunArgs:
    """Evaluate a train-stper run folder (its last or a chosen checkpoint) against the baselines."""

    run: Path
    """Run folder of `jaxcpn train-stper`."""
    step: int | None = None
    """Checkpoint (update) to evaluate; default the last one."""
    instance: Annotated[InstanceArgs, tyro.conf.OmitArgPrefixes] = InstanceArgs()
    """Another instance or series to evaluate on (--price-csv ..., --kappa ...); default the run's own."""
    instance_seed: int | None = None
    """Instance seed; default the run's."""
    eval_episodes: int | None = None
    """Evaluation episodes; default the run's (then the numbers reproduce its summary.json)."""
    eval_seed: int | None = None
    """Seed of the evaluation episodes; default the run's."""
    render: Path | None = None
    """Write pictures here: the first slot of an episode (PNG) and the episode (GIF) of seed 0's policy."""
    out: Path | None = None
    """Write the results as JSON to this file (must not exist)."""


def restore_run(run_dir: Path, step: int | None = None, config: TrainConfig | None = None):
    """``(config, trainer_config, runner)`` of a train-stper run folder at checkpoint ``step``."""
    from agents import runs
    from agents.stper.ppo import make_trainer

    config = runs.load_run_config("train-stper", TrainConfig, run_dir) if config is None else config
    trainer = make_trainer(config.ppo, env_params=instance_params(config))
    runner, done = runs.restore_runner(run_dir, trainer, config.num_seeds, config.seed, step)
    return config, runner, done


def evaluate_run_main(argv: list[str] | None = None) -> int:
    """``jaxcpn evaluate-stper``: a saved run's policy and the baselines on the same episodes."""
    from agents import runs
    from agents.stper.ppo import make_trainer, network_policy

    args = tyro.cli(RunArgs, args=sys.argv[1:] if argv is None else argv, description=RunArgs.__doc__)
    if args.out is not None and args.out.exists():
        raise FileExistsError(f"--out={str(args.out)!r} exists: choose another file (nothing was overwritten)")
    config = runs.load_run_config("train-stper", TrainConfig, args.run)
    config, runner, done = restore_run(args.run, args.step, config)
    own = args.instance == InstanceArgs() and args.instance_seed in (None, config.ppo.instance_seed)
    evaluated = dataclasses.replace(
        config, instance=config.instance if own else args.instance,
        ppo=dataclasses.replace(config.ppo, instance_seed=config.ppo.instance_seed if args.instance_seed is None
                                else args.instance_seed),
        eval_episodes=args.eval_episodes or config.eval_episodes,
        eval_seed=config.eval_seed if args.eval_seed is None else args.eval_seed)
    params = instance_params(evaluated)
    results = evaluate(evaluated, runner, env_params=params)
    print(f"{args.run} at update {done}" + ("" if own else " on another instance") + ":\n")
    print(format_table(evaluated, results))
    if args.out is not None:
        args.out.write_text(json.dumps(dict(run=str(args.run), update=done, results=results), indent=2))
    if args.render is not None:
        from jaxcpn.cpn import viewer

        trainer = make_trainer(config.ppo, env_params=params)
        policy = network_policy(trainer.network, jax.tree.map(lambda x: x[0], runner.train_state.params))
        act = jax.jit(lambda key, state: policy(key, trainer.env, state, params))
        args.render.mkdir(parents=True, exist_ok=True)
        key = jax.random.PRNGKey(evaluated.eval_seed)
        _, state = trainer.env.reset(key, params)
        viewer.render_slot(trainer.env, params, state, act(key, state)).savefig(args.render / "slot.png", dpi=110)
        viewer.render_episode(trainer.env, params, key, lambda k, o, s: act(k, s), args.render / "episode.gif")
        print(f"wrote {args.render / 'slot.png'} and {args.render / 'episode.gif'}")
    return 0
