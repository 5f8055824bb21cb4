"""Baselines of TTOSC (paper Sec. V-A), a clairvoyant swap search (once called the clairvoyant search) and a clairvoyant MPC, plus a policy evaluator.

A deployment *policy* is ``policy(step_key, observation (M, R, K), env_state, env_params) ->
deployment (M, K) bool``, where ``step_key`` is the key the caller then passes to
``env.step`` (only the clairvoyant search uses that: it replays the environment's draw of the frame's
true arrivals; the others ignore it) and R = L rows of arrivals, plus the hosted deployment
row with ``MECConfig.switching_cost`` (docs/model.md, "Coupled dynamics"). A
``LookaheadPolicy`` is handed the step keys of the next H frames instead (``evaluate_policy``
plays both kinds). A per-slot *scheduler* is the environment's
``schedule_fn(key, arrivals (M, K), deployment (M, K), params, previous) -> (M, K, M + 1)``.

What each method knows, with the switching cost and the popularity cycle on:

- **Greedy** (myopic): deploys by the last frame's local request count per unit size until
  storage is full (arrivals rows only; blind to what is hosted, so to download costs);
  schedules each task to the node of lowest marginal delay (``greedy_schedule``), which prices
  this frame's download wait when it is given it (``GreedyScheduledMEC`` gives it).
- **Popularity** (myopic): deploys the last frame's most requested services that fit
  (arrivals rows only, blind to download costs); convex scheduling (the environment's default
  scheduler, which prices this frame's download wait).
- **Random**: a random maximal knapsack-feasible deployment; convex scheduling.
- **Clairvoyant search** (one frame; once called the clairvoyant search, a heuristic, not a bound): sees the frame's true arrivals, searches deployments
  (knapsacks on true demand, keeping what is hosted, then local swaps) scored with the convex
  scheduler and this frame's download wait; an upper bound for the agents of the paper's model.
  It does not look past the frame (a download that pays off later is not made).
- **Clairvoyant MPC** (``clairvoyant_mpc_policy``, clairvoyant over H frames): sees the true
  arrivals of the next H frames and picks the deployment sequence of least summed delay,
  downloads included, over a candidate set (the one-frame clairvoyant search along its own path, keeping
  what is hosted, the knapsack on the horizon's demand); applies the first, replans next frame.
  A reference for how much looking ahead is worth, not an optimum.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from agents.ttosc.ddqn import random_deployment
from jaxcpn.mec import model
from jaxcpn.mec.env import TwoTimescaleMEC
from jaxcpn.mec.types import MECParams

Policy = Callable[[jax.Array, jax.Array, Any, MECParams], jax.Array]


# ----------------------------------------------------------------------------- deployment


def greedy_fill(scores: jax.Array, eligible: jax.Array, service_size: jax.Array, capacity: jax.Array) -> jax.Array:
    """Adds services in decreasing ``scores`` order while they fit (skipping those that do not).

    Args:
        scores: (K,) priority.
        eligible: (K,) bool, services that may be deployed at all.
        service_size: (K,) int32 ``s_k``.
        capacity: () int32 ``S_m``.

    Returns:
        (K,) bool, satisfying eq. (1) by construction.
    """
    order = jnp.argsort(-scores)

    def add(used, k):
        take = eligible[k] & (used + service_size[k] <= capacity)
        return used + jnp.where(take, service_size[k], 0), take

    _, taken = jax.lax.scan(add, jnp.zeros((), jnp.int32), order)
    return jnp.zeros(scores.shape, bool).at[order].set(taken)


def arrival_rows(observation: jax.Array, env_state) -> jax.Array:
    """The arrivals rows (M, L, K) of an observation: drops the hosted-deployment row (switching costs).

    Args:
        observation: (M, R, K), R = L or L + 1.
        env_state: the ``MECState`` the observation came from (its ``arrivals`` (L, M, K) give
            L), or None: every row is arrivals (the paper's observation).
    """
    if env_state is None:
        return observation
    return observation[:, :env_state.arrivals.shape[0]]


def popularity_deployment(observation: jax.Array, params: MECParams) -> jax.Array:
    """Each ES deploys last frame's locally requested services, most requested first, that fit.

    Args:
        observation: (M, L, K) last frame's arrivals (only the arrivals rows: ``arrival_rows``).

    Returns:
        (M, K) bool.
    """
    counts = jnp.sum(observation, axis=1)
    return jax.vmap(greedy_fill, (0, 0, None, 0))(counts, counts > 0, params.service_size, params.storage_capacity)


def greedy_density_deployment(observation: jax.Array, params: MECParams) -> jax.Array:
    """Each ES deploys by last frame's local requests per unit size until storage is full.

    Args:
        observation: (M, L, K) last frame's arrivals (only the arrivals rows: ``arrival_rows``).

    Returns:
        (M, K) bool.
    """
    counts = jnp.sum(observation, axis=1)
    density = counts / params.service_size.astype(jnp.float32)[None, :]
    return jax.vmap(greedy_fill, (0, 0, None, 0))(density, counts > 0, params.service_size, params.storage_capacity)


def popularity_policy(step_key, observation, env_state, env_params):
    """``Policy`` wrapper of ``popularity_deployment`` on the observation's arrivals rows (myopic)."""
    del step_key
    return popularity_deployment(arrival_rows(observation, env_state), env_params)


def greedy_policy(step_key, observation, env_state, env_params):
    """``Policy`` wrapper of ``greedy_density_deployment`` on the observation's arrivals rows (myopic)."""
    del step_key
    return greedy_density_deployment(arrival_rows(observation, env_state), env_params)


def random_policy(max_capacity: int) -> Policy:
    """Random maximal feasible deployments (the floor a trained agent must beat)."""

    def policy(step_key, observation, env_state, env_params):
        del observation, env_state
        return random_deployment(jax.random.fold_in(step_key, 1), env_params, max_capacity)

    return policy


# ----------------------------------------------------------------------------- scheduling


def marginal_delay_schedule(lam, D, w, mask, num_chunks: int = 8) -> jax.Array:
    """Sequential greedy assignment of one service's tasks to the node of lowest marginal delay.

    Each ES's arrivals are split into ``num_chunks`` equal chunks, assigned round-robin over
    ESs; a chunk of size ``c`` from ES m goes to the feasible node minimising its per-task
    marginal delay ``D_{m,n} + w_n (2 load_n + c)`` given the load assigned so far (the
    increase of eq. 13's objective divided by ``c``).

    Args:
        lam: (M,) arrivals; D: (M, M + 1); w: (M + 1,); mask: (M, M + 1) bool (cloud True).
        num_chunks: static chunks per ES.

    Returns:
        (M, M + 1) float32 schedule: rows on the simplex, 0 off the mask (eqs. 2-3).
    """
    m, n = D.shape
    order = jnp.tile(jnp.arange(m, dtype=jnp.int32), num_chunks)

    def assign(carry, source):
        load, counts = carry
        chunk = lam[source] / num_chunks
        marginal = jnp.where(mask[source], D[source] + w * (2.0 * load + chunk), jnp.inf)
        node = jnp.argmin(marginal)
        return (load.at[node].add(chunk), counts.at[source, node].add(1.0)), None

    init = (jnp.zeros((n,), jnp.float32), jnp.zeros((m, n), jnp.float32))
    (_, counts), _ = jax.lax.scan(assign, init, order)
    return counts / num_chunks


def greedy_schedule(key, arrivals, deployment, params, previous, num_chunks: int = 8, wait=None):
    """``schedule_fn`` of the Greedy baseline: ``marginal_delay_schedule`` per service.

    Args:
        wait: optional (M, K) s download wait of each ES's services (switching costs,
            ``model.download_wait``): priced into the load-free delay as the env charges it. The
            env does not pass it to a ``schedule_fn``; ``GreedyScheduledMEC`` does.

    Returns:
        (M, K, M + 1) float32 schedule satisfying eqs. (2)-(3).
    """
    del key, previous
    lam, D, w, mask = model.qp_inputs(arrivals, deployment, params, wait)
    pi = jax.vmap(lambda *a: marginal_delay_schedule(*a, num_chunks=num_chunks))(lam, D, w, mask)
    return jnp.swapaxes(pi, 0, 1)


class GreedyScheduledMEC(TwoTimescaleMEC):
    """The MEC with Greedy's marginal-delay scheduler in place of the convex one (``config.scheduler`` unused).

    Unlike ``TwoTimescaleMEC(config, schedule_fn=greedy_schedule)``, whose scheduler is not told
    the download wait (and pays it), this one hands it the wait as the convex scheduler gets it.
    Options off, the two play the same numbers. ``frame_delay`` on it scores Greedy's schedules.
    """

    def schedule_slot(self, arrivals, deployment, params, warm_start=None, wait=None):
        """``greedy_schedule`` of one slot, with the download wait (``TwoTimescaleMEC.schedule_slot``'s contract)."""
        return greedy_schedule(None, arrivals, deployment, params, warm_start, wait=wait)


# ----------------------------------------------------------------------------- oracle


def true_frame_arrivals(env: TwoTimescaleMEC, step_key: jax.Array, env_state, env_params: MECParams) -> jax.Array:
    """The arrivals (L, M, K) that ``env.step(step_key, env_state, ...)`` will draw.

    Replays the key splits of ``Environment.step`` and ``TwoTimescaleMEC.step_env``.
    """
    key_step, _ = jax.random.split(step_key)
    key_drift, key_arrivals, _ = jax.random.split(key_step, 3)
    ranking = env._drift(key_drift, env_state.ranking, env_params)
    return env._frame_arrivals(key_arrivals, ranking, env_state.users, env_state.phase, env_state.frame + 1,
                               env_params)


def frame_delay(env: TwoTimescaleMEC, arrivals: jax.Array, deployment: jax.Array, env_params: MECParams,
                warm_start: jax.Array, wait: jax.Array | None = None) -> jax.Array:
    """Sum over the frame's slots of the mean delay (eq. 8) under ``env.schedule_slot``, () s.

    What ``env.step`` charges for the frame (``sum(info["slot_delay"])``) when ``env`` has no
    ``schedule_fn``.

    Args:
        arrivals: (L, M, K) the frame's arrivals.
        deployment: (M, K) bool, feasible.
        warm_start: (M, K, M + 1) the previous slot's schedule (``env_state.schedule``).
        wait: optional (L, M, K) s download wait, ``env.download_wait(deployment, env_state,
            env_params)`` (switching costs; None = the paper's model).
    """

    def slot(previous, inputs):
        arrivals_slot, wait_slot = inputs
        schedule = env.schedule_slot(arrivals_slot, deployment, env_params, warm_start=previous, wait=wait_slot)
        return schedule, model.slot_delay(arrivals_slot, deployment, schedule, env_params, wait_slot).mean

    _, delays = jax.lax.scan(slot, warm_start, (arrivals, wait))  # wait None: nothing to scan (the paper)
    return jnp.sum(delays)


def oracle_search(env: TwoTimescaleMEC, step_key: jax.Array, env_state, env_params: MECParams, num_rounds: int = 3,
                  num_proposals: int = 8, mixes: tuple[float, ...] = (0.0, 0.25, 1.0),
                  thresholds: tuple[float, ...] = (0.0, 0.5, 1.0)) -> jax.Array:
    """The clairvoyant search's deployment for the frame ``env.step(step_key, env_state, ...)`` plays (see ``clairvoyant_search_policy``).

    Returns:
        (M, K) bool, storage-feasible.
    """
    arrivals = true_frame_arrivals(env, step_key, env_state, env_params)
    demand = jnp.sum(arrivals, axis=0)  # (M, K)
    m = demand.shape[0]
    others = (jnp.sum(demand, axis=0, keepdims=True) - demand) / max(m - 1, 1)
    local_mean = jnp.mean(demand, axis=1, keepdims=True)
    grid = jnp.array([(a, b) for a in mixes for b in thresholds], jnp.float32)
    values = demand[None] + grid[:, 0, None, None] * others[None] - grid[:, 1, None, None] * local_mean[None]
    candidates = jax.vmap(env.deployment_from_values, (0, None))(values, env_params)
    if env.config.switching_cost:  # keeping what is hosted downloads nothing
        candidates = jnp.concatenate([candidates, env_state.deployment[None]])

    def score(deployment):
        wait = env.download_wait(deployment, env_state, env_params)  # None without switching costs
        return frame_delay(env, arrivals, deployment, env_params, env_state.schedule, wait)

    scores = jax.vmap(score)(candidates)
    best = jnp.argmin(scores)
    start = (candidates[best], scores[best])

    def propose(key, deployment):
        key_es, key_drop, key_add = jax.random.split(key, 3)
        es = jax.random.randint(key_es, (), 0, m)
        row = deployment[es]
        drop = jnp.argmax(jnp.where(row, jax.random.uniform(key_drop, row.shape), -1.0))
        row = row.at[drop].set(False)
        free = env_params.storage_capacity[es] - jnp.sum(jnp.where(row, env_params.service_size, 0))
        fits = (~row) & (env_params.service_size <= free) & (jnp.arange(row.shape[0]) != drop)
        add = jnp.argmax(jnp.where(fits, jax.random.uniform(key_add, row.shape), -1.0))
        row = row.at[add].set(row[add] | fits[add])
        return deployment.at[es].set(row)

    def round_(carry, key):
        deployment, value = carry
        proposals = jax.vmap(propose, (0, None))(jax.random.split(key, num_proposals), deployment)
        values_ = jax.vmap(score)(proposals)
        i = jnp.argmin(values_)
        better = values_[i] < value
        return (jnp.where(better, proposals[i], deployment), jnp.where(better, values_[i], value)), None

    (deployment, _), _ = jax.lax.scan(round_, start, jax.random.split(jax.random.fold_in(step_key, 7), num_rounds))
    return deployment


def clairvoyant_search_policy(env: TwoTimescaleMEC, num_rounds: int = 3, num_proposals: int = 8,
                  mixes: tuple[float, ...] = (0.0, 0.25, 1.0), thresholds: tuple[float, ...] = (0.0, 0.5, 1.0)
                  ) -> Policy:
    """Clairvoyant deployment search with exact knowledge of the frame's arrivals (one frame ahead).

    Candidates: knapsacks on ``d_{m,k} + mix * mean_{m' != m} d_{m',k} - threshold * mean_k
    d_{m,k}`` over the grids (``d`` = true frame demand; the threshold trades breadth for CPU
    share), and with switching costs also the hosted deployment; the best scored by
    ``frame_delay`` (with this frame's download wait, so what the env charges); then
    ``num_rounds`` rounds of ``num_proposals`` random local swaps (drop one deployed service at
    one ES, add one that then fits), keeping the best if it improves. Every candidate is
    storage-feasible. It does not see past the frame: a download is made only if it pays off
    within it.

    Args:
        env: the environment (its scheduler scores the candidates).

    Returns:
        A ``Policy``.
    """

    def policy(step_key, observation, env_state, env_params):
        del observation
        return oracle_search(env, step_key, env_state, env_params, num_rounds, num_proposals, mixes, thresholds)

    return policy


# ----------------------------------------------------------------------------- clairvoyant MPC


@dataclasses.dataclass(frozen=True)
class LookaheadPolicy:
    """A deployment policy handed the step keys of the next ``horizon`` frames (a clairvoyant planner).

    ``plan(step_keys, valid, observation, env_state, env_params) -> deployment (M, K) bool``:
    ``step_keys`` (H,) keys, ``step_keys[0]`` the key the caller passes to ``env.step`` this
    frame (a ``Policy``'s ``step_key``) and ``step_keys[h]`` the one it will pass h frames later;
    ``valid`` (H,) bool, False for frames past the end of the evaluation (placeholder keys, not
    played). ``evaluate_policy`` plays it.
    """

    horizon: int
    plan: Callable[[jax.Array, jax.Array, jax.Array, Any, MECParams], jax.Array]

    def __call__(self, *args):
        raise TypeError("a LookaheadPolicy needs the step keys of the frames ahead: play it with evaluate_policy "
                        "(or call its plan)")


def clairvoyant_mpc_policy(env: TwoTimescaleMEC, horizon: int = 3, num_rounds: int = 3, num_proposals: int = 8,
                           mixes: tuple[float, ...] = (0.0, 0.25, 1.0),
                           thresholds: tuple[float, ...] = (0.0, 0.5, 1.0)) -> LookaheadPolicy:
    """Horizon-H clairvoyant MPC: the deployment sequence of least summed delay over the next H frames.

    Each frame it sees the true arrivals of the next H frames (it replays ``env.step`` with the
    keys the evaluator will use), plans a sequence of H deployments, applies the first and
    replans the next frame (receding horizon). The search is a shortest path over a fixed
    candidate set ``C``:

    1. the one-frame ``oracle_search`` along its own path: frame h's Oracle deployment given the
       the clairvoyant search's deployment of frame h - 1 as what is hosted (so each frame's own downloads are
       priced), ``H`` candidates; with switching costs also the deployment hosted now (keep it);
       for ``H > 1`` also the knapsack on the horizon's summed true demand (one deployment held
       throughout). ``N = |C| <= H + 2``.
    2. exact dynamic programming (Viterbi) over the trellis of H stages x N candidates: an
       edge j -> i at stage h costs ``sum(info["slot_delay"])`` of ``env.step`` playing candidate
       i in frame h from the best path's state at node j, so it charges what the env charges:
       downloads from the path's previous deployment, the scheduler's warm start, episode
       resets (after a reset the ESs are empty). ``N + (H - 1) N^2`` frames are scored.

    The objective is the sum over the horizon's slots of the slot mean delay (eq. 8), as the
    the clairvoyant search's; frames past the end of the evaluation (``valid`` False) cost 0. The best sequence
    within ``C``, not an optimum over all deployments. With ``H = 1`` the candidates are the
    the clairvoyant search's own pick (first, so it wins ties) and, with switching costs, the hosted deployment,
    which the clairvoyant search already scored among its candidates: the MPC plays the clairvoyant search's deployment
    (up to float ties between different deployments, rescored by ``env.step``), switching on
    or off.

    Args:
        env: the environment that scores (its scheduler; e.g. fewer QP iterations than the
            evaluation env's, as the clairvoyant search's). Its config must match the played env's.
        horizon: H >= 1 frames.
        num_rounds, num_proposals, mixes, thresholds: the one-frame clairvoyant search's search.

    Returns:
        A ``LookaheadPolicy`` (play it with ``evaluate_policy``).
    """
    if not (isinstance(horizon, int) and horizon >= 1):
        raise ValueError(f"clairvoyant_mpc_policy: horizon must be an int >= 1, got {horizon!r}")

    def frame_cost(key, state, deployment, env_params):
        _, next_state, _, _, _, info = env.step(key, state, deployment, env_params)
        return jnp.sum(info["slot_delay"]), next_state

    def plan(step_keys, valid, observation, env_state, env_params):
        del observation

        def oracle_path(state, key):
            deployment = oracle_search(env, key, state, env_params, num_rounds, num_proposals, mixes, thresholds)
            demand = jnp.sum(true_frame_arrivals(env, key, state, env_params), axis=0)
            _, next_state = frame_cost(key, state, deployment, env_params)
            return next_state, (deployment, demand)

        _, (oracle_deployments, demand) = jax.lax.scan(oracle_path, env_state, step_keys)  # (H, M, K) each
        candidates = [oracle_deployments]
        if env.config.switching_cost:
            candidates.append(env_state.deployment[None])
        if horizon > 1:
            horizon_demand = jnp.sum(jnp.where(valid[:, None, None], demand, 0.0), axis=0)
            candidates.append(env.deployment_from_values(horizon_demand, env_params)[None])
        candidates = jnp.concatenate(candidates)  # (N, M, K)
        num_candidates = candidates.shape[0]

        cost, states = jax.vmap(frame_cost, (None, None, 0, None))(step_keys[0], env_state, candidates, env_params)
        value = jnp.where(valid[0], cost, 0.0)  # (N,) best cost of a path ending at each candidate
        first = jnp.arange(num_candidates)  # that path's first deployment
        if horizon > 1:
            def stage(carry, inputs):
                value, first, states = carry
                key, valid_h = inputs
                from_each = jax.vmap(frame_cost, (None, None, 0, None))  # to every candidate
                cost, next_states = jax.vmap(from_each, (None, 0, None, None))(key, states, candidates, env_params)
                total = value[:, None] + jnp.where(valid_h, cost, 0.0)  # (N from, N to)
                best_from = jnp.argmin(total, axis=0)
                to = jnp.arange(num_candidates)
                next_states = jax.tree.map(lambda leaf: leaf[best_from, to], next_states)
                return (total[best_from, to], first[best_from], next_states), None

            (value, first, _), _ = jax.lax.scan(stage, (value, first, states), (step_keys[1:], valid[1:]))
        return candidates[first[jnp.argmin(value)]]

    return LookaheadPolicy(horizon, plan)


# ----------------------------------------------------------------------------- evaluation


def evaluate_policy(env: TwoTimescaleMEC, env_params: MECParams, policy: Policy | LookaheadPolicy, key: jax.Array,
                    num_envs: int, num_frames: int) -> dict:
    """Plays ``num_frames`` frames of ``num_envs`` environments with ``policy`` (jit it outside).

    A ``LookaheadPolicy`` is handed each frame the step keys of that frame and the next
    ``horizon - 1`` (those past ``num_frames`` are placeholders, flagged not valid); every
    policy meets the same frames for the same ``key``.

    Returns:
        dict of () float32: ``mean_delay`` (task-weighted over all slots, s), ``reward`` (mean
        frame reward, s), ``storage_violations`` (frames where some ES broke eq. 1), and
        ``deployments`` (F, B, M, K) bool.
    """
    key_reset, key_run = jax.random.split(key)
    observation, state = jax.vmap(env.reset, (0, None))(jax.random.split(key_reset, num_envs), env_params)
    frame_keys = jax.random.split(key_run, num_frames)

    def play(observation, state, keys, deployment):
        observation, state, reward, _, _, info = jax.vmap(env.step, (0, 0, 0, None))(keys, state, deployment,
                                                                                      env_params)
        out = {"reward": reward, "delay_sum": jnp.sum(info["slot_delay"] * info["num_tasks"], axis=-1),
               "tasks": jnp.sum(info["num_tasks"], axis=-1), "violation": jnp.any(info["storage_violation"], -1),
               "deployment": deployment}
        return (observation, state), out

    if isinstance(policy, LookaheadPolicy):
        env_keys = jax.vmap(lambda k: jax.random.split(k, num_envs))(frame_keys)  # (F, B): those split below
        ahead = jnp.arange(num_frames)[:, None] + jnp.arange(policy.horizon)[None]  # (F, H)
        windows = jnp.swapaxes(env_keys[jnp.minimum(ahead, num_frames - 1)], 1, 2)  # (F, B, H)

        def frame_ahead(carry, inputs):
            observation, state = carry
            keys_ahead, valid = inputs
            deployment = jax.vmap(policy.plan, (0, None, 0, 0, None))(keys_ahead, valid, observation, state, env_params)
            return play(observation, state, keys_ahead[:, 0], deployment)

        _, out = jax.lax.scan(frame_ahead, (observation, state), (windows, ahead < num_frames))
    else:
        def frame(carry, key):
            observation, state = carry
            keys = jax.random.split(key, num_envs)
            deployment = jax.vmap(policy, (0, 0, 0, None))(keys, observation, state, env_params)
            return play(observation, state, keys, deployment)

        _, out = jax.lax.scan(frame, (observation, state), frame_keys)
    return {"mean_delay": jnp.sum(out["delay_sum"]) / jnp.maximum(jnp.sum(out["tasks"]), 1.0),
            "reward": jnp.mean(out["reward"]), "storage_violations": jnp.sum(out["violation"]),
            "deployments": out["deployment"]}
