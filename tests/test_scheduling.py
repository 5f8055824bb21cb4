"""Eq. (13) scheduling QP: pure-JAX FISTA against CVXPY, projection and objective maths."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solvers.scheduling import _cvxpy_problem, project_scaled_simplex, qp_objective, solve_qp_cvxpy, solve_qp_jax

M = 5


def random_instance(rng):
    """One service's QP with the env's magnitudes; masked ES columns, zero rows, single-node rows."""
    lam = rng.poisson(rng.uniform(0, 8), M).astype(float)
    lam[rng.random(M) < 0.2] = 0.0  # zero-arrival rows
    deployed = rng.random(M) < 0.5  # masked ES columns
    mask = np.concatenate([np.broadcast_to(deployed, (M, M)), np.ones((M, 1), bool)], axis=1)
    if rng.random() < 0.25:  # rows whose only feasible node is the cloud, or one ES + cloud
        mask[:, :M] = False
        mask[rng.integers(M), rng.integers(M)] = True
    size, cycles = rng.uniform(8, 40), rng.uniform(1, 5)
    rate = rng.uniform(50, 100, (M, M))
    D = np.zeros((M, M + 1))
    D[:, :M] = size / ((rate + rate.T) / 2)
    np.fill_diagonal(D[:, :M], 0.0)
    D[:, M] = size / rng.uniform(10, 20, M) + cycles / 60
    w = np.concatenate([cycles * rng.integers(1, 10, M) / 50.0, [0.0]])
    return lam, D, w, mask


@pytest.fixture(scope="module")
def instances():
    rng = np.random.default_rng(0)
    batch = [random_instance(rng) for _ in range(240)]
    return [np.stack(a) for a in zip(*batch)]


def test_jax_matches_cvxpy_on_random_instances(instances):
    lam, D, w, mask = instances
    assert (lam == 0).any() and (~mask[:, :, :M]).any() and (mask.sum(-1) == 1).any()
    reference = np.array([qp_objective(solve_qp_cvxpy(*args), *args[:3]) for args in zip(lam, D, w, mask)])
    pi = np.asarray(jax.jit(jax.vmap(solve_qp_jax))(lam, D, w, mask), np.float64)
    objective = qp_objective(pi, lam, D, w)
    np.testing.assert_array_less(np.abs(objective - reference), 1e-4 * np.abs(reference) + 1e-7)
    np.testing.assert_allclose(pi.sum(-1), 1.0, atol=1e-6)
    assert (pi >= 0).all() and (pi[~mask] == 0).all()


def test_cvxpy_problem_is_dpp_and_compiled_once():
    problem, _, _ = _cvxpy_problem(M)
    assert problem.is_dpp()
    assert _cvxpy_problem(M) is _cvxpy_problem(M)


def test_cvxpy_rejects_bad_input():
    lam, D, w, mask = random_instance(np.random.default_rng(1))
    with pytest.raises(ValueError, match="shapes"):
        solve_qp_cvxpy(lam[:3], D, w, mask)
    with pytest.raises(ValueError, match=">= 0"):
        solve_qp_cvxpy(-lam - 1, D, w, mask)


def test_warm_start_reaches_optimum_in_fewer_iterations(instances):
    lam, D, w, mask = (a[:40] for a in instances)
    solve = jax.vmap(lambda *a: solve_qp_jax(*a, num_iterations=400))
    optimum = np.asarray(solve(lam, D, w, mask))
    warm = jax.vmap(lambda l, d, c, s, i: solve_qp_jax(l, d, c, s, num_iterations=5, init=i))
    pi = np.asarray(warm(lam, D, w, mask, optimum), np.float64)
    np.testing.assert_allclose(qp_objective(pi, lam, D, w), qp_objective(optimum.astype(np.float64), lam, D, w),
                               rtol=1e-5, atol=1e-6)


class MathsTest(chex.TestCase):
    @chex.all_variants(with_pmap=False)
    def test_objective_hand_computed(self):
        # Two ESs; ES 0 sends half its 2 tasks to ES 1, ES 1 keeps its one task.
        pi = jnp.array([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])
        lam = jnp.array([2.0, 1.0])
        D = jnp.array([[0.0, 0.3, 2.0], [0.3, 0.0, 2.0]])
        w = jnp.array([0.5, 0.25, 0.0])
        # linear 2*0.5*0.3 = 0.3; loads (1, 2, 0): 0.5*1 + 0.25*4 = 1.5
        np.testing.assert_allclose(self.variant(qp_objective)(pi, lam, D, w), 1.8, rtol=1e-6)

    @chex.all_variants(with_pmap=False)
    def test_projection_hand_computed(self):
        project = self.variant(project_scaled_simplex)
        v = jnp.array([[0.5, 0.2, 3.0], [0.1, 0.3, 0.0]])
        mask = jnp.array([[True, True, False], [True, True, True]])
        out = project(v, jnp.array([1.0, 2.0]), mask)
        # row 0: masked entry 3.0 ignored, tau = -0.15 -> (0.65, 0.35); row 1: tau = -0.5333
        np.testing.assert_allclose(out, [[0.65, 0.35, 0.0], [0.6333333, 0.8333333, 0.5333333]], rtol=1e-5)

    @chex.all_variants(with_pmap=False)
    def test_single_feasible_node_and_zero_rows(self):
        solve = self.variant(solve_qp_jax)
        lam = jnp.array([3.0, 0.0])
        D = jnp.array([[0.0, 0.2, 1.0], [0.2, 0.0, 1.0]])
        w = jnp.array([0.0, 0.5, 0.0])
        mask = jnp.array([[False, False, True], [False, True, True]])
        pi = solve(lam, D, w, mask)
        np.testing.assert_allclose(pi, [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]], atol=1e-6)
