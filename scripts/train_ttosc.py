"""Train TTOSC (multi-agent DDQN deployment + convex scheduling) and compare it with baselines.

Usage:
    python scripts/train_ttosc.py                       # quick preset, < 15 min on 2 CPU cores
    python scripts/train_ttosc.py --preset paper        # paper scale (3000 episodes), long
    python scripts/train_ttosc.py --resume runs/ttosc-20250101-120000
    python scripts/train_ttosc.py --devices 0           # parallel episodes split over all devices

Writes a run folder (default ``runs/ttosc-<timestamp>``): ``config.json``, ``metrics.csv`` (one
row per training frame and seed), Orbax checkpoints of the DDQN runner under ``checkpoints/``
(every chunk; an interrupted run keeps the last one and the metrics), ``convergence.png``
(average reward per episode, sliding-window smoothed as in the paper's Fig. 4) and
``summary.json`` / ``summary.md`` (average processing delay of TTOSC, Greedy, Popularity, DDPG,
Random and the clairvoyant Oracle over the seeds, and the decision times).
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
from agents.ttosc import baselines as mb  # noqa: E402
from agents.ttosc.ddpg import DDPGConfig, ddpg_env, make_ddpg_trainer  # noqa: E402
from agents.ttosc.ddqn import DDQNConfig, greedy_policy, make_trainer  # noqa: E402
from jaxcpn.mec.env import TwoTimescaleMEC  # noqa: E402

METRIC_NAMES = ("reward", "mean_delay", "epsilon", "loss", "episode_reward")
ENV_FIELDS = ("num_cells", "num_services", "slots_per_frame", "frames_per_episode", "instance_seed")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """TTOSC training and evaluation run."""

    ddqn: Annotated[DDQNConfig, tyro.conf.OmitArgPrefixes] = DDQNConfig(num_episodes=120, epsilon_episodes=60,
                                                                         num_gru_layers=1)
    """DDQN, network and environment settings (flags without prefix, e.g. --num-episodes)."""
    ddpg: DDPGConfig = DDPGConfig()
    """DDPG baseline settings (--ddpg.num-episodes ...); its environment fields follow --num-cells etc."""
    preset: Literal["quick", "paper"] = "quick"
    """Starting values: quick (2 CPU cores, < 15 min) or paper (V-A scale)."""
    num_seeds: int = 3
    """Independent training seeds, vmapped in one program."""
    seed: int = 0
    """Base seed (seed i uses fold_in(PRNGKey(seed), i))."""
    chunk_iterations: int = 48
    """Training frames per jitted chunk: progress bar, metrics and checkpoints advance per chunk."""
    devices: int = 1
    """Devices to split the parallel training episodes over (0 = all; num_envs must be divisible by it)."""
    eval_envs: int = 4
    """Parallel evaluation episodes per seed and policy (the same for every policy)."""
    eval_frames: int = 24
    """Frames played per evaluation episode."""
    eval_qp_iterations: int = 100
    """FISTA iterations of the convex scheduler in evaluation (training may use fewer)."""
    oracle_rounds: int = 2
    """Local-swap rounds of the Oracle's deployment search."""
    oracle_proposals: int = 6
    """Swap proposals per round."""
    oracle_search_iterations: int = 30
    """FISTA iterations when the Oracle scores candidates (its frame is then played exactly)."""
    smoothing_window: int = 10
    """Sliding window of the convergence curve, in points (one point = the num_envs parallel
    episodes that end together, averaged)."""
    skip_baselines: bool = False
    """Only train and evaluate TTOSC (tests)."""
    run_dir: Path | None = None
    """Run folder; default runs/ttosc-<timestamp>."""
    resume: Path | None = None
    """Continue the run in this folder from its last checkpoint (its config.json is used)."""
    eval_seed: int = 12345
    """Seed of the evaluation episodes."""


PRESETS = {
    "quick": TrainConfig(ddqn=DDQNConfig(num_episodes=120, epsilon_episodes=60, num_gru_layers=1)),
    "paper": TrainConfig(
        preset="paper",
        ddqn=DDQNConfig(num_envs=1, num_episodes=3000, qp_iterations=100, buffer_size=100000, num_gru_layers=2),
        ddpg=DDPGConfig(num_envs=4, num_episodes=400),
        chunk_iterations=240, eval_envs=16, oracle_rounds=4, oracle_proposals=16,
    ),
}


def parse_config(argv: list[str]) -> TrainConfig:
    """Parses ``argv`` with the chosen ``--preset`` as the defaults."""
    return parse_with_presets(TrainConfig, PRESETS, argv, __doc__)


def config_to_json(config: TrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def config_from_json(data: dict) -> TrainConfig:
    fields = {**data, "ddqn": DDQNConfig(**data["ddqn"]), "ddpg": DDPGConfig(**data["ddpg"])}
    for name in ("run_dir", "resume"):
        fields[name] = None if fields[name] is None else Path(fields[name])
    return TrainConfig(**fields)


def ddpg_config(config: TrainConfig) -> DDPGConfig:
    """The DDPG config on the DDQN's environment."""
    return dataclasses.replace(config.ddpg, **{f: getattr(config.ddqn, f) for f in ENV_FIELDS})


def write_metrics(path: Path, metrics: dict, first_iteration: int) -> None:
    """Appends ``(num_seeds, n)`` metrics as rows ``iteration, seed, episodes, ...``."""
    new = not path.exists()
    host = {k: np.asarray(jax.device_get(metrics[k])) for k in METRIC_NAMES}
    num_seeds, n = host["reward"].shape
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["iteration", "seed", *METRIC_NAMES])
        for j in range(n):
            for s in range(num_seeds):
                writer.writerow([first_iteration + j + 1, s, *(f"{host[k][s, j]:.6g}" for k in METRIC_NAMES)])


def read_episode_rewards(path: Path, num_seeds: int) -> np.ndarray:
    """(num_seeds, episodes) average frame reward of each finished training episode round."""
    per_seed = [[] for _ in range(num_seeds)]
    with path.open() as f:
        for row in csv.DictReader(f):
            value = float(row["episode_reward"])
            if np.isfinite(value):
                per_seed[int(row["seed"])].append(value)
    n = min(len(r) for r in per_seed)
    return np.asarray([r[:n] for r in per_seed], np.float64)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing sliding-window mean (the first points average what is there)."""
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    index = np.arange(1, len(values) + 1)
    start = np.maximum(index - window, 0)
    return (cumulative[index] - cumulative[start]) / (index - start)


def plot_convergence(path: Path, rewards: np.ndarray, episodes_per_point: int, window: int) -> None:
    """Average reward per episode vs episodes, smoothed per seed, mean and range over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    if rewards.size:
        smoothed = np.stack([smooth(r, window) for r in rewards])
        x = (np.arange(rewards.shape[1]) + 1) * episodes_per_point
        for s, curve in enumerate(smoothed):
            ax.plot(x, curve, alpha=0.35, lw=1, label=f"seed {s}")
        ax.plot(x, smoothed.mean(0), color="k", lw=2, label="mean")
    ax.set_xlabel("episode")
    ax.set_ylabel("average reward per frame (s, smoothed)")
    ax.set_title(f"TTOSC convergence (sliding window {window} points x {episodes_per_point} episodes)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def time_call(fn, *args, repeats: int = 30) -> float:
    """Median wall time of a jitted call in ms (after a warm-up call)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def train_ddqn(config: TrainConfig, run_dir: Path):
    """Runs (or resumes) the vmapped DDQN training; returns the trainer and batched runner."""
    from tqdm import tqdm

    trainer = make_trainer(config.ddqn)
    mesh = sharding.make_mesh(config.devices)
    keys = seed_keys(config.seed, config.num_seeds)
    init, _ = sharding.sharded_trainer_fns(trainer, mesh, 1, num_seeds=config.num_seeds)
    runner = init(np.asarray(keys))
    ckpt_dir, metrics_path = run_dir / "checkpoints", run_dir / "metrics.csv"
    done = 0
    if checkpoint.latest_step(ckpt_dir) is not None:
        runner, done = checkpoint.restore_checkpoint(ckpt_dir, runner)
        runner = sharding.shard_runner(runner, mesh, batch_dim=1,
                                       batched_fields=sharding.runner_layout(trainer)[1])
        checkpoint.truncate_metrics(metrics_path, done)
    else:
        metrics_path.unlink(missing_ok=True)
    total = config.ddqn.num_iterations
    chunks: dict[int, object] = {}
    bar = tqdm(total=total, initial=done, desc=f"TTOSC DDQN x{config.num_seeds} seeds", unit="frame")
    try:
        while done < total:
            n = min(config.chunk_iterations, total - done)
            if n not in chunks:  # the env batch split over the mesh's devices (one device: the plain program)
                chunks[n] = sharding.sharded_trainer_fns(trainer, mesh, n, num_seeds=config.num_seeds)[1]
            runner, metrics = chunks[n](runner)
            write_metrics(metrics_path, metrics, done)
            done += n
            checkpoint.save_checkpoint(ckpt_dir, done, runner)
            reward = np.asarray(metrics["episode_reward"])
            recent = reward[np.isfinite(reward)]
            bar.set_postfix(eps=f"{float(metrics['epsilon'][0, -1]):.3f}",
                            ep_reward=f"{recent.mean():.3f}" if recent.size else "-")
            bar.update(n)
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted at frame {done}; continue with --resume {run_dir}")
        raise
    bar.close()
    return trainer, runner


def evaluate_all(config: TrainConfig, trainer, runner, run_dir: Path) -> dict:
    """Average processing delay of every method over the seeds (same episodes per seed)."""
    cfg = config.ddqn
    env = TwoTimescaleMEC(cfg.env_config(config.eval_qp_iterations))
    params = trainer.env_params
    max_capacity = env.config.max_storage_units
    seeds = config.num_seeds
    eval_keys = seed_keys(config.eval_seed, seeds)

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
    if not config.skip_baselines:
        for name, env_, policy in (
                ("Popularity", env, mb.popularity_policy),
                ("Greedy", TwoTimescaleMEC(env.config, schedule_fn=mb.greedy_schedule), mb.greedy_policy),
                ("Random", env, mb.random_policy(max_capacity))):
            start = time.time()
            record(name, evaluate(env_, policy, eval_keys), time.time() - start)
        # DDPG: trained per seed (vmapped), deployment by Popularity.
        start = time.time()
        ddpg = make_ddpg_trainer(ddpg_config(config), params)
        ddpg_keys = seed_keys(config.seed + 1, seeds)
        ddpg_runner, ddpg_metrics = jax.jit(jax.vmap(ddpg.train))(ddpg_keys)
        results["DDPG_training"] = {"reward_first": float(np.mean(np.asarray(ddpg_metrics["reward"])[:, :24])),
                                    "reward_last": float(np.mean(np.asarray(ddpg_metrics["reward"])[:, -24:]))}
        out = jax.jit(jax.vmap(lambda actor_params, k: mb.evaluate_policy(
            ddpg_env(env.config, ddpg.actor, actor_params), params, mb.popularity_policy, k, config.eval_envs,
            config.eval_frames)))(ddpg_runner.learner.actor_params, eval_keys)
        record("DDPG", out, time.time() - start)
        start = time.time()
        search_env = TwoTimescaleMEC(cfg.env_config(config.oracle_search_iterations))
        oracle = mb.oracle_policy(search_env, num_rounds=config.oracle_rounds, num_proposals=config.oracle_proposals)
        record("Oracle", evaluate(env, oracle, eval_keys), time.time() - start)
    return results


def decision_times(config: TrainConfig, trainer, runner) -> dict:
    """Wall time (ms, median) of one small-timescale and one large-timescale decision."""
    env = TwoTimescaleMEC(config.ddqn.env_config(config.eval_qp_iterations))
    params = trainer.env_params
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    agent_params = jax.tree.map(lambda x: x[0], runner.train_state.params)
    large = jax.jit(lambda o: greedy_policy(trainer.network, agent_params, o, params, env.config.max_storage_units))
    deployment = large(obs)
    small = jax.jit(lambda a, x, w: env.schedule_slot(a, x, params, warm_start=w))
    return {"small_timescale_ms": time_call(small, state.arrivals[0], deployment, state.schedule),
            "large_timescale_ms": time_call(large, obs)}


def summary_table(results: dict, timings: dict, config: TrainConfig) -> str:
    oracle = np.mean(results["Oracle"]["mean_delay"]) if "Oracle" in results else None
    lines = [f"Average processing delay per task (s), M={config.ddqn.num_cells}, K={config.ddqn.num_services}, "
             f"L={config.ddqn.slots_per_frame}, {config.num_seeds} seeds x {config.eval_envs} episodes x "
             f"{config.eval_frames} frames", "",
             "| method | mean delay (s) | std over seeds | mean frame reward (s) | gap to Oracle |",
             "|---|---|---|---|---|"]
    for name in ("TTOSC", "DDPG", "Popularity", "Greedy", "Random", "Oracle"):
        if name not in results:
            continue
        d = np.asarray(results[name]["mean_delay"])
        gap = f"{100 * (d.mean() / oracle - 1):+.1f}%" if oracle else "-"
        lines.append(f"| {name} | {d.mean():.4f} | {d.std():.4f} | {np.mean(results[name]['reward']):.3f} | {gap} |")
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
    rewards = read_episode_rewards(run_dir / "metrics.csv", config.num_seeds)
    plot_convergence(run_dir / "convergence.png", rewards, config.ddqn.num_envs, config.smoothing_window)
    results = evaluate_all(config, trainer, runner, run_dir)
    timings = decision_times(config, trainer, runner)
    table = summary_table(results, timings, config)
    summary = {"results": results, "timings": timings, "train_seconds": train_seconds,
               "total_seconds": time.time() - start,
               "episode_reward_first": rewards[:, :config.smoothing_window].mean(axis=1).tolist() if rewards.size else [],
               "episode_reward_last": rewards[:, -config.smoothing_window:].mean(axis=1).tolist() if rewards.size else []}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    (run_dir / "summary.md").write_text(table + "\n")
    print(table)
    print(f"run folder: {run_dir}  (total {summary['total_seconds']:.0f} s)")
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    config = parse_config(argv)
    if config.resume is not None:
        run_dir = config.resume
        config = dataclasses.replace(config_from_json(json.loads((run_dir / "config.json").read_text())),
                                     resume=run_dir, run_dir=run_dir)
    else:
        run_dir = config.run_dir or Path("runs") / f"ttosc-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config_to_json(config), indent=2))
    print(f"run folder: {run_dir}")
    run(config, run_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
