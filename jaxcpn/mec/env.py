"""Two-timescale MEC environment of TTOSC at the frame level (gymnax 1.0 API)."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jaxcpn import spaces
from jaxcpn.environment import Environment
from jaxcpn.mec import model
from jaxcpn.mec.generator import generate_params
from jaxcpn.mec.types import (MECConfig, MECParams, MECState, check_deployment, check_deployment_spec,
                              storage_feasible)

ScheduleFn = Callable[[jax.Array, jax.Array, jax.Array, MECParams, jax.Array], jax.Array]
"""``schedule_fn(key, arrivals (M, K), deployment (M, K), params, previous (M, K, M+1)) ->
schedule (M, K, M + 1)``: a per-slot scheduler (e.g. a DDPG actor closed over its weights)."""


POISSON_EXACT_BELOW = 30.0
"""Mean below which arrivals are exact Poisson draws; above it, a rounded normal approximation."""


def poisson_counts(key: jax.Array, rate: jax.Array) -> jax.Array:
    """Poisson counts by inverse CDF (64 terms) for ``rate <= 30``, rounded normal above.

    ``jax.random.poisson`` takes seconds to compile on CPU inside the vmapped step; this is a
    fixed 64-step loop on the rate array. For rate <= 30 the truncation leaves a tail mass
    below 1e-9; above it the normal approximation's error is under 1% in the moments.

    Args:
        key: PRNG key.
        rate: (...) float32 means, >= 0.

    Returns:
        (...) float32 counts.
    """
    key_uniform, key_normal = jax.random.split(key)
    u = jax.random.uniform(key_uniform, rate.shape, jnp.float32)
    exact_rate = jnp.minimum(rate, POISSON_EXACT_BELOW)

    def term(j, carry):
        pmf, cdf, count = carry
        count = count + (u > cdf)
        pmf = pmf * exact_rate / j
        return pmf, cdf + pmf, count

    pmf0 = jnp.exp(-exact_rate)
    _, _, count = jax.lax.fori_loop(1, 64, term, (pmf0, pmf0, jnp.zeros(rate.shape, jnp.float32)))
    normal = jnp.maximum(jnp.round(rate + jnp.sqrt(rate) * jax.random.normal(key_normal, rate.shape, jnp.float32)), 0.0)
    # explicit float32: under jax_enable_x64 an untyped draw would make the observation float64
    return jnp.where(rate <= POISSON_EXACT_BELOW, count, normal).astype(jnp.float32)


class TwoTimescaleMEC(Environment[MECState, MECParams]):
    """M edge servers + a cloud; deploy services per frame, schedule tasks per slot.

    - Action: ``deployment`` (M, K) bool, ``x_{m,k}`` for the next frame; must satisfy eq. (1)
      at every ES (``MultiBinary((M, K))``; pick it with ``deployment_from_values``).
    - Step: draws the frame's arrivals (L slots), schedules every slot with the configured
      scheduler (warm-started from the previous slot), scores each slot by eq. (8).
    - Observation: (M, L, K) float32, agent m's row is ``lambda_{m,.}`` over the L slots of
      the frame just played (at reset: a frame drawn before the first decision). With
      ``config.switching_cost``: (M, L + 1, K), row L the hosted deployment as 0/1.
    - Switching cost (``config.switching_cost``, beyond the paper): a service deployed where
      it was not hosted in the previous frame is first downloaded, ``800 s_k / backhaul_rate[m]``
      s from the frame's start; a task sent there in slot l waits ``max(0, T - l slot_duration)``
      (overlapping its transfer), and the convex scheduler prices the wait in. A ``schedule_fn``
      is not told the wait (it pays it). The ESs start each episode empty.
    - Popularity cycle (``params.popularity_cycle_amplitude > 0``, beyond the paper): service
      k's Zipf weight is scaled by ``1 + A sin(2 pi t / diurnal_period + phi_k)`` and
      renormalised per cell (``arrival_rate``).
    - Reward: () float32 s, shared by all agents: sum over the frame's slots of (all-to-cloud
      expected delay - expected delay under the schedule), eq. (8) for both.
    - Terminated: never. Truncated: after ``frames_per_episode`` frames.
    - Storage: a concrete (eager) infeasible deployment raises ``ValueError``. Inside ``jit``
      (traced deployment) an ES whose deployment breaks eq. (1) deploys nothing that frame
      (its tasks go to other ESs or the cloud) and ``info["storage_violation"][m]`` is True.
      A deployment of the wrong shape or a non-bool dtype raises ``ValueError`` eagerly and
      under ``jit`` alike (shapes and dtypes are known at trace time).
    - Dtypes: observation, state and reward stay float32 (int32 counters) also under
      ``jax_enable_x64``.
    - Info: ``slot_delay``, ``slot_cloud_delay``, ``slot_reward``, ``num_tasks`` (each (L,)
      float32), ``mean_delay`` () s (task-weighted over the frame), ``storage_violation`` (M,)
      bool, with a ``schedule_fn`` also ``schedule`` (L, M, K, M + 1), with switching costs
      also ``download_time`` (M, K) float32 s (0 where nothing was downloaded).

    Args:
        config: static shapes and scheduler.
        schedule_fn: optional learned per-slot scheduler replacing ``config.scheduler``; its
            output is made feasible with ``model.clean_schedule``.
    """

    def __init__(self, config: MECConfig = MECConfig(), schedule_fn: ScheduleFn | None = None):
        self.config = config
        self.schedule_fn = schedule_fn

    @property
    def default_params(self) -> MECParams:
        return generate_params(0, self.config)

    # ------------------------------------------------------------------ exogenous demand

    def arrival_rate(self, ranking: jax.Array, users: jax.Array, phase: jax.Array, frame: jax.Array,
                     params: MECParams) -> jax.Array:
        """Mean arrivals of each slot of frame ``frame``, ``U_m task_rate intensity(t) p_{m,k}(t)``.

        Args:
            ranking: (M, K) int32 popularity ranks.
            users: (M,) int32 users per cell.
            phase: () float32 diurnal phase of the episode's start, frames.
            frame: () int32 frame index (time in frames from the start).
            params: the instance.

        Returns:
            (L, M, K) float32 tasks per slot.
        """
        cfg = self.config
        slot_time = phase + frame.astype(jnp.float32) + jnp.arange(cfg.slots_per_frame, dtype=jnp.float32) / cfg.slots_per_frame
        intensity = model.diurnal_intensity(slot_time, params.diurnal_amplitude, params.diurnal_period)
        cycle = model.popularity_cycle(slot_time, params.popularity_cycle_amplitude, params.diurnal_period,
                                       params.popularity_cycle_phase)
        # Amplitude 0 selects the paper's Zipf expression itself, so the default draws stay
        # bitwise today's whatever order a backend reduces the cycled weights in.
        popularity = jnp.where(params.popularity_cycle_amplitude > 0,
                               model.zipf_popularity(ranking, params.zipf_exponent, cycle),
                               model.zipf_popularity(ranking, params.zipf_exponent)[None])
        rate = (intensity[:, None, None] * users.astype(jnp.float32)[None, :, None] * params.task_rate
                * popularity)
        return rate.astype(jnp.float32)

    def _frame_arrivals(self, key, ranking, users, phase, frame, params):
        """Poisson arrivals (L, M, K) of frame ``frame`` (time in frames from the start)."""
        return poisson_counts(key, self.arrival_rate(ranking, users, phase, frame, params))  # float32

    def _drift(self, key, ranking, params):
        """Each cell swaps two adjacent ranks with probability ``ranking_drift``."""
        cfg = self.config
        key_swap, key_pos = jax.random.split(key)
        swap = jax.random.bernoulli(key_swap, params.ranking_drift, (cfg.num_cells, 1))
        position = jax.random.randint(key_pos, (cfg.num_cells, 1), 0, max(cfg.num_services - 1, 1))
        swap = swap & (cfg.num_services > 1)
        swapped = jnp.where(ranking == position, position + 1, jnp.where(ranking == position + 1, position, ranking))
        return jnp.where(swap, swapped, ranking).astype(jnp.int32)

    # ------------------------------------------------------------------ slot level

    def schedule_slot(self, arrivals: jax.Array, deployment: jax.Array, params: MECParams,
                      warm_start: jax.Array | None = None, wait: jax.Array | None = None) -> jax.Array:
        """Solves the K per-service QPs (eq. 13) of one slot with the configured scheduler.

        Args:
            arrivals: (M, K) tasks.
            deployment: (M, K) bool, feasible for eq. (1).
            params: the instance.
            warm_start: optional (M, K, M + 1) previous schedule (``"jax"`` scheduler only).
            wait: optional (M, K) s download wait of each ES's services (switching costs,
                ``model.download_wait``); the QP then prices it in.

        Returns:
            (M, K, M + 1) float32 schedule satisfying eqs. (2)-(3).
        """
        lam, D, w, mask = model.qp_inputs(arrivals, deployment, params, wait)
        if self.config.scheduler == "cvxpy":
            from solvers.scheduling import cvxpy_scheduler

            pi = jax.vmap(cvxpy_scheduler(processes=self.config.callback_processes))(lam, D, w, mask)
        else:
            from solvers.scheduling import solve_qp_jax

            iterations = self.config.qp_iterations
            init = None if warm_start is None else jnp.swapaxes(warm_start, 0, 1)
            solve = lambda *a: solve_qp_jax(*a, num_iterations=iterations)  # noqa: E731
            if init is None:
                pi = jax.vmap(solve)(lam, D, w, mask)
            else:
                pi = jax.vmap(lambda l, d, c, s, i: solve_qp_jax(l, d, c, s, num_iterations=iterations, init=i))(
                    lam, D, w, mask, init)
        return jnp.swapaxes(pi, 0, 1)

    def slot_delay(self, arrivals, deployment, schedule, params, wait=None) -> model.SlotDelay:
        """Expected delays of one slot (eqs. 4-8); see ``model.slot_delay``."""
        return model.slot_delay(arrivals, deployment, schedule, params, wait)

    def download_wait(self, deployment: jax.Array, state: MECState, params: MECParams) -> jax.Array | None:
        """(L, M, K) s that tasks sent to each ES wait for its downloads in the next frame.

        None without ``config.switching_cost`` (the paper's model: no wait). For planners that
        score a deployment (``deployment`` (M, K) bool, feasible) before stepping.
        """
        if not self.config.switching_cost:
            return None
        return model.download_wait(deployment, state.deployment, params, self.config.slots_per_frame)

    def deployment_from_values(self, values: jax.Array, params: MECParams) -> jax.Array:
        """Best feasible deployment for per-service values (eq. 15): M exact knapsacks.

        Args:
            values: (M, K) value of deploying each service at each ES (e.g. partial Q-values);
                non-positive values are never deployed.

        Returns:
            (M, K) bool satisfying eq. (1).
        """
        from solvers.knapsack import knapsack

        solve = lambda v, c: knapsack(v, params.service_size, c, max_capacity=self.config.max_storage_units)  # noqa: E731
        return jax.vmap(solve)(values, params.storage_capacity)

    # ------------------------------------------------------------------ frame level

    def reset_env(self, key: jax.Array, params: MECParams):
        cfg = self.config
        key_users, key_rank, key_phase, key_arrivals = jax.random.split(key, 4)
        users = jax.random.randint(key_users, (cfg.num_cells,), params.users_min, params.users_max + 1, jnp.int32)
        noise = jax.random.uniform(key_rank, (cfg.num_cells, cfg.num_services))
        # Rank = number of smaller draws: a uniform random permutation per cell, sort-free
        # (XLA's CPU sort is slow to compile and to run for tiny arrays).
        ranking = jnp.sum(noise[:, None, :] < noise[:, :, None], axis=-1).astype(jnp.int32)
        phase = (jax.random.uniform(key_phase, (), jnp.float32) * params.diurnal_period).astype(jnp.float32)
        frame = jnp.zeros((), jnp.int32)
        arrivals = self._frame_arrivals(key_arrivals, ranking, users, phase, frame, params)
        state = MECState(arrivals=arrivals, ranking=ranking, users=users, phase=phase, frame=frame,
                         schedule=model.cloud_schedule(cfg.num_cells, cfg.num_services),
                         deployment=jnp.zeros((cfg.num_cells, cfg.num_services), bool))
        return self.get_obs(state), state

    def step_env(self, key: jax.Array, state: MECState, action: jax.Array, params: MECParams):
        cfg = self.config
        check_deployment_spec(action, cfg.num_cells, cfg.num_services)  # static: raises under jit too
        deployment = jnp.asarray(action)
        if not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((action, params))):
            check_deployment(action, params)  # eager callers get the error (eq. 1)
        feasible = storage_feasible(deployment, params)
        deployment = deployment & feasible[:, None]
        key_drift, key_arrivals, key_schedule = jax.random.split(key, 3)
        frame = state.frame + 1
        ranking = self._drift(key_drift, state.ranking, params)
        arrivals = self._frame_arrivals(key_arrivals, ranking, state.users, state.phase, frame, params)
        cloud = model.cloud_schedule(cfg.num_cells, cfg.num_services)
        wait = self.download_wait(deployment, state, params)  # (L, M, K) s, or None (paper)

        def slot(previous, inputs):
            arrivals_slot, key_slot, wait_slot = inputs
            if self.schedule_fn is None:
                schedule = self.schedule_slot(arrivals_slot, deployment, params, warm_start=previous, wait=wait_slot)
            else:
                schedule = model.clean_schedule(
                    self.schedule_fn(key_slot, arrivals_slot, deployment, params, previous), deployment)
            delay = model.slot_delay(arrivals_slot, deployment, schedule, params, wait_slot)
            baseline = model.slot_delay(arrivals_slot, deployment, cloud, params)
            out = {"slot_delay": delay.mean, "slot_cloud_delay": baseline.mean,
                   "slot_reward": baseline.mean - delay.mean, "num_tasks": delay.num_tasks}
            if self.schedule_fn is not None:
                out["schedule"] = schedule
            return schedule, out

        keys = jax.random.split(key_schedule, cfg.slots_per_frame)
        last_schedule, per_slot = jax.lax.scan(slot, state.schedule, (arrivals, keys, wait))
        reward = jnp.sum(per_slot["slot_reward"])
        tasks = jnp.sum(per_slot["num_tasks"])
        info = dict(per_slot)
        info["mean_delay"] = (jnp.sum(per_slot["slot_delay"] * per_slot["num_tasks"])
                              / jnp.where(tasks > 0, tasks, 1.0)).astype(jnp.float32)
        info["storage_violation"] = ~feasible
        if cfg.switching_cost:
            info["download_time"] = model.download_time(deployment, state.deployment, params)
        state = state.replace(arrivals=arrivals.astype(jnp.float32), ranking=ranking, frame=frame,
                              schedule=last_schedule.astype(jnp.float32), deployment=deployment)
        terminated = jnp.zeros((), bool)
        truncated = frame >= cfg.frames_per_episode
        return self.get_obs(state), state, reward.astype(jnp.float32), terminated, truncated, info

    def get_obs(self, state: MECState) -> jax.Array:
        """(M, L, K) float32: each ES's arrivals over the slots of the last frame.

        With ``config.switching_cost``, (M, L + 1, K): row L is the ES's hosted deployment
        (1.0 where it stores the service), which decides what the next frame must download.
        """
        arrivals = jnp.swapaxes(state.arrivals, 0, 1).astype(jnp.float32)
        if not self.config.switching_cost:
            return arrivals
        return jnp.concatenate([arrivals, state.deployment[:, None, :].astype(jnp.float32)], axis=1)

    def observation_space(self, params: MECParams) -> spaces.Box:
        cfg = self.config
        return spaces.Box(0.0, jnp.inf, (cfg.num_cells, cfg.observed_slots, cfg.num_services), jnp.float32)

    def action_space(self, params: MECParams) -> spaces.MultiBinary:
        return spaces.MultiBinary((self.config.num_cells, self.config.num_services))
