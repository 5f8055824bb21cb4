"""STPer traffic routing (section III-D, eqs. 6-14; objective eq. 21 by the quadratic transform, eq. 22).

Given each task's destination, choose its route and the start time of its transmission on every
link of the route so that no two tasks overlap on a link, switching delays are respected and
deadlines are met, maximising ``sum_u p eta m_u / t_sum_u`` (eq. 21). The sum of ratios is handled
by the quadratic transform of Shen & Yu (paper ref. [15]): for fixed ``y_u = sqrt(p eta m_u) /
t_sum_u`` the program ``max sum_u 2 y_u sqrt(p eta m_u) - y_u^2 t_sum_u`` (eq. 22) is a MILP in the
routes and start ticks, solved with CVXPY + HiGHS; alternating the two steps never decreases
eq. (21).

Delay model (the environment's, docs/model.md): a task crosses its dedicated access link
(``r/b_u``), then on every hop ``(i, j)`` the node ``i`` forwards after its switching delay
``t_sw_i`` and the undirected link carries one transmission at a time for ``r/b_ij``; the
destination adds no switching; ``t_comp = m / f``. Time is discretised in ticks of ``tick``
seconds: every start time is an integer number of ticks, and every duration that separates two
start times (access + switching, transmission + switching, transmission on a shared link) is
rounded UP to whole ticks, so a discretised schedule is feasible in continuous time. The last
hop's transmission is not rounded: ``t_sum = tick * S_last + r/b_last + t_comp`` exactly, so the
MILP's objective is the reported eq. (21).

Everything here takes and returns NumPy; CVXPY is imported lazily (inside the solve).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import time

import numpy as np

STATUS_OPTIMAL = 0  # every quadratic-transform MILP solved to optimality
STATUS_SUBOPTIMAL = 1  # a feasible routing, but some MILP stopped early (time limit / inaccurate)
STATUS_INFEASIBLE = 2  # no routing meets every deadline (eq. 14)
STATUS_TIME_LIMIT = 3  # the time limit was hit before any feasible routing was found
STATUS_ERROR = 4  # solver error
STATUS_NAMES = {0: "optimal", 1: "suboptimal", 2: "infeasible", 3: "time_limit", 4: "error"}
FORMULATIONS = ("paths", "edges")
DEADLINE_MODES = ("strict", "reachable")


def status_ok(status) -> np.ndarray:
    """True where a status carries a usable routing (optimal or suboptimal)."""
    return np.asarray(status) <= STATUS_SUBOPTIMAL


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)) \
        and not math.isnan(value)


@dataclasses.dataclass(frozen=True)
class RoutingOptions:
    """Options of the routing solver (hashable: they are static in the env config).

    Attributes:
        tick: length of one time tick (s); start times are whole ticks.
        num_paths: candidate paths per task (Yen's k shortest by per-hop delay) in the ``"paths"``
            formulation; the environment's shortest route is always among them.
        formulation: ``"paths"`` (path-choice binaries over the candidates, default) or
            ``"edges"`` (the paper's edge-use binaries with flow conservation, exact but slower).
        time_limit: wall-clock budget of one slot's whole quadratic-transform loop (s); the
            first MILP always gets all of it, later ones what is left.
        max_iterations: cap on quadratic-transform iterations (MILP solves).
        tolerance: stop when eq. (21) improves by less than this (relative).
        deadlines: ``"strict"`` enforces eq. (14) for every task (the paper); ``"reachable"``
            enforces it only for tasks that can meet it when alone in the network (the others
            miss it under any routing and are left unconstrained).
        mip_rel_gap: HiGHS relative MIP gap.
    """

    tick: float = 0.01
    num_paths: int = 3
    formulation: str = "paths"
    time_limit: float = 10.0
    max_iterations: int = 5
    tolerance: float = 1e-4
    deadlines: str = "strict"
    mip_rel_gap: float = 1e-7

    def __post_init__(self):
        if not (_is_real(self.tick) and math.isfinite(self.tick) and self.tick > 0):
            raise ValueError(f"RoutingOptions.tick={self.tick!r} is invalid: must be a finite float > 0 (s)")
        if not (_is_int(self.num_paths) and self.num_paths >= 1):
            raise ValueError(f"RoutingOptions.num_paths={self.num_paths!r} is invalid: must be an int >= 1")
        if self.formulation not in FORMULATIONS:
            raise ValueError(f"RoutingOptions.formulation={self.formulation!r} is invalid: must be one of {FORMULATIONS}")
        if not (_is_real(self.time_limit) and self.time_limit > 0):
            raise ValueError(f"RoutingOptions.time_limit={self.time_limit!r} is invalid: must be > 0 (s; inf = none)")
        if not (_is_int(self.max_iterations) and self.max_iterations >= 1):
            raise ValueError(f"RoutingOptions.max_iterations={self.max_iterations!r} is invalid: must be an int >= 1")
        if not (_is_real(self.tolerance) and math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ValueError(f"RoutingOptions.tolerance={self.tolerance!r} is invalid: must be >= 0")
        if self.deadlines not in DEADLINE_MODES:
            raise ValueError(f"RoutingOptions.deadlines={self.deadlines!r} is invalid: must be one of {DEADLINE_MODES}")
        if not (_is_real(self.mip_rel_gap) and 0 <= self.mip_rel_gap < 1):
            raise ValueError(f"RoutingOptions.mip_rel_gap={self.mip_rel_gap!r} is invalid: must be in [0, 1)")


def _invalid(field: str, value, allowed: str):
    raise ValueError(f"RoutingInstance.{field}={value} is invalid: must be {allowed}")


@dataclasses.dataclass
class RoutingInstance:
    """One slot's routing problem (float64 NumPy). ``N`` nodes, ``U`` tasks.

    Construction checks every field (shapes against ``N`` and ``U``, node indices in range,
    positive sizes and bandwidths) and raises ``ValueError`` naming it, so the solver never
    meets an index error.

    Attributes:
        adjacency: ``(N, N)`` bool, symmetric.
        bandwidth: ``(N, N)`` link bandwidth ``b_e`` (Mb/s).
        switch_delay: ``(N,)`` forwarding delay ``t_sw_n`` (s).
        source: ``(U,)`` int access node of each task.
        destination: ``(U,)`` int destination ``n_u^*``.
        packet_size: ``(U,)`` ``r_u`` (Mb).
        access_bandwidth: ``(U,)`` access-link bandwidth ``b_u`` (Mb/s).
        deadline: ``(U,)`` ``l_u`` (s).
        workload: ``(U,)`` ``m_u`` (TFLOP).
        compute_delay: ``(U,)`` ``t_comp = m_u / f_{n_u^*}`` (s).
        unit_price: ``p``; eta: ``eta`` (s).
    """

    adjacency: np.ndarray
    bandwidth: np.ndarray
    switch_delay: np.ndarray
    source: np.ndarray
    destination: np.ndarray
    packet_size: np.ndarray
    access_bandwidth: np.ndarray
    deadline: np.ndarray
    workload: np.ndarray
    compute_delay: np.ndarray
    unit_price: float
    eta: float

    def __post_init__(self):
        adjacency = np.asarray(self.adjacency)
        if adjacency.dtype != np.bool_:
            _invalid("adjacency", f"dtype {adjacency.dtype}", "a bool (N, N) array")
        if adjacency.ndim != 2 or adjacency.shape[0] != adjacency.shape[1] or adjacency.shape[0] == 0:
            _invalid("adjacency", f"shape {adjacency.shape}", "a square (N, N) array, N >= 1")
        n = adjacency.shape[0]
        self.adjacency = adjacency
        for name in ("source", "destination"):
            value = np.asarray(getattr(self, name))
            if value.ndim != 1 or not np.issubdtype(value.dtype, np.integer) or value.dtype == np.bool_:
                _invalid(name, f"shape {value.shape} dtype {value.dtype}", "a 1-D integer (U,) array of node indices")
            if value.size and (value.min() < 0 or value.max() >= n):
                _invalid(name, value.tolist(), f"node indices in [0, {n - 1}]")
            setattr(self, name, value.astype(np.int64))
        u = self.source.shape[0]
        shapes = dict(bandwidth=(n, n), switch_delay=(n,), destination=(u,), packet_size=(u,), access_bandwidth=(u,),
                      deadline=(u,), workload=(u,), compute_delay=(u,))
        for name, shape in shapes.items():
            value = getattr(self, name)
            try:
                value = np.asarray(value, np.float64) if name != "destination" else value
            except (TypeError, ValueError):
                _invalid(name, repr(value), "numbers")
            if value.shape != shape:
                _invalid(name, f"shape {value.shape}", f"shape {shape} (N={n} nodes, U={u} tasks from source)")
            setattr(self, name, value)
        finite_positive = dict(packet_size="Mb", access_bandwidth="Mb/s")
        for name, unit in finite_positive.items():
            value = getattr(self, name)
            if not (np.isfinite(value).all() and (value > 0).all()):
                _invalid(name, value.tolist(), f"finite and > 0 ({unit})")
        for name in ("switch_delay", "workload", "compute_delay"):
            value = getattr(self, name)
            if not (np.isfinite(value).all() and (value >= 0).all()):
                _invalid(name, value.tolist(), "finite and >= 0")
        if np.isnan(self.deadline).any() or (self.deadline <= 0).any():
            _invalid("deadline", self.deadline.tolist(), "> 0 (s; inf = no deadline)")
        links = self.bandwidth[adjacency]
        if not (np.isfinite(links).all() and (links > 0).all()):
            _invalid("bandwidth", f"min over links {links.min() if links.size else 'n/a'}", "finite and > 0 Mb/s on every link")
        for name in ("unit_price", "eta"):
            value = np.asarray(getattr(self, name))
            if (value.shape != () or value.dtype == np.bool_ or not np.issubdtype(value.dtype, np.number)
                    or not np.isfinite(value) or value < 0):
                _invalid(name, getattr(self, name), "a finite number >= 0")
        self.unit_price, self.eta = float(self.unit_price), float(self.eta)

    @property
    def num_tasks(self) -> int:
        return int(self.source.shape[0])

    @property
    def access_delay(self) -> np.ndarray:
        """``(U,)`` access-link transmission ``r_u / b_u`` (s)."""
        return self.packet_size / self.access_bandwidth

    def tx(self, u: int, i: int, j: int) -> float:
        """Transmission time of task ``u`` on link ``{i, j}`` (s)."""
        return float(self.packet_size[u] / self.bandwidth[i, j])


@dataclasses.dataclass
class RoutingResult:
    """Routing of one slot.

    Attributes:
        paths: per task, the node sequence source .. destination (length 1 when they coincide).
        start_ticks: per task, ``(hops,)`` int start tick of each hop's transmission.
        start_times: per task, ``(hops,)`` start times (s) = ``tick * start_ticks`` (what the
            feasibility checker reads).
        t_sum: ``(U,)`` total delay (eq. 2, s); transmission: ``(U,)`` ``t_tr`` of eq. (1) on the
            chosen path (access link included); offset: ``(U,)`` waiting ``t_off`` (s).
        objective: eq. (21) at ``t_sum``.
        status: ``STATUS_*`` code; history: eq. (21) after each quadratic-transform iteration
        (the first entry is the start point: the tick-rounded FIFO schedule on shortest paths,
        when it meets the deadlines); iterations: MILP solves; solve_time: wall time (s).
    """

    paths: list
    start_ticks: list
    start_times: list
    t_sum: np.ndarray
    transmission: np.ndarray
    offset: np.ndarray
    objective: float
    status: int
    history: list
    iterations: int
    solve_time: float

    @property
    def status_name(self) -> str:
        return STATUS_NAMES[self.status]


# ---------------------------------------------------------------------------------- graph helpers
def hop_delay_matrix(inst: RoutingInstance, u: int) -> np.ndarray:
    """``(N, N)`` per-hop delay ``r_u / b_ij + t_sw_i`` of task ``u``, ``inf`` where no link."""
    safe = np.where(inst.adjacency, inst.bandwidth, 1.0)
    return np.where(inst.adjacency, inst.packet_size[u] / safe + inst.switch_delay[:, None], np.inf)


def floyd_warshall_route(hop_delay: np.ndarray, source: int, destination: int) -> list[int]:
    """The environment's shortest route (same Floyd-Warshall relaxation order, same ties)."""
    n = hop_delay.shape[0]
    dist = hop_delay.copy()
    np.fill_diagonal(dist, 0.0)
    nxt = np.where(np.isfinite(dist), np.arange(n)[None, :], -1)
    for k in range(n):
        through = dist[:, k, None] + dist[None, k, :]
        better = through < dist
        dist = np.where(better, through, dist)
        nxt = np.where(better, nxt[:, k, None], nxt)
    path = [int(source)]
    while path[-1] != destination:
        step = int(nxt[path[-1], destination])
        if step < 0 or len(path) > n:
            raise ValueError(f"no route from {source} to {destination}")
        path.append(step)
    return path


def _dijkstra(hop_delay: np.ndarray, source: int, destination: int, banned_nodes: set, banned_edges: set):
    n = hop_delay.shape[0]
    dist = np.full(n, np.inf)
    prev = np.full(n, -1)
    dist[source] = 0.0
    heap = [(0.0, source)]
    while heap:
        d, i = heapq.heappop(heap)
        if d > dist[i]:
            continue
        if i == destination:
            break
        for j in np.flatnonzero(np.isfinite(hop_delay[i])):
            if j in banned_nodes or (i, j) in banned_edges:
                continue
            nd = d + hop_delay[i, j]
            if nd < dist[j]:
                dist[j], prev[j] = nd, i
                heapq.heappush(heap, (nd, int(j)))
    if not np.isfinite(dist[destination]):
        return None
    path = [destination]
    while path[-1] != source:
        path.append(int(prev[path[-1]]))
    return path[::-1]


def path_cost(hop_delay: np.ndarray, path: list[int]) -> float:
    return float(sum(hop_delay[i, j] for i, j in zip(path[:-1], path[1:])))


def k_shortest_paths(hop_delay: np.ndarray, source: int, destination: int, k: int) -> list[list[int]]:
    """Yen's algorithm: up to ``k`` loopless paths by increasing total hop delay."""
    first = _dijkstra(hop_delay, source, destination, set(), set())
    if first is None:
        return []
    found, candidates = [first], []
    while len(found) < k:
        last = found[-1]
        for spur in range(len(last) - 1):
            root = last[: spur + 1]
            banned_edges = {(p[spur], p[spur + 1]) for p in found if len(p) > spur and p[: spur + 1] == root}
            spur_path = _dijkstra(hop_delay, root[-1], destination, set(root[:-1]), banned_edges)
            if spur_path is None:
                continue
            path = root[:-1] + spur_path
            if path not in found and all(path != c[1] for c in candidates):
                heapq.heappush(candidates, (path_cost(hop_delay, path), path))
        if not candidates:
            break
        found.append(heapq.heappop(candidates)[1])
    return found


def candidate_paths(inst: RoutingInstance, options: RoutingOptions) -> list[list[list[int]]]:
    """Per task, its candidate paths; the environment's shortest route comes first."""
    out = []
    for u in range(inst.num_tasks):
        s, d = int(inst.source[u]), int(inst.destination[u])
        if s == d:
            out.append([[s]])
            continue
        hop = hop_delay_matrix(inst, u)
        paths = [floyd_warshall_route(hop, s, d)]
        for p in k_shortest_paths(hop, s, d, options.num_paths):
            if p not in paths and len(paths) < options.num_paths:
                paths.append(p)
        out.append(paths)
    return out


# ------------------------------------------------------------------------------- delay helpers
def _ceil_ticks(seconds: float, tick: float) -> int:
    # A hair of slack so a duration that is a whole number of ticks in exact arithmetic is not
    # pushed one tick up by float error.
    return int(math.ceil(seconds / tick - 1e-9))


def transmission_delay(inst: RoutingInstance, u: int, path: list[int]) -> float:
    """Eq. (1) on ``path``: access link + ``sum (r/b_ij + t_sw_i)`` (s)."""
    hops = sum(inst.tx(u, i, j) + inst.switch_delay[i] for i, j in zip(path[:-1], path[1:]))
    return float(inst.access_delay[u] + hops)


def t_sum_from_starts(inst: RoutingInstance, u: int, path: list[int], start_times) -> float:
    """Eq. (2) given the start time of each hop: last start + last transmission + ``t_comp``."""
    if len(path) == 1:
        return float(inst.access_delay[u] + inst.compute_delay[u])
    return float(start_times[-1] + inst.tx(u, path[-2], path[-1]) + inst.compute_delay[u])


def objective(inst: RoutingInstance, t_sum) -> float:
    """Eq. (21): ``sum_u p eta m_u / t_sum_u``."""
    return float(np.sum(inst.unit_price * inst.eta * inst.workload / np.asarray(t_sum, np.float64)))


def fifo_schedule(inst: RoutingInstance, paths: list[list[int]], tick: float | None = None):
    """Priority-order FIFO on fixed routes (the environment's ``"shortest"`` dispatch).

    With ``tick=None`` it is the environment's continuous schedule; with a tick, every
    separating duration is rounded up to whole ticks exactly as in the MILP, which makes the
    result a feasible point of the MILP (when it meets the deadlines).

    Returns:
        ``(start_times, t_sum)``: per task ``(hops,)`` start times (s), ``(U,)`` total delay (s).
    """
    def dur(seconds):
        return seconds if tick is None else _ceil_ticks(seconds, tick)

    link_free, starts, t_sum = {}, [], np.zeros(inst.num_tasks)
    for u, path in enumerate(paths):
        ready = dur(inst.access_delay[u] + inst.switch_delay[path[0]]) if len(path) > 1 else 0
        begins = []
        for h, (i, j) in enumerate(zip(path[:-1], path[1:])):
            link = (min(i, j), max(i, j))
            begin = max(ready, link_free.get(link, 0))
            begins.append(begin)
            link_free[link] = begin + dur(inst.tx(u, i, j))
            if h + 2 < len(path):
                ready = begin + dur(inst.tx(u, i, j) + inst.switch_delay[j])
        times = np.asarray(begins, np.float64) * (1.0 if tick is None else tick)
        starts.append(times)
        t_sum[u] = t_sum_from_starts(inst, u, path, times)
    return starts, t_sum


def shortest_routing(inst: RoutingInstance):
    """The ``"shortest"`` mode's routes, start times and ``t_sum`` (continuous FIFO)."""
    paths = [floyd_warshall_route(hop_delay_matrix(inst, u), int(inst.source[u]), int(inst.destination[u]))
             for u in range(inst.num_tasks)]
    starts, t_sum = fifo_schedule(inst, paths)
    return paths, starts, t_sum


def lower_bound_t_sum(inst: RoutingInstance) -> np.ndarray:
    """``(U,)`` each task's ``t_sum`` alone in the network (shortest route, no waiting)."""
    out = np.zeros(inst.num_tasks)
    for u in range(inst.num_tasks):
        path = floyd_warshall_route(hop_delay_matrix(inst, u), int(inst.source[u]), int(inst.destination[u]))
        out[u] = transmission_delay(inst, u, path) + inst.compute_delay[u]
    return out


def discretisation_tolerance(inst: RoutingInstance, tick: float) -> float:
    """Upper bound on how much eq. (21) of the continuous shortest/FIFO schedule can exceed that
    of its tick-rounded version (a feasible MILP point): every rounding adds less than one tick,
    and task ``u``'s arrival depends on at most ``1 + sum_{v <= u} hops_v`` rounded durations.
    """
    paths, _, t_cont = shortest_routing(inst)
    hops = np.cumsum([len(p) - 1 for p in paths])
    slack = tick * (1 + hops)
    a = inst.unit_price * inst.eta * inst.workload
    return float(np.sum(a / t_cont - a / (t_cont + slack)))


# ------------------------------------------------------------------------------------- the MILP
class _Builder:
    """Sparse rows ``A v <= b`` / ``A v == b`` over integer columns with bounds."""

    def __init__(self):
        self.lb, self.ub = [], []
        self.ub_rows, self.ub_rhs, self.eq_rows, self.eq_rhs = [], [], [], []

    def var(self, lb, ub) -> int:
        self.lb.append(lb)
        self.ub.append(ub)
        return len(self.lb) - 1

    def le(self, coeffs: dict, rhs: float):
        self.ub_rows.append(coeffs)
        self.ub_rhs.append(rhs)

    def ge(self, coeffs: dict, rhs: float):
        self.le({k: -v for k, v in coeffs.items()}, -rhs)

    def eq(self, coeffs: dict, rhs: float):
        self.eq_rows.append(coeffs)
        self.eq_rhs.append(rhs)

    @staticmethod
    def _matrix(rows, n):
        import scipy.sparse as sp

        r, c, v = [], [], []
        for k, row in enumerate(rows):
            for col, val in row.items():
                r.append(k)
                c.append(col)
                v.append(val)
        return sp.csr_matrix((v, (r, c)), shape=(len(rows), n))


def _add(coeffs: dict, col: int, val: float):
    coeffs[col] = coeffs.get(col, 0.0) + val


@dataclasses.dataclass
class _Model:
    """A built MILP: columns, the linear map to each task's ``t_sum`` and decoders."""

    builder: _Builder
    t_sum_coeffs: list  # per task: dict col -> seconds per unit
    t_sum_const: np.ndarray  # (U,) seconds
    decode: object  # callable(values) -> (paths, start_ticks)
    infeasible: bool = False  # a task cannot meet its deadline whatever the routing


def _horizons(inst: RoutingInstance, cands, options: RoutingOptions, enforce: np.ndarray) -> np.ndarray:
    """Per-task bound ``H_u`` (ticks) on any start tick: the big-M of eqs. (10), (12), (13).

    Two valid bounds, the tighter is used: the deadline (eq. 14 caps the last start, and starts
    increase along a route) and the serial horizon, the time to send every task one after the
    other on its longest candidate (an optimal left-shifted schedule starts no later).
    """
    tick = options.tick
    serial = 0
    for u, paths in enumerate(cands):
        longest = 0
        for p in paths:
            if len(p) == 1:
                continue
            total = _ceil_ticks(inst.access_delay[u] + inst.switch_delay[p[0]], tick)
            total += sum(_ceil_ticks(inst.tx(u, i, j) + inst.switch_delay[j], tick) for i, j in zip(p[:-1], p[1:]))
            longest = max(longest, total)
        serial += longest
    h = np.full(inst.num_tasks, serial, np.int64)
    budget = np.floor((inst.deadline - inst.compute_delay) / tick + 1e-9)
    h = np.where(enforce & np.isfinite(budget), np.minimum(h, np.maximum(budget, 0)), h)
    return np.maximum(h, 1).astype(np.int64)


def _deadline_enforced(inst: RoutingInstance, options: RoutingOptions) -> np.ndarray:
    if options.deadlines == "strict":
        return np.isfinite(inst.deadline)
    return np.isfinite(inst.deadline) & (lower_bound_t_sum(inst) <= inst.deadline)


def _build_paths(inst, cands, options, enforce, horizon) -> _Model:
    """Path formulation: one-hot path choice ``z[u, k]`` (eqs. 6-9 hold by construction)."""
    B, tick = _Builder(), options.tick
    U = inst.num_tasks
    z, S = {}, {}
    t_coeffs, t_const = [dict() for _ in range(U)], inst.compute_delay.copy()
    uses = {}  # undirected edge -> list of (u, {col_start: 1}, {col_z: 1})
    infeasible = False
    for u, paths in enumerate(cands):
        if len(paths[0]) == 1:  # computed at the access node: no network hop
            t_const[u] += inst.access_delay[u]
            infeasible |= bool(enforce[u] and t_const[u] > inst.deadline[u])
            continue
        one_hot = {}
        edge_start, edge_use = {}, {}
        for k, p in enumerate(paths):
            z[u, k] = B.var(0, 1)
            one_hot[z[u, k]] = 1.0
            for h in range(len(p) - 1):
                S[u, k, h] = B.var(0, int(horizon[u]))
                B.le({S[u, k, h]: 1.0, z[u, k]: -float(horizon[u])}, 0.0)  # eq. (10)
            lead0 = _ceil_ticks(inst.access_delay[u] + inst.switch_delay[p[0]], tick)
            B.ge({S[u, k, 0]: 1.0, z[u, k]: -float(lead0)}, 0.0)  # eq. (11) at the source
            for h in range(len(p) - 2):  # eq. (11): next hop after transmission + switching
                lead = _ceil_ticks(inst.tx(u, p[h], p[h + 1]) + inst.switch_delay[p[h + 1]], tick)
                B.ge({S[u, k, h + 1]: 1.0, S[u, k, h]: -1.0, z[u, k]: -float(lead)}, 0.0)
            last = len(p) - 2
            _add(t_coeffs[u], S[u, k, last], tick)
            _add(t_coeffs[u], z[u, k], inst.tx(u, p[-2], p[-1]))
            for h, (i, j) in enumerate(zip(p[:-1], p[1:])):
                e = (min(i, j), max(i, j))
                edge_start.setdefault(e, {})[S[u, k, h]] = 1.0
                edge_use.setdefault(e, {})[z[u, k]] = 1.0
        B.eq(one_hot, 1.0)  # eqs. (6)-(8): exactly one route
        if enforce[u]:  # eq. (14)
            B.le(dict(t_coeffs[u]), float(inst.deadline[u] - t_const[u]))
        for e in edge_start:
            uses.setdefault(e, []).append((u, edge_start[e], edge_use[e]))

    def decode(values):
        paths, ticks = [], []
        for u, cand in enumerate(cands):
            if len(cand[0]) == 1:
                paths.append(cand[0])
                ticks.append(np.zeros(0, np.int64))
                continue
            k = int(np.argmax([values[z[u, kk]] for kk in range(len(cand))]))
            paths.append(cand[k])
            ticks.append(np.array([int(round(values[S[u, k, h]])) for h in range(len(cand[k]) - 1)], np.int64))
        return paths, ticks

    _conflicts(B, inst, uses, horizon, tick)
    return _Model(B, t_coeffs, t_const, decode, infeasible)


def _build_edges(inst, cands, options, enforce, horizon) -> _Model:
    """Edge formulation (the paper's): arc-use binaries, flow conservation, loop avoidance."""
    B, tick = _Builder(), options.tick
    n, U = inst.adjacency.shape[0], inst.num_tasks
    arcs = [(int(i), int(j)) for i, j in zip(*np.nonzero(inst.adjacency))]
    x, S = {}, {}
    t_coeffs, t_const = [dict() for _ in range(U)], inst.compute_delay.copy()
    uses = {}
    infeasible = False
    for u in range(U):
        src, dst = int(inst.source[u]), int(inst.destination[u])
        if src == dst:
            t_const[u] += inst.access_delay[u]
            infeasible |= bool(enforce[u] and t_const[u] > inst.deadline[u])
            continue
        for a in arcs:
            x[u, a] = B.var(0, 1)
            S[u, a] = B.var(0, int(horizon[u]))
            B.le({S[u, a]: 1.0, x[u, a]: -float(horizon[u])}, 0.0)  # eq. (10)
        for i in range(n):
            out = [a for a in arcs if a[0] == i]
            inn = [a for a in arcs if a[1] == i]
            flow = {x[u, a]: 1.0 for a in out}
            for a in inn:
                flow[x[u, a]] = -1.0
            B.eq(flow, 1.0 if i == src else (-1.0 if i == dst else 0.0))  # eqs. (6)-(8)
            B.le({x[u, a]: 1.0 for a in out}, 1.0)  # eq. (9)
            if i == dst:
                continue
            # eq. (11), with the incoming transmission added to the switching delay (the paper's
            # form omits it, which would let a task leave a node before it has arrived).
            prec = {S[u, a]: 1.0 for a in out}
            if i == src:
                lead0 = _ceil_ticks(inst.access_delay[u] + inst.switch_delay[i], tick)
                B.ge(prec, float(lead0))
            else:
                for a in inn:
                    prec[S[u, a]] = -1.0
                    prec[x[u, a]] = -float(_ceil_ticks(inst.tx(u, *a) + inst.switch_delay[i], tick))
                B.ge(prec, 0.0)
        B.eq({x[u, a]: 1.0 for a in arcs if a[1] == src}, 0.0)
        B.eq({x[u, a]: 1.0 for a in arcs if a[0] == dst}, 0.0)
        for a in arcs:
            if a[1] == dst:
                _add(t_coeffs[u], S[u, a], tick)
                _add(t_coeffs[u], x[u, a], inst.tx(u, *a))
        if enforce[u]:  # eq. (14)
            B.le(dict(t_coeffs[u]), float(inst.deadline[u] - t_const[u]))
        for (i, j) in arcs:
            if i < j:
                uses.setdefault((i, j), []).append(
                    (u, {S[u, (i, j)]: 1.0, S[u, (j, i)]: 1.0}, {x[u, (i, j)]: 1.0, x[u, (j, i)]: 1.0}))

    def decode(values):
        paths, ticks = [], []
        for u in range(U):
            src, dst = int(inst.source[u]), int(inst.destination[u])
            path, t = [src], []
            while path[-1] != dst:
                a = max((a for a in arcs if a[0] == path[-1]), key=lambda a: values[x[u, a]])
                t.append(int(round(values[S[u, a]])))
                path.append(a[1])
            paths.append(path)
            ticks.append(np.asarray(t, np.int64))
        return paths, ticks

    _conflicts(B, inst, uses, horizon, tick)
    return _Model(B, t_coeffs, t_const, decode, infeasible)


def _conflicts(B: _Builder, inst, uses: dict, horizon, tick):
    """Eqs. (12)-(13): tasks sharing a link do not overlap (ordering binary per pair and link).

    ``alpha = 1``: ``p`` goes first. The big-M of each inequality is the start bound of the task
    that would go first plus its transmission (ticks): the least value that relaxes it.
    """
    for (i, j), users in uses.items():
        for a in range(len(users)):
            for b in range(a + 1, len(users)):
                (p, sp_, yp), (q, sq, yq) = users[a], users[b]
                dur_p = _ceil_ticks(inst.packet_size[p] / inst.bandwidth[i, j], tick)
                dur_q = _ceil_ticks(inst.packet_size[q] / inst.bandwidth[i, j], tick)
                m_pq, m_qp = float(horizon[p] + dur_p), float(horizon[q] + dur_q)
                alpha = B.var(0, 1)
                # eq. (12): S_q - S_p >= dur_p - M (3 - alpha - y_p - y_q)
                row = {}
                for c, v in sq.items():
                    _add(row, c, v)
                for c, v in sp_.items():
                    _add(row, c, -v)
                _add(row, alpha, -m_pq)
                for c, v in list(yp.items()) + list(yq.items()):
                    _add(row, c, -m_pq * v)
                B.ge(row, dur_p - 3.0 * m_pq)
                # eq. (13): S_p - S_q >= dur_q - M (2 + alpha - y_p - y_q)
                row = {}
                for c, v in sp_.items():
                    _add(row, c, v)
                for c, v in sq.items():
                    _add(row, c, -v)
                _add(row, alpha, m_qp)
                for c, v in list(yp.items()) + list(yq.items()):
                    _add(row, c, -m_qp * v)
                B.ge(row, dur_q - 2.0 * m_qp)


def build_model(inst: RoutingInstance, options: RoutingOptions, cands=None) -> _Model:
    """Builds the MILP of eqs. (6)-(14) for ``inst`` (objective set per iteration)."""
    cands = candidate_paths(inst, options) if cands is None else cands
    enforce = _deadline_enforced(inst, options)
    horizon = _horizons(inst, cands, options, enforce)
    build = _build_paths if options.formulation == "paths" else _build_edges
    return build(inst, cands, options, enforce, horizon)


def _solve_weighted(model: _Model, weights: np.ndarray, options: RoutingOptions, time_limit: float):
    """Solves ``min sum_u w_u t_sum_u`` s.t. the model; returns ``(status, values or None)``."""
    import cvxpy as cp

    B = model.builder
    n = len(B.lb)
    cost = np.zeros(n)
    for w, coeffs in zip(weights, model.t_sum_coeffs):
        for c, v in coeffs.items():
            cost[c] += w * v
    scale = 1.0 / max(float(np.max(np.abs(cost))), 1e-12)  # keep HiGHS's objective O(1)
    v = cp.Variable(n, integer=True)
    cons = [v >= np.asarray(B.lb, np.float64), v <= np.asarray(B.ub, np.float64)]
    if B.ub_rows:
        cons.append(B._matrix(B.ub_rows, n) @ v <= np.asarray(B.ub_rhs))
    if B.eq_rows:
        cons.append(B._matrix(B.eq_rows, n) @ v == np.asarray(B.eq_rhs))
    problem = cp.Problem(cp.Minimize((cost * scale) @ v), cons)
    try:
        problem.solve(solver=cp.HIGHS, time_limit=float(max(time_limit, 1e-3)), mip_rel_gap=options.mip_rel_gap,
                      threads=1, output_flag=False)
    except (cp.SolverError, ValueError, ArithmeticError):
        return STATUS_ERROR, None
    status = problem.status
    if status == cp.OPTIMAL:
        return STATUS_OPTIMAL, np.asarray(v.value)
    if status in (cp.OPTIMAL_INACCURATE, cp.USER_LIMIT) and v.value is not None:
        return STATUS_SUBOPTIMAL, np.asarray(v.value)
    if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE, "infeasible_or_unbounded"):
        return STATUS_INFEASIBLE, None
    if status == cp.USER_LIMIT:
        return STATUS_TIME_LIMIT, None
    return STATUS_ERROR, None


def _result(inst, paths, ticks, tick, status, history, iterations, start) -> RoutingResult:
    times = [np.asarray(t, np.float64) * tick for t in ticks]
    t_sum = np.array([t_sum_from_starts(inst, u, p, s) for u, (p, s) in enumerate(zip(paths, times))])
    trans = np.array([transmission_delay(inst, u, p) for u, p in enumerate(paths)])
    offset = np.maximum(t_sum - inst.compute_delay - trans, 0.0)
    return RoutingResult(paths, list(ticks), times, t_sum, trans, offset, objective(inst, t_sum), status,
                         history, iterations, time.perf_counter() - start)


def _failure(inst, status, iterations, start) -> RoutingResult:
    u = inst.num_tasks
    nan = np.full(u, np.nan)
    return RoutingResult([], [], [], nan, nan.copy(), nan.copy(), float("nan"), status, [], iterations,
                         time.perf_counter() - start)


def solve_routing(inst: RoutingInstance, options: RoutingOptions = RoutingOptions()) -> RoutingResult:
    """Quadratic-transform loop (eq. 22) over the routing MILP; never raises on solver failure.

    Bad input never reaches it: :class:`RoutingInstance` and :class:`RoutingOptions` refuse it at
    construction (``ValueError``); ``batch_solve`` turns such a slot into ``STATUS_ERROR``.

    Starts from the tick-rounded FIFO schedule on the shortest routes (the ``"shortest"`` mode):
    when it meets the deadlines it is a feasible MILP point, so every iterate is at least as good.
    Each iteration sets ``y_u = sqrt(p eta m_u) / t_sum_u`` and solves ``min sum_u y_u^2 t_sum_u``
    (eq. 22 for fixed ``y``); it stops when eq. (21) improves by less than ``tolerance``
    (relative) or after ``max_iterations`` solves.

    Returns:
        :class:`RoutingResult`; on failure its ``status`` says why and its arrays are NaN.
    """
    start = time.perf_counter()
    try:
        cands = candidate_paths(inst, options)
        model = build_model(inst, options, cands)
    except (ValueError, ArithmeticError):
        return _failure(inst, STATUS_ERROR, 0, start)
    if model.infeasible:
        return _failure(inst, STATUS_INFEASIBLE, 0, start)
    tick = options.tick
    a = inst.unit_price * inst.eta * inst.workload
    fifo_paths = [c[0] for c in cands]
    fifo_times, fifo_t = fifo_schedule(inst, fifo_paths, tick)
    enforce = _deadline_enforced(inst, options)
    best = None
    history = []
    if not np.any(enforce & (fifo_t > inst.deadline + 1e-12)):
        best = (fifo_paths, [np.rint(t / tick).astype(np.int64) for t in fifo_times], STATUS_OPTIMAL)
        history.append(objective(inst, fifo_t))
    t_prev, status_all = fifo_t, STATUS_OPTIMAL
    iterations = 0
    for _ in range(options.max_iterations):
        remaining = options.time_limit - (time.perf_counter() - start)
        if remaining <= 0 and iterations > 0:
            status_all = STATUS_SUBOPTIMAL
            break
        y = np.sqrt(a) / t_prev
        status, values = _solve_weighted(model, y**2, options, remaining if iterations else options.time_limit)
        iterations += 1
        if values is None:
            if best is None:
                return _failure(inst, status, iterations, start)
            status_all = STATUS_SUBOPTIMAL
            break
        paths, ticks = model.decode(values)
        times = [t * tick for t in ticks]
        t_new = np.array([t_sum_from_starts(inst, u, p, s) for u, (p, s) in enumerate(zip(paths, times))])
        f_new = objective(inst, t_new)
        if status != STATUS_OPTIMAL:
            status_all = STATUS_SUBOPTIMAL
        if history and f_new < history[-1] * (1.0 - 1e-12):  # only with a MIP gap or early stop: keep the incumbent
            break
        improved = f_new - history[-1] if history else np.inf
        history.append(f_new)
        best = (paths, ticks, status)
        t_prev = t_new
        if improved <= options.tolerance * abs(f_new):
            break
    paths, ticks, _ = best
    return _result(inst, paths, ticks, tick, status_all, history, iterations, start)


# ----------------------------------------------------------------------- batch (env callback)
def batch_solve(adjacency, bandwidth, switch_delay, source, destination, packet_size, access_bandwidth, deadline,
                workload, compute_delay, unit_price, eta, *, options: RoutingOptions = RoutingOptions()):
    """Solves a batch of slots (leading axis ``B``); picklable, for ``solvers.callbacks``.

    Args:
        adjacency ``(B, N, N)``, bandwidth ``(B, N, N)``, switch_delay ``(B, N)``, source,
        destination, packet_size, access_bandwidth, deadline, workload, compute_delay ``(B, U)``,
        unit_price, eta ``(B,)``: the fields of :class:`RoutingInstance`.

    Returns:
        ``(transmission (B, U) float32, offset (B, U) float32, status (B,) int32)``; NaN delays
        where the status is not ok.
    """
    batch = np.shape(adjacency)[0]
    users = np.shape(source)[1]
    trans = np.full((batch, users), np.nan, np.float32)
    offset = np.full((batch, users), np.nan, np.float32)
    status = np.full((batch,), STATUS_ERROR, np.int32)
    for b in range(batch):
        try:
            inst = RoutingInstance(adjacency[b], bandwidth[b], switch_delay[b], source[b], destination[b],
                                   packet_size[b], access_bandwidth[b], deadline[b], workload[b],
                                   compute_delay[b], unit_price[b], eta[b])
            res = solve_routing(inst, options)
        except Exception:  # noqa: BLE001 - a training loop must never die on one slot's solve
            continue
        status[b] = res.status
        if status_ok(res.status):
            trans[b], offset[b] = res.transmission, res.offset
    return trans, offset, status
