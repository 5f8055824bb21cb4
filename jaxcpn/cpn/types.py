"""Static config, dynamic params, state and observation of the green CPN environment."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

ROUTING_MODES = ("shortest", "milp")
LINK_CONFLICT_RULES = ("arrival", "priority")
MILP_FORMULATIONS = ("paths", "edges")
MILP_DEADLINE_MODES = ("strict", "reachable")


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

    def __post_init__(self):
        for name, low in (("num_nodes", 1), ("num_users", 1), ("window", 1), ("episode_length", 1)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"CPNConfig.{name}={value!r} is invalid: must be an int >= {low}")
        if self.routing not in ROUTING_MODES:
            raise ValueError(f"CPNConfig.routing={self.routing!r} is invalid: must be one of {ROUTING_MODES}")
        if self.link_conflicts not in LINK_CONFLICT_RULES:
            raise ValueError(f"CPNConfig.link_conflicts={self.link_conflicts!r} is invalid: must be one of {LINK_CONFLICT_RULES}")
        if self.max_hops is not None and not (1 <= self.max_hops):
            raise ValueError(f"CPNConfig.max_hops={self.max_hops!r} is invalid: must be None or an int >= 1")
        if not (isinstance(self.milp_tick, (int, float)) and self.milp_tick > 0):
            raise ValueError(f"CPNConfig.milp_tick={self.milp_tick!r} is invalid: must be a float > 0 (s)")
        if not (isinstance(self.milp_paths, int) and self.milp_paths >= 1):
            raise ValueError(f"CPNConfig.milp_paths={self.milp_paths!r} is invalid: must be an int >= 1")
        if self.milp_formulation not in MILP_FORMULATIONS:
            raise ValueError(f"CPNConfig.milp_formulation={self.milp_formulation!r} is invalid: must be one of {MILP_FORMULATIONS}")
        if not (isinstance(self.milp_time_limit, (int, float)) and self.milp_time_limit > 0):
            raise ValueError(f"CPNConfig.milp_time_limit={self.milp_time_limit!r} is invalid: must be > 0 (s)")
        if not (isinstance(self.milp_iterations, int) and self.milp_iterations >= 1):
            raise ValueError(f"CPNConfig.milp_iterations={self.milp_iterations!r} is invalid: must be an int >= 1")
        if self.milp_deadlines not in MILP_DEADLINE_MODES:
            raise ValueError(f"CPNConfig.milp_deadlines={self.milp_deadlines!r} is invalid: must be one of {MILP_DEADLINE_MODES}")
        if self.milp_processes is not None and not (isinstance(self.milp_processes, int) and self.milp_processes >= 1):
            raise ValueError(f"CPNConfig.milp_processes={self.milp_processes!r} is invalid: must be None or an int >= 1")

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


@struct.dataclass
class CPNState:
    """Environment state of one episode.

    Attributes:
        time: int32 scalar, slot index within the episode (0 .. T-1).
        start: int32 scalar, series index of the episode's first slot.

    The exogenous series (price, hydro, workload shocks) stay in the params; observation windows
    are ``dynamic_slice``s at ``start + time``, so a step copies no window arrays.
    """

    time: jax.Array
    start: jax.Array


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
