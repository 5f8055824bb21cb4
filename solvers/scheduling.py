"""Per-service task-scheduling QP of TTOSC (eq. 13), in CVXPY and in pure JAX.

Canonical form (DESIGN.md B), for one service in one slot with ``M`` edge servers and the
cloud as node ``M``::

    minimise   sum_m lam_m sum_n pi_{m,n} D_{m,n}  +  sum_n w_n (sum_m lam_m pi_{m,n})^2
    subject to pi_{m,.} in the probability simplex,  pi_{m,n} = 0 where not mask_{m,n}

Args used throughout (names fixed by the project contract):
    lam: (M,) task arrivals of the service at each ES in the slot (tasks).
    D: (M, M + 1) per-task delay that does not depend on the load (s): transfer delay to an ES
        (eq. 4, first term) or transfer plus compute delay at the cloud (eq. 5).
    w: (M + 1,) load coefficient (s per task): ``c_k / F_{n,k}`` for a deployed ES, 0 for the
        cloud and for ESs without the service. The load term is eq. (4)'s compute delay
        ``c_k L_{n,k} / F_{n,k}`` summed over the ``L_{n,k}`` tasks sharing the CPU.
    mask: (M, M + 1) bool, where a task may go (eqs. 2-3); the cloud column must be True.

The objective is the total expected delay (s x tasks) of the service's tasks in the slot.
CVXPY is imported lazily, inside the functions that use it.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_ITERATIONS = 200
"""Cold-start FISTA iterations of ``solve_qp_jax``: 1e-4 relative accuracy on the hardest of the
random instances in tests/test_scheduling.py (100 leave a few at 2e-4; warm starts need fewer)."""


def qp_objective(pi, lam, D, w):
    """Objective of eq. (13): total expected delay of one service's tasks in a slot.

    Args:
        pi: (M, M + 1) schedule (rows on the simplex).
        lam: (M,) arrivals (tasks).
        D: (M, M + 1) load-free per-task delay (s).
        w: (M + 1,) load coefficient (s per task).

    Returns:
        Scalar, seconds x tasks. Broadcasts over leading batch axes; NumPy inputs give NumPy
        float64 output, JAX inputs a JAX array.
    """
    xp = np if all(isinstance(a, (np.ndarray, float, int)) for a in (pi, lam, D, w)) else jnp
    load = xp.einsum("...m,...mn->...n", lam, pi)
    linear = xp.einsum("...m,...mn,...mn->...", lam, pi, D)
    return linear + xp.sum(w * load**2, axis=-1)


# ----------------------------------------------------------------------------- pure JAX


def project_scaled_simplex(v: jax.Array, radius: jax.Array, mask: jax.Array, scale: jax.Array | None = None):
    """Projection of each row onto ``{x >= 0, sum x = radius, x = 0 off mask}``.

    With ``scale`` the projection is in the metric ``sum_n (x_n - v_n)^2 / scale_n``; the
    solution is ``x_n = scale_n max(v_n / scale_n - tau, 0)``. Sort-free: with
    ``a = v / scale`` the threshold is ``tau = max_j (sum_{i: a_i >= a_j} s_i a_i - r) /
    sum_{i: a_i >= a_j} s_i`` over masked ``j`` (each candidate is the root for one top-set
    support, and every such root lies at or below the true one), found with ``O(N^2)``
    pairwise comparisons; for ``N = M + 1 <= 20`` this is several times faster on CPU than
    XLA's sort.

    Args:
        v: (..., N) points.
        radius: (...,) row sums, >= 0.
        mask: (..., N) bool; at least one True per row.
        scale: optional (..., N) positive metric weights (inverse curvature); default 1.

    Returns:
        (..., N) projection, exactly 0 off the mask.
    """
    if scale is None:
        scale = jnp.ones_like(v)
    scale = jnp.broadcast_to(scale, v.shape)
    neg = jnp.asarray(-jnp.inf, v.dtype)
    a = jnp.where(mask, v / scale, neg)
    above = (a[..., None, :] >= a[..., :, None]) & mask[..., None, :]  # [j, i]: a_i >= a_j
    weight = jnp.sum(jnp.where(above, scale[..., None, :], 0.0), axis=-1)
    total = jnp.sum(jnp.where(above, (scale * jnp.where(mask, a, 0.0))[..., None, :], 0.0), axis=-1)
    candidates = jnp.where(mask, (total - radius[..., None]) / jnp.maximum(weight, 1e-30), neg)
    tau = jnp.max(candidates, axis=-1, keepdims=True)
    return jnp.where(mask, scale * jnp.maximum(a - tau, 0.0), 0.0)


def _column_curvature(lam, D, w, mask):
    """Per-column curvature bound ``L_n`` of the objective in flows ``y = lam * pi``.

    The Hessian is block-diagonal over columns with blocks ``2 w_n 11^T`` on the rows that can
    use node ``n``, and ``11^T <= #rows I``, so ``diag(2 w_n #rows_n)`` majorises it: a
    column-scaled (diagonally preconditioned) FISTA step with these weights is a valid
    majorise-minimise step. Linear columns (the cloud, ``w = 0``) get a floor of 1% of the
    largest curvature, or, for an all-linear problem, ``max D / max lam`` (one step then moves
    a whole row).
    """
    active = lam > 0
    rows = jnp.sum(mask & active[:, None], axis=0).astype(w.dtype)
    curvature = 2.0 * w * rows
    largest = jnp.max(curvature)
    linear_floor = jnp.max(jnp.where(mask, D, 0.0)) / jnp.maximum(jnp.max(lam), 1e-6)
    floor = jnp.where(largest > 0, 1e-2 * largest, jnp.maximum(linear_floor, 1e-6))
    return jnp.maximum(curvature, floor)


def solve_qp_jax(lam, D, w, mask, *, num_iterations: int = DEFAULT_ITERATIONS, init=None):
    """Solves eq. (13) by preconditioned FISTA with adaptive restart on flows ``y = lam * pi``.

    Working on flows makes the Hessian independent of the arrivals (blocks ``2 w_n 11^T``), and
    the per-column step ``1 / L_n`` (see ``_column_curvature``) is exact for each column's
    curvature. The projection is the sort-free masked scaled-simplex projection in that metric.
    Rows with no arrivals do not change the objective; they get the best reply of an
    infinitesimal task (all mass on the masked node of least marginal delay
    ``D_{m,n} + 2 w_n load_n``).

    Args:
        lam: (M,) arrivals, >= 0.
        D: (M, M + 1) load-free delay (s).
        w: (M + 1,) load coefficient (s per task), >= 0.
        mask: (M, M + 1) bool feasible nodes; cloud column True.
        num_iterations: static number of FISTA iterations.
        init: optional (M, M + 1) warm start (e.g. the previous slot's schedule).

    Returns:
        pi: (M, M + 1) float32 schedule; rows on the simplex, 0 off the mask.
    """
    lam = jnp.asarray(lam, jnp.float32)
    D = jnp.asarray(D, jnp.float32)
    w = jnp.asarray(w, jnp.float32)
    mask = jnp.asarray(mask, bool)
    active = lam > 0
    if init is None:
        # Start from the cheapest load-free node of each row.
        best = jnp.argmin(jnp.where(mask, D, jnp.inf), axis=-1)
        init = jax.nn.one_hot(best, D.shape[-1], dtype=jnp.float32)
    scale = 1.0 / _column_curvature(lam, D, w, mask)
    y0 = project_scaled_simplex(lam[:, None] * jnp.asarray(init, jnp.float32), lam, mask)

    def body(_, carry):
        y, z, t = carry
        grad = D + 2.0 * w * jnp.sum(z, axis=0)
        y_next = project_scaled_simplex(z - scale * grad, lam, mask, scale)
        # Gradient restart (O'Donoghue & Candes 2015): drop momentum when it points uphill.
        restart = jnp.sum((z - y_next) * (y_next - y)) > 0.0
        t_next = jnp.where(restart, 1.0, 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t)))
        beta = jnp.where(restart, 0.0, (t - 1.0) / t_next)
        return y_next, y_next + beta * (y_next - y), t_next

    y, _, _ = jax.lax.fori_loop(0, num_iterations, body, (y0, y0, jnp.ones((), jnp.float32)), unroll=4)
    load = jnp.sum(y, axis=0)
    reply = jnp.argmin(jnp.where(mask, D + 2.0 * w * load, jnp.inf), axis=-1)
    pi_idle = jax.nn.one_hot(reply, D.shape[-1], dtype=jnp.float32)
    pi = y / jnp.where(active, lam, 1.0)[:, None]
    pi = pi / jnp.maximum(jnp.sum(pi, axis=-1, keepdims=True), 1e-30)
    return jnp.where(active[:, None], pi, pi_idle)


# ----------------------------------------------------------------------------- CVXPY


@functools.lru_cache(maxsize=None)
def _cvxpy_problem(num_servers: int):
    """Builds (once per M) the DPP-parameterised CVXPY problem of eq. (13)."""
    import cvxpy as cp

    m, n = num_servers, num_servers + 1
    pi = cp.Variable((m, n), nonneg=True)
    load = cp.Variable(n)
    lam = cp.Parameter(m, nonneg=True)
    cost = cp.Parameter((m, n), nonneg=True)  # lam_m * D_{m,n}: a product of parameters is not DPP
    sqrt_w = cp.Parameter(n, nonneg=True)
    forbidden = cp.Parameter((m, n), nonneg=True)  # 1 - mask
    objective = cp.sum(cp.multiply(cost, pi)) + cp.sum_squares(cp.multiply(sqrt_w, load))
    constraints = [
        cp.sum(pi, axis=1) == 1,  # eq. (2)
        cp.multiply(forbidden, pi) == 0,  # eq. (3)
        load == pi.T @ lam,
    ]
    problem = cp.Problem(cp.Minimize(objective), constraints)
    if not problem.is_dpp():
        raise RuntimeError("scheduling QP is not DPP; it would recompile on every solve")
    return problem, pi, (lam, cost, sqrt_w, forbidden)


def solve_qp_cvxpy(lam, D, w, mask, *, solver: str = "CLARABEL") -> np.ndarray:
    """Solves eq. (13) with CVXPY (compiled once per ``M``, re-solved with new parameters).

    Args:
        lam: (M,) arrivals, >= 0.
        D: (M, M + 1) load-free delay (s), >= 0.
        w: (M + 1,) load coefficient (s per task), >= 0.
        mask: (M, M + 1) bool feasible nodes; the cloud column must be True.
        solver: CVXPY solver name.

    Returns:
        pi: (M, M + 1) float64 schedule, clipped to the mask and renormalised.

    Raises:
        ValueError: on bad shapes, negative inputs or a row with no feasible node.
        RuntimeError: when the solver does not report an optimal solution.
    """
    lam = np.asarray(lam, np.float64)
    D = np.asarray(D, np.float64)
    w = np.asarray(w, np.float64)
    mask = np.asarray(mask, bool)
    m = lam.shape[0]
    if lam.ndim != 1 or D.shape != (m, m + 1) or w.shape != (m + 1,) or mask.shape != (m, m + 1):
        raise ValueError(f"solve_qp_cvxpy: shapes lam={lam.shape}, D={D.shape}, w={w.shape}, mask={mask.shape}; "
                         f"expected (M,), (M, M+1), (M+1,), (M, M+1)")
    if (lam < 0).any() or (D < 0).any() or (w < 0).any():
        raise ValueError("solve_qp_cvxpy: lam, D and w must be >= 0")
    if not mask.any(axis=1).all():
        raise ValueError("solve_qp_cvxpy: every row of mask needs a feasible node (the cloud column)")
    problem, pi, (p_lam, p_cost, p_sqrt_w, p_forbidden) = _cvxpy_problem(m)
    p_lam.value = lam
    p_cost.value = lam[:, None] * D
    p_sqrt_w.value = np.sqrt(w)
    p_forbidden.value = (~mask).astype(np.float64)
    problem.solve(solver=solver)
    if problem.status not in ("optimal", "optimal_inaccurate") or pi.value is None:
        raise RuntimeError(f"solve_qp_cvxpy: solver status {problem.status!r}")
    out = np.where(mask, np.maximum(pi.value, 0.0), 0.0)
    return out / out.sum(axis=1, keepdims=True)


def solve_qp_cvxpy_batch(lam, D, w, mask) -> np.ndarray:
    """``solve_qp_cvxpy`` over a leading batch axis (a picklable batch solver for callbacks).

    Args:
        lam: (B, M); D: (B, M, M + 1); w: (B, M + 1); mask: (B, M, M + 1).

    Returns:
        (B, M, M + 1) float32 schedules.
    """
    out = [solve_qp_cvxpy(*args) for args in zip(lam, D, w, mask)]
    m = np.shape(lam)[-1]
    return np.asarray(out, np.float32).reshape(len(out), m, m + 1)


def cvxpy_scheduler(*, processes: int | None = None) -> Any:
    """Traceable ``(lam, D, w, mask) -> pi`` that runs ``solve_qp_cvxpy`` on the host.

    Goes through ``solvers.callbacks.batched_callback``: under ``vmap`` one host call receives
    the whole batch, fanned out over ``processes`` worker processes when it is large.
    """
    from solvers.callbacks import batched_callback

    def solve(lam, D, w, mask):
        m = lam.shape[-1]
        call = batched_callback(solve_qp_cvxpy_batch, jax.ShapeDtypeStruct((m, m + 1), jnp.float32),
                                processes=processes)
        return call(lam, D, w, mask)

    return solve
