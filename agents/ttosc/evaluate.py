"""Evaluation of a saved TTOSC run (``jaxcpn evaluate-ttosc``): its agents against the baselines.

    jaxcpn evaluate-ttosc --run runs/ttosc-<stamp>                       # reproduces the run's summary
    jaxcpn evaluate-ttosc --run RUN --instance.zipf-exponent 0.8 --render pictures/
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import jax
import tyro

from agents.ttosc.train import JOB, TrainConfig, evaluate_all, instance_params, summary_table, decision_times
from jaxcpn.mec.generator import InstanceRanges


@dataclasses.dataclass(frozen=True)
class RunArgs:
    """Evaluate a train-ttosc run folder (its last or a chosen checkpoint) against the baselines."""

    run: Path
    """Run folder of `jaxcpn train-ttosc`."""
    step: int | None = None
    """Checkpoint (training frame) to evaluate; default the last one."""
    instance: InstanceRanges | None = None
    """Another instance's distributions (--instance.es-cpu 25 50 ...); default the run's own."""
    instance_seed: int | None = None
    """Instance seed; default the run's."""
    eval_envs: int | None = None
    """Evaluation episodes per seed; default the run's (then the numbers reproduce its summary.json)."""
    eval_seed: int | None = None
    """Seed of the evaluation episodes; default the run's."""
    skip_baselines: bool = False
    """Evaluate the agents only (no Greedy, Popularity, Random, DDPG training, clairvoyant search)."""
    render: Path | None = None
    """Write an animated episode (GIF) of seed 0's agents here."""
    out: Path | None = None
    """Write the results as JSON to this file (must not exist)."""


def restore_run(run_dir: Path, config: TrainConfig, step: int | None = None):
    """``(trainer, runner, step)`` of a train-ttosc run folder at checkpoint ``step``."""
    from agents import runs
    from agents.ttosc.ddqn import make_trainer

    trainer = make_trainer(config.ddqn, env_params=instance_params(config))
    runner, done = runs.restore_runner(run_dir, trainer, config.num_seeds, config.seed, step)
    return trainer, runner, done


def main(argv: list[str] | None = None) -> int:
    """``jaxcpn evaluate-ttosc``."""
    from agents import runs
    from agents.ttosc.ddqn import greedy_policy, make_trainer

    args = tyro.cli(RunArgs, args=sys.argv[1:] if argv is None else argv, description=RunArgs.__doc__)
    if args.out is not None and args.out.exists():
        raise FileExistsError(f"--out={str(args.out)!r} exists: choose another file (nothing was overwritten)")
    config = runs.load_run_config(JOB, TrainConfig, args.run)
    trainer, runner, done = restore_run(args.run, config, args.step)
    evaluated = dataclasses.replace(
        config, instance=args.instance or config.instance, skip_baselines=args.skip_baselines or config.skip_baselines,
        ddqn=dataclasses.replace(config.ddqn, instance_seed=config.ddqn.instance_seed if args.instance_seed is None
                                 else args.instance_seed),
        eval_envs=args.eval_envs or config.eval_envs,
        eval_seed=config.eval_seed if args.eval_seed is None else args.eval_seed)
    params = instance_params(evaluated)
    on = make_trainer(evaluated.ddqn, env_params=params)  # the same networks, on the evaluated instance
    results = evaluate_all(evaluated, on, runner)
    timings = decision_times(evaluated.ddqn, evaluated.eval_qp_iterations, on, runner)
    print(f"\n{args.run} at frame {done}:\n")
    print(summary_table(results, timings, evaluated))
    if args.out is not None:
        args.out.write_text(json.dumps(dict(run=str(args.run), frame=done, results=results, timings=timings),
                                       indent=2))
    if args.render is not None:
        from jaxcpn.mec import viewer
        from jaxcpn.mec.env import TwoTimescaleMEC

        env = TwoTimescaleMEC(evaluated.ddqn.env_config(evaluated.eval_qp_iterations))
        agents = jax.tree.map(lambda x: x[0], runner.train_state.params)
        act = jax.jit(lambda obs: greedy_policy(on.network, agents, obs, params, env.config.max_storage_units))
        path = viewer.render_episode(env, params, jax.random.PRNGKey(evaluated.eval_seed),
                                     lambda k, obs, state: act(obs), Path(args.render) / "episode.gif",
                                     num_frames=min(env.config.frames_per_episode, 6))
        print(f"wrote {path}")
    return 0
