"""Bounds that are bounds: exact per-slot / per-frame optima on tiny instances, and upper (CPN) or lower (MEC)
bounds that no policy beats on random instances (agents/stper/bounds.py, agents/ttosc/bounds.py, solvers/bounds.py)."""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.stper import bounds as cpn_bounds
from agents.ttosc import baselines as mb
from agents.ttosc import bounds as mec_bounds
from jaxcpn.cpn import CPNConfig, GreenCPN, generate_instance, validate_params
from jaxcpn.mec import model as mec_model
from jaxcpn.mec.env import TwoTimescaleMEC
from jaxcpn.mec.generator import InstanceRanges, generate_params
from jaxcpn.mec.types import MECConfig, check_deployment

RTOL = 1e-5  # float32 sums: the bound and the env's profit are summed in different orders

# ----------------------------------------------------------------------------- CPN


def _cpn_slots(config, seeds, kappa=None):
    """(env, params, state) of every slot of one episode per seed."""
    env = GreenCPN(config)
    overrides = {} if kappa is None else {"kappa": kappa}
    for seed in seeds:
        params = validate_params(generate_instance(jax.random.PRNGKey(seed), config, **overrides), config)
        _, state = env.reset(jax.random.PRNGKey(100 + seed), params)
        for t in range(config.episode_length):
            yield env, params, state.replace(time=jnp.asarray(t, jnp.int32))


TINY_CPN = CPNConfig(num_nodes=3, num_users=3, window=2, episode_length=2)
SMALL_CPN = CPNConfig(num_nodes=4, num_users=4, window=2, episode_length=3)


def test_exhaustive_optimum_equals_brute_force_loop():
    """The jitted enumeration finds the same optimum as a plain loop over itertools.product."""
    env = GreenCPN(TINY_CPN)
    search = jax.jit(lambda s, p: cpn_bounds.exhaustive_slot_optimum(env, s, p, batch_size=8))
    every = list(itertools.product(range(3), repeat=3))
    loop = jax.jit(lambda s, p, a: env.evaluate_slot(s, a, p)["profit"])
    for _, params, state in _cpn_slots(TINY_CPN, seeds=(0, 1)):
        optimum = search(state, params)
        profits = {a: float(loop(state, params, jnp.asarray(a, jnp.int32))) for a in every}
        best = max(profits.values())
        assert float(optimum.profit) == pytest.approx(best, rel=RTOL, abs=RTOL)
        assert profits[tuple(int(v) for v in optimum.action)] == pytest.approx(best, rel=RTOL, abs=RTOL)


def _slot_numbers(env):
    """Jitted ``(states (S,), params, key) -> (bound, optimum, {policy: profit})``, each (S,)."""
    from agents.stper.baselines import CPN_POLICIES, evaluate_decision

    def one(state, params, key):
        bound = cpn_bounds.conflict_free_bound(env, state, params)
        optimum = cpn_bounds.exhaustive_slot_optimum(env, state, params).profit
        profits = {name: evaluate_decision(env, state, policy(key, env, state, params), params)["profit"]
                   for name, policy in CPN_POLICIES.items()}
        return bound, optimum, profits

    return jax.jit(jax.vmap(one, (0, None, 0)))


def test_cpn_bound_with_compute_sharing_is_one_bound_for_every_trajectory():
    """With shared compute the bound takes the queues empty: it is the same along trajectories
    that leave different backlogs (Greedy's, the paper's Random's), and no slot of either beats it."""
    from agents.stper.baselines import CPN_POLICIES, rollout_cpn

    env = GreenCPN(dataclasses.replace(SMALL_CPN, compute_sharing=True))
    params = env.default_params
    run = jax.jit(lambda name, key: rollout_cpn(CPN_POLICIES[name], env, params, key, 8), static_argnums=0)
    greedy, random = run("greedy", jax.random.PRNGKey(0)), run("random", jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(greedy["bound"]), np.asarray(random["bound"]))
    for metrics in (greedy, random):
        assert np.all(np.asarray(metrics["profit"]) <= np.asarray(metrics["bound"]) * (1 + RTOL) + RTOL)


@pytest.mark.parametrize("kappa", [None, 3e-4])
def test_cpn_bound_is_never_below_any_policy_and_certified_optimum_is_exact(kappa):
    """bound >= exhaustive optimum >= every baseline (both Randoms, Greedy, Oracle) on every slot; the
    bound-pruned search at any size finds the exhaustive optimum."""
    env = GreenCPN(SMALL_CPN)
    numbers = _slot_numbers(env)
    gaps = []
    for seed in (0, 1, 2):
        overrides = {} if kappa is None else {"kappa": kappa}
        params = validate_params(generate_instance(jax.random.PRNGKey(seed), SMALL_CPN, **overrides), SMALL_CPN)
        _, state = env.reset(jax.random.PRNGKey(100 + seed), params)
        states = jax.vmap(lambda t: state.replace(time=t))(jnp.arange(SMALL_CPN.episode_length, dtype=jnp.int32))
        keys = jax.random.split(jax.random.PRNGKey(seed), SMALL_CPN.episode_length)
        bound, optimum, profits = jax.device_get(numbers(states, params, keys))
        slack = RTOL * np.maximum(np.abs(bound), 1.0)
        assert np.all(bound >= optimum - slack)
        for name, profit in profits.items():
            assert np.all(profit <= optimum + slack), name
        certified = cpn_bounds.certified_slot_optimum(env, jax.tree.map(lambda x: x[0], states), params)
        assert certified.certified
        assert certified.profit == pytest.approx(float(optimum[0]), rel=RTOL, abs=RTOL)
        assert certified.bound == pytest.approx(float(bound[0]), rel=RTOL, abs=RTOL)
        gaps.extend(bound - optimum)
    assert np.all(np.isfinite(gaps))


def test_cpn_gap_table_reports_every_policy():
    from agents.stper.baselines import CPN_POLICIES

    env = GreenCPN(SMALL_CPN)
    params = validate_params(generate_instance(jax.random.PRNGKey(0), SMALL_CPN), SMALL_CPN)
    profits = jax.jit(lambda k: cpn_bounds.slot_profits(env, params, CPN_POLICIES, k, 3))(jax.random.PRNGKey(1))
    assert profits["bound"].shape == (SMALL_CPN.episode_length, 3)
    table = cpn_bounds.gap_table(profits)
    assert set(table) == {"bound", *CPN_POLICIES}
    for name in CPN_POLICIES:
        assert table[name]["gap"] >= -1e-4
    assert table["random"]["gap"] >= table["coord-ascent"]["gap"]


def test_exhaustive_refuses_large_instances():
    env = GreenCPN(CPNConfig())

    def draw(key):  # the default-size instance and its first slot, traced only (shapes): nothing to compile
        params = generate_instance(key, env.config)
        return params, env.reset(key, params)[1]

    params, state = jax.eval_shape(draw, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="certified_slot_optimum"):
        cpn_bounds.exhaustive_slot_optimum(env, state, params)


# ----------------------------------------------------------------------------- MEC

TINY_MEC = MECConfig(num_cells=2, num_services=4, slots_per_frame=2, frames_per_episode=3, max_storage_units=16)
TINY_RANGES = InstanceRanges(storage_capacity=(3, 6), users=(10, 30))
TINY_ENV = TwoTimescaleMEC(TINY_MEC)  # one env for every test, so the jitted scorers compile once


@jax.jit
def _first_frame(reset_key, step_key, params):
    """A reset and the true arrivals of its first frame (one compiled program for every seed and test)."""
    observation, state = TINY_ENV.reset(reset_key, params)
    return observation, state, mb.true_frame_arrivals(TINY_ENV, step_key, state, params)


def _tiny_frames(num):
    for seed in range(num):
        params = generate_params(seed, TINY_MEC, TINY_RANGES)
        step_key = jax.random.PRNGKey(50 + seed)
        observation, state, arrivals = _first_frame(jax.random.PRNGKey(seed), step_key, params)
        yield TINY_ENV, params, observation, state, step_key, arrivals


ORACLE = jax.jit(mb.clairvoyant_search_policy(TINY_ENV, num_rounds=2, num_proposals=4))
# The baselines' deployments, jitted once for every seed and weighting (params are arguments).
TINY_POLICIES = [jax.jit(mb.greedy_policy), jax.jit(mb.popularity_policy),
                 jax.jit(mb.random_policy(TINY_MEC.max_storage_units))]
TINY_STEP = jax.jit(TINY_ENV.step)
# Deployments scored per call by the exhaustive search: at most the 20 feasible ones of the smallest seed, so the
# batch shape (and its compiled scorer) is the same for every seed (100, 36 and 20 feasible deployments).
CLAIRVOYANT_BATCH = 20


def test_feasible_deployments_are_all_and_only_the_feasible_ones():
    params = generate_params(0, TINY_MEC, TINY_RANGES)
    found = mec_bounds.feasible_deployments(params)
    size, capacity = np.asarray(params.service_size), np.asarray(params.storage_capacity)
    every = np.array(list(itertools.product([False, True], repeat=8)), bool).reshape(-1, 2, 4)
    feasible = every[np.all(every.astype(int) @ size <= capacity, axis=1)]
    assert {x.tobytes() for x in found} == {x.tobytes() for x in feasible}
    assert len(found) == len(feasible)


def test_clairvoyant_is_the_best_deployment_and_the_env_agrees():
    for env, params, _, state, step_key, arrivals in _tiny_frames(2):
        result = mec_bounds.clairvoyant_deployment(env, arrivals, params, batch_size=CLAIRVOYANT_BATCH)
        assert result.delay == pytest.approx(float(np.min(result.delays)))
        check_deployment(result.deployment, params)
        # the environment, stepped with that deployment and the same key, reports the same frame delay
        _, _, _, _, _, info = TINY_STEP(step_key, state, jnp.asarray(result.deployment), params)
        assert float(info["mean_delay"]) == pytest.approx(result.delay, rel=1e-4)


@pytest.mark.parametrize("weighting", ["task", "slot"])
def test_mec_lower_bound_is_never_above_any_deployment(weighting):
    """relaxation <= MILP bound <= exact clairvoyant <= every deployment (all of them, and the baselines')."""
    from solvers.bounds import frame_milp_bound

    ratios = []
    env = TINY_ENV
    score = jax.jit(lambda a, x, p: mec_bounds.frame_mean_delay(env, a, x, p, weighting))
    for _, params, observation, state, step_key, arrivals in _tiny_frames(3):
        exact = mec_bounds.clairvoyant_deployment(env, arrivals, params, weighting, batch_size=CLAIRVOYANT_BATCH)
        relaxed = mec_bounds.frame_delay_lower_bound(arrivals, params, weighting)
        weight = mec_bounds.slot_weights(arrivals, weighting)
        get = lambda a: np.asarray(a)  # noqa: E731
        milp, _ = frame_milp_bound(get(arrivals), get(mec_model.base_delay(params)), get(params.task_cycles),
                                   get(params.es_cpu), get(params.service_size), get(params.storage_capacity), weight)
        tol = 1e-5 * exact.delay
        assert relaxed <= milp + tol
        assert milp <= exact.delay + tol
        assert np.all(relaxed <= exact.delays + tol)
        policies = list(TINY_POLICIES)
        if weighting == "task":  # the swap search once: it compiles slowly
            policies.append(ORACLE)
        for policy in policies:
            deployment = policy(step_key, observation, state, params)
            delay = float(score(arrivals, deployment, params))
            assert exact.delay <= delay + tol
            assert relaxed <= delay + tol
        ratios.append(relaxed / exact.delay)
    assert min(ratios) > 0.5  # the bound is informative, not just >= 0


def test_mec_lower_bound_below_baselines_at_a_small_default_like_instance():
    """M = 3, K = 8: the bound stays below Greedy (its own scheduler), Popularity and random deployments."""
    config = MECConfig(num_cells=3, num_services=8, slots_per_frame=3, frames_per_episode=2)
    env = TwoTimescaleMEC(config)
    greedy_env = TwoTimescaleMEC(config, schedule_fn=mb.greedy_schedule)
    params = generate_params(1, config, InstanceRanges(storage_capacity=(6, 10)))

    @jax.jit  # the whole frame in one compiled program: the same calls as eagerly, compiled once
    def play(reset_key, step_key, random_keys):
        observation, state = env.reset(reset_key, params)
        arrivals = mb.true_frame_arrivals(env, step_key, state, params)
        _, _, _, _, _, info = greedy_env.step(step_key, state, mb.greedy_policy(step_key, observation, state, params),
                                              params)
        random = jax.vmap(lambda k: mb.random_policy(config.max_storage_units)(k, observation, state, params))(
            random_keys)
        delays = jax.vmap(lambda x: mec_bounds.frame_mean_delay(env, arrivals, x, params))(random)
        return arrivals, info["mean_delay"], delays

    arrivals, greedy_delay, delays = play(jax.random.PRNGKey(0), jax.random.PRNGKey(9),
                                          jax.random.split(jax.random.PRNGKey(3), 8))
    bound = mec_bounds.frame_delay_lower_bound(arrivals, params)
    assert bound <= float(greedy_delay)
    assert bound <= float(jnp.min(delays))
    assert bound > 0.0


def test_bad_weighting_is_refused():
    with pytest.raises(ValueError, match="weighting"):
        mec_bounds.slot_weights(np.ones((2, 2, 4)), "frame")


def test_frame_outcomes_record_the_played_frames_across_episode_ends():
    """The recorded arrivals are those the env scheduled, also in an episode's last frame (auto-reset)."""
    params = generate_params(0, TINY_MEC, TINY_RANGES)
    num_frames = 2 * TINY_MEC.frames_per_episode  # two episodes: the third and sixth frames reset
    # the jitted frame_outcomes that evaluation_lower_bound plays (params an argument): compiled once for both
    out = mec_bounds._jitted_frame_outcomes(TINY_ENV, params, mb.popularity_policy, jax.random.PRNGKey(4), 3,
                                            num_frames)
    np.testing.assert_array_equal(np.asarray(out["arrivals"]).sum(axis=(2, 3, 4)), np.asarray(out["tasks"]))
    # the bound's own recording (every task to the cloud, nothing scheduled) meets the same frames
    cheap = mec_bounds._jitted_frame_outcomes(mec_bounds.arrivals_env(TINY_ENV), params, mb.popularity_policy,
                                              jax.random.PRNGKey(4), 3, num_frames)
    for name in ("arrivals", "tasks"):
        np.testing.assert_array_equal(np.asarray(cheap[name]), np.asarray(out[name]))
    bound = mec_bounds.evaluation_lower_bound(TINY_ENV, params, jax.random.PRNGKey(4), 3, num_frames)
    with mec_bounds.bound_pool(2) as pool:  # the frames solved in two spawned processes: the same value
        assert mec_bounds.evaluation_lower_bound(TINY_ENV, params, jax.random.PRNGKey(4), 3, num_frames,
                                                 pool=pool) == bound
    played = jax.jit(lambda k: mb.evaluate_policy(TINY_ENV, params, mb.popularity_policy, k, 3, num_frames))(
        jax.random.PRNGKey(4))
    assert 0 < bound <= float(played["mean_delay"]) * (1 + 1e-6)


def _full_row_relaxation(lam, D, cycles, cpu, size, capacity, weight):
    """The relaxation of solvers/bounds.py's docstring with a flow row for every (l, m, k), empty ones too."""
    import cvxpy as cp

    slots, m, k = lam.shape
    flows = [cp.Variable((m * k, m + 1), nonneg=True) for _ in range(slots)]
    x = cp.Variable((m, k), nonneg=True)
    deployed = cp.vstack([x.T for _ in range(m)])  # row (m', k) sees x[:, k]
    objective, constraints = 0, [x <= (size[None, :] <= capacity[:, None]).astype(float), x @ size <= capacity]
    for l, f in enumerate(flows):
        rows = lam[l].reshape(-1)
        load = np.tile(np.sqrt(cycles), m)[None, :] @ f[:, :m]  # (1, M): sum over rows of sqrt(c_k) f
        objective += weight[l] * (cp.sum(cp.multiply(D.reshape(m * k, m + 1), f)) + cp.sum(cp.multiply(
            1.0 / cpu[None, :], cp.square(load))))
        constraints += [cp.sum(f, axis=1) == rows, f[:, :m] <= cp.multiply(rows[:, None], deployed)]
    problem = cp.Problem(cp.Minimize(objective), constraints)
    problem.solve(solver="CLARABEL")
    return problem.value


def test_mec_relaxation_without_its_empty_rows_equals_the_full_program():
    """frame_relaxation keeps only the (l, m, k) with tasks; on sparse random frames its optimum is the program's
    with every row, and a frame without tasks is 0."""
    from solvers.bounds import frame_relaxation

    rng = np.random.default_rng(0)
    params = generate_params(0, TINY_MEC, TINY_RANGES)
    get = lambda a: np.asarray(a, np.float64)  # noqa: E731
    inputs = (get(mec_model.base_delay(params)), get(params.task_cycles), get(params.es_cpu),
              get(params.service_size), get(params.storage_capacity))
    slots, m, k = TINY_MEC.slots_per_frame, TINY_MEC.num_cells, TINY_MEC.num_services
    for _ in range(3):
        lam = rng.poisson(2.0, (slots, m, k)) * (rng.random((slots, m, k)) < 0.4)
        assert 0 < np.count_nonzero(lam) < lam.size
        weight = mec_bounds.slot_weights(lam)
        value, x = frame_relaxation(lam, *inputs, weight)
        assert value == pytest.approx(_full_row_relaxation(lam.astype(float), *inputs, weight), rel=1e-6)
        assert x.shape == (m, k)
    assert frame_relaxation(np.zeros((slots, m, k)), *inputs, np.zeros(slots))[0] == 0.0



def test_bad_bound_pool_size_is_named():
    assert mec_bounds.bound_pool(1) is None  # one worker: solve in this process
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=f"workers={bad!r} is invalid"):
            mec_bounds.bound_pool(bad)
