"""The TTOSC figure reproductions (``jaxcpn reproduce-ttosc``): Figs. 4-6 and the decision times.

Usage:
    jaxcpn reproduce-ttosc --figure all --out docs/figures   # the committed figures (about 40 min, 2 cores)
    jaxcpn reproduce-ttosc --figure 5 --quick                # tiny smoke run
    jaxcpn reproduce-ttosc --figure all --preset paper       # the paper's budgets: hours on 2 cores, resumes

(``python scripts/reproduce_ttosc.py`` is the same job.) Figures (files under ``--out``,
default ``runs/reproduce-ttosc-<preset>/figures``; nothing under docs/ is written unless
``--out`` names it):

- ``4``: convergence of the multi-agent DDQN (smoothed average frame reward per episode) for
  several numbers of cells M (at the middle K) and of services K (at the middle M), mean over
  seeds and min-max band: ``ttosc_fig4_convergence.csv/png``; the episode where each curve
  covers 95% of its rise (:func:`agents.outputs.convergence_point`):
  ``ttosc_fig4_convergence_episodes.csv``.
- ``5``: average processing delay vs M and vs K of TTOSC, Greedy, DDPG, Popularity, Random,
  the clairvoyant swap search (Clairvoyant) and the lower bound on the same episodes (Bound,
  the convex relaxation of :func:`agents.ttosc.bounds.evaluation_lower_bound`), reusing the
  DDQN agents of Fig. 4 (same shapes): ``ttosc_fig5_delay.csv/png``.
- ``6``: delay vs Zipf exponent, average users per cell, ES CPU and ES storage at the middle
  shape. All points of the four panels are one batch of ``MECParams`` (the swept leaves differ,
  the rest is the default instance), so each method is one compiled program ``vmap``ped over
  points and seeds. At the CPU scale the agents (DDQN, DDPG) are those trained at the default
  instance and only *evaluated* at the swept params; ``--preset paper`` (or ``--fig6-training
  per-point``) trains them per point, as the paper does: every point's agents (all seeds) are
  one saved unit, trained by one program compiled once for all points. The paper preset trains
  DDQN 160 episodes per point (epsilon over 40) instead of the paper's 2000, and DDPG 40: the
  largest budget that fits about 2 hours for the 24 points on 2 cores. One point (M = 7, K = 30,
  3 seeds, nice 15 beside other jobs, so an upper bound) took 92 s per 64 DDQN episodes and 72 s
  per 40 DDPG episodes (medians of 5 and 4 runs); 24 x (160 x 92 / 64 + 72) s = 2.0 h. The
  committed paper-preset Fig. 6 (docs/results.md) measured 114 s per point's DDQN alone on the
  machine (median 234 s beside other jobs) and 31-60 s per point's DDPG.
  ``--fig6-episodes 2000`` is the paper's budget (at 114 s per 160 episodes: 24 min per point, 9.5 h for 24).
  The CSV's ``train_s`` column is each point's training time: ``ttosc_fig6_delay.csv/png``.
- ``runtime``: median time of one small-timescale decision (convex scheduling of one slot) and
  one large-timescale decision (all agents' GRU + knapsacks), measured by
  ``agents.ttosc.train.decision_times``, against the paper's 7.21 ms and 19.39 ms, at every shape
  whose DDQN agents the run trained or its ``--run-dir`` holds (and at the default shape, with
  initial weights if it has none): ``ttosc_runtime.csv``.

Shapes (M, K) compile once each; every number is from the run that wrote the file. The DDQN and
DDPG agents of every shape, and those of every Fig. 6 point when trained per point, are saved in
``--run-dir`` (default ``runs/reproduce-ttosc-<preset>``) when trained, and a rerun with the same
settings loads them instead of training again. So is the lower bound of every Fig. 5 shape and
Fig. 6 point (``bound-M<M>-K<K>.npz``, ``fig6-bound-<panel>-<x>.npz``: CPU minutes each), so a
bound-only run (``--methods Bound``) beside the training run, on the same ``--run-dir``, hands the
training run its bounds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Literal, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from agents import outputs
from agents.checks import flag, require_positive
from agents.outputs import smooth
from agents.seeds import seed_keys
from agents.ttosc import baselines as mb
from agents.ttosc.ddpg import DDPGConfig, ddpg_env, ddpg_policy, make_ddpg_trainer
from agents.ttosc.bounds import bound_pool, evaluation_lower_bound
from agents.ttosc.ddqn import DDQNConfig, RunnerState, ddqn_policy, make_network, make_trainer
from agents.ttosc.train import decision_times
from jaxcpn.mec.env import TwoTimescaleMEC
from jaxcpn.mec.generator import generate_params
from jaxcpn.mec.types import MECConfig, MECParams

FIGURES = ("4", "5", "6", "runtime")
METHODS = ("TTOSC", "Greedy", "DDPG", "Popularity", "Random", "Clairvoyant", "Bound")
"""Figs. 5-6 methods; ``Bound`` is :func:`agents.ttosc.bounds.evaluation_lower_bound` on the same
episodes (a lower bound on every method's delay; one convex program per frame, on the host)."""
PAPER_MS = {"small_timescale": 7.21, "large_timescale": 19.39}
FIG6_PANELS = ("zipf_exponent", "users_per_cell", "es_cpu_ghz", "storage_units")
FIG6_LABELS = {"zipf_exponent": "Zipf exponent", "users_per_cell": "average users per cell",
               "es_cpu_ghz": "ES CPU capacity (GHz)", "storage_units": "ES storage (units of 100 MB)"}


@dataclasses.dataclass(frozen=True)
class Scale:
    """Sizes of one reproduction run.

    Attributes:
        cells: numbers of cells M of Figs. 4(a)/5(a) (at the middle K).
        services: numbers of services K of Figs. 4(b)/5(b) (at the middle M).
        slots_per_frame: L.
        frames_per_episode: frames per episode.
        num_seeds: training seeds per shape (vmapped), also the evaluation seeds.
        ddqn: DDQN settings (its shape fields are replaced per shape).
        ddpg: DDPG settings (shape fields replaced per shape).
        eval_envs: evaluation episodes per seed, point and method (the same for every method).
        eval_frames: frames per evaluation episode.
        eval_qp_iterations: FISTA iterations of the convex scheduler in evaluation.
        oracle_rounds, oracle_proposals, oracle_search_iterations: the clairvoyant search's settings.
        zipf, users, es_cpu, storage: Fig. 6 x values (users = mean users per cell; the range
            ``[users_min, users_max]`` of the instance is scaled to that mean).
        fig6_per_point: train DDQN and DDPG at every Fig. 6 point (else: agents of the default
            instance, evaluated at the swept params).
        smoothing_window: sliding window of Fig. 4, in points (one point = ``ddqn.num_envs``
            episodes that end together).
        methods: methods of Figs. 5-6 (``--methods`` overrides).
        fig6_episodes: DDQN training episodes per seed at every Fig. 6 point with
            ``fig6_per_point`` (None: ``ddqn.num_episodes``); epsilon anneals over the same
            fraction of them as ``ddqn``'s (a quarter at the paper preset, as the paper's 500 of 2000).
        fig6_ddpg_episodes: DDPG training episodes per seed at every Fig. 6 point with
            ``fig6_per_point`` (None: ``ddpg.num_episodes``).
    """

    cells: tuple[int, ...]
    services: tuple[int, ...]
    slots_per_frame: int
    frames_per_episode: int
    num_seeds: int
    ddqn: DDQNConfig
    ddpg: DDPGConfig
    eval_envs: int
    eval_frames: int
    eval_qp_iterations: int
    oracle_rounds: int
    oracle_proposals: int
    oracle_search_iterations: int
    zipf: tuple[float, ...]
    users: tuple[int, ...]
    es_cpu: tuple[float, ...]
    storage: tuple[int, ...]
    fig6_per_point: bool
    smoothing_window: int
    methods: tuple[str, ...] = METHODS
    fig6_episodes: int | None = None
    fig6_ddpg_episodes: int | None = None

    @property
    def default_cells(self) -> int:
        """M of the services panel and of Fig. 6: the middle of ``cells``."""
        return self.cells[len(self.cells) // 2]

    @property
    def default_services(self) -> int:
        """K of the cells panel and of Fig. 6: the middle of ``services``."""
        return self.services[len(self.services) // 2]


SCALES = {
    # full: 2 shared CPU cores, about 40 min for --figure all; XLA compilation (about 30 s per program
    # on the loaded machine, 5 shapes x 6 programs) is a large part, so Random is left out.
    "full": Scale(
        cells=(3, 5, 7), services=(10, 20, 30), slots_per_frame=10, frames_per_episode=24, num_seeds=3,
        ddqn=DDQNConfig(num_episodes=64, epsilon_episodes=32, num_gru_layers=1, qp_iterations=10),
        ddpg=DDPGConfig(num_episodes=40),  # the default: its training reward rises (docs/model.md)
        eval_envs=2, eval_frames=12, eval_qp_iterations=100, oracle_rounds=2, oracle_proposals=6,
        oracle_search_iterations=30, zipf=(0.6, 1.0, 1.4, 1.8), users=(10, 20, 30, 50),
        es_cpu=(25.0, 50.0, 100.0, 200.0), storage=(10, 20, 40, 60), fig6_per_point=False,
        smoothing_window=4, methods=("TTOSC", "Greedy", "DDPG", "Popularity", "Clairvoyant")),
    # Paper section V scale: 4 values of M and K, the paper's 2000 episodes per shape (about 14 min per
    # shape at M = 5 on 2 cores, 7 shapes), per-point training in Fig. 6 at DDQN 160 / DDPG 40 episodes
    # per point: one point (M = 7, K = 30, 3 seeds) took 92 s per 64 DDQN and 72 s per 40 DDPG episodes on
    # 2 shared cores (an upper bound), 24 x (160 x 92 / 64 + 72) s = 2.0 h; the paper's 2000 would be ~20 h.
    "paper": Scale(
        cells=(3, 5, 7, 9), services=(10, 20, 30, 40), slots_per_frame=10, frames_per_episode=24, num_seeds=3,
        ddqn=DDQNConfig(num_envs=16, num_episodes=2000, epsilon_episodes=500, updates_per_frame=2,
                        qp_iterations=100, buffer_size=50000, num_gru_layers=2),  # = train-ttosc --preset paper
        ddpg=DDPGConfig(num_episodes=160),
        eval_envs=16, eval_frames=24, eval_qp_iterations=100, oracle_rounds=4, oracle_proposals=16,
        oracle_search_iterations=30, zipf=(0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8), users=(10, 20, 30, 40, 50),
        es_cpu=(25.0, 50.0, 75.0, 100.0, 150.0, 200.0), storage=(10, 20, 30, 40, 50, 60), fig6_per_point=True,
        smoothing_window=25, fig6_episodes=160, fig6_ddpg_episodes=40),
    # Smoke test: tiny shapes and budgets (seconds per compiled program).
    "quick": Scale(
        cells=(2, 3), services=(4, 6), slots_per_frame=2, frames_per_episode=2, num_seeds=2,
        ddqn=DDQNConfig(num_envs=2, num_episodes=4, epsilon_episodes=2, qp_iterations=5, hidden=8,
                        num_gru_layers=1, batch_size=4, learning_starts=4, buffer_size=32),
        ddpg=DDPGConfig(num_envs=2, num_episodes=2, batch_size=4, learning_starts=4, buffer_size=32, hidden=8,
                        updates_per_frame=1),
        eval_envs=1, eval_frames=2, eval_qp_iterations=10, oracle_rounds=1, oracle_proposals=2,
        oracle_search_iterations=5, zipf=(0.8, 1.6), users=(15, 30), es_cpu=(25.0, 100.0), storage=(10, 40),
        fig6_per_point=False, smoothing_window=2),
}


# ----------------------------------------------------------------------------- command line


@dataclasses.dataclass(frozen=True)
class ReproConfig:
    """Reproduction of TTOSC Figs. 4-6 and the decision times; unset fields take the preset's values."""

    figure: Literal["4", "5", "6", "runtime", "all"] = "all"
    """Figure to make (all = 4, 5, 6 and runtime; 5 and runtime reuse the agents of 4)."""
    preset: Literal["full", "quick", "paper"] = "full"
    """Scale: full (the committed figures, about 40 min on 2 CPU cores), quick (smoke test) or paper (its budgets)."""
    quick: bool = False
    """Shorthand for --preset quick."""
    out: Path | None = None
    """Folder of the CSV and PNG files (default <run-dir>/figures)."""
    run_dir: Path | None = None
    """Folder of the saved agents of each shape (DDQN and DDPG), from which a rerun resumes instead of
    training them again (default runs/reproduce-ttosc-<preset>)."""
    num_seeds: int | None = None
    """Training seeds per shape, also the evaluation seeds."""
    num_episodes: int | None = None
    """DDQN training episodes per seed (a multiple of the DDQN's parallel envs); epsilon anneals over half."""
    ddpg_episodes: int | None = None
    """DDPG training episodes per seed (a multiple of the DDPG's parallel envs)."""
    eval_envs: int | None = None
    """Evaluation episodes per seed, point and method."""
    eval_frames: int | None = None
    """Frames per evaluation episode."""
    cells: tuple[int, ...] | None = None
    """Numbers of cells M of Figs. 4(a)/5(a), e.g. --cells 3 5 7."""
    services: tuple[int, ...] | None = None
    """Numbers of services K of Figs. 4(b)/5(b)."""
    fig6_points: int | None = None
    """Keep the first N x values of each Fig. 6 panel."""
    methods: tuple[str, ...] | None = None
    """Methods of Figs. 5-6 among TTOSC, Greedy, DDPG, Popularity, Random, Clairvoyant (full leaves Random out)."""
    fig6_training: Literal["default-instance", "per-point"] | None = None
    """default-instance (agents trained once at the default instance) or per-point (trained at every
    Fig. 6 point, as the paper does); default: the preset's."""
    fig6_episodes: int | None = None
    """DDQN training episodes per seed at every Fig. 6 point with per-point training (a multiple of the DDQN's
    parallel envs; epsilon anneals over the same fraction as the shape's DDQN, a quarter at the paper preset);
    default: the preset's (paper: 160, about 2 h for Fig. 6 on 2 cores; the paper's own is --fig6-episodes 2000)."""
    fig6_ddpg_episodes: int | None = None
    """DDPG training episodes per seed at every Fig. 6 point with per-point training (a multiple of the DDPG's
    parallel envs); default: the preset's (paper: 40; others: the shape's DDPG budget)."""
    seed: int = 0
    """Base training seed (seed s uses fold_in(PRNGKey(seed), s))."""
    eval_seed: int = 12345
    """Base seed of the evaluation episodes."""
    bound_workers: int = 1
    """Processes that solve the lower bound's frames (CVXPY, one core each; the values do not depend on it)."""

    def __post_init__(self):
        require_positive(self, "bound_workers")
        require_positive(self, "num_seeds", "num_episodes", "ddpg_episodes", "eval_envs", "eval_frames",
                         "fig6_points", "fig6_episodes", "fig6_ddpg_episodes", allow_none=True)
        for name in ("cells", "services"):
            values = getattr(self, name)
            if values is not None and (not values or min(values) < 1 or len(set(values)) != len(values)):
                raise ValueError(f"--{name}={values!r} is invalid: must be distinct positive integers")
        if self.methods is not None:
            unknown = [m for m in self.methods if m not in METHODS]
            if unknown or not self.methods or len(set(self.methods)) != len(self.methods):
                raise ValueError(f"--methods={self.methods!r} is invalid: must be distinct names among "
                                 f"{', '.join(METHODS)}")

    @property
    def figures(self) -> tuple[str, ...]:
        return FIGURES if self.figure == "all" else (self.figure,)

    @property
    def preset_name(self) -> str:
        return "quick" if self.quick else self.preset


def parse_config(argv: Sequence[str]) -> ReproConfig:
    """Parses ``argv`` (``--quick`` is ``--preset quick``)."""
    import tyro

    return tyro.cli(ReproConfig, args=list(argv), description=__doc__)


def resolve_scale(config: ReproConfig) -> Scale:
    """The preset's :class:`Scale` with the command line's overrides.

    Raises:
        ValueError: an episode count that the parallel envs do not divide, a per-point Fig. 6 budget
            without per-point training, or a storage value above ``MECConfig.max_storage_units``.
    """
    scale = SCALES[config.preset_name]
    ddqn, ddpg = scale.ddqn, scale.ddpg
    for name, envs, agent in (("num_episodes", ddqn.num_envs, "DDQN"), ("ddpg_episodes", ddpg.num_envs, "DDPG"),
                              ("fig6_episodes", ddqn.num_envs, "DDQN"), ("fig6_ddpg_episodes", ddpg.num_envs, "DDPG")):
        value = getattr(config, name)
        if value is not None and value % envs:
            raise ValueError(f"{flag(name)}={value} is invalid: must be a positive multiple of the "
                             f"{agent}'s parallel envs ({envs})")
    if config.num_episodes is not None:
        ddqn = dataclasses.replace(ddqn, num_episodes=config.num_episodes,
                                   epsilon_episodes=max(config.num_episodes // 2, ddqn.num_envs))
    if config.ddpg_episodes is not None:
        ddpg = dataclasses.replace(ddpg, num_episodes=config.ddpg_episodes)
    per_point = scale.fig6_per_point if config.fig6_training is None else config.fig6_training == "per-point"
    for name in ("fig6_episodes", "fig6_ddpg_episodes"):
        if getattr(config, name) is not None and not per_point:
            raise ValueError(f"{flag(name)}={getattr(config, name)} is invalid: it is the budget of "
                             "per-point training, which this run does not do (add --fig6-training per-point)")
    points = config.fig6_points
    cut = (lambda values: values[:points]) if points else (lambda values: values)  # noqa: E731
    scale = dataclasses.replace(
        scale, ddqn=ddqn, ddpg=ddpg, fig6_per_point=per_point,
        fig6_episodes=config.fig6_episodes or scale.fig6_episodes,
        fig6_ddpg_episodes=config.fig6_ddpg_episodes or scale.fig6_ddpg_episodes,
        num_seeds=config.num_seeds or scale.num_seeds, methods=config.methods or scale.methods,
        eval_envs=config.eval_envs or scale.eval_envs, eval_frames=config.eval_frames or scale.eval_frames,
        cells=config.cells or scale.cells, services=config.services or scale.services,
        zipf=cut(scale.zipf), users=cut(scale.users), es_cpu=cut(scale.es_cpu), storage=cut(scale.storage))
    for value in scale.storage:
        if value > MECConfig().max_storage_units:
            raise ValueError(f"storage {value} exceeds MECConfig.max_storage_units={MECConfig().max_storage_units}")
    return scale


# ----------------------------------------------------------------------------- training


class Trained(NamedTuple):
    """DDQN agents of one shape, trained for every seed (leading axis S on every leaf).

    Attributes:
        trainer: the ``agents.ttosc.ddqn.Trainer``.
        runner: the final ``RunnerState`` without its replay buffer (``train_state`` is used).
        episode_reward: (S, points) average frame reward of each finished round of episodes.
        seconds: wall time of the training call (compile included).
    """

    trainer: Any
    runner: Any
    episode_reward: np.ndarray
    seconds: float


def ddqn_config(scale: Scale, cells: int, services: int) -> DDQNConfig:
    return dataclasses.replace(scale.ddqn, num_cells=cells, num_services=services,
                               slots_per_frame=scale.slots_per_frame, frames_per_episode=scale.frames_per_episode)


def ddpg_config(scale: Scale, cells: int, services: int) -> DDPGConfig:
    return dataclasses.replace(scale.ddpg, num_cells=cells, num_services=services,
                               slots_per_frame=scale.slots_per_frame, frames_per_episode=scale.frames_per_episode)


def fig6_scale(scale: Scale) -> Scale:
    """``scale`` with the per-point budgets of Fig. 6 (``fig6_episodes``, ``fig6_ddpg_episodes``) as its
    ``ddqn``/``ddpg`` budgets; epsilon anneals over the same fraction of the episodes as in ``scale.ddqn``."""
    ddqn, ddpg = scale.ddqn, scale.ddpg
    if scale.fig6_episodes is not None:
        fraction = ddqn.epsilon_episodes / ddqn.num_episodes
        ddqn = dataclasses.replace(ddqn, num_episodes=scale.fig6_episodes,
                                   epsilon_episodes=max(round(scale.fig6_episodes * fraction), 1))
    if scale.fig6_ddpg_episodes is not None:
        ddpg = dataclasses.replace(ddpg, num_episodes=scale.fig6_ddpg_episodes)
    return dataclasses.replace(scale, ddqn=ddqn, ddpg=ddpg)


def eval_config(scale: Scale, cells: int, services: int, qp_iterations: int | None = None) -> MECConfig:
    return ddqn_config(scale, cells, services).env_config(qp_iterations or scale.eval_qp_iterations)


def train_ddqn(scale: Scale, cells: int, services: int, seed: int) -> Trained:
    """Trains the M agents of shape (cells, services) for every seed in one vmapped program."""
    trainer = make_trainer(ddqn_config(scale, cells, services))
    start = time.time()
    runner, metrics = jax.jit(jax.vmap(trainer.train))(seed_keys(seed, scale.num_seeds))
    rewards = np.asarray(jax.device_get(metrics["episode_reward"]), np.float64)  # (S, iterations), nan between
    done = np.isfinite(rewards[0])
    return Trained(trainer, runner._replace(replay=None), rewards[:, done], time.time() - start)


def train_ddpg(scale: Scale, cells: int, services: int, seed: int, env_params: MECParams | None = None,
               params_axes: Any = None):
    """DDPG actors (leading axes [P,] S) of one shape; with ``params_axes`` vmapped over instances too."""
    trainer = make_ddpg_trainer(ddpg_config(scale, cells, services),
                                env_params if params_axes is None else None)
    keys = seed_keys(seed + 1, scale.num_seeds)
    if params_axes is None:
        runner, _ = jax.jit(jax.vmap(trainer.train))(keys)
    else:
        per_point = jax.vmap(jax.vmap(trainer.train, in_axes=(0, None)), in_axes=(None, params_axes))
        runner, _ = jax.jit(per_point)(keys, env_params)
    return trainer.actor, runner.learner.actor_params


def train_per_point(train: Callable, keys: jax.Array) -> Callable[[MECParams], Any]:
    """``params -> train(key, params)`` for every key (vmapped), compiled once for all instances of a shape.

    Args:
        train: a trainer's ``train(key, env_params)`` (``Trainer.train``, ``DDPGTrainer.train``).
        keys: (S, 2) training keys, one per seed.
    """
    program = jax.jit(jax.vmap(train, in_axes=(0, None)))
    return lambda env_params: program(keys, env_params)


# ----------------------------------------------------------------------------- evaluation


def stack_trees(trees: Sequence[Any]) -> Any:
    """Trees of the same structure stacked on a new leading axis, leaf by leaf.

    Stacked on the host (the same values and dtypes as ``jnp.stack``): ``jnp.stack`` outside a jit
    compiles a program for every distinct leaf shape.
    """
    return jax.tree.map(lambda *leaves: jnp.asarray(np.stack([np.asarray(leaf) for leaf in leaves])), *trees)


def stack_params(instances: Sequence[MECParams]) -> MECParams:
    """P complete instances stacked on a leading axis (``in_axes=0`` on every leaf)."""
    return stack_trees(instances)


def evaluate_methods(scale: Scale, cells: int, services: int, params: MECParams, methods: Sequence[str],
                     eval_seed: int, agents: Any = None, actor: Any = None, actor_params: Any = None,
                     per_point_agents: bool = False,
                     progress: Callable[[str], None] | None = None,
                     bound_units: Sequence[Path] | None = None, bound_pool=None) -> dict[str, np.ndarray]:
    """Average processing delay (P, S) of every method, one compiled program per method.

    Args:
        params: P stacked instances of shape (cells, services).
        agents: DDQN parameters, leading axes (S,) or (P, S) with ``per_point_agents``.
        actor, actor_params: DDPG actor and its parameters (same leading axes as ``agents``).
        per_point_agents: agents differ per point.
        bound_units: P paths (``.npz``), one per point: each point's ``Bound`` (all seeds) is saved
            there as soon as it is solved and loaded instead of solved again when it was saved for
            the same instance, environment, episodes and seeds (the bound is CPU-minutes per point).
        bound_pool: processes for the bound's frames (``agents.ttosc.bounds.bound_pool``; None: this process).

    Returns:
        {method: (P, S) float64 mean delay in s}; the same episodes (keys) for every method.
    """
    config = eval_config(scale, cells, services)
    env = TwoTimescaleMEC(config)
    greedy_env = TwoTimescaleMEC(config, schedule_fn=mb.greedy_schedule)
    search_env = TwoTimescaleMEC(eval_config(scale, cells, services, scale.oracle_search_iterations))
    network = make_network(ddqn_config(scale, cells, services))
    capacity = config.max_storage_units
    oracle = mb.clairvoyant_search_policy(search_env, num_rounds=scale.oracle_rounds, num_proposals=scale.oracle_proposals)

    def delay(env_, policy, p, key):
        return mb.evaluate_policy(env_, p, policy, key, scale.eval_envs, scale.eval_frames)["mean_delay"]

    programs: dict[str, Callable] = {
        "TTOSC": lambda p, a, k: delay(env, ddqn_policy(network, a, capacity), p, k),
        "Greedy": lambda p, a, k: delay(greedy_env, mb.greedy_policy, p, k),
        "DDPG": lambda p, a, k: delay(ddpg_env(config, actor, a), ddpg_policy(actor, a, capacity), p, k),
        "Popularity": lambda p, a, k: delay(env, mb.popularity_policy, p, k),
        "Random": lambda p, a, k: delay(env, mb.random_policy(capacity), p, k),
        "Clairvoyant": lambda p, a, k: delay(env, oracle, p, k),
    }
    keys = seed_keys(eval_seed, scale.num_seeds)
    dummy = jnp.arange(scale.num_seeds)
    results = {}
    for name in methods:
        if name == "Bound":  # CVXPY on the host: points x seeds, each over the seed's own frames
            points = jax.tree.leaves(params)[0].shape[0]
            if bound_units is not None and len(bound_units) != points:
                raise ValueError(f"bound_units: {len(bound_units)} paths for {points} points")
            results[name] = np.array([point_bound(env, jax.tree.map(lambda x: x[i], params), keys, scale,
                                                  None if bound_units is None else Path(bound_units[i]), bound_pool)
                                      for i in range(points)], np.float64)
            if progress is not None:
                progress(name)
            continue
        learned = name in ("TTOSC", "DDPG")
        per_seed = {"TTOSC": agents, "DDPG": actor_params}.get(name, dummy)
        outer_axis = 0 if (learned and per_point_agents) else None
        program = jax.vmap(jax.vmap(programs[name], in_axes=(None, 0, 0)), in_axes=(0, outer_axis, None))
        results[name] = np.asarray(jax.jit(program)(params, per_seed, keys), np.float64)
        if progress is not None:
            progress(name)
    return results


BOUND_UNIT_FORMAT = 1
"""Version of what a saved bound unit holds (one point's lower bound of every seed, ``seconds``)."""


def point_bound(env: TwoTimescaleMEC, params: MECParams, keys: jax.Array, scale: Scale,
                path: Path | None = None, pool=None) -> np.ndarray:
    """One instance's lower bound (S,) on every method's delay, one value per evaluation key (seed).

    With ``path``, the values are saved there (with the solve's seconds) and loaded instead of
    solved when the unit's fingerprint matches: the instance's leaves, the environment's config,
    the evaluation episodes and the keys.
    """
    fingerprint = None
    if path is not None:
        data = dict(kind="bound", instance=instance_digest(params), env=dataclasses.asdict(env.config),
                    eval_envs=scale.eval_envs, eval_frames=scale.eval_frames,
                    keys=np.asarray(keys).tolist(), format=BOUND_UNIT_FORMAT)
        fingerprint = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
        loaded = load_unit(path, fingerprint, {})  # float64 values kept as extras, not as (float32) leaves
        if loaded is not None and loaded[1]["bound"].shape == (len(keys),):
            return np.asarray(loaded[1]["bound"], np.float64)
    start = time.time()
    values = np.array([evaluation_lower_bound(env, params, key, scale.eval_envs, scale.eval_frames, pool=pool)
                       for key in keys], np.float64)
    if path is not None:
        save_unit(path, fingerprint, {}, bound=values, seconds=np.array(time.time() - start))
    return values


# ----------------------------------------------------------------------------- output


def write_table(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]], written: list[Path]) -> None:
    """Rows given as sequences in ``header``'s order, written by :func:`agents.outputs.write_csv`."""
    outputs.write_csv(path, [dict(zip(header, row)) for row in rows], written)


def shape_panels(scale: Scale) -> dict[str, list[tuple[int, int]]]:
    """The (M, K) shapes of panel (a) (vs cells) and panel (b) (vs services)."""
    return {"cells": [(m, scale.default_services) for m in scale.cells],
            "services": [(scale.default_cells, k) for k in scale.services]}


def all_shapes(scale: Scale) -> list[tuple[int, int]]:
    shapes = []
    for panel in shape_panels(scale).values():
        shapes += [s for s in panel if s not in shapes]
    return shapes


# ----------------------------------------------------------------------------- figures


UNIT_FORMAT = 1
"""Version of what a saved shape unit holds (in its fingerprint: a changed meaning retrains)."""


FIG6_UNIT_FORMAT = 1
"""Version of what a saved Fig. 6 point unit holds (one agent's parameters of every seed and ``seconds``)."""


def read_fig5(path: Path) -> dict[tuple[int, int], dict[str, np.ndarray]]:
    """Fig. 5's results from its CSV (``ttosc_fig5_delay.csv``): ``{(M, K): {method: (1, seeds)}}``,
    as :meth:`Reproduction.figure5` holds them (a shape in both panels is read once)."""
    import csv

    values: dict[tuple[int, int], dict[str, dict[int, float]]] = {}
    with Path(path).open() as f:
        for row in csv.DictReader(f):
            shape = (int(row["num_cells"]), int(row["num_services"]))
            values.setdefault(shape, {}).setdefault(row["method"], {})[int(row["seed"])] = float(row["mean_delay_s"])
    return {shape: {m: np.array([[v[s] for s in sorted(v)]]) for m, v in per.items()} for shape, per in values.items()}


def plot_fig5(fig5: dict[tuple[int, int], dict[str, np.ndarray]], scale: Scale, methods: Sequence[str],
              path: Path, written: list[Path] | None = None) -> Path:
    """Fig. 5's two panels (delay vs M at the middle K, vs K at the middle M) from ``fig5``
    (``{(M, K): {method: (1, seeds)}}``, as :func:`read_fig5` returns); mean +/- std over seeds."""
    plt = outputs.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (panel, panel_shapes) in zip(axes, shape_panels(scale).items()):
        xs = [s[0] if panel == "cells" else s[1] for s in panel_shapes]
        for method in methods:
            values = np.stack([fig5[s][method][0] for s in panel_shapes])  # (X, S)
            ax.errorbar(xs, values.mean(1), yerr=values.std(1), marker="o", capsize=3, label=method,
                        ls=":" if method == "Bound" else "--" if method in ("Clairvoyant", "Random") else "-")
        fixed = f"K = {scale.default_services}" if panel == "cells" else f"M = {scale.default_cells}"
        ax.set_title(f"({'a' if panel == 'cells' else 'b'}) vs number of {panel}, {fixed}")
        ax.set_xlabel(f"number of {panel}")
        ax.set_ylabel("average processing delay (s)")
        ax.set_xticks(xs)
        ax.legend(fontsize=8)
    fig.suptitle(f"TTOSC Fig. 5: mean +/- std over {scale.num_seeds} seeds ({scale.eval_envs} episodes x "
                 f"{scale.eval_frames} frames each); DDQN {scale.ddqn.num_episodes} episodes, "
                 f"DDPG {scale.ddpg.num_episodes}", fontsize=9)
    return outputs.save_figure(fig, path, written=written)


def instance_digest(params: MECParams) -> str:
    """SHA-256 of one instance's leaves (their paths, dtypes, shapes and bytes): the instance in a fingerprint."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(params))[0]:
        leaf = np.ascontiguousarray(leaf)
        digest.update(f"{jax.tree_util.keystr(path)}:{leaf.dtype}:{leaf.shape}".encode())
        digest.update(leaf.tobytes())
    return digest.hexdigest()


def save_unit(path: Path, fingerprint: str, tree: Any, **extra: np.ndarray) -> None:
    """Writes ``tree``'s leaves and ``extra`` arrays to ``path`` (npz, atomically)."""
    leaves = {f"leaf_{i:04d}": np.asarray(leaf) for i, leaf in enumerate(jax.tree.leaves(jax.device_get(tree)))}
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, fingerprint=np.array(fingerprint), **leaves, **extra)
    tmp.replace(path)


def load_unit(path: Path, fingerprint: str, like: Any) -> tuple[Any, dict] | None:
    """The tree (structure, shapes and dtypes of ``like``) and extras saved by :func:`save_unit`,
    or None when there is no unit or it was saved for other settings."""
    if not path.exists():
        return None
    with np.load(path) as data:
        if str(data["fingerprint"]) != fingerprint:
            return None
        names = sorted(n for n in data.files if n.startswith("leaf_"))
        structure = jax.tree.structure(like)
        expected = jax.tree.leaves(like)
        if len(names) != len(expected) or any(data[n].shape != e.shape for n, e in zip(names, expected)):
            return None
        tree = jax.tree.unflatten(structure, [jnp.asarray(data[n], e.dtype) for n, e in zip(names, expected)])
        extra = {n: data[n] for n in data.files if n != "fingerprint" and not n.startswith("leaf_")}
    return tree, extra


class Reproduction:
    """Runs the figures, sharing trained agents between them (one training per shape).

    The agents of every shape are saved under ``run_dir`` as soon as they are trained, so an
    interrupted or repeated reproduction loads them instead of training again (a unit saved with
    other settings is not used).
    """

    def __init__(self, config: ReproConfig, scale: Scale, out: Path, run_dir: Path | None = None):
        self.config = config
        self.scale = scale
        self.out = out
        self.run_dir = run_dir or out.parent
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.bound_pool = None  # processes for the lower bound's frames (main sets it from --bound-workers)
        self.written: list[Path] = []
        self.trained: dict[tuple[int, int], Trained] = {}
        self.fig5: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        self.ddpg: dict[tuple[int, int], tuple[Any, Any]] = {}
        self.fig6_seconds: dict[str, np.ndarray] = {}

    def _fingerprint(self, kind: str, shape: tuple[int, int]) -> str:
        settings = dataclasses.asdict(self.scale.ddqn if kind == "ddqn" else self.scale.ddpg)
        data = dict(kind=kind, shape=shape, settings=settings, seed=self.config.seed,
                    num_seeds=self.scale.num_seeds, slots=self.scale.slots_per_frame,
                    frames=self.scale.frames_per_episode, format=UNIT_FORMAT)
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def agents(self, shape: tuple[int, int], train: bool = True) -> Trained | None:
        """The DDQN agents of ``shape`` (all seeds): loaded from the run folder, else trained and saved
        (``train=False``: None instead of training)."""
        if shape not in self.trained:
            path, fingerprint = self.run_dir / f"ddqn-M{shape[0]}-K{shape[1]}.npz", self._fingerprint("ddqn", shape)
            trainer = make_trainer(ddqn_config(self.scale, *shape))
            keys = seed_keys(self.config.seed, self.scale.num_seeds)
            like = jax.eval_shape(lambda k: jax.vmap(trainer.init)(k).train_state, keys)
            loaded = load_unit(path, fingerprint, like)
            if loaded is None and not train:
                return None
            if loaded is None:
                trained = train_ddqn(self.scale, *shape, self.config.seed)
                save_unit(path, fingerprint, trained.runner.train_state, episode_reward=trained.episode_reward,
                          seconds=np.array(trained.seconds))
            else:  # only the agents' parameters are used after training
                train_state, extra = loaded
                runner = RunnerState(train_state, None, None, None, None, None, None)
                trained = Trained(trainer, runner, extra["episode_reward"], float(extra["seconds"]))
            self.trained[shape] = trained
        return self.trained[shape]

    def ddpg_actors(self, shape: tuple[int, int]):
        if shape not in self.ddpg:
            path, fingerprint = self.run_dir / f"ddpg-M{shape[0]}-K{shape[1]}.npz", self._fingerprint("ddpg", shape)
            trainer = make_ddpg_trainer(ddpg_config(self.scale, *shape))
            keys = seed_keys(self.config.seed + 1, self.scale.num_seeds)
            like = jax.eval_shape(lambda k: jax.vmap(trainer.init)(k).learner.actor_params, keys)
            loaded = load_unit(path, fingerprint, like)
            if loaded is None:
                actor, actor_params = train_ddpg(self.scale, *shape, self.config.seed)
                save_unit(path, fingerprint, actor_params)
            else:
                actor, actor_params = trainer.actor, loaded[0]
            self.ddpg[shape] = (actor, actor_params)
        return self.ddpg[shape]

    def fig6_trained(self, kind: Literal["ddqn", "ddpg"], points: Sequence[tuple[str, float]],
                     params: MECParams) -> tuple[Any, Any]:
        """The DDQN (``kind="ddqn"``) or DDPG agents trained at every Fig. 6 point, one unit per point.

        Each point's agents (all seeds, one vmapped call of the shape's trainer at that point's
        instance, at the budget of :func:`fig6_scale`) are saved under ``run_dir`` as
        ``fig6-<kind>-<panel>-<x>.npz`` as soon as they are trained; a point whose unit was saved with
        the same fingerprint (instance leaves, training settings, seeds, format) is loaded instead.
        The training seconds of every point (saved with it) go to ``self.fig6_seconds[kind]``.

        Args:
            points: the P (panel, x) of :meth:`fig6_points`.
            params: their P stacked instances.

        Returns:
            The trainer (``Trainer`` or ``DDPGTrainer``) and the parameters (P, S, ...) of the DDQN's
            Q-network or of the DDPG's actor.
        """
        from tqdm import tqdm

        scale = fig6_scale(self.scale)
        shape = (scale.default_cells, scale.default_services)
        if kind == "ddqn":
            config = ddqn_config(scale, *shape)
            trainer, keys = make_trainer(config), seed_keys(self.config.seed, scale.num_seeds)
            agent = lambda runner: runner.train_state.params  # noqa: E731
        else:
            config = ddpg_config(scale, *shape)
            trainer, keys = make_ddpg_trainer(config), seed_keys(self.config.seed + 1, scale.num_seeds)
            agent = lambda runner: runner.learner.actor_params  # noqa: E731
        train = train_per_point(trainer.train, keys)
        like = jax.eval_shape(lambda k: agent(jax.vmap(trainer.init)(k)), keys)
        trees, seconds = [], []
        bar = tqdm(points, desc=f"Fig. 6: {kind.upper()} {config.num_episodes} episodes x {scale.num_seeds} seeds "
                                f"per point", unit="point")
        for i, (panel, x) in enumerate(bar):
            instance = jax.tree.map(lambda leaf: leaf[i], params)
            data = dict(kind=f"fig6-{kind}", panel=panel, x=x, instance=instance_digest(instance),
                        settings=dataclasses.asdict(config), seed=self.config.seed, num_seeds=scale.num_seeds,
                        format=FIG6_UNIT_FORMAT)
            fingerprint = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
            path = self.run_dir / f"fig6-{kind}-{panel}-{x:g}.npz"
            loaded = load_unit(path, fingerprint, like)
            if loaded is None:
                start = time.time()
                tree = jax.block_until_ready(agent(train(instance)[0]))
                elapsed = time.time() - start
                save_unit(path, fingerprint, tree, seconds=np.array(elapsed))
                status = "trained"
            else:
                tree, elapsed, status = loaded[0], float(loaded[1]["seconds"]), "loaded"
            bar.write(f"  {panel} = {x:g}: {kind.upper()} {status}, training {elapsed:.1f} s")
            trees.append(tree)
            seconds.append(elapsed)
        self.fig6_seconds[kind] = np.asarray(seconds, np.float64)
        return trainer, stack_trees(trees)

    # ------------------------------------------------------------------ Fig. 4

    def figure4(self) -> None:
        from tqdm import tqdm

        scale, out = self.scale, self.out
        panels = shape_panels(scale)
        for shape in tqdm(all_shapes(scale), desc="Fig. 4: DDQN training per (M, K)", unit="shape"):
            trained = self.agents(shape)
            tqdm.write(f"  M={shape[0]} K={shape[1]}: {trained.seconds:.0f} s, last smoothed reward "
                       f"{np.mean([smooth(r, scale.smoothing_window)[-1] for r in trained.episode_reward]):.3f}")
        per_point = scale.ddqn.num_envs
        # Each shape's smoothed curves (S, X) and their x (episodes), computed once for the table,
        # the convergence readings and the plot.
        curves = {}
        for shape in all_shapes(scale):
            smoothed = np.stack([smooth(r, scale.smoothing_window) for r in self.trained[shape].episode_reward])
            curves[shape] = (np.arange(1, smoothed.shape[1] + 1) * per_point, smoothed)
        rows = []
        for panel, shapes in panels.items():
            for cells, services in shapes:
                x, smoothed = curves[(cells, services)]
                for seed, curve in enumerate(self.trained[(cells, services)].episode_reward):
                    for episode, raw, value in zip(x, curve, smoothed[seed]):
                        rows.append([panel, cells, services, seed, int(episode), float(raw), float(value)])
        write_table(out / "ttosc_fig4_convergence.csv",
                  ["panel", "num_cells", "num_services", "seed", "episode", "reward", "reward_smoothed"], rows,
                  self.written)
        # Where each curve (every seed, and their mean) covers 95% of its rise: the paper's
        # "converges after about N episodes", read off the curve the same way for every shape.
        summary = []
        for panel, shapes in panels.items():
            for cells, services in shapes:
                x, smoothed = curves[(cells, services)]
                for seed, curve in [*enumerate(smoothed), ("mean", smoothed.mean(0))]:
                    first, final, reached = outputs.convergence_point(x, curve)
                    summary.append([panel, cells, services, seed, first, final, "" if reached is None else reached])
        write_table(out / "ttosc_fig4_convergence_episodes.csv",
                    ["panel", "num_cells", "num_services", "seed", "first_smoothed", "final_smoothed",
                     "episodes_to_95pct_of_rise"], summary, self.written)
        plt = outputs.pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, (panel, shapes) in zip(axes, panels.items()):
            for cells, services in shapes:
                x, smoothed = curves[(cells, services)]
                label = f"M = {cells}" if panel == "cells" else f"K = {services}"
                line, = ax.plot(x, smoothed.mean(0), lw=2, label=label)
                ax.fill_between(x, smoothed.min(0), smoothed.max(0), color=line.get_color(), alpha=0.2)
            fixed = f"K = {scale.default_services}" if panel == "cells" else f"M = {scale.default_cells}"
            ax.set_title(f"({'a' if panel == 'cells' else 'b'}) vs number of {panel}, {fixed}")
            ax.set_xlabel("episode")
            ax.set_ylabel("average reward per frame (s, smoothed)")
            ax.legend(fontsize=8)
        fig.suptitle(f"TTOSC convergence: mean over {scale.num_seeds} seeds, band = min-max, sliding window "
                     f"{scale.smoothing_window} x {per_point} episodes ({scale.ddqn.num_episodes} episodes)",
                     fontsize=9)
        outputs.save_figure(fig, out / "ttosc_fig4_convergence.png", written=self.written)

    # ------------------------------------------------------------------ Fig. 5

    def figure5(self) -> None:
        from tqdm import tqdm

        scale, out, methods = self.scale, self.out, self.scale.methods
        shapes = all_shapes(scale)
        bar = tqdm(total=len(shapes) * len(methods), desc="Fig. 5: methods x (M, K)", unit="program")
        for shape in shapes:
            trained = self.agents(shape)
            actor, actor_params = self.ddpg_actors(shape) if "DDPG" in methods else (None, None)
            params = stack_params([trained.trainer.env_params])
            self.fig5[shape] = evaluate_methods(
                scale, *shape, params, methods, self.config.eval_seed, agents=trained.runner.train_state.params,
                actor=actor, actor_params=actor_params, progress=lambda name: bar.update(1),
                bound_units=[self.run_dir / f"bound-M{shape[0]}-K{shape[1]}.npz"], bound_pool=self.bound_pool)
            summary = ", ".join(f"{m} {self.fig5[shape][m].mean():.3f}" for m in methods)
            tqdm.write(f"  M={shape[0]} K={shape[1]}: {summary}")
        bar.close()
        rows = []
        for panel, panel_shapes in shape_panels(scale).items():
            for cells, services in panel_shapes:
                x = cells if panel == "cells" else services
                for method in methods:
                    for seed, value in enumerate(self.fig5[(cells, services)][method][0]):
                        rows.append([panel, cells, services, x, method, seed, float(value)])
        write_table(out / "ttosc_fig5_delay.csv",
                  ["panel", "num_cells", "num_services", "x", "method", "seed", "mean_delay_s"], rows, written=self.written)
        plot_fig5(self.fig5, scale, methods, out / "ttosc_fig5_delay.png", written=self.written)

    # ------------------------------------------------------------------ Fig. 6

    def fig6_points(self) -> tuple[list[tuple[str, float]], MECParams]:
        """The (panel, x) of every Fig. 6 point and the stacked instances (P, ...)."""
        scale = self.scale
        config = eval_config(scale, scale.default_cells, scale.default_services)
        base = generate_params(scale.ddqn.instance_seed, config)
        users_min, users_max = int(base.users_min), int(base.users_max)
        default_users = (users_min + users_max) / 2
        points, instances = [], []
        m = scale.default_cells
        for panel, values in zip(FIG6_PANELS, (scale.zipf, scale.users, scale.es_cpu, scale.storage)):
            for value in values:
                if panel == "zipf_exponent":
                    overrides = {"zipf_exponent": value}
                elif panel == "users_per_cell":
                    factor = value / default_users
                    overrides = {"users_min": round(users_min * factor), "users_max": round(users_max * factor)}
                    value = (overrides["users_min"] + overrides["users_max"]) / 2
                elif panel == "es_cpu_ghz":
                    overrides = {"es_cpu": np.full((m,), value, np.float32)}
                else:
                    overrides = {"storage_capacity": np.full((m,), value, np.int32)}
                points.append((panel, float(value)))
                instances.append(generate_params(scale.ddqn.instance_seed, config, **overrides))  # validated
        return points, stack_params(instances)

    def figure6(self) -> None:
        from tqdm import tqdm

        scale, out, methods = self.scale, self.out, self.scale.methods
        shape = (scale.default_cells, scale.default_services)
        points, params = self.fig6_points()
        if scale.fig6_per_point:
            agents, actor, actor_params = None, None, None
            if "TTOSC" in methods:
                agents = self.fig6_trained("ddqn", points, params)[1]
            if "DDPG" in methods:
                trainer, actor_params = self.fig6_trained("ddpg", points, params)
                actor = trainer.actor
            training = "per-point"
        else:
            agents = self.agents(shape).runner.train_state.params if "TTOSC" in methods else None
            actor, actor_params = self.ddpg_actors(shape) if "DDPG" in methods else (None, None)
            training = "default-instance"
        bar = tqdm(total=len(methods), desc=f"Fig. 6: {len(points)} points x {scale.num_seeds} seeds per method",
                   unit="method")
        results = evaluate_methods(scale, *shape, params, methods, self.config.eval_seed, agents=agents,
                                   actor=actor, actor_params=actor_params, per_point_agents=scale.fig6_per_point,
                                   progress=lambda name: bar.update(1),
                                   bound_units=[self.run_dir / f"fig6-bound-{panel}-{x:g}.npz" for panel, x in points],
                                   bound_pool=self.bound_pool)
        bar.close()
        # per-point training seconds of the row's method (empty: not trained per point)
        seconds = ({m: self.fig6_seconds[k] for m, k in (("TTOSC", "ddqn"), ("DDPG", "ddpg")) if m in methods}
                   if scale.fig6_per_point else {})
        rows = []
        for i, (panel, x) in enumerate(points):
            for method in methods:
                train_s = float(seconds[method][i]) if method in seconds else ""
                for seed, value in enumerate(results[method][i]):
                    rows.append([panel, x, method, seed, float(value), training, train_s])
        write_table(out / "ttosc_fig6_delay.csv",
                    ["panel", "x", "method", "seed", "mean_delay_s", "agents_trained", "train_s"], rows,
                    written=self.written)
        plt = outputs.pyplot()
        fig, axes = plt.subplots(2, 2, figsize=(11, 8))
        for ax, panel in zip(axes.ravel(), FIG6_PANELS):
            index = [i for i, p in enumerate(points) if p[0] == panel]
            xs = [points[i][1] for i in index]
            for method in methods:
                values = results[method][index]  # (X, S)
                ax.errorbar(xs, values.mean(1), yerr=values.std(1), marker="o", capsize=3, label=method,
                            ls=":" if method == "Bound" else "--" if method in ("Clairvoyant", "Random") else "-")
            ax.set_xlabel(FIG6_LABELS[panel])
            ax.set_ylabel("average processing delay (s)")
            ax.legend(fontsize=7)
        if scale.fig6_per_point:
            budgets = fig6_scale(scale)
            hours = sum(s.sum() for s in seconds.values()) / 3600
            trained = ([f"DDQN {budgets.ddqn.num_episodes} episodes per point (paper: 2000)"] * ("TTOSC" in methods)
                       + [f"DDPG {budgets.ddpg.num_episodes}"] * ("DDPG" in methods))
            note = f"agents trained per point: {', '.join(trained) or 'none'}; training {hours:.1f} h"
        else:
            note = "DDQN/DDPG trained at the default instance only, evaluated at each point"
        fig.suptitle(f"TTOSC Fig. 6 (M = {shape[0]}, K = {shape[1]}): mean +/- std over {scale.num_seeds} seeds; "
                     f"{note}", fontsize=9)
        outputs.save_figure(fig, out / "ttosc_fig6_delay.png", written=self.written)

    # ------------------------------------------------------------------ running time

    def runtime(self) -> None:
        from tqdm import tqdm

        scale = self.scale
        rows = []
        default = (scale.default_cells, scale.default_services)
        # every shape whose agents this run trained or the run folder holds (loading is cheap), and the default
        shapes = [default] + [s for s in all_shapes(scale) if s != default and self.agents(s, train=False) is not None]
        for shape in tqdm(shapes, desc="running time per (M, K)", unit="shape"):
            if self.agents(shape, train=False) is not None:
                trainer, runner, weights = self.trained[shape].trainer, self.trained[shape].runner, "trained"
            else:  # the decision's compute does not depend on the weights
                trainer = make_trainer(ddqn_config(scale, *shape))
                runner, weights = jax.jit(jax.vmap(trainer.init))(seed_keys(self.config.seed, 1)), "initial"
            times = decision_times(trainer.config, scale.eval_qp_iterations, trainer, runner)
            for decision in ("small_timescale", "large_timescale"):
                rows.append([shape[0], shape[1], decision, float(times[f"{decision}_ms"]), PAPER_MS[decision],
                             scale.eval_qp_iterations, weights])
        write_table(self.out / "ttosc_runtime.csv",
                  ["num_cells", "num_services", "decision", "median_ms", "paper_ms", "qp_iterations", "weights"],
                  rows, written=self.written)


def main(argv: Sequence[str] | None = None) -> int:
    """``jaxcpn reproduce-ttosc``: runs the requested figures; returns 0."""
    start = time.time()
    config = parse_config(sys.argv[1:] if argv is None else argv)
    scale = resolve_scale(config)
    run_dir = config.run_dir or Path("runs") / f"reproduce-ttosc-{config.preset_name}"
    out = config.out or run_dir / "figures"
    out.mkdir(parents=True, exist_ok=True)
    print(f"TTOSC reproduction: figures {', '.join(config.figures)}, preset {config.preset_name}, "
          f"{scale.num_seeds} seeds, out {out}", flush=True)
    reproduction = Reproduction(config, scale, out, run_dir)
    pool = bound_pool(config.bound_workers) if "Bound" in scale.methods else None
    with pool or contextlib.nullcontext():
        reproduction.bound_pool = pool
        for figure in config.figures:
            getattr(reproduction, "runtime" if figure == "runtime" else f"figure{figure}")()
    print("files written:")
    for path in reproduction.written:
        print(f"  {path}")
    print(f"total wall time {time.time() - start:.0f} s", flush=True)
    return 0
