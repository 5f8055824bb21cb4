"""Static config, dynamic params, state and observation of the green CPN environment."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

ROUTING_MODES = ("shortest", "milp")
LINK_CONFLICT_RULES = ("arrival", "priority")
MILP_FORMULATIONS = ("paths", "edges")
MILP_DEADLINE_MODES = ("strict", "reachable")


MAX_STEP_BYTES = 4 * 2**30
"""Default ceiling (4 GiB) on :func:`step_bytes`; ``CPNConfig(max_bytes=...)`` moves it."""


def step_bytes(num_nodes: int, num_users: int) -> int:
    """Estimated memory (bytes) of one environment: routing tables and the instance's ``(N, N)`` arrays.

    ``routing_tables`` builds ``(U, N, N)`` float32 route delays and int32 next hops (8 bytes per
    user and node pair, every step in ``"shortest"`` routing); generating the instance needs
    about 32 bytes per node pair (``generator.instance_bytes``, which also counts the series and
    is checked by ``generate_instance``). A batch of ``B`` environments needs ``B`` times this.
    """
    return 8 * num_users * num_nodes * num_nodes + 32 * num_nodes * num_nodes


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 2**30:.1f} GiB" if num_bytes >= 2**30 else f"{num_bytes / 2**20:.1f} MiB"


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _require_int(name: str, value, low: int, none_allowed: bool = False) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        allowed = f"{'None or ' if none_allowed else ''}an int >= {low}"
        raise ValueError(f"CPNConfig.{name}={value!r} is invalid: must be {allowed}")


@dataclasses.dataclass(frozen=True)
class CPNConfig:
    """Static configuration: everything that fixes shapes or code paths.

    Attributes:
        num_nodes: number of compute nodes ``N`` (paper: 10).
        num_users: number of users ``U``, one task each per slot (default one per node).
        window: look-back window ``W`` of the observation's series, in slots (hours).
        episode_length: slots per episode ``T`` (24 = one day of hourly slots).
        routing: ``"shortest"`` (pure JAX, default) or ``"milp"`` (the routing MILP of eqs. 6-14
            with the quadratic-transform loop, solved on the host through
            ``solvers.callbacks``; a failed solve falls back to ``"shortest"`` for that slot and
            sets ``info["routing_fallback"]``).
        link_conflicts: how a link shared by several tasks serves them in ``"shortest"`` routing
            (and in ``"milp"`` slots that fall back to it): ``"arrival"`` (default, the paper's
            model: work-conserving FIFO in order of arrival at the link, ties by user index,
            ``model.fifo_dispatch``) or ``"priority"`` (this project's first rule: every link in
            the fixed order of the user index, not work-conserving, ``model.priority_dispatch``;
            kept to reproduce results computed with it).
        max_hops: longest route in hops; ``None`` means ``num_nodes - 1`` (always enough).
        milp_tick: ``"milp"`` time tick (s); start times are whole ticks.
        milp_paths: ``"milp"`` candidate paths per task (k shortest).
        milp_formulation: ``"paths"`` (candidate-path choice) or ``"edges"`` (the paper's
            edge-use variables with flow conservation).
        milp_time_limit: ``"milp"`` wall-clock budget of one slot's solve loop (s).
        milp_iterations: cap on quadratic-transform iterations per slot.
        milp_deadlines: ``"strict"`` (eq. 14 for every task: a slot with a task that cannot
            meet its deadline is infeasible and falls back) or ``"reachable"`` (eq. 14 only for
            tasks that can meet it alone in the network).
        milp_processes: host processes the batch of solves is fanned out over (``None``: all
            cores; 1: in the calling process).
        max_bytes: ceiling on :func:`step_bytes`, the estimated memory of one environment
            (``None``: ``MAX_STEP_BYTES``, 4 GiB); a larger config is refused at construction
            with its estimate instead of exhausting memory in the first step.
        compute_sharing: ``False`` (default, the paper's model: a node computes every task at its
            full power ``f_n`` at once, ``t_comp = m / f_n``) or ``True`` (an option beyond the
            paper, docs/model.md "Coupled dynamics"): a node serves the tasks that reach it one
            at a time in order of arrival (FIFO, ties by user index) at its power ``f_n``, after
            the work left in its queue by earlier slots; work not done when the slot's service
            window ``CPNParams.slot_duration`` closes stays in the queue (``CPNState.backlog``,
            TFLOP) and delays the next slots' tasks there. The observation is then a
            :class:`CPNBacklogObservation` (the default fields plus ``node_backlog``).
        observe_current_workload: ``True`` (default, the paper's state: the observation includes
            the current slot's workloads) or ``False`` (the agent decides before the demand is
            known): the workload entries of the observation (``task_workload``, ``node_demand``,
            ``demand_window``) end at the previous slot instead of the current one, same shapes;
            price and hydro windows still include the current slot (day-ahead prices).

    Every field is checked at construction (``ValueError`` naming the field, the value and what
    is allowed): ints are Python or NumPy ints, never bools or floats (``max_hops=2.5`` is
    refused, not truncated), ``milp_tick`` is finite. A ``max_hops`` shorter than an instance's
    routes is refused by ``validate_params`` (it depends on the topology).
    """

    num_nodes: int = 10
    num_users: int = 10
    window: int = 24
    episode_length: int = 24
    routing: str = "shortest"
    link_conflicts: str = "arrival"
    max_hops: int | None = None
    milp_tick: float = 0.01
    milp_paths: int = 3
    milp_formulation: str = "paths"
    milp_time_limit: float = 10.0
    milp_iterations: int = 5
    milp_deadlines: str = "strict"
    milp_processes: int | None = 1
    max_bytes: int | None = None
    compute_sharing: bool = False
    observe_current_workload: bool = True

    def __post_init__(self):
        for name in ("compute_sharing", "observe_current_workload"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"CPNConfig.{name}={getattr(self, name)!r} is invalid: must be a bool (True or False)")
        for name, low in (("num_nodes", 1), ("num_users", 1), ("window", 1), ("episode_length", 1),
                          ("milp_paths", 1), ("milp_iterations", 1)):
            _require_int(name, getattr(self, name), low)
        for name in ("max_hops", "milp_processes"):
            if getattr(self, name) is not None:
                _require_int(name, getattr(self, name), 1, none_allowed=True)
        for name, choices in (("routing", ROUTING_MODES), ("link_conflicts", LINK_CONFLICT_RULES),
                              ("milp_formulation", MILP_FORMULATIONS), ("milp_deadlines", MILP_DEADLINE_MODES)):
            if not isinstance(getattr(self, name), str) or getattr(self, name) not in choices:
                raise ValueError(f"CPNConfig.{name}={getattr(self, name)!r} is invalid: must be one of {choices}")
        if not (_is_number(self.milp_tick) and math.isfinite(self.milp_tick) and self.milp_tick > 0):
            raise ValueError(f"CPNConfig.milp_tick={self.milp_tick!r} is invalid: must be a finite float > 0 (s)")
        if not (_is_number(self.milp_time_limit) and self.milp_time_limit > 0):  # inf: no limit
            raise ValueError(f"CPNConfig.milp_time_limit={self.milp_time_limit!r} is invalid: must be > 0 (s; inf for "
                             "no limit)")
        if self.max_bytes is not None:
            _require_int("max_bytes", self.max_bytes, 1, none_allowed=True)
        limit = MAX_STEP_BYTES if self.max_bytes is None else self.max_bytes
        estimate = step_bytes(self.num_nodes, self.num_users)
        if estimate > limit:
            raise ValueError(
                f"CPNConfig: num_nodes={self.num_nodes}, num_users={self.num_users} is too large: one environment "
                f"needs about {_size(estimate)} (8 B x num_users x num_nodes^2 of routing tables + 32 B x "
                f"num_nodes^2 of instance), over max_bytes={_size(limit)}; use fewer nodes/users or pass a larger "
                "max_bytes")

    @property
    def hops(self) -> int:
        """Static route length bound used for padded routes."""
        return max(1, self.num_nodes - 1) if self.max_hops is None else min(self.max_hops, max(1, self.num_nodes - 1))


@struct.dataclass
class CPNParams:
    """Every number of an instance (a pytree: ``jax.vmap`` over any leaf sweeps it).

    Shapes: ``N`` nodes, ``U`` users, ``H`` hours of exogenous series.

    Attributes:
        adjacency: ``(N, N)`` bool, symmetric, no self loops.
        bandwidth: ``(N, N)`` float32 link bandwidth ``b_e`` (Mb/s), 0 where no link.
        switch_delay: ``(N,)`` float32 forwarding delay ``t_sw_n`` (s).
        power: ``(N,)`` float32 computing power ``f_n`` (TFLOPS).
        green: ``(N,)`` bool, node is supplied by hydropower.
        hydro_share: ``(N,)`` float32 in [0, 1], share of a green node's energy that the
            hydropower discount can cover (0 for non-green nodes).
        user_node: ``(U,)`` int32 access node of each user.
        access_bandwidth: ``(U,)`` float32 bandwidth of each user's access link (Mb/s).
        packet_size: ``(U,)`` float32 task packet size ``r_u`` (Mb).
        deadline: ``(U,)`` float32 latency requirement ``l_u`` (s).
        workload_base: ``(U,)`` float32 mean workload (TFLOP).
        workload_amplitude: ``(U,)`` float32 relative daily amplitude of the workload.
        workload_phase: ``(U,)`` float32 phase of the daily cycle (rad).
        workload_noise: ``(U,)`` float32 std of the Gaussian workload noise (TFLOP).
        workload_floor: scalar float32, workloads are clipped below at this value (TFLOP).
        workload_shock: ``(H, U)`` float32 standard-normal draws, the Gaussian term of each
            user's workload at each hour of the series (one realisation per instance).
        price_series: ``(H,)`` float32 normalised electricity price ``i_e``.
        hydro_series: ``(H,)`` float32 hydro generation / its max, in [0, 1].
        series_start_hour: scalar int32 hour of week (0 = Monday 00:00) of series index 0.
        unit_price: ``p``; eta: ``eta`` (s); usage_price: ``i_t``; kappa: energy coefficient.
        late_revenue_fraction: share of the revenue still paid for a task that misses its
            deadline (0 = none, the default; the cost is always paid).
        slot_duration: scalar float32 > 0, the service window of a slot (s): with
            ``CPNConfig.compute_sharing`` a node serves ``f_n * slot_duration`` TFLOP per slot
            and the rest of its queue carries over (unused otherwise; default 1 s).
    """

    adjacency: jax.Array
    bandwidth: jax.Array
    switch_delay: jax.Array
    power: jax.Array
    green: jax.Array
    hydro_share: jax.Array
    user_node: jax.Array
    access_bandwidth: jax.Array
    packet_size: jax.Array
    deadline: jax.Array
    workload_base: jax.Array
    workload_amplitude: jax.Array
    workload_phase: jax.Array
    workload_noise: jax.Array
    workload_floor: jax.Array
    workload_shock: jax.Array
    price_series: jax.Array
    hydro_series: jax.Array
    series_start_hour: jax.Array
    unit_price: jax.Array
    eta: jax.Array
    usage_price: jax.Array
    kappa: jax.Array
    late_revenue_fraction: jax.Array
    slot_duration: jax.Array


@struct.dataclass
class CPNState:
    """Environment state of one episode.

    Attributes:
        time: int32 scalar, slot index within the episode (0 .. T-1).
        start: int32 scalar, series index of the episode's first slot.
        backlog: ``(N,)`` float32 work (TFLOP) waiting in each node's queue at the start of the
            slot, with ``CPNConfig.compute_sharing``; ``None`` otherwise (no leaf, no work).
        demand_window: ``(W, N)`` float32, the observation's ``demand_window`` at series index
            ``window_index``, cached by ``step_env``.
        window_index: int32 scalar, the series index ``start + time`` that ``demand_window``
            belongs to; -1 for an empty cache (``GreenCPN.clear_window_cache``, a fresh episode).
            A state built without these two (``CPNState(time=..., start=...)``, both ``None``)
            steps from the series, and its next state has them.

    The exogenous series (price, hydro, workload shocks) stay in the params. ``GreenCPN.get_obs``
    always builds the observation from the series at ``start + time``; only ``step_env`` uses the
    cache: when ``window_index == start + time`` (in a batch of at least 16 envs, for every env)
    it shifts the cached demand window by one slot and computes the new slot's row alone;
    otherwise (a fresh episode, a state moved with ``replace(time=...)``, one env) it builds the
    window from the series. Both give the numbers of the series bit for bit, so a state can be
    moved in time freely; only a state stepped with params other than those of its last step
    needs ``GreenCPN.clear_window_cache`` first.
    """

    time: jax.Array
    start: jax.Array
    backlog: jax.Array | None = None
    demand_window: jax.Array | None = None
    window_index: jax.Array | None = None


@struct.dataclass
class CPNObservation:
    """Observation of one slot (windows end at, and include, the current slot).

    Attributes:
        task_workload: ``(U,)`` current task workloads ``m_u(t)`` (TFLOP).
        node_demand: ``(N,)`` current demand per access node (TFLOP).
        price_window: ``(W,)`` normalised electricity price.
        hydro_window: ``(W, N)`` hydropower discount ``alpha_n``.
        demand_window: ``(W, N)`` demand per node (TFLOP).
        node_features: ``(N, 3)`` computing power (TFLOPS), green flag, hydro share.
        time_features: ``(3,)`` sin and cos of the hour of day, and episode progress in [0, 1).
    """

    task_workload: jax.Array
    node_demand: jax.Array
    price_window: jax.Array
    hydro_window: jax.Array
    demand_window: jax.Array
    node_features: jax.Array
    time_features: jax.Array


@struct.dataclass
class CPNBacklogObservation(CPNObservation):
    """:class:`CPNObservation` plus the node queues, the observation with ``CPNConfig.compute_sharing``.

    Attributes:
        node_backlog: ``(N,)`` float32 work (TFLOP) waiting in each node's queue at the start of
            the slot (``CPNState.backlog``); a node needs ``backlog / f_n`` seconds to clear it.
    """

    node_backlog: jax.Array
