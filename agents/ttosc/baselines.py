"""Baselines of TTOSC (paper Sec. V-A) and a clairvoyant Oracle, plus a policy evaluator.

A deployment *policy* is ``policy(step_key, observation (M, L, K), env_state, env_params) ->
deployment (M, K) bool``, where ``step_key`` is the key the caller then passes to
``env.step`` (only the Oracle uses that: it replays the environment's draw of the frame's
true arrivals; the others ignore it). A per-slot *scheduler* is the environment's
``schedule_fn(key, arrivals (M, K), deployment (M, K), params, previous) -> (M, K, M + 1)``.

- **Greedy**: deploys by the last frame's local request count per unit size until storage is
  full; schedules each task to the node of lowest marginal delay (``greedy_schedule``).
- **Popularity**: deploys the last frame's most requested services that fit; convex
  scheduling (the environment's default scheduler).
- **Random**: a random maximal knapsack-feasible deployment; convex scheduling.
- **Oracle**: sees the frame's true arrivals, searches deployments (knapsacks on true demand,
  then local swaps) scored with the convex scheduler; an upper bound for the agents.
"""

from __future__ import annotations

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


def popularity_deployment(observation: jax.Array, params: MECParams) -> jax.Array:
    """Each ES deploys last frame's locally requested services, most requested first, that fit.

    Args:
        observation: (M, L, K) last frame's arrivals.

    Returns:
        (M, K) bool.
    """
    counts = jnp.sum(observation, axis=1)
    return jax.vmap(greedy_fill, (0, 0, None, 0))(counts, counts > 0, params.service_size, params.storage_capacity)


def greedy_density_deployment(observation: jax.Array, params: MECParams) -> jax.Array:
    """Each ES deploys by last frame's local requests per unit size until storage is full.

    Returns:
        (M, K) bool.
    """
    counts = jnp.sum(observation, axis=1)
    density = counts / params.service_size.astype(jnp.float32)[None, :]
    return jax.vmap(greedy_fill, (0, 0, None, 0))(density, counts > 0, params.service_size, params.storage_capacity)


def popularity_policy(step_key, observation, env_state, env_params):
    """``Policy`` wrapper of ``popularity_deployment``."""
    del step_key, env_state
    return popularity_deployment(observation, env_params)


def greedy_policy(step_key, observation, env_state, env_params):
    """``Policy`` wrapper of ``greedy_density_deployment``."""
    del step_key, env_state
    return greedy_density_deployment(observation, env_params)


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


def greedy_schedule(key, arrivals, deployment, params, previous, num_chunks: int = 8):
    """``schedule_fn`` of the Greedy baseline: ``marginal_delay_schedule`` per service.

    Returns:
        (M, K, M + 1) float32 schedule satisfying eqs. (2)-(3).
    """
    del key, previous
    lam, D, w, mask = model.qp_inputs(arrivals, deployment, params)
    pi = jax.vmap(lambda *a: marginal_delay_schedule(*a, num_chunks=num_chunks))(lam, D, w, mask)
    return jnp.swapaxes(pi, 0, 1)


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
                warm_start: jax.Array) -> jax.Array:
    """Sum over the frame's slots of the mean delay (eq. 8) under convex scheduling, () s."""

    def slot(previous, arrivals_slot):
        schedule = env.schedule_slot(arrivals_slot, deployment, env_params, warm_start=previous)
        return schedule, model.slot_delay(arrivals_slot, deployment, schedule, env_params).mean

    _, delays = jax.lax.scan(slot, warm_start, arrivals)
    return jnp.sum(delays)


def oracle_policy(env: TwoTimescaleMEC, num_rounds: int = 3, num_proposals: int = 8,
                  mixes: tuple[float, ...] = (0.0, 0.25, 1.0), thresholds: tuple[float, ...] = (0.0, 0.5, 1.0)
                  ) -> Policy:
    """Clairvoyant deployment search with exact knowledge of the frame's arrivals.

    Candidates: knapsacks on ``d_{m,k} + mix * mean_{m' != m} d_{m',k} - threshold * mean_k
    d_{m,k}`` over the grids (``d`` = true frame demand; the threshold trades breadth for CPU
    share), the best scored by ``frame_delay``; then ``num_rounds`` rounds of
    ``num_proposals`` random local swaps (drop one deployed service at one ES, add one that
    then fits), keeping the best if it improves. Every candidate is storage-feasible.

    Args:
        env: the environment (its scheduler scores the candidates).

    Returns:
        A ``Policy``.
    """
    max_capacity = env.config.max_storage_units

    def policy(step_key, observation, env_state, env_params):
        del observation
        arrivals = true_frame_arrivals(env, step_key, env_state, env_params)
        demand = jnp.sum(arrivals, axis=0)  # (M, K)
        m = demand.shape[0]
        others = (jnp.sum(demand, axis=0, keepdims=True) - demand) / max(m - 1, 1)
        local_mean = jnp.mean(demand, axis=1, keepdims=True)
        grid = jnp.array([(a, b) for a in mixes for b in thresholds], jnp.float32)
        values = demand[None] + grid[:, 0, None, None] * others[None] - grid[:, 1, None, None] * local_mean[None]
        candidates = jax.vmap(env.deployment_from_values, (0, None))(values, env_params)
        score = lambda x: frame_delay(env, arrivals, x, env_params, env_state.schedule)  # noqa: E731
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

    return policy


# ----------------------------------------------------------------------------- evaluation


def evaluate_policy(env: TwoTimescaleMEC, env_params: MECParams, policy: Policy, key: jax.Array, num_envs: int,
                    num_frames: int) -> dict:
    """Plays ``num_frames`` frames of ``num_envs`` environments with ``policy`` (jit it outside).

    Returns:
        dict of () float32: ``mean_delay`` (task-weighted over all slots, s), ``reward`` (mean
        frame reward, s), ``storage_violations`` (frames where some ES broke eq. 1), and
        ``deployments`` (F, B, M, K) bool.
    """
    key_reset, key_run = jax.random.split(key)
    observation, state = jax.vmap(env.reset, (0, None))(jax.random.split(key_reset, num_envs), env_params)

    def frame(carry, key):
        observation, state = carry
        keys = jax.random.split(key, num_envs)
        deployment = jax.vmap(policy, (0, 0, 0, None))(keys, observation, state, env_params)
        observation, state, reward, _, _, info = jax.vmap(env.step, (0, 0, 0, None))(keys, state, deployment,
                                                                                      env_params)
        out = {"reward": reward, "delay_sum": jnp.sum(info["slot_delay"] * info["num_tasks"], axis=-1),
               "tasks": jnp.sum(info["num_tasks"], axis=-1), "violation": jnp.any(info["storage_violation"], -1),
               "deployment": deployment}
        return (observation, state), out

    _, out = jax.lax.scan(frame, (observation, state), jax.random.split(key_run, num_frames))
    return {"mean_delay": jnp.sum(out["delay_sum"]) / jnp.maximum(jnp.sum(out["tasks"]), 1.0),
            "reward": jnp.mean(out["reward"]), "storage_violations": jnp.sum(out["violation"]),
            "deployments": out["deployment"]}
