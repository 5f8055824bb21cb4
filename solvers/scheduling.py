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
``solve_qp_jax`` is a primal-dual interior-point method with a per-QP optimality certificate
(docs/model.md, "Scheduling QP solver"); CVXPY is imported lazily, inside the functions that
use it.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap

DEFAULT_ITERATIONS = 30
"""Most interior-point iterations of ``solve_qp_jax``. A block of QPs stops as soon as every QP
in it has stopped; on the env's and the tests' instances that takes 4-12 iterations."""

GAP_TOLERANCE = 2e-5
"""Relative optimality certificate at which a QP stops: Frank-Wolfe gap <= tolerance x objective,
an upper bound on the relative distance to the optimal objective (float32 reaches about 5e-6)."""

BLOCK_SIZE = 256
"""QPs solved together, batch axis last. Larger blocks leave the CPU caches, smaller ones pay
XLA:CPU's per-operation overhead (256 is the fastest measured on the project's 2-core CPU)."""

_BOUNDARY_FRACTION = 0.995  # fraction of the step to the boundary of x >= 0, z >= 0
_FLOOR = 1e-12  # smallest x and z kept (scaled units): 1 / x stays finite in float32
_PIVOT = 1e-6  # relative floor of the Cholesky pivots (degenerate QPs make S singular)
_ABSOLUTE_GAP = 1e-9  # certificate floor (scaled units) for QPs whose optimum is 0
_EXHAUSTED = 1e-10  # complementarity, relative to the objective, below which float32 steps are noise
_STALL = 2.0  # stop when the certificate grows to this multiple of its best value


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
#
# Arrays inside a block are batch-minor: (M, N, B), (M, B), (N, B), (B,) with N = M + 1, so that
# every operation is a vector operation over the B QPs of the block. Sums over the M or N axis
# are products with constant 0/1 matrices: XLA:CPU lowers a reduction over an axis of size 5 or
# 6 whose operands are broadcast to a slow library kernel (10x), a small matrix product to a
# fast one.


def _sum_matrix(m: int, n: int, over: str) -> jax.Array:
    """Constant (rows, M * N) 0/1 matrix that sums a flattened (M, N, ...) array over ``over``."""
    if over == "nodes":
        matrix = np.kron(np.eye(m), np.ones((1, n)))
    elif over == "rows":
        matrix = np.kron(np.ones((1, m)), np.eye(n))
    else:
        matrix = np.ones((1, m * n))
    return jnp.asarray(matrix, jnp.float32)


def _sum(x: jax.Array, over: str) -> jax.Array:
    """Sum of (M, N, B) ``x`` over ``"nodes"`` -> (M, B), ``"rows"`` -> (N, B) or ``"all"`` -> (B,)."""
    m, n = x.shape[:2]
    total = jnp.dot(_sum_matrix(m, n, over), x.reshape((m * n,) + x.shape[2:]),
                    precision=jax.lax.Precision.HIGHEST)
    return total[0] if over == "all" else total


def _cholesky(S):
    """Unrolled Cholesky factor of a symmetric positive semi-definite M x M matrix of (B,) lanes.

    Args:
        S: nested list, ``S[i][j]`` for ``j <= i``, each (B,).

    Returns:
        ``(L, inverse_diagonal)``: ``L[i][j]`` for ``j < i`` and ``1 / L[i][i]``. Pivots are
        floored at ``_PIVOT`` x the diagonal entry, so a singular S (several optimal splits of
        the same loads) gives a finite factor of a slightly regularised matrix.
    """
    m = len(S)
    L = [[None] * m for _ in range(m)]
    inverse_diagonal = [None] * m
    for j in range(m):
        pivot = S[j][j] - sum(L[j][k] * L[j][k] for k in range(j)) if j else S[j][j]
        inverse_diagonal[j] = jax.lax.rsqrt(jnp.maximum(pivot, _PIVOT * S[j][j] + 1e-30))
        for i in range(j + 1, m):
            off = S[i][j] - sum(L[i][k] * L[j][k] for k in range(j)) if j else S[i][j]
            L[i][j] = off * inverse_diagonal[j]
    return L, inverse_diagonal


def _cholesky_solve(factor, b: jax.Array) -> jax.Array:
    """Solves ``S u = b`` for (M, B) ``b`` with ``_cholesky``'s factor; returns (M, B)."""
    L, inverse_diagonal = factor
    m = len(L)
    y = [None] * m
    for i in range(m):
        y[i] = (b[i] - sum(L[i][k] * y[k] for k in range(i)) if i else b[i]) * inverse_diagonal[i]
    u = [None] * m
    for i in reversed(range(m)):
        u[i] = (y[i] - sum(L[k][i] * u[k] for k in range(i + 1, m)) if i < m - 1 else y[i]) * inverse_diagonal[i]
    return jnp.stack(u)


def _water_filling(lam, D, w, allowed):
    """Each row's exact schedule if it were the only row with arrivals (batch-minor).

    Alone, row m minimises ``sum_n (lam D_n y_n / lam + w_n y_n^2)`` over flows ``y >= 0``,
    ``sum y = lam``: the marginal delay ``D_n + 2 w_n y_n`` equals a level ``t`` on the nodes
    used. With ``s_n = 1 / (2 w_n)`` on the load-dependent nodes, ``t`` is the least of the
    candidate levels ``(lam + sum_{D_i <= D_j} s_i D_i) / sum_{D_i <= D_j} s_i`` over those nodes
    (each is the level of one support and none lies below the true one) and of the delay of the
    cheapest load-free node (the cloud), which takes the rest. Sort-free: pairwise comparisons
    over the N nodes.

    Args:
        lam: (M, B). D: (M, N, B). w: (N, B). allowed: (M, N, B) bool.

    Returns:
        (M, N, B) schedules, rows on the simplex for rows with arrivals.
    """
    n = D.shape[1]
    quadratic = allowed & (w[None] > 0)
    linear = allowed & (w[None] <= 0)
    s = jnp.where(quadratic, 0.5 / jnp.where(quadratic, w[None], 1.0), 0.0)
    weight, weighted_delay = jnp.zeros_like(D), jnp.zeros_like(D)
    for i in range(n):  # add node i to the candidate of every node j at or above it
        below = D[:, i:i + 1] <= D
        weight = weight + jnp.where(below, s[:, i:i + 1], 0.0)
        weighted_delay = weighted_delay + jnp.where(below, (s * D)[:, i:i + 1], 0.0)
    levels = jnp.where(quadratic, (lam[:, None] + weighted_delay) / jnp.maximum(weight, 1e-30), jnp.inf)
    cloud = jnp.min(jnp.where(linear, D, jnp.inf), axis=1)
    level = jnp.minimum(jnp.min(levels, axis=1), cloud)  # (M, B)
    flow = jnp.where(quadratic, s * jnp.maximum(level[:, None] - D, 0.0), 0.0)
    rest = jnp.maximum(lam - _sum(flow, "nodes"), 0.0)
    cheapest = (linear & (D <= cloud[:, None])).astype(jnp.float32)
    flow = flow + cheapest * (rest / jnp.maximum(_sum(cheapest, "nodes"), 1.0))[:, None]
    return flow / jnp.where(lam > 0, lam, 1.0)[:, None]


class _Iterate(NamedTuple):
    """Carry of the interior-point loop over one block (shapes batch-minor, B QPs)."""

    iteration: jax.Array  # () int32
    x: jax.Array  # (M, N, B) primal point, rows on the simplex
    z: jax.Array  # (M, N, B) multipliers of x >= 0
    nu: jax.Array  # (M, B) multipliers of the row sums
    mu: jax.Array  # (B,) mean complementarity x . z
    best: jax.Array  # (M, N, B) best schedule so far (lowest objective)
    best_objective: jax.Array  # (B,)
    best_gap: jax.Array  # (B,) smallest certificate so far
    done: jax.Array  # (B,) bool


def _interior_point_block(lam, D, w, mask, init, num_iterations: int, tolerance: float):
    """Solves B instances of eq. (13) at once by a primal-dual interior-point method.

    Variables ``x = pi`` on the rows with arrivals (rows without arrivals do not change the
    objective and get the best reply of an infinitesimal task at the end). In units scaled by
    ``s = max(max lam D, max w (sum lam)^2)`` the QP is ``min c.x + 1/2 sum_n q_n (a.x_n)^2``,
    ``c = lam D / s``, ``q = 2 w / s``, ``a = lam``, subject to ``sum_n x_{m,n} = 1`` and
    ``x >= 0`` on the mask. Each iteration is a Mehrotra predictor-corrector step. Its Newton
    system ``(H + Z/X) dx - A' dnu = r``, ``A dx = r_p`` is block diagonal over columns (each
    block ``diag(z/x) + q_n a a'``, inverted by Sherman-Morrison) and reduces to an M x M
    Schur complement ``S = A K^-1 A'`` over the row multipliers, whose diagonal is formed without
    cancellation and which is factorised by an unrolled Cholesky.

    Every iterate is renormalised to a feasible schedule ``p`` and certified by its Frank-Wolfe
    gap ``grad.p - sum_m min_n grad_{m,n} >= f(p) - f*`` (convexity). A QP stops when the gap is
    at most ``tolerance`` x its objective, when the gap has grown to ``_STALL`` x its best value
    or the complementarity is exhausted (float32 round-off then dominates the Newton steps), or
    on a non-finite step; the block stops when all its QPs have. The lowest-objective iterate is
    returned, so a bad late step never reaches the caller.

    Args:
        lam: (M, B) arrivals, >= 0. D: (M, N, B). w: (N, B). mask: (M, N, B) bool.
        init: (M, N, B) candidate schedules (zeros: none); one that is feasible on the mask
            starts as the best point, and stops its QP at once if already certified.
        num_iterations: static cap on the iterations of the block.
        tolerance: static relative certificate.

    Returns:
        (M, N, B) float32 schedules: rows on the simplex, 0 off the mask.
    """
    m, n, _ = D.shape
    active = lam > 0  # (M, B)
    allowed = mask & active[:, None, :]
    allowed_f = allowed.astype(jnp.float32)
    cost = lam[:, None] * D
    scale = jnp.maximum(jnp.max(jnp.where(allowed, cost, 0.0), axis=(0, 1)), jnp.max(w, 0) * jnp.sum(lam, 0) ** 2)
    scale = jnp.maximum(scale, 1e-30)
    c = jnp.where(allowed, cost / scale, 0.0)
    q = 2.0 * w / scale
    a = lam[:, None]  # (M, 1, B)
    num_variables = _sum(allowed_f, "all")
    inverse_count = 1.0 / jnp.maximum(num_variables, 1.0)

    def gradient(x):
        return c + a * (q * _sum(a * x, "rows"))[None]

    def normalise(x):
        return x / jnp.maximum(_sum(x, "nodes")[:, None], 1e-30)

    def certify(p):
        """Objective and Frank-Wolfe gap of feasible schedules ``p``, both (B,)."""
        g = gradient(p)
        objective = 0.5 * _sum((g + c) * p, "all")
        least = jnp.where(active, jnp.min(jnp.where(allowed, g, jnp.inf), axis=1), 0.0)
        return objective, _sum(g * p, "all") - jnp.sum(least, 0)

    x0 = allowed_f / jnp.maximum(_sum(allowed_f, "nodes")[:, None], 1.0)
    f0, gap0 = certify(x0)
    g0 = gradient(x0)
    nu0 = jnp.where(active, jnp.min(jnp.where(allowed, g0, jnp.inf), axis=1) - 1.0, 0.0)
    z0 = jnp.where(allowed, g0 - nu0[:, None], 0.0)

    def certified(objective, gap):
        return gap <= tolerance * jnp.abs(objective) + _ABSOLUTE_GAP

    # Starting candidates besides x0: the caller's init (when it is a schedule on the mask) and
    # the rows' water-filling solutions, exact when at most one row has arrivals.
    best, best_objective, done = x0, f0, (num_variables == 0) | certified(f0, gap0)
    for candidate in (init, _water_filling(lam, D, w, allowed)):
        candidate = jnp.where(allowed, jnp.maximum(candidate, 0.0), 0.0)
        usable = jnp.all(~active | (_sum(candidate, "nodes") > 0), axis=0)
        candidate = normalise(candidate)
        objective, gap = certify(candidate)
        objective = jnp.where(usable, objective, jnp.inf)
        best = jnp.where(objective < best_objective, candidate, best)
        best_objective = jnp.minimum(objective, best_objective)
        done = done | (usable & certified(objective, gap))
    start = _Iterate(iteration=jnp.zeros((), jnp.int32), x=x0, z=z0, nu=nu0, mu=_sum(x0 * z0, "all") * inverse_count,
                     best=best, best_objective=best_objective, best_gap=gap0, done=done)

    def step(s: _Iterate) -> _Iterate:
        x, z, nu = s.x, s.z, s.nu
        dual_residual = jnp.where(allowed, gradient(x) - nu[:, None] - z, 0.0)
        primal_residual = jnp.where(active, _sum(x, "nodes") - 1.0, 0.0)
        xz = x * z
        inverse_x = jnp.where(allowed, 1.0 / jnp.where(allowed, x, 1.0), 0.0)
        x_over_z = jnp.where(allowed, x / jnp.where(allowed, z, 1.0), 0.0)  # K^-1 without the rank-one term
        z_over_x = z * inverse_x
        g = a * x_over_z
        column = _sum(a * g, "rows")  # (N, B)
        total = 1.0 + q * column
        beta = q / total  # Sherman-Morrison weight of each column
        others = 1.0 + q[None] * jnp.maximum(column[None] - a * g, 0.0)
        diagonal = jnp.where(active, _sum(x_over_z * others / total[None], "nodes"), 1.0)
        weighted = beta[None] * g
        S = [[None] * m for _ in range(m)]
        for i in range(m):
            S[i][i] = diagonal[i]
            for j in range(i):
                S[i][j] = -jnp.sum(weighted[i] * g[j], axis=0)
        factor = _cholesky(S)

        def apply_k_inverse(v):
            return x_over_z * v - g * (beta * _sum(g * v, "rows"))[None]

        def direction(complementarity):
            scaled = complementarity * inverse_x
            k1 = apply_k_inverse(scaled - dual_residual)
            dnu = _cholesky_solve(factor, -primal_residual - _sum(k1, "nodes"))
            dx = k1 + apply_k_inverse(jnp.broadcast_to(dnu[:, None], x.shape))
            dz = jnp.where(allowed, scaled - z_over_x * dx, 0.0)
            return dx, dz, dnu

        def step_to_boundary(dx, dz):
            to_x = jnp.where(allowed & (dx < 0), -x / jnp.where(dx < 0, dx, -1.0), 1.0)
            to_z = jnp.where(allowed & (dz < 0), -z / jnp.where(dz < 0, dz, -1.0), 1.0)
            return jnp.min(jnp.minimum(to_x, to_z).reshape((m * n,) + x.shape[2:]), axis=0)

        dx_aff, dz_aff, _ = direction(-xz)
        alpha_aff = step_to_boundary(dx_aff, dz_aff)
        # mean complementarity after the affine step, expanded so that alpha_aff is not broadcast
        # back over (M, N, B) right after its reduction (a slow XLA:CPU fusion)
        mu_aff = (s.mu / inverse_count + alpha_aff * _sum(x * dz_aff + z * dx_aff, "all")
                  + alpha_aff**2 * _sum(dx_aff * dz_aff, "all")) * inverse_count
        sigma = jnp.clip(mu_aff / jnp.maximum(s.mu, 1e-30), 0.0, 1.0) ** 3
        dx, dz, dnu = direction(jnp.where(allowed, sigma * s.mu - xz - dx_aff * dz_aff, 0.0))
        alpha = _BOUNDARY_FRACTION * step_to_boundary(dx, dz)
        p = normalise(jnp.where(allowed, jnp.maximum(x + alpha * dx, _FLOOR), 0.0))
        z_new = jnp.where(allowed, jnp.maximum(z + alpha * dz, _FLOOR), 0.0)
        objective, gap = certify(p)
        mu = _sum(p * z_new, "all") * inverse_count
        finite = jnp.isfinite(objective) & jnp.isfinite(gap) & jnp.isfinite(mu)
        take = ~s.done & finite
        better = take & (objective < s.best_objective)
        done = (s.done | ~finite | certified(objective, gap) | (gap > _STALL * s.best_gap)
                | (mu <= _EXHAUSTED * (jnp.abs(objective) + 1e-6)))
        keep = lambda new, old: jnp.where(take, new, old)  # noqa: E731
        return _Iterate(s.iteration + 1, keep(p, x), keep(z_new, z), keep(nu + alpha * dnu, nu), keep(mu, s.mu),
                        jnp.where(better, p, s.best), jnp.where(better, objective, s.best_objective),
                        jnp.where(take, jnp.minimum(gap, s.best_gap), s.best_gap), done)

    final = jax.lax.while_loop(lambda s: (s.iteration < num_iterations) & ~jnp.all(s.done), step, start)
    pi = final.best
    # Rows without arrivals: the nodes of least marginal delay D + 2 w load (ties share equally).
    marginal = jnp.where(mask, D + 2.0 * w[None] * _sum(a * pi, "rows")[None], jnp.inf)
    ties = (marginal <= jnp.min(marginal, axis=1, keepdims=True)).astype(jnp.float32)
    reply = ties / jnp.maximum(_sum(ties, "nodes")[:, None], 1.0)
    return jnp.where(active[:, None], pi, reply)


def _solve_batch(lam, D, w, mask, init, num_iterations: int, tolerance: float):
    """``_interior_point_block`` over a leading batch axis, in blocks of ``BLOCK_SIZE``, the QPs
    that need no iteration first.

    Args:
        lam: (B, M); D: (B, M, N); w: (B, N); mask: (B, M, N) bool; init: (B, M, N).

    Returns:
        (B, M, N) float32 schedules.
    """
    batch = lam.shape[0]
    blocks = max(1, -(-batch // BLOCK_SIZE))
    size = batch if blocks == 1 else BLOCK_SIZE
    pad = blocks * size - batch
    if blocks > 1:
        # QPs that need no iteration (at most one row with arrivals, or one node per such row)
        # first, so that whole blocks of them skip the loop: a block costs its slowest QP.
        active = lam > 0
        easy = (jnp.sum(active, -1) <= 1) | jnp.all(~active | (jnp.sum(mask, -1) <= 1), -1)
        order = jnp.argsort(~easy, stable=True)
        lam, D, w, mask, init = (x[order] for x in (lam, D, w, mask, init))

    def to_blocks(x):  # (B, ...) -> (blocks, ..., size), zero-padded (a padded QP has no arrivals)
        if pad:
            x = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)])
        return jnp.moveaxis(x.reshape((blocks, size) + x.shape[1:]), 1, -1)

    def solve_block(args):
        return _interior_point_block(*args, num_iterations=num_iterations, tolerance=tolerance)

    args = tuple(to_blocks(x) for x in (lam, D, w, mask, init))
    out = solve_block(tuple(x[0] for x in args))[None] if blocks == 1 else jax.lax.map(solve_block, args)
    out = jnp.moveaxis(out, -1, 1).reshape((blocks * size,) + out.shape[1:-1])[:batch]
    return out if blocks == 1 else jnp.zeros_like(out).at[order].set(out, unique_indices=True)


def _broadcast_unbatched(axis_size, in_batched, args):
    return [x if batched else jnp.broadcast_to(x, (axis_size,) + x.shape) for x, batched in zip(args, in_batched)]


@functools.lru_cache(maxsize=None)
def _batched_solver(num_iterations: int, tolerance: float):
    """``(lam (B, M), D, w, mask, init) -> (B, M, N)``; under ``vmap`` the new batch axis is
    merged into B, so any nesting of ``vmap``s is one flat batch of blocks."""

    @custom_vmap
    def solve(lam, D, w, mask, init):
        return _solve_batch(lam, D, w, mask, init, num_iterations, tolerance)

    @solve.def_vmap
    def solve_vmap(axis_size, in_batched, *args):
        args = _broadcast_unbatched(axis_size, in_batched, args)
        inner = args[0].shape[1]
        out = solve(*(x.reshape((axis_size * inner,) + x.shape[2:]) for x in args))
        return out.reshape((axis_size, inner) + out.shape[1:]), True

    return solve


@functools.lru_cache(maxsize=None)
def _single_solver(num_iterations: int, tolerance: float):
    """One QP; under ``vmap`` the batch goes to ``_batched_solver`` (batch-minor blocks)."""
    batched = _batched_solver(num_iterations, tolerance)

    @custom_vmap
    def solve(lam, D, w, mask, init):
        return batched(lam[None], D[None], w[None], mask[None], init[None])[0]

    @solve.def_vmap
    def solve_vmap(axis_size, in_batched, *args):
        return batched(*_broadcast_unbatched(axis_size, in_batched, args)), True

    return solve


def _is_traced(*arrays) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(arrays))


def check_qp_inputs(caller: str, lam, D, w, mask) -> None:
    """Host check of one QP's concrete inputs, before any cast; raises ``ValueError`` naming the entry.

    ``lam``, ``D`` and ``w`` must be real, finite and >= 0, ``mask`` bool (or 0/1) with the cloud
    column (the last) True, so every row has a feasible node. Shapes are checked by the callers.
    """
    mask_values = np.asarray(mask)
    if mask_values.dtype != np.bool_ and not (np.issubdtype(mask_values.dtype, np.number)
                                              and np.isin(mask_values, (0, 1)).all()):
        raise ValueError(f"{caller}: mask of dtype {mask_values.dtype} is invalid: must be bool (or 0/1)")
    for name, value, unit in (("lam", lam, "tasks"), ("D", D, "s"), ("w", w, "s per task")):
        array = np.asarray(value)
        if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise ValueError(f"{caller}: {name} of dtype {array.dtype} is invalid: must be real numbers ({unit})")
        bad = np.argwhere(~np.isfinite(array) | (array < 0))
        if bad.size:
            index = tuple(int(i) for i in bad[0])
            raise ValueError(f"{caller}: {name}[{', '.join(map(str, index))}]={array[index].item()!r} is invalid: must be finite "
                             f"and >= 0 ({unit})")
    cloud = mask_values[:, -1].astype(bool)
    if not cloud.all():
        row = int(np.flatnonzero(~cloud)[0])
        raise ValueError(f"{caller}: mask[{row}, {mask_values.shape[1] - 1}]=False is invalid: the cloud column (the "
                         "last) must be True in every row, so every task has a feasible node")


def solve_qp_jax(lam, D, w, mask, *, num_iterations: int = DEFAULT_ITERATIONS, init=None,
                 tolerance: float = GAP_TOLERANCE):
    """Solves eq. (13) by a primal-dual interior-point method with a per-QP certificate.

    Pure JAX, float32, jittable. Under ``jax.vmap`` (any nesting) the QPs are solved together
    in batch-minor blocks of ``BLOCK_SIZE``, each block stopping when all its QPs are certified
    within ``tolerance`` (relative Frank-Wolfe gap) or ``num_iterations`` is reached; the
    unbatched call is a block of one, the same code. A QP with at most one row with arrivals is
    solved in closed form (water-filling) and needs no iteration; such QPs are gathered into
    blocks of their own. Not differentiable (``custom_vmap``).
    Rows with no arrivals get the best reply of an infinitesimal task: equal shares of the
    masked nodes of least marginal delay ``D_{m,n} + 2 w_n load_n``.

    Args:
        lam: (M,) arrivals, >= 0.
        D: (M, M + 1) load-free delay (s), >= 0.
        w: (M + 1,) load coefficient (s per task), >= 0.
        mask: (M, M + 1) bool feasible nodes; cloud column True.
        num_iterations: static cap on the interior-point iterations (an int >= 0; 0: the starting
            candidates only, exact for QPs with at most one row with arrivals).
        init: optional (M, M + 1) candidate schedule (e.g. the previous slot's): cleaned to the
            mask, it is returned instead when its objective is lower, and a candidate already
            certified optimal ends the solve at once.
        tolerance: static relative certificate at which a QP stops (finite, >= 0).

    Returns:
        pi: (M, M + 1) float32 schedule; rows on the simplex, 0 off the mask.

    Raises:
        ValueError: on shapes that do not match (M,), (M, M+1), (M+1,), (M, M+1), and, when the
            inputs are concrete (not traced), on a NaN, infinite or negative entry of ``lam``,
            ``D`` or ``w``, or a False in the cloud column of ``mask`` (``check_qp_inputs``).
            Traced inputs (under ``jit`` or ``vmap``) are checked for shapes only: there a row
            whose mask is all False gets a row of zeros, and NaN or negative inputs give a
            meaningless schedule (possibly NaN, possibly mass on a node whose ``D`` is NaN).
    """
    if isinstance(num_iterations, (bool, np.bool_)) or not isinstance(num_iterations, (int, np.integer)) \
            or num_iterations < 0:
        raise ValueError(f"solve_qp_jax: num_iterations={num_iterations!r} is invalid: must be an int >= 0")
    if isinstance(tolerance, (bool, np.bool_)) or not isinstance(tolerance, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"solve_qp_jax: tolerance={tolerance!r} is invalid: must be a finite number >= 0")
    given = (lam, D, w, mask)
    lam = jnp.asarray(lam, jnp.float32)
    D = jnp.asarray(D, jnp.float32)
    w = jnp.asarray(w, jnp.float32)
    mask = jnp.asarray(mask, bool)
    m = lam.shape[0] if lam.ndim == 1 else -1
    if lam.ndim != 1 or D.shape != (m, m + 1) or w.shape != (m + 1,) or mask.shape != (m, m + 1):
        raise ValueError(f"solve_qp_jax: shapes lam={lam.shape}, D={D.shape}, w={w.shape}, mask={mask.shape}; "
                         f"expected (M,), (M, M+1), (M+1,), (M, M+1)")
    init = jnp.zeros(D.shape, jnp.float32) if init is None else jnp.asarray(init, jnp.float32)
    if init.shape != D.shape:
        raise ValueError(f"solve_qp_jax: init has shape {init.shape}; expected {D.shape}")
    if not _is_traced(given):
        check_qp_inputs("solve_qp_jax", *given)  # on the inputs as given, before the casts
    return _single_solver(int(num_iterations), float(tolerance))(lam, D, w, mask, init)


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
        ValueError: on bad shapes, a NaN, infinite or negative entry of ``lam``, ``D`` or ``w``,
            or a False in the cloud column of ``mask`` (``check_qp_inputs``).
        RuntimeError: when the solver does not report an optimal solution.
    """
    shapes = tuple(np.shape(a) for a in (lam, D, w, mask))
    m = shapes[0][0] if len(shapes[0]) == 1 else -1
    if shapes != ((m,), (m, m + 1), (m + 1,), (m, m + 1)):
        raise ValueError(f"solve_qp_cvxpy: shapes lam={shapes[0]}, D={shapes[1]}, w={shapes[2]}, mask={shapes[3]}; "
                         f"expected (M,), (M, M+1), (M+1,), (M, M+1)")
    check_qp_inputs("solve_qp_cvxpy", lam, D, w, mask)
    lam = np.asarray(lam, np.float64)
    D = np.asarray(D, np.float64)
    w = np.asarray(w, np.float64)
    mask = np.asarray(mask, bool)
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
