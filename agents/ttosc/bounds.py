"""Per-frame bounds of TTOSC's two-timescale MEC: an exact clairvoyant deployment and a lower bound on delay.

The MEC objective is the expected delay per task (eq. 8), minimised. Frames are independent in
the paper's model (no switching cost: a frame's delay depends only on its arrivals and its own
deployment), so a per-frame optimum is the episode optimum and a per-frame lower bound bounds
any method's delay over an episode.

- :func:`clairvoyant_deployment` (tiny instances): every storage-feasible deployment, scored
  with the frame's true arrivals and the environment's own per-slot scheduler; the best is the
  exact clairvoyant optimum (up to the scheduler's certified QP tolerance, 2e-5 relative).
- :func:`frame_delay_lower_bound` (any size): a convex relaxation of the joint deployment and
  scheduling problem, solved with CVXPY (``solvers.bounds.frame_relaxation``); proof in its
  docstring.
- :func:`measure_gaps`: Greedy, Popularity, Random and the swap Oracle against the bound on
  parallel episodes of one instance.

Two ways to average a frame (``weighting``): ``"task"``, the task-weighted mean over the
frame's slots (``info["mean_delay"]``, and what ``evaluate_policy`` reports over frames), and
``"slot"``, the mean over slots of each slot's eq. (8) (the reward's aggregate, and the
Oracle's search score divided by ``L``).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcpn.mec import model
from jaxcpn.mec.env import TwoTimescaleMEC
from jaxcpn.mec.types import MECParams

WEIGHTINGS = ("task", "slot")
CLAIRVOYANT_LIMIT = 1 << 16
"""Most deployments :func:`clairvoyant_deployment` enumerates."""


def _check_weighting(weighting: str) -> None:
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting={weighting!r} is invalid; allowed: {WEIGHTINGS}")


def _check_paper_model(env: TwoTimescaleMEC, caller: str) -> None:
    if getattr(env.config, "switching_cost", False):
        raise ValueError(f"{caller}: MECConfig.switching_cost=True couples frames (downloads depend on the previous "
                         "deployment); the exact clairvoyant search covers the paper's model only")


def slot_weights(arrivals, weighting: str = "task") -> np.ndarray:
    """Weight of each slot's total delay (s x tasks) in the frame average (host).

    Args:
        arrivals: (L, M, K) tasks.
        weighting: ``"task"``: ``1 / sum of the frame's tasks``; ``"slot"``: ``1 / (L tasks_l)``
            (0 for a slot without tasks, whose eq. (8) mean is 0).

    Returns:
        (L,) float64; ``sum_l weight_l total_l`` is the frame's average delay (s).
    """
    _check_weighting(weighting)
    tasks = np.asarray(arrivals, np.float64).sum(axis=(1, 2))
    if weighting == "task":
        total = tasks.sum()
        return np.full(tasks.shape, 1.0 / total if total > 0 else 0.0)
    return np.where(tasks > 0, 1.0 / (len(tasks) * np.where(tasks > 0, tasks, 1.0)), 0.0)


def frame_delay_lower_bound(arrivals, params: MECParams, weighting: str = "task") -> float:
    """Lower bound on a frame's average delay over every feasible deployment and schedule (host, CVXPY).

    The relaxation (``solvers.bounds.frame_relaxation``) keeps eqs. (2)-(8) with one convex
    change in the compute term and lets the deployment be continuous.

    Proof. Fix any deployment ``x`` in ``{0, 1}^(M x K)`` meeting eq. (1) and any schedules
    ``pi_l`` meeting eqs. (2)-(3), and let ``f[l, m, k, n] = lam[l, m, k] pi_l[m, k, n]``. Slot
    ``l``'s total delay (the sum over services of eq. 13's objective) is ``sum D f + sum_{n < M}
    sum_k (c_k / F_{n,k}) load[l, n, k]^2`` with ``F_{n,k} = F_n / N_n`` (eq. 4, equal shares)
    and ``N_n = sum_k x[n, k]``. Since ``load[l, n, k] = 0`` unless ``x[n, k] = 1``,
    Cauchy-Schwarz over the ``N_n`` deployed services gives ``N_n sum_k c_k load^2 >= (sum_k
    sqrt(c_k) load)^2``, so each slot's total is at least the relaxation's slot term. The point
    ``(x, f)`` is feasible for the relaxation: rows sum to ``lam`` (eq. 2); ``f <= lam x`` holds
    (eq. 3: nothing goes to an ES without the service, and ``f <= lam`` always); eq. (1) gives the
    storage row and forbids services larger than an ES's storage. So the relaxation's optimum,
    a minimum over a superset with a smaller objective, is at most ``sum_l weight_l total_l``
    for every ``(x, pi)``, in particular for the best one and for whatever a policy and the
    environment's scheduler chose. Switching costs (``MECConfig.switching_cost``, beyond the
    paper) only add non-negative waits to ``D`` (``max(transfer, wait) >= transfer``), so the
    bound holds there too. Valid up to the conic solver's tolerance (about 1e-8 relative).

    Args:
        arrivals: (L, M, K) the frame's true arrivals (``state.arrivals`` after the step, or
            ``agents.ttosc.baselines.true_frame_arrivals`` before it).
        params: the instance.
        weighting: ``"task"`` or ``"slot"`` (module docstring).

    Returns:
        The bound (s); 0 for a frame without tasks.
    """
    from solvers.bounds import frame_relaxation

    weight = slot_weights(arrivals, weighting)
    if not np.any(weight > 0):
        return 0.0
    value, _ = frame_relaxation(np.asarray(jax.device_get(arrivals)), *_relaxation_inputs(params), weight)
    return value


def _relaxation_inputs(params: MECParams) -> tuple[np.ndarray, ...]:
    """The instance's inputs of ``solvers.bounds.frame_relaxation`` after the arrivals (host arrays)."""
    get = lambda leaf: np.asarray(jax.device_get(leaf))  # noqa: E731
    return (get(model.base_delay(params)), get(params.task_cycles), get(params.es_cpu), get(params.service_size),
            get(params.storage_capacity))


def frame_mean_delay(env: TwoTimescaleMEC, arrivals: jax.Array, deployment: jax.Array, params: MECParams,
                     weighting: str = "task", warm_start: jax.Array | None = None) -> jax.Array:
    """A frame's average delay under ``deployment`` and the environment's per-slot scheduler (traceable).

    The slots are scheduled in order, warm-started from the previous slot as ``env.step`` does.

    Args:
        arrivals: (L, M, K) tasks.
        deployment: (M, K) bool, storage-feasible.
        weighting: ``"task"`` or ``"slot"``.
        warm_start: (M, K, M + 1) schedule before the first slot (default: all to the cloud).

    Returns:
        () float32 s.
    """
    _check_weighting(weighting)
    cfg = env.config
    if warm_start is None:
        warm_start = model.cloud_schedule(cfg.num_cells, cfg.num_services)

    def slot(previous, arrivals_slot):
        schedule = env.schedule_slot(arrivals_slot, deployment, params, warm_start=previous)
        delay = model.slot_delay(arrivals_slot, deployment, schedule, params)
        return schedule, (delay.total, delay.num_tasks, delay.mean)

    _, (total, tasks, mean) = jax.lax.scan(slot, warm_start, arrivals)
    if weighting == "task":
        return jnp.sum(total) / jnp.maximum(jnp.sum(tasks), 1.0)
    return jnp.mean(mean)


def feasible_deployments(params: MECParams, limit: int = CLAIRVOYANT_LIMIT) -> np.ndarray:
    """Every deployment meeting eq. (1) at every ES (host enumeration).

    Args:
        params: concrete instance.
        limit: most deployments returned.

    Returns:
        (D, M, K) bool, all of them.

    Raises:
        ValueError: when there are more than ``limit`` (the instance is too large to enumerate).
    """
    size = np.asarray(params.service_size, np.int64)
    capacity = np.asarray(params.storage_capacity, np.int64)
    k = size.shape[0]
    if 2**k > limit:
        raise ValueError(f"feasible_deployments: 2^K = 2^{k} subsets per ES exceeds limit={limit}")
    subsets = np.array(list(itertools.product([False, True], repeat=k)), bool).reshape(-1, k)
    used = subsets.astype(np.int64) @ size
    per_es = [subsets[used <= c] for c in capacity]
    count = int(np.prod([len(p) for p in per_es], dtype=np.float64))
    if count > limit:
        raise ValueError(f"feasible_deployments: {count} storage-feasible deployments exceed limit={limit}")
    index = np.array(list(itertools.product(*[range(len(p)) for p in per_es])), np.int64)
    return np.stack([per_es[m][index[:, m]] for m in range(len(per_es))], axis=1)


_SCORERS: dict = {}  # (env, weighting) -> jitted batch scorer, so repeated calls compile once


class Clairvoyant(NamedTuple):
    """Result of :func:`clairvoyant_deployment`.

    Attributes:
        deployment: (M, K) bool, a best deployment.
        delay: its frame average delay (s).
        delays: (D,) every feasible deployment's delay, in the order of :func:`feasible_deployments`.
    """

    deployment: np.ndarray
    delay: float
    delays: np.ndarray


def clairvoyant_deployment(env: TwoTimescaleMEC, arrivals, params: MECParams, weighting: str = "task",
                           batch_size: int = 256, limit: int = CLAIRVOYANT_LIMIT) -> Clairvoyant:
    """Exact clairvoyant deployment of one frame: all storage-feasible deployments, scored with its true arrivals.

    Each deployment is scored by :func:`frame_mean_delay` (the environment's scheduler, eq. 13 per
    service and slot), ``batch_size`` at a time under one jitted ``vmap``.

    Args:
        env: the environment (paper's model: ``switching_cost`` off).
        arrivals: (L, M, K) the frame's true arrivals.
        params: the instance.
        weighting: ``"task"`` or ``"slot"``.
        batch_size: deployments per jitted call (the last batch is padded).
        limit: most deployments enumerated (:func:`feasible_deployments`).

    Returns:
        :class:`Clairvoyant`.
    """
    _check_weighting(weighting)
    _check_paper_model(env, "clairvoyant_deployment")
    candidates = feasible_deployments(params, limit)
    key = (env, weighting)
    if key not in _SCORERS:
        _SCORERS[key] = jax.jit(jax.vmap(lambda a, x, p: frame_mean_delay(env, a, x, p, weighting), (None, 0, None)))
    score = _SCORERS[key]
    arrivals = jnp.asarray(arrivals, jnp.float32)
    batch_size = min(batch_size, len(candidates))
    delays = []
    for first in range(0, len(candidates), batch_size):
        chunk = candidates[first:first + batch_size]
        padded = np.concatenate([chunk, np.repeat(chunk[:1], batch_size - len(chunk), axis=0)])
        delays.append(np.asarray(score(arrivals, jnp.asarray(padded), params))[:len(chunk)])
    delays = np.concatenate(delays).astype(np.float64)
    best = int(np.argmin(delays))
    return Clairvoyant(candidates[best], float(delays[best]), delays)


# ----------------------------------------------------------------------------- gaps of the baselines


def frame_outcomes(env: TwoTimescaleMEC, params: MECParams, policy, key: jax.Array, num_envs: int,
                   num_frames: int) -> dict:
    """Per-frame outcomes of ``policy``, played as ``baselines.evaluate_policy`` plays it (jit it outside).

    The frames' arrivals depend only on ``key`` (not on the deployments), so every policy played
    with the same key meets the same frames.

    Returns:
        dict: ``mean_delay`` (F, B) task-weighted frame delay (s), ``slot_mean`` (F, B) mean over
        slots of eq. (8) (s), ``tasks`` (F, B), ``arrivals`` (F, B, L, M, K).
    """
    key_reset, key_run = jax.random.split(key)
    observation, state = jax.vmap(env.reset, (0, None))(jax.random.split(key_reset, num_envs), params)

    def frame(carry, key):
        observation, state = carry
        keys = jax.random.split(key, num_envs)
        deployment = jax.vmap(policy, (0, 0, 0, None))(keys, observation, state, params)
        observation, state, _, _, _, info = jax.vmap(env.step, (0, 0, 0, None))(keys, state, deployment, params)
        out = {"mean_delay": info["mean_delay"], "slot_mean": jnp.mean(info["slot_delay"], axis=-1),
               "tasks": jnp.sum(info["num_tasks"], axis=-1),
               # the played frame's (L, M, K) arrivals: after the last frame of an episode ``state``
               # is already the next episode's, the final observation is not
               "arrivals": jnp.swapaxes(info["final_observation"][:, :, :env.config.slots_per_frame], 1, 2)}
        return (observation, state), out

    _, out = jax.lax.scan(frame, (observation, state), jax.random.split(key_run, num_frames))
    return out


def measure_gaps(config=None, seed: int = 0, num_envs: int = 4, num_frames: int = 6, eval_seed: int = 1,
                 oracle_rounds: int = 2, oracle_proposals: int = 6, oracle_search_iterations: int = 30) -> dict:
    """Delays of Greedy, Popularity, Random and the swap Oracle against the lower bound; prints a table.

    Every method plays the same ``num_envs x num_frames`` frames; the bound is solved for each
    frame's true arrivals. Gaps are reported for the task-weighted delay over all frames (as
    ``evaluate_policy`` reports it: the bound's frame totals are summed, so it bounds that
    aggregate too).

    Args:
        config: ``MECConfig`` (default: M = 5, K = 20, L = 10).
        seed: instance seed (``generate_params``).
        eval_seed: episodes' seed.
        oracle_*: the Oracle's search settings (those of ``agents.ttosc.train.TrainConfig``).

    Returns:
        dict name -> ``{"mean_delay": s, "gap": s, "relative_gap": (delay - bound) / bound}``, with
        ``"bound"`` among them.
    """
    from agents.ttosc import baselines as mb
    from jaxcpn.mec.generator import generate_params
    from jaxcpn.mec.types import MECConfig

    config = MECConfig() if config is None else config
    params = generate_params(seed, config)
    env = TwoTimescaleMEC(config)
    search_env = TwoTimescaleMEC(dataclasses.replace(config, qp_iterations=oracle_search_iterations))
    methods = {
        "Greedy": (TwoTimescaleMEC(config, schedule_fn=mb.greedy_schedule), mb.greedy_policy),
        "Popularity": (env, mb.popularity_policy),
        "Random": (env, mb.random_policy(config.max_storage_units)),
        "Clairvoyant search": (env, mb.clairvoyant_search_policy(search_env, num_rounds=oracle_rounds,
                                                       num_proposals=oracle_proposals)),
    }
    key = jax.random.PRNGKey(eval_seed)
    outcomes = {name: jax.device_get(jax.jit(lambda k, e=e, p=p: frame_outcomes(e, params, p, k, num_envs,
                                                                                 num_frames))(key))
                for name, (e, p) in methods.items()}
    first = next(iter(outcomes.values()))
    arrivals = np.asarray(first["arrivals"]).reshape((-1,) + first["arrivals"].shape[2:])
    tasks = np.asarray(first["tasks"], np.float64).reshape(-1)
    bounds = np.array([frame_delay_lower_bound(a, params, "task") for a in arrivals])
    bound = float(np.sum(bounds * tasks) / tasks.sum())
    table = {"bound": {"mean_delay": bound, "gap": 0.0, "relative_gap": 0.0}}
    for name, out in outcomes.items():
        assert np.allclose(np.asarray(out["tasks"]).reshape(-1), tasks), "methods met different frames"
        delay = float(np.sum(np.asarray(out["mean_delay"], np.float64).reshape(-1) * tasks) / tasks.sum())
        table[name] = {"mean_delay": delay, "gap": delay - bound, "relative_gap": (delay - bound) / bound}
    print(f"MEC M={config.num_cells} K={config.num_services} L={config.slots_per_frame}: "
          f"{num_envs} x {num_frames} frames, instance seed {seed}")
    print(f"{'method':<22} {'delay (s)':>10} {'gap (s)':>9} {'gap %':>8}")
    for name, row in table.items():
        print(f"{name:<22} {row['mean_delay']:>10.4f} {row['gap']:>9.4f} {100 * row['relative_gap']:>7.2f}%")
    return table


# The params and the key are arguments: one compilation per env (and policy, shape), not per instance or seed.
_jitted_frame_outcomes = jax.jit(frame_outcomes, static_argnums=(0, 2, 4, 5))


def _cloud_schedule_fn(key, arrivals, deployment, params, previous):
    return model.cloud_schedule(*arrivals.shape)


_ARRIVAL_ENVS: dict = {}


def arrivals_env(env: TwoTimescaleMEC) -> TwoTimescaleMEC:
    """``env`` with every task sent to the cloud (no per-slot program to solve): the same frames.

    A frame's arrivals and task counts depend only on the step's key (``env.step`` splits it the
    same way whatever the scheduler), so :func:`frame_outcomes` of this env records the arrivals
    that ``env`` plays, at a fraction of the cost. One env per ``env``, so it compiles once.
    """
    if env not in _ARRIVAL_ENVS:
        _ARRIVAL_ENVS[env] = TwoTimescaleMEC(env.config, schedule_fn=_cloud_schedule_fn)
    return _ARRIVAL_ENVS[env]


def bound_pool(workers: int):
    """A pool of ``workers`` spawned processes for :func:`evaluation_lower_bound`'s frames (use it as a
    context manager), or None for ``workers = 1`` (solve in this process).

    Raises:
        ValueError: ``workers`` < 1.
    """
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers={workers!r} is invalid; allowed: an int >= 1")
    if workers == 1:
        return None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: this process runs JAX's threads; the workers import only NumPy and CVXPY
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def evaluation_lower_bound(env: TwoTimescaleMEC, params: MECParams, key: jax.Array, num_envs: int,
                           num_frames: int, pool=None) -> float:
    """Lower bound on the task-weighted mean delay of the frames ``baselines.evaluate_policy`` plays.

    ``evaluate_policy(env, params, policy, key, num_envs, num_frames)["mean_delay"]`` of any
    deployment policy is at least this: the frames' arrivals depend only on ``key``, each frame's
    total delay is at least its bound (:func:`frame_delay_lower_bound`) times its task count, and
    the aggregate is the sum of frame totals over the sum of tasks. One convex program per frame
    (0.05-0.15 s each at M = 7, K = 30 on one core); ``pool`` (:func:`bound_pool`, or any
    ``concurrent.futures`` executor) solves the frames in its processes, with the same values.
    """
    from agents.ttosc import baselines as mb

    # (valid with switching costs too: downloads only add non-negative waits)
    out = jax.device_get(_jitted_frame_outcomes(arrivals_env(env), params, mb.popularity_policy, key, num_envs,
                                                num_frames))
    arrivals = np.asarray(out["arrivals"]).reshape((-1,) + out["arrivals"].shape[2:])
    tasks = np.asarray(out["tasks"], np.float64).reshape(-1)
    from solvers.bounds import frame_relaxation_value

    # frame_delay_lower_bound of every frame, the instance's inputs built once; a frame without tasks is 0
    fixed = _relaxation_inputs(params)
    weights = [slot_weights(a, "task") for a in arrivals]
    busy = [i for i, w in enumerate(weights) if np.any(w > 0)]
    jobs = [(arrivals[i], *fixed, weights[i]) for i in busy]
    values = (map(frame_relaxation_value, jobs) if pool is None
              else pool.map(frame_relaxation_value, jobs, chunksize=max(1, len(busy) // 32)))
    bounds = np.zeros(len(arrivals))
    bounds[busy] = list(values)
    return float(np.sum(bounds * tasks) / tasks.sum())
