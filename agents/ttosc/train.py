"""The TTOSC training job (``jaxcpn train-ttosc``): multi-agent DDQN deployment + convex scheduling.

Usage:
    jaxcpn train-ttosc                       # quick preset, < 15 min on 2 CPU cores
    jaxcpn train-ttosc --preset paper        # paper scale (2000 episodes, 3 seeds), < 20 min
    jaxcpn train-ttosc --resume runs/ttosc-20250101-120000
    jaxcpn train-ttosc --devices 0           # parallel episodes split over all devices

(``python scripts/train_ttosc.py`` is the same job.) Writes a run folder (default
``runs/ttosc-<timestamp>``, see :mod:`agents.runs`): ``config.json``, ``metrics.csv`` (one row
per training frame and seed), Orbax checkpoints of the DDQN runner under ``checkpoints/``
(every chunk; an interrupted run keeps the last one and the metrics), ``convergence.png``
(average reward per episode, sliding-window smoothed as in the paper's Fig. 4) and
``summary.json`` / ``summary.md`` (average processing delay of TTOSC, Greedy, Popularity, DDPG,
Random and the clairvoyant swap search ("Clairvoyant", a heuristic) against a lower bound over the seeds, and the decision times).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Literal

import jax
import numpy as np
import tyro

from agents import outputs, runs, sharding
from agents.checks import require_positive
from agents.cli import parse_with_presets
from agents.seeds import seed_keys
from agents.ttosc import baselines as mb
from agents.ttosc.bounds import evaluation_lower_bound
from agents.ttosc.ddpg import DDPGConfig, ddpg_env, ddpg_policy, make_ddpg_trainer
from agents.ttosc.ddqn import DDQNConfig, greedy_policy, make_trainer
from jaxcpn.mec.env import TwoTimescaleMEC
from jaxcpn.mec.generator import InstanceRanges, generate_params

JOB = "train-ttosc"
METRIC_NAMES = ("reward", "mean_delay", "epsilon", "loss", "episode_reward")
ENV_FIELDS = ("num_cells", "num_services", "slots_per_frame", "frames_per_episode", "instance_seed")
"""Instance fields of ``DDQNConfig`` that every other method of a run shares."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """TTOSC training and evaluation run."""

    ddqn: Annotated[DDQNConfig, tyro.conf.OmitArgPrefixes] = DDQNConfig(num_episodes=120, epsilon_episodes=60,
                                                                         num_gru_layers=1)
    """DDQN, network and environment settings (flags without prefix, e.g. --num-episodes)."""
    instance: InstanceRanges = InstanceRanges()
    """The MEC instance's distributions (--instance.es-cpu 25 50, --instance.zipf-exponent 0.8, ...), drawn
    with --instance-seed."""
    ddpg: DDPGConfig = DDPGConfig()
    """DDPG baseline settings (--ddpg.num-episodes ...); its environment is the DDQN's (--num-cells etc.)."""
    preset: Literal["quick", "paper"] = "quick"
    """Starting values: quick (2 CPU cores, < 15 min) or paper (V-A scale)."""
    num_seeds: int = 3
    """Independent training seeds, vmapped in one program."""
    seed: int = 0
    """Base seed (seed i uses fold_in(PRNGKey(seed), i))."""
    chunk_iterations: int = 48
    """Training frames per jitted chunk: progress bar, metrics and checkpoints advance per chunk."""
    tensorboard: bool = False
    """Also write every metric as TensorBoard scalars under <run-dir>/tensorboard (needs tensorboardX)."""
    devices: int = 1
    """Devices to split the parallel training episodes over (0 = all; num_envs must be divisible by it)."""
    eval_envs: int = 4
    """Parallel evaluation episodes per seed and policy (the same for every policy)."""
    eval_frames: int = 24
    """Frames played per evaluation episode."""
    eval_qp_iterations: int = 100
    """Iterations of the convex scheduler in evaluation (training may use fewer)."""
    oracle_rounds: int = 2
    """Local-swap rounds of the clairvoyant deployment search (the method once called Oracle)."""
    oracle_proposals: int = 6
    """Swap proposals per round."""
    oracle_search_iterations: int = 30
    """Scheduler iterations when the clairvoyant search scores candidates (its frame is then played exactly)."""
    smoothing_window: int = 10
    """Sliding window of the convergence curve, in points (one point = the num_envs parallel
    episodes that end together, averaged)."""
    bound: bool = True
    """Also solve the lower bound on the delay of the evaluation frames (one convex program per
    frame, about 0.2 s each: seeds x eval_envs x eval_frames of them)."""
    skip_baselines: bool = False
    """Only train and evaluate TTOSC (tests)."""
    run_dir: Path | None = None
    """Run folder of a fresh run (must not hold a run); default runs/ttosc-<timestamp>."""
    resume: Path | None = None
    """Continue the run in this folder from its last checkpoint (its config.json is used)."""
    eval_seed: int = 12345
    """Seed of the evaluation episodes."""

    def __post_init__(self):
        # Refused here, before any work (tyro turns the ValueError into a usage error, exit 2).
        require_positive(self, "num_seeds", "chunk_iterations", "eval_envs", "eval_frames", "eval_qp_iterations",
                         "oracle_rounds", "oracle_proposals", "oracle_search_iterations", "smoothing_window")
        runs.check_run_flags(self)


PRESETS = {
    "quick": TrainConfig(ddqn=DDQNConfig(num_episodes=120, epsilon_episodes=60, num_gru_layers=1)),
    "paper": TrainConfig(
        preset="paper",
        # Sec. V-A: M = 5, K = 20, hidden 128, lr 0.01, batch 64, target update 20, epsilon 0.5 -> 0.01
        # over 500 episodes; 2000 episodes (Fig. 4's longest convergence). 16 episodes run side by
        # side and each frame of the 16 takes 2 gradient steps: every transition is replayed
        # 64 * 2 / 16 = 8 times on average (DQN's Atari ratio: batch 32 every 4 steps), where one step
        # per frame, as a sequential run would take, replays each 64 times at 8x the compute
        # (docs/results.md, "Paper presets").
        ddqn=DDQNConfig(num_envs=16, num_episodes=2000, epsilon_episodes=500, updates_per_frame=2,
                        qp_iterations=100, buffer_size=50000, num_gru_layers=2, hidden=128),
        ddpg=DDPGConfig(num_episodes=160),  # 4x its default budget, at which its reward rises (docs/model.md)
        chunk_iterations=120, eval_envs=8, oracle_rounds=4, oracle_proposals=16,
    ),
}


def parse_config(argv: list[str]) -> TrainConfig:
    """Parses ``argv`` with the chosen ``--preset`` as the defaults."""
    return parse_with_presets(TrainConfig, PRESETS, argv, __doc__)


def ddpg_config(config: TrainConfig) -> DDPGConfig:
    """The DDPG config on the DDQN's environment."""
    return dataclasses.replace(config.ddpg, **{f: getattr(config.ddqn, f) for f in ENV_FIELDS})


def write_metrics(path: Path, metrics: dict, first_iteration: int) -> None:
    """Appends ``(num_seeds, n)`` metrics as rows ``iteration, seed, ...``."""
    runs.append_metrics(path, metrics, METRIC_NAMES, first_iteration, "iteration")


def read_episode_rewards(path: Path) -> np.ndarray:
    """(num_seeds, episodes) average frame reward of each finished training episode round."""
    rewards = runs.read_metrics(path, ("episode_reward",))["episode_reward"]
    finished = [r[np.isfinite(r)] for r in rewards]
    n = min(len(r) for r in finished)
    return np.asarray([r[:n] for r in finished], np.float64)


def plot_convergence(path: Path, rewards: np.ndarray, episodes_per_point: int, window: int) -> Path:
    """Average reward per episode vs episodes, smoothed per seed, mean and range over seeds."""
    plt = outputs.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    if rewards.size:
        smoothed = np.stack([outputs.smooth(r, window) for r in rewards])
        x = (np.arange(rewards.shape[1]) + 1) * episodes_per_point
        for s, curve in enumerate(smoothed):
            ax.plot(x, curve, alpha=0.35, lw=1, label=f"seed {s}")
        ax.plot(x, smoothed.mean(0), color="k", lw=2, label="mean")
    ax.set_xlabel("episode")
    ax.set_ylabel("average reward per frame (s, smoothed)")
    ax.set_title(f"TTOSC convergence (sliding window {window} points x {episodes_per_point} episodes)")
    ax.legend(fontsize=7)
    return outputs.save_figure(fig, path)


def time_call(fn, *args, repeats: int = 30) -> float:
    """Median wall time of a jitted call in ms (after a warm-up call)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def instance_params(config: TrainConfig):
    """The run's MEC instance: seed ``--instance-seed`` drawn from the ``--instance.*`` ranges."""
    return generate_params(config.ddqn.instance_seed, config.ddqn.env_config(), config.instance)


def train_ddqn(config: TrainConfig, run_dir: Path):
    """Runs (or resumes) the vmapped DDQN training; returns the trainer and batched runner."""
    trainer = make_trainer(config.ddqn, env_params=instance_params(config))
    mesh = sharding.make_mesh(config.devices)
    init, _ = sharding.sharded_trainer_fns(trainer, mesh, 1, num_seeds=config.num_seeds)
    programs: dict[int, object] = {}

    def chunk(runner, n):
        if n not in programs:  # the env batch split over the mesh's devices (one device: the plain program)
            programs[n] = sharding.sharded_trainer_fns(trainer, mesh, n, num_seeds=config.num_seeds)[1]
        return programs[n](runner)

    def postfix(metrics):
        reward = np.asarray(metrics["episode_reward"])
        recent = reward[np.isfinite(reward)]
        return dict(eps=f"{float(metrics['epsilon'][0, -1]):.3f}",
                    ep_reward=f"{recent.mean():.3f}" if recent.size else "-")

    runner = init(np.asarray(seed_keys(config.seed, config.num_seeds)))
    place = lambda r: sharding.shard_runner(r, mesh, batch_dim=1,  # noqa: E731
                                            batched_fields=sharding.runner_layout(trainer)[1])
    board = runs.TensorBoardLog(run_dir) if config.tensorboard else None

    def write(path, metrics, done):
        write_metrics(path, metrics, done)  # looked up at call time, so a test can interrupt the run through it
        if board is not None:
            board.write(metrics, METRIC_NAMES, done)

    try:
        runner = runs.train_in_chunks(run_dir, runner, config.ddqn.num_iterations, config.chunk_iterations, chunk,
                                      write, place=place, postfix=postfix,
                                      desc=f"TTOSC DDQN x{config.num_seeds} seeds", unit="frame")
    finally:
        if board is not None:
            board.close()  # writes what is still queued (an interrupted run keeps its scalars too)
    return trainer, runner


def evaluate_all(config: TrainConfig, trainer, runner) -> dict:
    """Average processing delay of every method over the seeds (same episodes per seed)."""
    cfg = config.ddqn
    env = TwoTimescaleMEC(cfg.env_config(config.eval_qp_iterations))
    params = trainer.env_params
    max_capacity = env.config.max_storage_units
    eval_keys = seed_keys(config.eval_seed, config.num_seeds)

    def evaluate(env_, policy, keys):
        return jax.jit(jax.vmap(lambda k: mb.evaluate_policy(env_, params, policy, k, config.eval_envs,
                                                             config.eval_frames)))(keys)

    results: dict[str, dict] = {}

    def record(name, out, seconds):
        delays = np.asarray(out["mean_delay"], np.float64)
        results[name] = {"mean_delay": delays.tolist(), "reward": np.asarray(out["reward"]).tolist(),
                         "storage_violations": int(np.sum(out["storage_violations"])), "seconds": seconds}
        print(f"  {name:<11} delay {delays.mean():.4f} s (+/- {delays.std():.4f})  [{seconds:.0f} s]", flush=True)

    def ttosc_policy_of(params_m):
        return lambda key, obs, state, p: greedy_policy(trainer.network, params_m, obs, p, max_capacity)

    print("evaluating (mean processing delay per task, over seeds):", flush=True)
    start = time.time()
    out = jax.jit(jax.vmap(lambda agent_params, k: mb.evaluate_policy(
        env, params, ttosc_policy_of(agent_params), k, config.eval_envs, config.eval_frames)))(
        runner.train_state.params, eval_keys)
    record("TTOSC", out, time.time() - start)
    if config.skip_baselines:
        return results
    for name, env_, policy in (
            ("Popularity", env, mb.popularity_policy),
            ("Greedy", TwoTimescaleMEC(env.config, schedule_fn=mb.greedy_schedule), mb.greedy_policy),
            ("Random", env, mb.random_policy(max_capacity))):
        start = time.time()
        record(name, evaluate(env_, policy, eval_keys), time.time() - start)
    # DDPG: trained per seed (vmapped); its own deployment and schedule.
    start = time.time()
    ddpg = make_ddpg_trainer(ddpg_config(config), params)
    ddpg_runner, ddpg_metrics = jax.jit(jax.vmap(ddpg.train))(seed_keys(config.seed + 1, config.num_seeds))
    results["DDPG_training"] = {"reward_first": float(np.mean(np.asarray(ddpg_metrics["reward"])[:, :24])),
                                "reward_last": float(np.mean(np.asarray(ddpg_metrics["reward"])[:, -24:]))}
    out = jax.jit(jax.vmap(lambda actor_params, k: mb.evaluate_policy(
        ddpg_env(env.config, ddpg.actor, actor_params), params, ddpg_policy(ddpg.actor, actor_params, max_capacity),
        k, config.eval_envs, config.eval_frames)))(ddpg_runner.learner.actor_params, eval_keys)
    record("DDPG", out, time.time() - start)
    start = time.time()
    search_env = TwoTimescaleMEC(cfg.env_config(config.oracle_search_iterations))
    oracle = mb.clairvoyant_search_policy(search_env, num_rounds=config.oracle_rounds, num_proposals=config.oracle_proposals)
    record("Clairvoyant", evaluate(env, oracle, eval_keys), time.time() - start)
    if config.bound:
        start = time.time()
        bound = [evaluation_lower_bound(env, params, k, config.eval_envs, config.eval_frames) for k in eval_keys]
        results["Bound"] = {"mean_delay": bound, "reward": [float("nan")] * len(bound), "storage_violations": 0,
                            "seconds": time.time() - start}
        print(f"  {'Bound':<11} delay {np.mean(bound):.4f} s (+/- {np.std(bound):.4f})  "
              f"[{time.time() - start:.0f} s]", flush=True)
    return results


def decision_times(ddqn: DDQNConfig, qp_iterations: int, trainer, runner) -> dict:
    """Wall time (ms, median) of one small-timescale and one large-timescale decision."""
    env = TwoTimescaleMEC(ddqn.env_config(qp_iterations))
    params = trainer.env_params
    # one program (the same state, bit for bit) instead of the reset's primitives compiled one by one
    obs, state = jax.jit(env.reset)(jax.random.PRNGKey(0), params)
    agent_params = jax.tree.map(lambda x: x[0], runner.train_state.params)
    large = jax.jit(lambda o: greedy_policy(trainer.network, agent_params, o, params, env.config.max_storage_units))
    deployment = large(obs)
    small = jax.jit(lambda a, x, w: env.schedule_slot(a, x, params, warm_start=w))
    return {"small_timescale_ms": time_call(small, state.arrivals[0], deployment, state.schedule),
            "large_timescale_ms": time_call(large, obs)}


def summary_table(results: dict, timings: dict, config: TrainConfig) -> str:
    bound = np.asarray(results["Bound"]["mean_delay"]) if "Bound" in results else None
    lines = [f"Average processing delay per task (s), M={config.ddqn.num_cells}, K={config.ddqn.num_services}, "
             f"L={config.ddqn.slots_per_frame}, {config.num_seeds} seeds x {config.eval_envs} episodes x "
             f"{config.eval_frames} frames. Bound: a lower bound on any deployment's delay in the same frames "
             "(convex relaxation, agents/ttosc/bounds.py); Clairvoyant: the clairvoyant swap search, a heuristic.", "",
             "| method | mean delay (s) | std over seeds | mean frame reward (s) | gap to bound |",
             "|---|---|---|---|---|"]
    for name in ("TTOSC", "DDPG", "Popularity", "Greedy", "Random", "Clairvoyant", "Bound"):
        if name not in results:
            continue
        d = np.asarray(results[name]["mean_delay"])
        gap = f"{100 * np.mean(d / bound - 1):+.1f}%" if bound is not None else "-"  # per seed: same frames
        reward = np.mean(results[name]["reward"])
        lines.append(f"| {name} | {d.mean():.4f} | {d.std():.4f} | {'-' if np.isnan(reward) else f'{reward:.3f}'} "
                     f"| {gap} |")
    lines += ["", f"One small-timescale decision (convex scheduling of one slot): {timings['small_timescale_ms']:.2f} ms "
              "(paper: 7.21 ms)",
              f"One large-timescale decision (M agents' GRU + knapsacks): {timings['large_timescale_ms']:.2f} ms "
              "(paper: 19.39 ms)"]
    return "\n".join(lines)


def run(config: TrainConfig, run_dir: Path) -> dict:
    """Trains (or resumes), evaluates, plots and writes the summary; returns the summary dict."""
    start = time.time()
    trainer, runner = train_ddqn(config, run_dir)
    train_seconds = time.time() - start
    rewards = read_episode_rewards(run_dir / "metrics.csv")
    plot_convergence(run_dir / "convergence.png", rewards, config.ddqn.num_envs, config.smoothing_window)
    results = evaluate_all(config, trainer, runner)
    timings = decision_times(config.ddqn, config.eval_qp_iterations, trainer, runner)
    table = summary_table(results, timings, config)
    window = config.smoothing_window
    summary = {"results": results, "timings": timings, "train_seconds": train_seconds,
               "total_seconds": time.time() - start,
               "episode_reward_first": rewards[:, :window].mean(axis=1).tolist() if rewards.size else [],
               "episode_reward_last": rewards[:, -window:].mean(axis=1).tolist() if rewards.size else []}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    (run_dir / "summary.md").write_text(table + "\n")
    print(table)
    print(f"run folder: {run_dir}  (total {summary['total_seconds']:.0f} s)")
    return summary


def main(argv: list[str] | None = None) -> int:
    """``jaxcpn train-ttosc``: trains (or resumes), evaluates and writes the run folder."""
    argv = sys.argv[1:] if argv is None else argv
    config = parse_config(argv)
    if config.resume is not None:
        run_dir = config.resume
        saved = runs.load_run_config(JOB, TrainConfig, run_dir)
        longer = runs.resume_overrides(argv, TrainConfig, allowed=("num_episodes", "devices", "tensorboard"))
        ddqn = (dataclasses.replace(saved.ddqn, num_episodes=config.ddqn.num_episodes) if "num_episodes" in longer
                else saved.ddqn)
        config = dataclasses.replace(saved, ddqn=ddqn, resume=run_dir, run_dir=run_dir,
                                     devices=config.devices if "devices" in longer else saved.devices,
                                     tensorboard=config.tensorboard if "tensorboard" in longer else saved.tensorboard)
        print(f"resuming {run_dir} (its config.json" + (f"; --num-episodes {ddqn.num_episodes})" if longer else ")"))
    else:
        run_dir = config.run_dir or runs.default_run_dir("ttosc")
        config = dataclasses.replace(config, run_dir=run_dir)
        runs.start_run(JOB, config, run_dir)
    runs.append_history(run_dir, argv, num_episodes=config.ddqn.num_episodes)
    print(f"run folder: {run_dir}")
    try:
        run(config, run_dir)
    except KeyboardInterrupt:
        return 130
    return 0
