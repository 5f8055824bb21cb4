"""Eq. (13) scheduling QP: the pure-JAX interior-point solver against CVXPY, and the objective."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcpn.mec import MECConfig, generate_params, model
from solvers.scheduling import _cvxpy_problem, qp_objective, solve_qp_cvxpy, solve_qp_jax

M = 5
CONFIG = MECConfig()  # the env's defaults: M = 5 ESs, K = 20 services
RTOL = 1e-4  # the contract: objective within 1e-4 of CVXPY's


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


def env_instances(seed, arrivals, deployment):
    """The K QPs of one slot of the default env instance: (lam, D, w, mask) with leading K."""
    params = generate_params(seed, CONFIG)
    return [np.asarray(a, np.float64 if a.dtype != bool else bool)
            for a in model.qp_inputs(jnp.asarray(arrivals, jnp.float32), jnp.asarray(deployment), params)]


def degenerate_instances():
    """Named degenerate QPs built on the default env instance."""
    rng = np.random.default_rng(5)
    deployment = rng.random((M, CONFIG.num_services)) < 0.4
    lam, D, w, mask = env_instances(0, rng.poisson(3.0, (M, CONFIG.num_services)), deployment)
    k = int(np.argmax(mask[:, 0, :M].sum(-1)))  # the service deployed at the most ESs
    cases = {
        "single active row": (np.array([0.0, 1.0, 0.0, 0.0, 0.0]), D[k], w[k], mask[k]),
        "single heavy row": (np.array([0.0, 0.0, 0.0, 30.0, 0.0]), D[k], w[k], mask[k]),
        "zero-arrival rows": (np.array([4.0, 0.0, 0.0, 2.0, 0.0]), D[k], w[k], mask[k]),
        "identical arrivals": (np.full(M, 5.0), D[k], w[k], mask[k]),
    }
    nowhere = env_instances(0, rng.poisson(3.0, (M, CONFIG.num_services)), np.zeros_like(deployment))
    cases["deployed nowhere: only the cloud"] = (np.array([2.0, 0.0, 7.0, 1.0, 3.0]), *(a[k] for a in nowhere[1:]))
    return cases


def cvxpy_objectives(lam, D, w, mask):
    return np.array([qp_objective(solve_qp_cvxpy(*args), *args[:3]) for args in zip(lam, D, w, mask)])


def assert_matches(pi, reference, lam, D, w, mask):
    """Objective within RTOL of CVXPY's (1e-7 s x tasks absolute for zero optima), feasible rows."""
    pi = np.asarray(pi, np.float64)
    objective = qp_objective(pi, lam, D, w)
    np.testing.assert_array_less(np.abs(objective - reference), RTOL * np.abs(reference) + 1e-7)
    np.testing.assert_allclose(pi.sum(-1), 1.0, atol=1e-6)
    assert (pi >= 0).all() and (pi[~mask] == 0).all()
    return objective


@pytest.fixture(scope="module")
def instances():
    rng = np.random.default_rng(0)
    batch = [random_instance(rng) for _ in range(200)]
    rows = [np.stack(a) for a in zip(*batch)]
    for seed in range(2):  # real slots of the default env: Zipf arrivals, knapsack-like deployments
        deployment = rng.random((M, CONFIG.num_services)) < 0.4
        arrivals = rng.poisson(rng.uniform(0.2, 6.0, (M, CONFIG.num_services)))
        rows = [np.concatenate([r, e]) for r, e in zip(rows, env_instances(seed, arrivals, deployment))]
    return rows


@pytest.fixture(scope="module")
def references(instances):
    return cvxpy_objectives(*instances)


def test_jax_matches_cvxpy_on_random_and_env_instances(instances, references):
    lam, D, w, mask = instances
    assert (lam == 0).any() and (~mask[:, :, :M]).any() and (mask.sum(-1) == 1).any()
    pi = jax.jit(jax.vmap(solve_qp_jax))(lam, D, w, mask)
    assert pi.dtype == jnp.float32 and pi.shape == D.shape
    assert_matches(pi, references, lam, D, w, mask)


@pytest.mark.parametrize("name", list(degenerate_instances()))
def test_degenerate_instances_at_batch_1_2_and_1024(name, instances, references):
    lam, D, w, mask = degenerate_instances()[name]
    reference = cvxpy_objectives(*(a[None] for a in (lam, D, w, mask)))
    single = jax.jit(solve_qp_jax)(lam, D, w, mask)
    pair = jax.jit(jax.vmap(solve_qp_jax))(*(np.stack([a, a]) for a in (lam, D, w, mask)))
    # 1024: the degenerate QP among the random ones, first in the first block and last in the last
    many = [np.concatenate([a[None], np.resize(b, (1022,) + b.shape[1:]), a[None]]) for a, b in
            zip((lam, D, w, mask), instances)]
    many_reference = np.concatenate([reference, np.resize(references, 1022), reference])
    pi_many = jax.jit(jax.vmap(solve_qp_jax))(*many)
    assert_matches(pi_many, many_reference, *many)
    results = np.stack([single, pair[0], pair[1], pi_many[0], pi_many[-1]])
    objectives = assert_matches(results, np.repeat(reference, 5), *(np.stack([a] * 5) for a in (lam, D, w, mask)))
    np.testing.assert_allclose(objectives, objectives[0], rtol=2e-5, atol=1e-9)


def test_vmap_over_one_qp_is_the_unbatched_solve_and_does_not_depend_on_the_cap():
    # The earlier first-order solver returned a point 1.4% worse here under vmap over one QP,
    # and the error moved with the iteration count; the certificate stops both calls alike.
    lam, D, w, mask = degenerate_instances()["single active row"]
    reference = qp_objective(solve_qp_cvxpy(lam, D, w, mask), lam, D, w)
    objectives = []
    for cap in (30, 100):
        # a partial, not a lambda: at the default cap (30) its program is test_degenerate_instances's
        # jit(solve_qp_jax) on the same QP, the same HLO, so the compilation cache serves it
        solve = functools.partial(solve_qp_jax, num_iterations=cap)
        objectives.append(float(qp_objective(np.asarray(jax.jit(solve)(lam, D, w, mask), np.float64), lam, D, w)))
        one = jax.jit(jax.vmap(solve))(*(a[None] for a in (lam, D, w, mask)))[0]
        objectives.append(float(qp_objective(np.asarray(one, np.float64), lam, D, w)))
    np.testing.assert_allclose(objectives, reference, rtol=2e-5)
    np.testing.assert_allclose(objectives, objectives[0], rtol=1e-6)


def test_nested_vmap_is_one_flat_batch(instances):
    lam, D, w, mask = (a[:240].reshape((12, 20) + a.shape[1:]) for a in instances)
    nested = jax.jit(jax.vmap(jax.vmap(solve_qp_jax)))(lam, D, w, mask)
    flat = jax.jit(jax.vmap(solve_qp_jax))(*(a.reshape((240,) + a.shape[2:]) for a in (lam, D, w, mask)))
    np.testing.assert_allclose(np.asarray(nested).reshape(flat.shape), flat, atol=1e-6)
    # an unbatched argument (shared D, w, mask) is broadcast by the batching rule
    shared = jax.jit(jax.vmap(solve_qp_jax, in_axes=(0, None, None, None)))(lam[0], D[0, 0], w[0, 0], mask[0, 0])
    args = (lam[0], *(np.stack([a[0, 0]] * 20) for a in (D, w, mask)))
    assert_matches(shared, cvxpy_objectives(*args), *args)


def test_single_row_qps_are_solved_in_closed_form(instances, references):
    lam, D, w, mask = instances
    single = (lam > 0).sum(-1) == 1
    assert single.sum() >= 10
    no_iteration = jax.jit(jax.vmap(lambda *a: solve_qp_jax(*a, num_iterations=0)))
    args = tuple(a[single] for a in (lam, D, w, mask))
    assert_matches(no_iteration(*args), references[single], *args)


def test_batch_order_does_not_change_the_schedules(instances):
    # Blocks are formed after moving QPs that need no iteration to the front.
    lam, D, w, mask = instances
    order = np.random.default_rng(2).permutation(lam.shape[0])
    solve = jax.jit(jax.vmap(solve_qp_jax))
    np.testing.assert_allclose(np.asarray(solve(*(a[order] for a in instances))), np.asarray(solve(lam, D, w, mask))[order],
                               atol=1e-6)


def test_init_is_kept_when_better_and_ignored_off_the_mask(instances):
    lam, D, w, mask = (a[:64] for a in instances)
    optimum = np.array([solve_qp_cvxpy(*args) for args in zip(lam, D, w, mask)])
    warm = jax.jit(jax.vmap(lambda l, d, c, s, i: solve_qp_jax(l, d, c, s, num_iterations=1, init=i)))
    cold = jax.jit(jax.vmap(lambda l, d, c, s: solve_qp_jax(l, d, c, s, num_iterations=1)))
    reference = qp_objective(optimum, lam, D, w)
    # One iteration is far from the optimum; a candidate that is the optimum is returned instead.
    assert (qp_objective(np.asarray(cold(lam, D, w, mask), np.float64), lam, D, w) > reference * (1 + 1e-3)).any()
    np.testing.assert_allclose(qp_objective(np.asarray(warm(lam, D, w, mask, optimum), np.float64), lam, D, w),
                               reference, rtol=1e-5, atol=1e-7)
    # A candidate with all its mass off the mask is not a schedule: the result does not use it.
    np.testing.assert_allclose(warm(lam, D, w, mask, np.where(mask, 0.0, 1.0)), cold(lam, D, w, mask), atol=1e-6)


def test_cvxpy_problem_is_dpp_and_compiled_once():
    problem, _, _ = _cvxpy_problem(M)
    assert problem.is_dpp()
    assert _cvxpy_problem(M) is _cvxpy_problem(M)


def test_bad_input_raises():
    lam, D, w, mask = random_instance(np.random.default_rng(1))
    with pytest.raises(ValueError, match="shapes"):
        solve_qp_cvxpy(lam[:3], D, w, mask)
    with pytest.raises(ValueError, match=">= 0"):
        solve_qp_cvxpy(-lam - 1, D, w, mask)
    with pytest.raises(ValueError, match="shapes"):
        solve_qp_jax(lam[:3], D, w, mask)
    with pytest.raises(ValueError, match="init"):
        solve_qp_jax(lam, D, w, mask, init=D[:, :M])


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
    def test_water_filling_hand_computed(self):
        # One ES with 4 tasks: local delay 0.25 * load, cloud 1 s. Equal marginal delays
        # 2 * 0.25 * load = 1 give load 2: half local, half to the cloud, objective 0.25*4 + 2*1 = 3.
        solve = self.variant(solve_qp_jax)
        lam, D, w, mask = jnp.array([4.0]), jnp.array([[0.0, 1.0]]), jnp.array([0.25, 0.0]), jnp.ones((1, 2), bool)
        pi = solve(lam, D, w, mask)
        np.testing.assert_allclose(pi, [[0.5, 0.5]], atol=2e-5)
        np.testing.assert_allclose(qp_objective(pi, lam, D, w), 3.0, rtol=2e-5)

    @chex.all_variants(with_pmap=False)
    def test_two_rows_share_one_es_hand_computed(self):
        # ESs 0 and 1 both send to ES 0 (w = 0.1 s/task, ES 1 pays 0.2 s to reach it) or to the
        # cloud (1 s). ES 1's marginal delay 0.2 + 0.2 L0 equals the cloud's at L0 = 4: ES 0 keeps
        # its 2 tasks (marginal 0.8 < 1), ES 1 sends 2 of its 6 tasks to ES 0 and 4 to the cloud.
        solve = self.variant(solve_qp_jax)
        lam = jnp.array([2.0, 6.0])
        D = jnp.array([[0.0, 0.0, 1.0], [0.2, 0.0, 1.0]])
        w = jnp.array([0.1, 0.0, 0.0])
        mask = jnp.array([[True, False, True], [True, False, True]])
        np.testing.assert_allclose(solve(lam, D, w, mask), [[1.0, 0.0, 0.0], [1 / 3, 0.0, 2 / 3]], atol=5e-5)

    @chex.all_variants(with_pmap=False)
    def test_single_feasible_node_and_zero_rows(self):
        solve = self.variant(solve_qp_jax)
        lam = jnp.array([3.0, 0.0])
        D = jnp.array([[0.0, 0.2, 1.0], [0.2, 0.0, 1.0]])
        w = jnp.array([0.0, 0.5, 0.0])
        mask = jnp.array([[False, False, True], [False, True, True]])
        pi = solve(lam, D, w, mask)
        # row 0 can only use the cloud; row 1 has no tasks: best reply, its idle local ES
        np.testing.assert_allclose(pi, [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]], atol=1e-6)
