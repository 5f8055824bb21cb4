"""Exact 0/1 knapsack by dynamic programming in JAX (the DDQN's greedy deployment, eq. 15)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _is_traced(x) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(x))


def _check_inputs(values, weights, capacity, max_capacity):
    """Host checks of ``knapsack``'s inputs; returns the static table size ``C``.

    Shapes and dtypes are static, so they are checked under ``jit`` too; values only when
    concrete (a traced NaN value is never picked: it fails ``value > 0``).
    """
    v_shape, w_shape = np.shape(values), np.shape(weights)
    if len(v_shape) != 1:
        raise ValueError(f"knapsack: values of shape {v_shape} is invalid: must be 1-D (K,)")
    if w_shape != v_shape:
        raise ValueError(f"knapsack: weights of shape {w_shape} is invalid: must match values' shape {v_shape} "
                         "(one weight per item)")
    if np.shape(capacity) != ():
        raise ValueError(f"knapsack: capacity of shape {np.shape(capacity)} is invalid: must be a scalar "
                         "(vmap for several)")
    w_dtype = jnp.asarray(weights).dtype if _is_traced(weights) else np.asarray(weights).dtype
    if w_dtype == np.bool_ or not (np.issubdtype(w_dtype, np.integer) or np.issubdtype(w_dtype, np.floating)):
        raise ValueError(f"knapsack: weights of dtype {w_dtype} is invalid: must be integers >= 0")
    if _is_traced(weights):
        if not np.issubdtype(w_dtype, np.integer):
            raise ValueError(f"knapsack: traced weights of dtype {w_dtype} is invalid: must have an integer dtype "
                             "(a float weight cannot be checked for integrality under jit)")
    else:
        host = np.asarray(weights)
        bad = np.flatnonzero(~np.isfinite(host) | (host < 0) | (host != np.round(host)))
        if bad.size:
            raise ValueError(f"knapsack: weights={host.tolist()} is invalid: must be integers >= 0 "
                             f"(entry {int(bad[0])} is {host[bad[0]].item()!r})")
    if not _is_traced(values):
        host = np.asarray(values, np.float64)
        bad = np.flatnonzero(np.isnan(host))
        if bad.size:
            raise ValueError(f"knapsack: values={host.tolist()} is invalid: must not be NaN (entry {int(bad[0])})")
    if not _is_traced(capacity):
        c = np.asarray(capacity)
        if c.dtype == np.bool_ or not np.isfinite(c) or c < 0 or c != np.round(c):
            raise ValueError(f"knapsack: capacity={capacity!r} is invalid: must be an integer >= 0")
        if max_capacity is None:
            max_capacity = int(c)
    elif max_capacity is None:
        raise ValueError("knapsack: capacity is traced; pass a static max_capacity")
    if isinstance(max_capacity, bool) or not isinstance(max_capacity, (int, np.integer)) or max_capacity < 0:
        raise ValueError(f"knapsack: max_capacity={max_capacity!r} is invalid: must be an int >= 0 (static)")
    return int(max_capacity)


def knapsack(values, weights, capacity, *, max_capacity: int | None = None) -> jax.Array:
    """Maximises ``sum_k values_k x_k`` subject to ``sum_k weights_k x_k <= capacity``.

    Exact DP over integer capacities ``0 .. C`` (``lax.scan`` over items, then a reverse scan to
    read the choice back). Items with a non-positive value are never picked; ties keep the
    item out. Jittable and vmappable; the table size ``C`` is static.

    Args:
        values: (K,) float item values, not NaN.
        weights: (K,) int item weights, >= 0 (an integer dtype when traced; concrete float
            weights must be whole numbers).
        capacity: int scalar, >= 0 (may be traced when ``max_capacity`` is given).
        max_capacity: static table size ``C``; required when ``capacity`` is traced, and
            capacities above it are treated as ``C``. Defaults to ``capacity`` (then concrete).

    Returns:
        (K,) bool, the chosen items.

    Raises:
        ValueError: on shapes that do not match, a non-integer weight dtype under ``jit``, an
            unknown or negative table size, and on concrete negative or fractional weights,
            NaN values or a negative or fractional capacity. Under ``jit`` traced values are
            not checked: a NaN value is never picked, a negative weight or capacity gives a
            meaningless choice, a traced capacity below 0 is read as 0.
    """
    max_capacity = _check_inputs(values, weights, capacity, max_capacity)
    values = jnp.asarray(values, jnp.float32)
    weights = jnp.asarray(weights, jnp.int32)
    size = max_capacity + 1
    grid = jnp.arange(size, dtype=jnp.int32)

    def add_item(best, item):
        value, weight = item
        # best[c - weight] + value, for c >= weight
        shifted = jnp.where(grid >= weight, jnp.roll(best, weight), -jnp.inf)
        candidate = shifted + value
        take = (candidate > best) & (value > 0)
        return jnp.where(take, candidate, best), take

    _, takes = jax.lax.scan(add_item, jnp.zeros(size, jnp.float32), (values, weights))  # takes: (K, size)

    def read_back(remaining, item):
        take_row, weight = item
        take = take_row[remaining]
        return remaining - jnp.where(take, weight, 0), take

    start = jnp.clip(jnp.asarray(capacity, jnp.int32), 0, max_capacity)
    _, chosen = jax.lax.scan(read_back, start, (takes, weights), reverse=True)
    return chosen
