"""Routing MILP (STPer eqs. 6-14, 21-22): feasibility, optimality vs shortest, QT monotonicity, failure."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcpn.cpn import CPNConfig, GreenCPN
from solvers.routing import (
    STATUS_INFEASIBLE, STATUS_OPTIMAL, RoutingInstance, RoutingOptions, batch_solve, discretisation_tolerance,
    fifo_schedule, hop_delay_matrix, k_shortest_paths, objective, path_cost, shortest_routing, solve_routing,
)
from solvers.routing_check import check_routing


def random_instance(seed: int, num_nodes: int, num_tasks: int, deadline: float = np.inf) -> RoutingInstance:
    """Connected random graph (tree + extra links), paper ranges for bandwidth, power, packet size."""
    rng = np.random.default_rng(seed)
    adjacency = np.zeros((num_nodes, num_nodes), bool)
    for k in range(1, num_nodes):
        j = rng.integers(0, k)
        adjacency[k, j] = adjacency[j, k] = True
    extra = np.triu(rng.random((num_nodes, num_nodes)) < 0.35, 1)
    adjacency |= extra | extra.T
    bandwidth = np.triu(np.where(adjacency, rng.uniform(10, 50, adjacency.shape), 0.0), 1)
    power = rng.uniform(1, 10, num_nodes)
    destination = rng.integers(0, num_nodes, num_tasks)
    workload = rng.uniform(1.5, 2.5, num_tasks)
    return RoutingInstance(
        adjacency=adjacency, bandwidth=bandwidth + bandwidth.T, switch_delay=rng.uniform(0.01, 0.05, num_nodes),
        source=np.arange(num_tasks) % num_nodes, destination=destination, packet_size=np.full(num_tasks, 5.0),
        access_bandwidth=rng.uniform(10, 50, num_tasks), deadline=np.full(num_tasks, deadline), workload=workload,
        compute_delay=workload / power[destination], unit_price=0.5, eta=2.0,
    )


CASES = [(seed, 4 + seed % 3, 3 + seed % 4) for seed in range(6)]


@pytest.mark.parametrize("formulation", ["paths", "edges"])
@pytest.mark.parametrize("seed,num_nodes,num_tasks", CASES)
def test_milp_feasible_and_at_least_shortest(formulation, seed, num_nodes, num_tasks):
    inst = random_instance(seed, num_nodes, num_tasks)
    options = RoutingOptions(formulation=formulation, tick=0.01)
    res = solve_routing(inst, options)
    assert res.status == STATUS_OPTIMAL, res.status_name
    assert check_routing(inst, res.paths, res.start_times, res.t_sum) == []
    np.testing.assert_allclose(res.objective, objective(inst, res.t_sum))
    np.testing.assert_allclose(res.t_sum, res.transmission + res.offset + inst.compute_delay, atol=1e-9)
    # The tick-rounded "shortest" schedule is a feasible MILP point: the optimum is at least it.
    paths, starts, t_short = shortest_routing(inst)
    assert check_routing(inst, paths, starts, t_short) == []
    _, t_rounded = fifo_schedule(inst, paths, options.tick)
    assert res.objective >= objective(inst, t_rounded) * (1 - 1e-9)
    # ... and the continuous "shortest" objective up to the stated discretisation bound.
    assert res.objective >= objective(inst, t_short) - discretisation_tolerance(inst, options.tick)


@pytest.mark.parametrize("seed", range(4))
def test_quadratic_transform_never_decreases(seed):
    inst = random_instance(100 + seed, 6, 6)
    res = solve_routing(inst, RoutingOptions(max_iterations=6, tolerance=0.0))
    assert len(res.history) >= 2
    assert np.all(np.diff(res.history) >= -1e-9 * abs(res.history[0])), res.history
    assert res.objective == pytest.approx(res.history[-1])


def test_formulations_agree_on_small_instance():
    # With every simple path as a candidate, the path formulation is exact: same optimum.
    inst = random_instance(7, 4, 3)
    paths = solve_routing(inst, RoutingOptions(formulation="paths", num_paths=50, max_iterations=1))
    edges = solve_routing(inst, RoutingOptions(formulation="edges", max_iterations=1))
    assert paths.objective == pytest.approx(edges.objective, rel=1e-6)


def test_impossible_deadline_is_infeasible():
    inst = random_instance(3, 5, 4, deadline=0.05)  # below every access + compute delay
    res = solve_routing(inst)
    assert res.status == STATUS_INFEASIBLE and np.isnan(res.objective)
    # "reachable" drops eq. (14) only for tasks that cannot meet it alone: here all of them.
    assert solve_routing(inst, RoutingOptions(deadlines="reachable")).status == STATUS_OPTIMAL


def test_tight_but_reachable_deadline_is_met():
    inst = random_instance(11, 5, 5)
    _, _, t_short = shortest_routing(inst)
    inst.deadline = t_short.max() * 0.999 * np.ones_like(t_short)  # shortest/FIFO misses one
    res = solve_routing(inst, RoutingOptions(tick=0.005))
    if res.status == STATUS_OPTIMAL:
        assert np.all(res.t_sum <= inst.deadline + 1e-9)
        assert check_routing(inst, res.paths, res.start_times, res.t_sum) == []
    else:
        assert res.status == STATUS_INFEASIBLE


def test_checker_catches_violations():
    inst = random_instance(2, 5, 5)
    paths, starts, t_sum = shortest_routing(inst)
    overlap = [np.zeros_like(s) for s in starts]  # everything at t = 0: before access + switching
    assert any("before arrival" in e for e in check_routing(inst, paths, overlap, t_sum))
    assert any("t_sum" in e for e in check_routing(inst, paths, starts, t_sum + 0.1))
    bad = list(paths)
    bad[0] = [int(inst.source[0]), int(inst.destination[0]) + 1 if inst.destination[0] + 1 < 5 else 0]
    assert check_routing(inst, bad, starts, t_sum) != []
    # Two tasks on one link at the same time.
    inst2 = random_instance(2, 5, 2)
    inst2.source[:] = 0
    inst2.destination[:] = 1 if inst2.adjacency[0, 1] else int(np.flatnonzero(inst2.adjacency[0])[0])
    p = [0, int(inst2.destination[0])]
    begin = inst2.access_delay.max() + inst2.switch_delay[0]
    t = [begin + inst2.packet_size[u] / inst2.bandwidth[0, p[1]] + inst2.compute_delay[u] for u in range(2)]
    assert any("overlap" in e for e in check_routing(inst2, [p, p], [np.array([begin])] * 2, np.array(t)))


def test_k_shortest_paths_are_simple_distinct_sorted():
    inst = random_instance(5, 6, 1)
    hop = hop_delay_matrix(inst, 0)
    paths = k_shortest_paths(hop, 0, 5, 5)
    assert 1 <= len(paths) <= 5 and len({tuple(p) for p in paths}) == len(paths)
    assert all(p[0] == 0 and p[-1] == 5 and len(set(p)) == len(p) for p in paths)
    costs = [path_cost(hop, p) for p in paths]
    assert costs == sorted(costs)


def test_options_validation():
    with pytest.raises(ValueError, match="tick"):
        RoutingOptions(tick=0.0)
    with pytest.raises(ValueError, match="formulation"):
        RoutingOptions(formulation="flows")
    with pytest.raises(ValueError, match="milp_paths"):
        CPNConfig(routing="milp", milp_paths=0)


def test_batch_solve_reports_status():
    insts = [random_instance(1, 5, 4), random_instance(1, 5, 4, deadline=0.05)]
    fields = ["adjacency", "bandwidth", "switch_delay", "source", "destination", "packet_size", "access_bandwidth",
              "deadline", "workload", "compute_delay", "unit_price", "eta"]
    args = [np.stack([np.asarray(getattr(i, f)) for i in insts]) for f in fields]
    trans, offset, status = batch_solve(*args)
    assert status.tolist() == [STATUS_OPTIMAL, STATUS_INFEASIBLE]
    assert np.isfinite(trans[0]).all() and np.isnan(trans[1]).all() and (offset[0] >= 0).all()


SMALL = CPNConfig(num_nodes=5, num_users=4)


@pytest.fixture(scope="module")
def small_params():
    return GreenCPN(SMALL).default_params


def test_env_milp_mode_batched_no_recompilation(small_params):
    params = small_params
    env = GreenCPN(dataclasses.replace(SMALL, routing="milp", milp_deadlines="reachable", milp_time_limit=5.0))
    batch = 3

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(keys, state, action):
        return jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)

    keys = jax.random.split(jax.random.PRNGKey(0), batch)
    _, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    for t in range(2):
        action = jax.random.randint(jax.random.PRNGKey(t), (batch, 4), 0, 5)
        _, state, reward, _, _, info = step(keys, state, action)
        chex.assert_tree_all_finite((reward, info["delay"], info["offset"]))
        chex.assert_shape(info["routing_fallback"], (batch,))
        assert not bool(info["routing_fallback"].any())
        assert bool((info["offset"] >= 0).all())
    # The shortest mode has the same info structure.
    shortest = GreenCPN(SMALL)
    _, _, _, _, _, info_s = jax.jit(jax.vmap(shortest.step, in_axes=(0, 0, 0, None)))(keys, state, action, params)
    assert set(info_s) == set(info) and not bool(info_s["routing_fallback"].any())


def test_env_milp_fallback_on_impossible_deadline(small_params):
    env = GreenCPN(dataclasses.replace(SMALL, routing="milp"))
    params = small_params.replace(deadline=jnp.full((4,), 0.01, jnp.float32))
    shortest = GreenCPN(SMALL)
    _, state = jax.jit(env.reset)(jax.random.PRNGKey(0), params)
    action = jnp.array([1, 2, 3, 4], jnp.int32)
    info = jax.jit(env.evaluate_slot)(state, action, params)
    info_s = jax.jit(shortest.evaluate_slot)(state, action, params)
    assert bool(info["routing_fallback"])
    np.testing.assert_allclose(info["delay"], info_s["delay"], rtol=1e-6)
