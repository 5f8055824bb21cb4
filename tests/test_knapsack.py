"""Exact 0/1 knapsack DP against brute force and on hand-computed cases."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solvers.knapsack import knapsack


def brute_force(values, weights, capacity):
    best = 0.0
    for choice in itertools.product([0, 1], repeat=len(values)):
        choice = np.array(choice)
        if weights @ choice <= capacity:
            best = max(best, float(values @ choice))
    return best


class KnapsackTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_computed(self):
        solve = self.variant(lambda v, w: knapsack(v, w, 5))
        chosen = solve(jnp.array([6.0, 10.0, 12.0]), jnp.array([1, 2, 3]))
        np.testing.assert_array_equal(chosen, [False, True, True])  # 22 beats 6 + 10 and 6 + 12

    @chex.variants(with_jit=True, without_jit=True)
    def test_non_positive_values_never_picked(self):
        solve = self.variant(lambda v, w: knapsack(v, w, 10))
        chosen = solve(jnp.array([-1.0, 0.0, 3.0]), jnp.array([0, 0, 4]))
        np.testing.assert_array_equal(chosen, [False, False, True])


def test_matches_brute_force_vmapped():
    rng = np.random.default_rng(0)
    count, size = 150, 12
    values = rng.normal(1.0, 1.5, (count, size)).astype(np.float32)
    weights = rng.integers(0, 9, (count, size))
    capacity = rng.integers(0, 41, count)
    solve = jax.jit(jax.vmap(lambda v, w, c: knapsack(v, w, c, max_capacity=40)))
    chosen = np.asarray(solve(values, weights, capacity))
    for i in range(count):
        assert weights[i] @ chosen[i] <= capacity[i]
        assert not (chosen[i] & (values[i] <= 0)).any()
        np.testing.assert_allclose(values[i] @ chosen[i], brute_force(values[i], weights[i], capacity[i]),
                                   rtol=1e-5, atol=1e-4)


def test_traced_capacity_needs_max_capacity():
    with pytest.raises(ValueError, match="max_capacity"):
        jax.jit(lambda c: knapsack(jnp.ones(3), jnp.ones(3, jnp.int32), c))(3)
