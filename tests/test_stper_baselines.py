"""The paper's Random (random scheduling and routing): its routes are random simple paths from
each task's source to its destination over existing links, drawn from the key; scored with the
env's maths; on the default instance it earns no more than Random over shortest paths."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.stper.baselines import (CPN_POLICIES, Schedule, cpn_random, cpn_random_routing, evaluate_decision,
                                    random_next_hops, rollout_cpn)
from jaxcpn.cpn import CPNConfig, GreenCPN, routing_tables
from jaxcpn.cpn import model

SMALL = CPNConfig(num_nodes=6, num_users=5, window=4, episode_length=4)


def routes_of(schedule: Schedule, params, hops: int):
    """``(U, H + 1)`` node sequences and ``(U, H)`` hop masks of a schedule, as the env builds them."""
    return jax.vmap(model.route, in_axes=(0, 0, 0, None))(schedule.next_hop, params.user_node, schedule.destination,
                                                          hops)


def test_random_routes_are_simple_paths_over_links():
    env = GreenCPN(SMALL)
    params = env.default_params
    _, state = env.reset(jax.random.PRNGKey(0), params)
    adjacency = np.asarray(params.adjacency)
    draw = jax.jit(jax.vmap(lambda key: cpn_random_routing(key, env, state, params)))
    schedules = draw(jax.random.split(jax.random.PRNGKey(1), 200))
    routes, masks = jax.vmap(lambda s: routes_of(s, params, SMALL.hops))(schedules)
    routes, masks = np.asarray(routes), np.asarray(masks)
    destinations, sources = np.asarray(schedules.destination), np.asarray(params.user_node)
    for sample in range(200):
        for user in range(SMALL.num_users):
            hops = int(masks[sample, user].sum())
            path = routes[sample, user, :hops + 1]
            assert masks[sample, user, :hops].all() and not masks[sample, user, hops:].any()
            assert path[0] == sources[user] and path[-1] == destinations[sample, user]
            assert len(set(path.tolist())) == hops + 1, path  # simple: no node twice
            assert all(adjacency[i, j] for i, j in zip(path[:-1], path[1:])), path
    _, shortest = routing_tables(params)
    shortest_routes = np.asarray(jax.vmap(lambda d: routes_of(Schedule(d, shortest), params, SMALL.hops)[0])(
        schedules.destination))
    differ = (routes != shortest_routes).any(-1)
    assert 0.05 < differ.mean() < 1.0, differ.mean()  # random, yet often the shortest path itself


def test_keys_repeat_and_differ():
    env = GreenCPN(SMALL)
    params = env.default_params
    _, state = env.reset(jax.random.PRNGKey(0), params)
    draw = jax.jit(lambda key: cpn_random_routing(key, env, state, params))
    chex.assert_trees_all_equal(draw(jax.random.PRNGKey(3)), draw(jax.random.PRNGKey(3)))
    a, b = (routes_of(draw(jax.random.PRNGKey(k)), params, SMALL.hops)[0] for k in (3, 4))
    assert not np.array_equal(a, b)
    # the destinations are cpn_random's for the same key: the two Randoms differ only by their routes
    key = jax.random.PRNGKey(5)
    np.testing.assert_array_equal(draw(key).destination, cpn_random(jax.random.split(key)[0], env, state, params))
    assert CPN_POLICIES["random"] is cpn_random_routing and CPN_POLICIES["random-shortest"] is cpn_random


@pytest.mark.parametrize("sharing", [False, True], ids=["independent-slots", "compute-sharing"])
def test_schedule_rollout_is_the_env_step(sharing):
    """A Schedule of the shortest-path tables rolls out exactly as the same destinations through
    ``env.step`` (rollout_cpn's own slot transition is the env's, the carried node queues included)."""
    env = GreenCPN(dataclasses.replace(SMALL, compute_sharing=sharing))
    params = env.default_params
    _, next_hop = routing_tables(params)

    def shortest_schedule(key, env, state, params):
        return Schedule(cpn_random(key, env, state, params), next_hop)

    key = jax.random.PRNGKey(2)
    as_schedule = jax.jit(lambda k: rollout_cpn(shortest_schedule, env, params, k, 4))(key)
    as_action = jax.jit(lambda k: rollout_cpn(cpn_random, env, params, k, 4))(key)
    chex.assert_trees_all_close(as_schedule, as_action, rtol=1e-6)


def test_random_routing_profit_finite_and_below_shortest_path_random():
    """On the default instance, the same destinations over random simple paths earn less on average
    than over the shortest paths (longer routes, so longer delays, and the cost does not depend on
    the route)."""
    env = GreenCPN()
    params = env.default_params
    key = jax.random.PRNGKey(11)
    routed = jax.jit(lambda k: rollout_cpn(cpn_random_routing, env, params, k, 32))(key)
    shortest = jax.jit(lambda k: rollout_cpn(cpn_random, env, params, k, 32))(key)
    chex.assert_tree_all_finite(routed)
    assert float(routed["profit"].mean()) < float(shortest["profit"].mean())
    assert float(routed["mean_delay"].mean()) > float(shortest["mean_delay"].mean())
    # the decision is scored by the env's evaluate_slot on its routes
    _, state = env.reset(jax.random.PRNGKey(0), params)
    schedule = cpn_random_routing(jax.random.PRNGKey(1), env, state, params)
    info = evaluate_decision(env, state, schedule, params)
    routes, mask = routes_of(schedule, params, env.config.hops)
    transmission = params.packet_size / params.access_bandwidth + model.transmission_delay(
        params.packet_size, params.bandwidth[routes[:, :-1], routes[:, 1:]], params.switch_delay[routes[:, :-1]], mask)
    np.testing.assert_allclose(info["transmission_delay"], transmission, rtol=1e-6)


def test_random_next_hops_shape_and_reachability():
    params = GreenCPN(SMALL).default_params
    next_hop = random_next_hops(jax.random.PRNGKey(0), params)
    chex.assert_shape(next_hop, (SMALL.num_users, SMALL.num_nodes, SMALL.num_nodes))
    assert next_hop.dtype == jnp.int32 and int(next_hop.min()) >= 0  # the default topology is connected


@pytest.mark.parametrize("config, match", [
    (CPNConfig(num_nodes=6, num_users=5, window=4, episode_length=4, max_hops=3), "max_hops=3"),
    (CPNConfig(num_nodes=6, num_users=5, window=4, episode_length=4, routing="milp"), "routing='shortest'"),
])
def test_random_routing_refuses_configs_without_room_for_its_routes(config, match):
    env = GreenCPN(config)
    params = GreenCPN(SMALL).default_params
    _, state = env.reset(jax.random.PRNGKey(0), params)
    with pytest.raises(ValueError, match=match):
        cpn_random_routing(jax.random.PRNGKey(0), env, state, params)
