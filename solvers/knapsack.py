"""Exact 0/1 knapsack by dynamic programming in JAX (the DDQN's greedy deployment, eq. 15)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def knapsack(values, weights, capacity, *, max_capacity: int | None = None) -> jax.Array:
    """Maximises ``sum_k values_k x_k`` subject to ``sum_k weights_k x_k <= capacity``.

    Exact DP over integer capacities ``0 .. C`` (``lax.scan`` over items, then a reverse scan to
    read the choice back). Items with a non-positive value are never picked; ties keep the
    item out. Jittable and vmappable; the table size ``C`` is static.

    Args:
        values: (K,) float item values.
        weights: (K,) int item weights, >= 0.
        capacity: int scalar, >= 0 (may be traced when ``max_capacity`` is given).
        max_capacity: static table size ``C``; required when ``capacity`` is traced, and
            capacities above it are treated as ``C``. Defaults to ``capacity`` (then concrete).

    Returns:
        (K,) bool, the chosen items.

    Raises:
        ValueError: when the table size is unknown or negative, or on concrete negative weights.
    """
    if max_capacity is None:
        try:
            max_capacity = int(capacity)
        except (TypeError, jax.errors.ConcretizationTypeError):
            raise ValueError("knapsack: capacity is traced; pass a static max_capacity") from None
    if max_capacity < 0:
        raise ValueError(f"knapsack: max_capacity={max_capacity} must be >= 0")
    if isinstance(weights, np.ndarray) and (weights < 0).any():
        raise ValueError(f"knapsack: weights={weights.tolist()} must be >= 0")
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
