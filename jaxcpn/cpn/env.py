"""Green computing power network environment (STPer system model, section III)."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap

from jaxcpn import spaces
from jaxcpn.cpn import model
from jaxcpn.cpn.generator import generate_instance, validate_params
from jaxcpn.cpn.types import CPNBacklogObservation, CPNConfig, CPNObservation, CPNParams, CPNState
from jaxcpn.environment import Environment


def routing_tables(params: CPNParams) -> tuple[jax.Array, jax.Array]:
    """Shortest-path tables of every user's packet size (Floyd-Warshall by per-hop delay).

    Returns:
        ``(dist, next_hop)``: ``(U, N, N)`` float32 route delays (s, switching of the sending
        nodes included) and ``(U, N, N)`` int32 next hops.
    """
    hop = jax.vmap(model.hop_delays, in_axes=(0, None, None, None))(
        params.packet_size, params.bandwidth, params.switch_delay, params.adjacency
    )
    return jax.vmap(model.shortest_paths)(hop)


def hop_delay_table(next_hop: jax.Array, params: CPNParams, max_hops: int) -> jax.Array:
    """The hop-by-hop terms of eq. (1) on every user's shortest route to every destination.

    Args:
        next_hop: ``(U, N, N)`` int32 from :func:`routing_tables`.
        max_hops: static route length bound ``H`` (``CPNConfig.hops``).

    Returns:
        ``(U, N, H)`` float32 (s): row ``[u, n]`` holds ``r_u / b_e + t_sw`` of each hop of user
        ``u``'s route to node ``n``, then zeros.
    """
    destinations = jnp.arange(params.bandwidth.shape[0], dtype=jnp.int32)
    per_destination = jax.vmap(model.route, in_axes=(None, None, 0, None))
    routes, hop_mask = jax.vmap(per_destination, in_axes=(0, 0, None, None))(
        next_hop, params.user_node, destinations, max_hops)  # (U, N, H + 1), (U, N, H)
    src, dst = routes[..., :-1], routes[..., 1:]
    return model.hop_transmission_delays(
        packet_size=params.packet_size[:, None],
        bandwidths=params.bandwidth[src, dst],
        switch_delays=params.switch_delay[src],
        hop_mask=hop_mask,
    )


def hydro_discount(hydro, params: CPNParams) -> jax.Array:
    """Per-node hydropower discount ``alpha_n = 1 - share_n * h`` for normalised generation ``h``."""
    return 1.0 - params.hydro_share * jnp.asarray(hydro)[..., None]


class GreenCPN(Environment[CPNState, CPNParams]):
    """Hourly task scheduling in a green computing power network (STPer).

    - Observation: :class:`CPNObservation` (float32 pytree): current task workloads ``(U,)`` and
      per-node demand ``(N,)``; windows of the last ``W`` slots (current included) of the
      normalised price ``(W,)``, per-node hydro discount ``(W, N)`` and per-node demand
      ``(W, N)``; node features ``(N, 3)`` (power, green flag, hydro share); time features ``(3,)``.
    - Action: ``int32[U]``, destination node of each user's task
      (``MultiDiscrete([N] * U)``).
    - Reward: slot profit, ``sum_u R_u - E_u`` (eqs. 3, 5, 15); a task later than its deadline
      earns ``late_revenue_fraction`` of its revenue (0 by default) and pays its cost.
    - Termination: never; an episode is truncated after ``episode_length`` slots.
    - Info: per-task ``delay``, ``transmission_delay``, ``offset``, ``compute_delay``,
      ``revenue``, ``cost``, ``deadline_miss`` (all ``(U,)``), ``profit`` (scalar) and
      ``invalid_action`` (bool: the action is not an integer array or has an entry outside
      ``[0, N)``; only set under ``jit``, eagerly such an action raises; see ``step_env``),
      ``routing_fallback`` (bool: routing ``"milp"`` failed for the slot and the ``"shortest"``
      numbers were used; always False in ``"shortest"`` mode).
    - Options beyond the paper (docs/model.md, "Coupled dynamics"): ``compute_sharing`` adds the
      node queues (``CPNState.backlog``, ``CPNBacklogObservation.node_backlog``, info
      ``queue_delay``, ``backlog``, ``served_work``); ``observe_current_workload=False`` ends
      the observation's workload entries at the previous slot.
    """

    def __init__(self, config: CPNConfig | None = None):
        self.config = CPNConfig() if config is None else config

    @property
    def default_params(self) -> CPNParams:
        """The seed-0 instance of this config."""
        generate = jax.jit(generate_instance, static_argnums=1)
        return validate_params(generate(jax.random.PRNGKey(0), self.config), self.config)

    # ------------------------------------------------------------------ episode
    def reset_env(self, key: jax.Array, params: CPNParams) -> tuple[CPNObservation, CPNState]:
        """Draws the episode's start hour uniformly over the series."""
        cfg = self.config
        num_hours = params.price_series.shape[0]
        # The final observation of an episode looks one slot past its end, so the series must
        # cover start - (W - 1) .. start + T (start - W .. with the current workload hidden).
        first = cfg.window - 1 + (not cfg.observe_current_workload)
        start = jax.random.randint(key, (), first, num_hours - cfg.episode_length, jnp.int32)
        # Every episode starts with empty node queues.
        backlog = jnp.zeros((cfg.num_nodes,), jnp.float32) if cfg.compute_sharing else None
        state = CPNState(time=jnp.zeros((), jnp.int32), start=start, backlog=backlog)
        return self.get_obs(state, params), self.clear_window_cache(state)

    def clear_window_cache(self, state: CPNState) -> CPNState:
        """``state`` with an empty observation cache (``CPNState``): its next step builds the
        demand window from the series, and caches it.

        ``reset_env`` returns such a state, so every cached row was computed by the program of
        ``step_env`` itself, not by a reset run elsewhere (eagerly, say, where XLA may round the
        workload profile an ulp apart). Moving a state in time needs no call: ``replace(time=...)``
        leaves a cache of another slot, which ``step_env`` detects. Call it before stepping a state
        with params other than those of its last step (the cache would hold their windows).
        """
        window = jnp.zeros((self.config.window, self.config.num_nodes), jnp.float32)
        return state.replace(demand_window=window, window_index=jnp.full_like(state.start, -1))

    def step_env(self, key: jax.Array, state: CPNState, action: jax.Array, params: CPNParams):
        """Schedules the slot's tasks to ``action`` and advances one hour.

        ``action`` must be a ``(U,)`` integer array of destinations in ``[0, N)``. A wrong shape
        raises ``ValueError`` eagerly and under ``jit`` alike (shapes are static). Outside
        ``jit`` a concrete action is checked before any cast (:func:`check_action`): a bool or
        float dtype, or an entry outside ``[0, N)`` (``2**40`` included, which a cast to int32
        would wrap to 0), raises. Inside ``jit`` values cannot raise, so ``info["invalid_action"]``
        is set when the action has a non-integer dtype (bool, float: NaN and fractional entries
        included, whole-valued floats too) or an entry outside ``[0, N)``; the entries are then
        clamped explicitly to ``[0, N - 1]`` (NaN to 0), so the slot's numbers stay finite but
        are meaningless: check the flag (see :meth:`evaluate_slot`).
        """
        del key  # the slot's outcome is deterministic given the state and the action
        info = self.evaluate_slot(state, action, params)
        next_state = state.replace(time=state.time + 1)
        if self.config.compute_sharing:
            next_state = next_state.replace(backlog=info["backlog"])
        truncated = next_state.time >= self.config.episode_length
        terminated = jnp.zeros((), bool)
        if state.demand_window is None:
            # A state built without the cache fields: the observation from the series, and the
            # next state gets the cache (the structure of the states reset_env draws).
            obs = self.get_obs(next_state, params)
            next_state = next_state.replace(demand_window=obs.demand_window,
                                            window_index=next_state.start + next_state.time)
        else:
            obs, next_state = self._next_observation(state, next_state, params)
        return obs, next_state, info["profit"], terminated, truncated, info

    def _next_observation(self, state: CPNState, next_state: CPNState, params: CPNParams):
        """``get_obs(next_state)`` from ``state``'s cached demand window, and ``next_state`` with the cache.

        The window is the cached one shifted by one slot, with the new slot's row (one slot's
        workloads summed per node) appended: :func:`node_demand` of one row is that row of
        :func:`node_demand` of the window, and :func:`workload_model` of one slot that row of
        :func:`window_workloads`, so the numbers are those of ``get_obs`` bit for bit
        (tests/test_cpn_obs_cache.py). A cache that is not ``state``'s slot's (a fresh episode, a
        state moved with ``replace(time=...)``) is rebuilt from the series instead, in the same
        program; so is every window of one env or of a small batch (:func:`_shift_or_rebuild`).
        """
        cfg = self.config
        if cfg.observe_current_workload:
            task_workload, _, _ = self.slot_inputs(next_state, params)
        else:  # the window ends at the slot just played, whose workloads evaluate_slot used
            task_workload, _, _ = self.slot_inputs(state, params)
        row = node_demand(task_workload[None], params.user_node, cfg.num_nodes)  # (1, N)
        index = state.start + state.time
        demand_window = _shift_or_rebuild(self)(state.demand_window, state.window_index, index, row, params)
        next_state = next_state.replace(demand_window=demand_window, window_index=index + 1)
        return self._observation(next_state, params, task_workload, demand_window), next_state

    # ------------------------------------------------------------------ slot maths
    def slot_inputs(self, state: CPNState, params: CPNParams):
        """Exogenous numbers of the current slot: ``(workload (U,), price (), discount (N,))``."""
        index = state.start + state.time
        price = params.price_series[index]
        discount = hydro_discount(params.hydro_series[index], params)
        workload = workload_model(index[None], params.workload_shock[index][None], params)[0]
        return workload, price, discount

    def evaluate_slot(self, state: CPNState, action: jax.Array, params: CPNParams,
                      next_hop: jax.Array | None = None) -> dict:
        """Delays and profit of scheduling the current slot's tasks to ``action`` (pure).

        ``next_hop`` (``(U, N, N)``, from :func:`routing_tables`) may be passed by callers that
        evaluate many actions on one instance, so the shortest paths are computed once.

        ``action`` is checked as in :meth:`step_env`: its shape always, a concrete action's dtype
        and values eagerly (``ValueError``); a traced one sets ``invalid_action`` and is clamped.

        Returns:
            The info dict of ``step`` (without ``final_observation``); with
            ``CPNConfig.compute_sharing`` also ``queue_delay`` ``(U,)`` (s, waiting at the node,
            part of ``delay``), ``backlog`` ``(N,)`` (TFLOP left in each queue when the slot's
            window closes, the next state's) and ``served_work`` ``(N,)`` (TFLOP served in it).
        """
        cfg = self.config
        action, invalid = _destinations(action, cfg)
        workload, price, discount = self.slot_inputs(state, params)
        if next_hop is None:
            _, next_hop = routing_tables(params)
        access = params.packet_size / params.access_bandwidth
        # The hop tables over every (user, destination) depend only on the instance: with shared
        # params they are built once per batched call, and each env only looks its actions up
        # (no padded routes gathered per env). The hops are summed by the same (U, H) reduction
        # as model.transmission_delay's, so the numbers are those of the per-env routes bit for bit.
        transmission = access + _route_hop_sum(hop_delay_table(next_hop, params, cfg.hops), action)  # eq. (1)
        if cfg.link_conflicts == "arrival":
            _, offset = model.fifo_dispatch_shortest(next_hop, params.user_node, action, params.packet_size, access,
                                                     params.bandwidth, params.switch_delay)
        else:
            routes, hop_mask = jax.vmap(model.route, in_axes=(0, 0, 0, None))(
                next_hop, params.user_node, action, cfg.hops
            )
            _, offset = model.priority_dispatch(routes, hop_mask, params.packet_size, access, params.bandwidth,
                                                params.switch_delay)
        power = params.power[action]
        compute = workload / power
        fallback = jnp.zeros((), bool)
        if cfg.routing == "milp":
            transmission, offset, fallback = self.milp_delays(action, workload, compute, params, transmission, offset)
        shared = {}
        if cfg.compute_sharing:
            # eq. (2) with the wait for the node's queue: t_sum = t_tr + t_off + t_queue + t_comp.
            queue, backlog, served = model.node_fifo(transmission + offset, action, workload, params.power,
                                                     state.backlog, params.slot_duration)
            delay = transmission + offset + queue + compute
            shared = dict(queue_delay=queue, backlog=backlog, served_work=served)
        else:
            delay = transmission + offset + compute  # eq. (2)
        gross = model.revenue(workload=workload, delay=delay, unit_price=params.unit_price, eta=params.eta)
        miss = delay > params.deadline
        paid = jnp.where(miss, params.late_revenue_fraction * gross, gross)
        cost = model.compute_cost(
            workload=workload, power=power, price=price, discount=discount[action],
            usage_price=params.usage_price, kappa=params.kappa,
        )  # eq. (5)
        return dict(
            delay=delay, transmission_delay=transmission, offset=offset, compute_delay=compute,
            revenue=paid, cost=cost, deadline_miss=miss, profit=jnp.sum(paid - cost),
            invalid_action=invalid, routing_fallback=fallback, **shared,
        )

    def milp_delays(self, action, workload, compute, params: CPNParams, shortest_transmission, shortest_offset):
        """``"milp"`` routing of the slot through the batched host callback (one call per step).

        Returns:
            ``(transmission (U,), offset (U,), fallback ())``: the MILP's ``t_tr`` (eq. 1 on its
            routes) and ``t_off``, or the ``"shortest"`` numbers with ``fallback`` True when the
            solve failed (infeasible deadline, time limit, solver error).
        """
        cfg = self.config
        solve = _milp_callback(cfg)
        destination = jnp.clip(action, 0, cfg.num_nodes - 1)
        transmission, offset, status = solve(
            params.adjacency, params.bandwidth, params.switch_delay, params.user_node, destination,
            params.packet_size, params.access_bandwidth, params.deadline, workload, compute,
            params.unit_price, params.eta,
        )
        fallback = status > 1  # solvers.routing.STATUS_SUBOPTIMAL: the last usable status
        return (jnp.where(fallback, shortest_transmission, transmission),
                jnp.where(fallback, shortest_offset, offset), fallback)

    def task_profit_matrix(self, state: CPNState, params: CPNParams) -> jax.Array:
        """Profit of each task at each destination, ignoring link conflicts (``t_off = 0``).

        With ``CPNConfig.compute_sharing`` the task also waits for the node's backlog
        (``max(0, backlog / f_n - arrival)``) but not for the other tasks of the slot.

        Returns:
            ``(U, N)`` float32.
        """
        workload, price, discount = self.slot_inputs(state, params)
        dist, _ = routing_tables(params)
        route_delay = jnp.take_along_axis(dist, params.user_node[:, None, None], axis=1)[:, 0, :]
        arrival = (params.packet_size / params.access_bandwidth)[:, None] + route_delay
        if self.config.compute_sharing:
            arrival = jnp.maximum(arrival, state.backlog / params.power)
        delay = arrival + workload[:, None] / params.power
        gross = model.revenue(workload=workload[:, None], delay=delay, unit_price=params.unit_price, eta=params.eta)
        paid = jnp.where(delay > params.deadline[:, None], params.late_revenue_fraction * gross, gross)
        cost = model.compute_cost(
            workload=workload[:, None], power=params.power, price=price, discount=discount,
            usage_price=params.usage_price, kappa=params.kappa,
        )
        return paid - cost

    # ------------------------------------------------------------------ observation
    def get_obs(self, state: CPNState, params: CPNParams) -> CPNObservation:
        """Builds the observation with ``dynamic_slice`` windows of the series at ``start + time``.

        Always from the series (the state's cached demand window is not read): any state, one
        moved with ``replace(time=...)`` included, gets its slot's observation.
        """
        demand_window, load_window = self._series_windows(state.start + state.time, params)
        # The current workloads come from slot_inputs rather than load_window[-1]: with a single
        # consumer, XLA:CPU fuses the window's gathers into it instead of materialising them
        # (about 10% of a 4096-env step).
        if self.config.observe_current_workload:
            task_workload, _, _ = self.slot_inputs(state, params)
        else:
            task_workload = load_window[-1]  # the previous slot's
        return self._observation(state, params, task_workload, demand_window)

    def _series_windows(self, index: jax.Array, params: CPNParams) -> tuple[jax.Array, jax.Array]:
        """``(demand_window (W, N), load_window (W, U))`` of the observation at series index ``index``."""
        cfg = self.config
        first = index - (cfg.window - 1)
        # With the current workload hidden, the workload windows end at the previous slot.
        first_load = first if cfg.observe_current_workload else first - 1
        # An int32 zero: under jax_enable_x64 a Python 0 is int64, and the indices must share a dtype.
        shock = jax.lax.dynamic_slice(params.workload_shock, (first_load, jnp.zeros_like(first)),
                                      (cfg.window, cfg.num_users))
        load_window = window_workloads(first_load, shock, params, cfg.window)
        return node_demand(load_window, params.user_node, cfg.num_nodes), load_window

    def _observation(self, state: CPNState, params: CPNParams, task_workload: jax.Array,
                     demand_window: jax.Array) -> CPNObservation:
        """The observation of ``state`` given its workloads and demand window (the rest from the series)."""
        cfg = self.config
        first = state.start + state.time - (cfg.window - 1)
        price_window = jax.lax.dynamic_slice(params.price_series, (first,), (cfg.window,))
        hydro_window = hydro_discount(jax.lax.dynamic_slice(params.hydro_series, (first,), (cfg.window,)), params)
        hour = (params.series_start_hour + state.start + state.time) % 24
        angle = 2.0 * math.pi * hour.astype(jnp.float32) / 24.0
        time_features = jnp.stack(
            [jnp.sin(angle), jnp.cos(angle), state.time.astype(jnp.float32) / cfg.episode_length]
        )
        node_features = jnp.stack(
            [params.power, params.green.astype(jnp.float32), params.hydro_share], axis=-1
        )
        fields = dict(
            task_workload=task_workload,
            node_demand=demand_window[-1],
            price_window=price_window.astype(jnp.float32),
            hydro_window=hydro_window.astype(jnp.float32),
            demand_window=demand_window,
            node_features=node_features.astype(jnp.float32),
            time_features=time_features,
        )
        if cfg.compute_sharing:
            return CPNBacklogObservation(**fields, node_backlog=state.backlog)
        return CPNObservation(**fields)

    # ------------------------------------------------------------------ spaces
    def action_space(self, params: CPNParams | None = None) -> spaces.MultiDiscrete:
        """``MultiDiscrete([N] * U)``."""
        return spaces.MultiDiscrete([self.config.num_nodes] * self.config.num_users)

    def observation_space(self, params: CPNParams | None = None) -> spaces.Dict:
        """Dict space matching :class:`CPNObservation` (:class:`CPNBacklogObservation`) field by field."""
        n, u, w = self.config.num_nodes, self.config.num_users, self.config.window
        inf = np.inf
        backlog = dict(node_backlog=spaces.Box(0.0, inf, (n,))) if self.config.compute_sharing else {}
        return spaces.Dict(
            dict(
                task_workload=spaces.Box(0.0, inf, (u,)),
                node_demand=spaces.Box(0.0, inf, (n,)),
                price_window=spaces.Box(-inf, inf, (w,)),
                hydro_window=spaces.Box(0.0, 1.0, (w, n)),
                demand_window=spaces.Box(0.0, inf, (w, n)),
                node_features=spaces.Box(0.0, inf, (n, 3)),
                time_features=spaces.Box(-1.0, 1.0, (3,)),
                **backlog,
            )
        )


_SMALL_BATCH = 16
"""Batches below this size skip the step's batch-only shortcuts (the cached demand window's cond,
the materialised hop table): at a few envs a step is dispatch-bound and they cost more than they
save (batch 1: 0.21 ms per step with them against 0.19 ms without)."""


def _hop_sum(table: jax.Array, action: jax.Array) -> jax.Array:
    """``(U,)`` sums over the hops of ``table[u, action[u]]`` (``table``: ``(U, N, H)``)."""
    return jnp.sum(table[jnp.arange(table.shape[0]), action], axis=-1)


@custom_vmap
def _route_hop_sum(table: jax.Array, action: jax.Array) -> jax.Array:
    """:func:`_hop_sum`; under ``vmap`` with a shared table, the table is materialised first.

    Left to itself, XLA:CPU fuses the table's computation (divisions and gathers of the
    bandwidths along the routes) into the batch's gather, once per gathered entry: 0.65 ms per
    4096-env step, against 0.19 ms from a materialised table. A product with the identity at
    full precision is exact (``x * 1`` plus zeros; the entries are finite) and is not fused on
    XLA:CPU, the trick of :func:`daily_workload_profile`; it costs ``U N H^2`` multiply-adds,
    once per call for a shared table, so a table batched with the params, or a batch smaller
    than ``_SMALL_BATCH``, is left as it is (the numbers are the same either way).
    """
    return _hop_sum(table, action)


@_route_hop_sum.def_vmap
def _route_hop_sum_batch(axis_size, in_batched, table, action):
    table_batched, action_batched = in_batched
    if not table_batched and axis_size >= _SMALL_BATCH:
        eye = jnp.eye(table.shape[-1], dtype=table.dtype)
        table = jnp.matmul(table, eye, precision=jax.lax.Precision.HIGHEST)
    out = jax.vmap(_hop_sum, in_axes=(0 if table_batched else None, 0 if action_batched else None),
                   axis_size=axis_size)(table, action)
    return out, True


def _shift_or_rebuild(env: GreenCPN):
    """``(cached, cache_index, index, row, params) -> demand window at series index index + 1``.

    ``cached`` ``(W, N)`` is the demand window at series index ``cache_index``. Under ``vmap``
    of at least ``_SMALL_BATCH`` envs, when that is ``index`` (the slot just played) for every env
    the result is ``cached`` shifted up one row with ``row`` ``(1, N)`` appended, otherwise every
    window is rebuilt from the series: one ``lax.cond`` over the batch decides (both give the
    numbers of the series), so the fast path costs no per-env select. One env, and a small batch
    (dispatch-bound: a cond costs more than the window saves), always rebuild. Built at each
    trace, like ``Environment.step``'s rule.
    """
    def shift(cached, row):
        return jnp.concatenate([cached[1:], row])

    def rebuild(index, params):
        return env._series_windows(index + 1, params)[0]

    @custom_vmap
    def window(cached, cache_index, index, row, params):
        return rebuild(index, params)

    @window.def_vmap
    def window_batch(axis_size, in_batched, cached, cache_index, index, row, params):
        axes = [jax.tree.map(lambda batched: 0 if batched else None, flags) for flags in in_batched]
        shifted = lambda: jax.vmap(shift, in_axes=(axes[0], axes[3]), axis_size=axis_size)(cached, row)  # noqa: E731
        rebuilt = lambda: jax.vmap(rebuild, in_axes=(axes[2], axes[4]), axis_size=axis_size)(index, params)  # noqa: E731
        if axis_size < _SMALL_BATCH:
            return rebuilt(), True
        return jax.lax.cond(jnp.all(cache_index == index), shifted, rebuilt), True

    return window


@functools.lru_cache(maxsize=None)
def _milp_callback(config: CPNConfig):
    """The traceable MILP routing of ``config`` (built once per config; CVXPY stays lazy)."""
    from solvers.callbacks import batched_callback
    from solvers.routing import RoutingOptions, batch_solve

    options = RoutingOptions(
        tick=float(config.milp_tick), num_paths=config.milp_paths, formulation=config.milp_formulation,
        time_limit=float(config.milp_time_limit), max_iterations=config.milp_iterations,
        deadlines=config.milp_deadlines,
    )
    users = config.num_users
    shapes = (jax.ShapeDtypeStruct((users,), jnp.float32), jax.ShapeDtypeStruct((users,), jnp.float32),
              jax.ShapeDtypeStruct((), jnp.int32))
    return batched_callback(functools.partial(batch_solve, options=options), shapes,
                            processes=config.milp_processes, min_pool_batch=2)


def workload_model(index: jax.Array, shock: jax.Array, params: CPNParams) -> jax.Array:
    """Task workloads: a daily sinusoid per user plus Gaussian noise, floored (paper V-A).

    ``m_u(t) = max(floor, base_u (1 + amp_u sin(2 pi hour(t) / 24 + phase_u)) + sigma_u eps)``.

    Args:
        index: ``(S,)`` int32 series indices of the slots.
        shock: ``(S, U)`` standard normal draws (``params.workload_shock`` rows).

    Returns:
        ``(S, U)`` float32 workloads (TFLOP).
    """
    mean = daily_workload_profile(params)[(params.series_start_hour + index) % 24]
    return jnp.maximum(params.workload_floor, mean + params.workload_noise * shock).astype(jnp.float32)


def window_workloads(first: jax.Array, shock: jax.Array, params: CPNParams, window: int) -> jax.Array:
    """:func:`workload_model` of the ``window`` slots from series index ``first`` on, the same numbers.

    The window's hours of day are consecutive, so their mean workloads are the daily profile
    rotated to the first slot's hour: one roll of a ``(24 k, U)`` table instead of a gather of
    ``W`` rows at ``(hour + w) % 24`` (about half of a 4096-env observation on XLA:CPU).

    Args:
        first: int32 scalar series index of the window's first slot.
        shock: ``(W, U)`` rows ``first .. first + W - 1`` of ``params.workload_shock``.
        window: static ``W``.

    Returns:
        ``(W, U)`` float32 workloads (TFLOP).
    """
    profile = daily_workload_profile(params)
    cycles = -(-window // 24)  # enough whole days to hold the window
    day = jnp.tile(profile, (cycles, 1)) if cycles > 1 else profile
    mean = jnp.roll(day, -((params.series_start_hour + first) % 24), axis=0)[:window]
    return jnp.maximum(params.workload_floor, mean + params.workload_noise * shock).astype(jnp.float32)


def node_demand(workload: jax.Array, user_node: jax.Array, num_nodes: int) -> jax.Array:
    """Demand per node: the workloads of the users attached to it, summed in user order.

    Args:
        workload: ``(S, U)`` float32 (TFLOP).
        user_node: ``(U,)`` int32 access node of each user.
        num_nodes: static ``N``.

    Returns:
        ``(S, N)`` float32 (TFLOP).
    """
    attach = jax.nn.one_hot(user_node, num_nodes, dtype=workload.dtype)  # (U, N)
    # workload @ attach, as U multiply-adds unrolled into one elementwise pass: XLA:CPU runs the
    # (4096 * W, U) x (U, N) dot of a batch of windows about 10x slower. The products are exact
    # (x * 1, x * 0) and the sum runs in user order: the numbers of the dot bit for bit (checked
    # with one and with several users per node).
    def add_user(user, total):
        return total + workload[:, user, None] * attach[user]

    zeros = jnp.zeros(workload.shape[:-1] + (num_nodes,), workload.dtype)
    return jax.lax.fori_loop(0, user_node.shape[0], add_user, zeros, unroll=True)


def daily_workload_profile(params: CPNParams) -> jax.Array:
    """Mean workload of each user at each hour of day, ``base_u (1 + amp_u sin(2 pi h / 24 + phase_u))``.

    Returns:
        ``(24, U)`` float32 (TFLOP); row ``h`` is hour ``h`` of the day.
    """
    hours = jnp.arange(24, dtype=jnp.float32)[:, None]
    profile = params.workload_base * (1.0 + params.workload_amplitude * jnp.sin(2.0 * math.pi * hours / 24.0 + params.workload_phase))
    # The profile depends only on the hour of day so that windows gather rows of it, but XLA:CPU
    # fuses the sin into every gather that reads it: one sin per gathered entry, W x U per env
    # per window (4096 envs: 2.4 ms of a step's workload windows, 0.5 ms with the profile
    # built once). A dot is not fused on XLA:CPU, and the identity product is exact (x * 1
    # plus zeros at full precision), so it makes XLA build the 24 x U profile once per call.
    return jnp.matmul(jnp.eye(24, dtype=jnp.float32), profile, precision=jax.lax.Precision.HIGHEST)


def _check_action_shape(shape: tuple, config: CPNConfig) -> None:
    if tuple(shape) != (config.num_users,):
        raise ValueError(f"action of shape {tuple(shape)} is invalid: must be (num_users,) = ({config.num_users},), "
                         "one destination per user")


def check_action(action, config: CPNConfig) -> None:
    """Host-side check of a concrete action, before any cast: raises ``ValueError`` naming the problem.

    Args:
        action: ``(U,)`` destinations: an integer array (NumPy, JAX or a list of ints), each in
            ``[0, N)``. Bool and float arrays are refused (a cast would truncate 1.7 to 1 or
            take True as node 1), and so is any entry outside the range (``2**40`` in int64
            too, which a cast to int32 would wrap to 0).
    """
    action = np.asarray(action)
    _check_action_shape(action.shape, config)
    if action.dtype == np.bool_ or not np.issubdtype(action.dtype, np.integer):
        raise ValueError(f"action of dtype {action.dtype} is invalid: must be an integer array of destinations in "
                         f"[0, {config.num_nodes - 1}] (got {action.tolist()})")
    bad = np.flatnonzero((action < 0) | (action >= config.num_nodes))
    if bad.size:
        raise ValueError(f"action[{int(bad[0])}]={action[bad[0]]} is invalid: destinations must be in "
                         f"[0, {config.num_nodes - 1}]")


def _destinations(action, config: CPNConfig) -> tuple[jax.Array, jax.Array]:
    """``(U,)`` int32 destinations of ``action`` and the ``()`` bool flag of a bad action.

    A concrete action is checked by :func:`check_action` (and raises); a traced one is flagged
    when its dtype is not an integer or an entry is outside ``[0, N)``, compared in its own dtype
    before the cast, and clamped to ``[0, N - 1]`` (NaN to 0) so the slot's numbers stay finite.
    """
    if not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(action)):
        check_action(action, config)
        return jnp.asarray(action, jnp.int32), jnp.zeros((), bool)
    action = jnp.asarray(action)
    _check_action_shape(action.shape, config)
    last = config.num_nodes - 1
    if jnp.issubdtype(action.dtype, jnp.integer):
        if action.dtype.itemsize < 4:  # so that N - 1 fits the dtype of the comparison
            action = action.astype(jnp.int32)
        invalid = jnp.any((action < 0) | (action > last))
        return jnp.clip(action, 0, last).astype(jnp.int32), invalid
    # Bool or float: never a valid action; the clamp only keeps the numbers finite.
    values = jnp.where(jnp.isnan(action), 0, action) if jnp.issubdtype(action.dtype, jnp.floating) else action
    return jnp.clip(values.astype(jnp.float32), 0, last).astype(jnp.int32), jnp.ones((), bool)
