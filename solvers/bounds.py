"""Convex relaxation of TTOSC's frame problem (deployment and scheduling, eqs. 1-13): a lower bound on delay.

NumPy in, NumPy out; CVXPY is imported inside the function. The system-level wrapper that
builds the inputs from an instance is ``agents.ttosc.bounds.frame_delay_lower_bound``, where
the proof that this is a lower bound is written out.

Notation (DESIGN.md B): ``L`` slots, ``M`` ESs, ``K`` services, node ``n`` in ``0 .. M`` with the
cloud ``M``. Variables: a continuous deployment ``x in [0, 1]^(M x K)`` shared by the frame's
slots, and task flows ``f[l, m, k, n] >= 0`` (tasks of service ``k`` arriving at ES ``m`` in
slot ``l`` sent to node ``n``; the schedule is ``pi = f / lam``). The program::

    minimise   sum_l weight_l [ sum_{m,k,n} D[m,k,n] f[l,m,k,n]
                                + sum_{n < M} (sum_k sqrt(c_k) load[l,n,k])^2 / F_n ]
    subject to sum_n f[l,m,k,n] = lam[l,m,k]
               f[l,m,k,n] <= lam[l,m,k] x[n,k]                      (n < M)
               sum_k s_k x[n,k] <= S_n,   x[n,k] = 0 where s_k > S_n,   0 <= x <= 1

with ``load[l,n,k] = sum_m f[l,m,k,n]``.
"""

from __future__ import annotations

import numpy as np


def _frame_inputs(caller, arrivals, base_delay, task_cycles, es_cpu, service_size, storage_capacity, slot_weight):
    """The frame problem's inputs as float64 arrays, shapes and signs checked (``ValueError`` naming ``caller``)."""
    lam = np.asarray(arrivals, np.float64)
    D = np.asarray(base_delay, np.float64)
    cycles = np.asarray(task_cycles, np.float64)
    cpu = np.asarray(es_cpu, np.float64)
    size = np.asarray(service_size, np.float64)
    capacity = np.asarray(storage_capacity, np.float64)
    weight = np.asarray(slot_weight, np.float64)
    if lam.ndim != 3:
        raise ValueError(f"{caller}: arrivals must be (L, M, K), got shape {lam.shape}")
    slots, m, k = lam.shape
    expected = {"base_delay": (D, (m, k, m + 1)), "task_cycles": (cycles, (k,)), "es_cpu": (cpu, (m,)),
                "service_size": (size, (k,)), "storage_capacity": (capacity, (m,)), "slot_weight": (weight, (slots,))}
    for name, (value, shape) in expected.items():
        if value.shape != shape:
            raise ValueError(f"{caller}: {name} has shape {value.shape}, expected {shape}")
    for name, value in (("arrivals", lam), ("base_delay", D), ("slot_weight", weight)):
        if not np.all(np.isfinite(value)) or np.any(value < 0):
            raise ValueError(f"{caller}: {name} must be finite and >= 0")
    if np.any(cycles <= 0) or np.any(cpu <= 0):
        raise ValueError(f"{caller}: task_cycles and es_cpu must be > 0")
    return lam, D, cycles, cpu, size, capacity, weight


def frame_relaxation(arrivals, base_delay, task_cycles, es_cpu, service_size, storage_capacity, slot_weight,
                     *, solver: str = "CLARABEL") -> tuple[float, np.ndarray]:
    """Solves the frame's convex relaxation (module docstring) with CVXPY.

    Args:
        arrivals: (L, M, K) tasks ``lam``, >= 0.
        base_delay: (M, K, M + 1) load-free per-task delay ``D`` (s), >= 0 (``jaxcpn.mec.model.base_delay``).
        task_cycles: (K,) Gcycles ``c_k`` > 0.
        es_cpu: (M,) GHz ``F_n`` > 0.
        service_size: (K,) storage units ``s_k``.
        storage_capacity: (M,) storage units ``S_n``.
        slot_weight: (L,) non-negative weight of each slot's total delay (s x tasks).
        solver: CVXPY solver (a conic solver that reports the optimal value).

    Returns:
        ``(value, x)``: the optimal value (a lower bound on ``sum_l weight_l total_l`` for every
        integer deployment and schedule, up to the solver's tolerance) and the relaxed
        deployment ``(M, K)``.

    Raises:
        ValueError: on bad shapes or negative/non-finite inputs.
        RuntimeError: when the solver does not report an optimum.
    """
    import cvxpy as cp
    import scipy.sparse as sp

    lam, D, cycles, cpu, size, capacity, weight = _frame_inputs(
        "frame_relaxation", arrivals, base_delay, task_cycles, es_cpu, service_size, storage_capacity, slot_weight)
    slots, m, k = lam.shape
    # One row of flows per (l, m, k) with tasks: a row without tasks has f = 0 (its flows sum to
    # lam = 0 and are >= 0), adds nothing to the objective, and its linking rows are 0 <= 0, so
    # leaving it out changes neither the optimum nor x's feasible set (and shrinks the conic
    # program by the share of empty rows, most of them at the paper's sizes).
    index = np.argwhere(lam > 0)  # (R, 3) of (l, m, k)
    rows = len(index)
    x = cp.Variable((m, k), nonneg=True)
    fits = size[None, :] <= capacity[:, None]
    deployment = [x <= fits.astype(np.float64), x @ size <= capacity]
    if rows == 0:  # no tasks: every feasible x is optimal, at 0
        return 0.0, np.zeros((m, k), np.float64)
    lam_rows = lam[index[:, 0], index[:, 1], index[:, 2]]
    flow = cp.Variable((rows, m + 1), nonneg=True)
    # (E @ x.T)[row, n] = x[n, k]: the deployment seen by each row's service.
    service_of_row = index[:, 2]

    select = sp.csr_matrix((np.ones(rows), (np.arange(rows), service_of_row)), shape=(rows, k))
    # (G @ flow)[l, n] = sum_{m,k} sqrt(c_k) f[l, m, k, n]: the Cauchy-Schwarz aggregate of ES n's loads.
    slot_of_row = index[:, 0]
    aggregate = sp.csr_matrix((np.sqrt(cycles)[service_of_row], (slot_of_row, np.arange(rows))), shape=(slots, rows))
    row_weight = weight[slot_of_row]
    row_delay = D[index[:, 1], index[:, 2], :]  # D[m, k, :] of row (l, m, k)
    linear = cp.sum(cp.multiply(row_weight[:, None] * row_delay, flow))
    quad_coef = weight[:, None] / cpu[None, :]  # (L, M)
    quadratic = cp.sum(cp.multiply(quad_coef, cp.square(aggregate @ flow[:, :m])))
    constraints = [
        cp.sum(flow, axis=1) == lam_rows,
        flow[:, :m] <= cp.multiply(lam_rows[:, None], select @ x.T),
        *deployment,
    ]
    problem = cp.Problem(cp.Minimize(linear + quadratic), constraints)
    problem.solve(solver=solver)
    if problem.status != cp.OPTIMAL or problem.value is None:
        raise RuntimeError(f"frame_relaxation: solver status {problem.status!r}")
    return float(problem.value), np.asarray(x.value, np.float64)


def frame_relaxation_value(inputs: tuple) -> float:
    """``frame_relaxation(*inputs)``'s optimal value: one picklable call per frame for a process pool
    (this module imports only NumPy, so a spawned worker starts without JAX)."""
    return frame_relaxation(*inputs)[0]


def frame_milp_bound(arrivals, base_delay, task_cycles, es_cpu, service_size, storage_capacity, slot_weight,
                     *, num_tangents: int = 8, rounds: int = 4, time_limit: float = 30.0,
                     mip_rel_gap: float = 1e-4) -> tuple[float, np.ndarray | None]:
    """The same relaxation with an integer deployment, as a MILP over tangent cuts (HiGHS through SciPy).

    Keeps ``x`` binary (the only relaxation left is Cauchy-Schwarz in the compute term) and
    replaces each convex term ``g(a) = a^2 / F_n`` (``a = sum_k sqrt(c_k) load[l, n, k]``) by an
    epigraph variable ``e >= g(a0) + g'(a0) (a - a0)`` for tangent points ``a0``: tangents of a
    convex function lie below it, so every MILP over any set of them is a relaxation of the
    integer program, and its dual bound (HiGHS's ``mip_dual_bound``, valid also when the time
    limit stops the search) is a lower bound. Tangents start on a grid of ``num_tangents`` points
    per ``(l, n)`` over ``[0, the slot's whole demand]``; each of ``rounds`` rounds adds the tangent
    at the MILP solution's own ``a`` (Kelley's cutting planes). The best dual bound is returned.

    Args:
        As :func:`frame_relaxation`, plus the cut settings, a time limit per MILP solve (s) and the
        relative MIP gap at which HiGHS stops.

    Returns:
        ``(bound, x)``: the lower bound on ``sum_l weight_l total_l`` and the last MILP's
        deployment ``(M, K)`` bool (None if HiGHS found none).

    Raises:
        RuntimeError: when HiGHS reports neither a solution nor a dual bound.
    """
    import scipy.sparse as sp
    from scipy.optimize import Bounds, LinearConstraint, milp

    lam, D, cycles, cpu, size, capacity, weight = _frame_inputs(
        "frame_milp_bound", arrivals, base_delay, task_cycles, es_cpu, service_size, storage_capacity, slot_weight)
    slots, m, k = lam.shape
    n = m + 1
    rows = np.argwhere(lam > 0)  # (R, 3): (l, m, k) of the rows with tasks; the others carry nothing
    r = len(rows)
    lam_rows = lam[rows[:, 0], rows[:, 1], rows[:, 2]]
    num_flow, num_x, num_e = r * n, m * k, slots * m
    flow_at = lambda i, node: i * n + node  # noqa: E731
    x_at = lambda es, service: num_flow + es * k + service  # noqa: E731
    e_at = lambda slot, es: num_flow + num_x + slot * m + es  # noqa: E731
    total = num_flow + num_x + num_e

    cost = np.zeros(total)
    cost[:num_flow] = (weight[rows[:, 0], None] * D[rows[:, 1], rows[:, 2], :]).reshape(-1)
    cost[num_flow + num_x:] = (weight[:, None] / cpu[None, :]).reshape(-1)
    fits = size[None, :] <= capacity[:, None]
    lower, upper = np.zeros(total), np.full(total, np.inf)
    upper[num_flow:num_flow + num_x] = fits.reshape(-1).astype(np.float64)
    integrality = np.zeros(total)
    integrality[num_flow:num_flow + num_x] = 1

    def matrix(entries, shape):
        """CSR matrix of ``(value, row, column)`` entries."""
        data, i, j = (np.asarray(v) for v in zip(*entries))
        return sp.csr_matrix((data.astype(np.float64), (i.astype(np.int64), j.astype(np.int64))), shape=shape)

    # Equalities: sum_n f = lam. Linking: f[., es] - lam x[es, k] <= 0. Storage: sum_k s_k x <= S.
    eq = [(1.0, i, flow_at(i, node)) for i in range(r) for node in range(n)]
    link = [e for i in range(r) for es in range(m)
            for e in ((1.0, i * m + es, flow_at(i, es)), (-lam_rows[i], i * m + es, x_at(es, rows[i, 2])))]
    store = [(size[s], es, x_at(es, s)) for es in range(m) for s in range(k)]
    fixed = [LinearConstraint(matrix(eq, (r, total)), lam_rows, lam_rows),
             LinearConstraint(matrix(link, (r * m, total)), -np.inf, 0.0),
             LinearConstraint(matrix(store, (m, total)), -np.inf, capacity)]
    sqrt_c = np.sqrt(cycles)
    whole = np.array([np.sum(sqrt_c[rows[rows[:, 0] == slot, 2]] * lam_rows[rows[:, 0] == slot]) for slot in range(slots)])

    def aggregate(values):
        """(L, M) ``a`` of a solution's flows."""
        flow = values[:num_flow].reshape(r, n)
        out = np.zeros((slots, m))
        np.add.at(out, rows[:, 0], sqrt_c[rows[:, 2], None] * flow[:, :m])
        return out

    tangents = [(slot, es, point) for slot in range(slots) for es in range(m)
                for point in np.linspace(0.0, whole[slot], num_tangents)]
    best, deployment = -np.inf, None
    for _ in range(rounds + 1):
        # e >= (2 a0 a - a0^2) / F  <=>  2 a0 a - F e <= a0^2  (e carries the 1 / F in its cost: e = a^2 here)
        cut = []
        for c, (slot, es, point) in enumerate(tangents):
            cut.append((-1.0, c, e_at(slot, es)))
            for i in np.flatnonzero(rows[:, 0] == slot):
                cut.append((2.0 * point * sqrt_c[rows[i, 2]], c, flow_at(i, es)))
        cuts = LinearConstraint(matrix(cut, (len(tangents), total)), -np.inf,
                                np.array([p * p for _, _, p in tangents]))
        result = milp(cost, integrality=integrality, bounds=Bounds(lower, upper), constraints=fixed + [cuts],
                      options={"time_limit": float(time_limit), "mip_rel_gap": float(mip_rel_gap)})
        dual = getattr(result, "mip_dual_bound", None)
        if dual is None or not np.isfinite(dual):
            if result.x is None:
                raise RuntimeError(f"frame_milp_bound: HiGHS status {result.status}: {result.message}")
            dual = result.fun if result.status == 0 else -np.inf
        best = max(best, float(dual))
        if result.x is None:
            break
        deployment = result.x[num_flow:num_flow + num_x].reshape(m, k) > 0.5
        a = aggregate(result.x)
        epi = result.x[num_flow + num_x:].reshape(slots, m)
        short = np.argwhere(epi < a * a * (1 - 1e-6) - 1e-9)
        if len(short) == 0:
            break
        tangents += [(slot, es, a[slot, es]) for slot, es in short]
    return best, deployment
