"""The CPN's horizon-H clairvoyant MPC (agents.stper.baselines.cpn_clairvoyant_mpc) with shared compute:
its look-ahead is what the env then plays (true foresight), its H-slot profit played in the env is at
least Greedy's, horizon 1 and sharing off are coordinate ascent, bad arguments are refused."""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.stper.baselines import (CPN_POLICIES, cpn_clairvoyant_mpc, cpn_coordinate_ascent, cpn_greedy,
                                    greedy_lookahead, rollout_cpn)
from jaxcpn.cpn import CPNConfig, GreenCPN

SHARED = CPNConfig(num_nodes=5, num_users=6, window=2, episode_length=6, compute_sharing=True)
HORIZON = 3
NUM_ENVS = 16


def shared_instance():
    """The small instance with a 0.5 s service window, so that crowding a node queues work."""
    env = GreenCPN(SHARED)
    return env, env.default_params.replace(slot_duration=jnp.float32(0.5))


def mid_episode_states(env, params, key):
    """``(NUM_ENVS,)`` states at random times with a random backlog (as if earlier slots had queued work)."""
    key_reset, key_time, key_backlog = jax.random.split(key, 3)
    _, states = jax.vmap(env.reset, (0, None))(jax.random.split(key_reset, NUM_ENVS), params)
    time = jax.random.randint(key_time, (NUM_ENVS,), 0, SHARED.episode_length - HORIZON + 1, jnp.int32)
    backlog = jax.random.uniform(key_backlog, (NUM_ENVS, SHARED.num_nodes), jnp.float32) * params.power
    return states.replace(time=time, backlog=backlog * params.slot_duration)


def played(env, params, state, first_action):
    """Plays ``first_action`` then Greedy for ``HORIZON - 1`` slots through ``env.step``: the rewards,
    each step's next observation, and the Greedy actions (the env's own record of the H slots)."""
    def slot(state, key):
        action = cpn_greedy(None, env, state, params)
        obs, state, reward, _, _, _ = env.step(key, state, action, params)
        return state, (reward, obs, action)

    keys = jax.random.split(jax.random.PRNGKey(0), HORIZON)
    obs, state, reward, _, _, _ = env.step(keys[0], state, first_action, params)
    _, (rewards, observations, actions) = jax.lax.scan(slot, state, keys[1:])
    return jnp.concatenate([reward[None], rewards]), obs, observations, actions


@functools.lru_cache(maxsize=None)
def compiled_slot_check():
    """One jitted program over a batch of states: the MPC's and Greedy's actions, their plans and
    their play in the env."""
    env, _ = shared_instance()

    def one(state, params):
        mpc = cpn_clairvoyant_mpc(None, env, state, params, HORIZON)
        greedy = cpn_greedy(None, env, state, params)
        return dict(mpc=mpc, greedy=greedy,
                    mpc_plan=greedy_lookahead(env, state, mpc, params, HORIZON),
                    greedy_plan=greedy_lookahead(env, state, greedy, params, HORIZON),
                    mpc_played=played(env, params, state, mpc),
                    greedy_played=played(env, params, state, greedy))

    def batch(states, params):
        return jax.vmap(one, (0, None))(states, params)

    return jax.jit(chex.assert_max_traces(batch, n=1))


def test_lookahead_is_what_the_env_plays():
    """Perfect foresight: the plan's next-slot workloads, price, hydro discount and backlog are those
    of the observation ``env.step`` returns, and every planned slot's profit and action is the one
    played in the env."""
    env, params = shared_instance()
    states = mid_episode_states(env, params, jax.random.PRNGKey(1))
    out = jax.device_get(compiled_slot_check()(states, params))
    for name in ("mpc", "greedy"):
        plan = out[f"{name}_plan"]
        rewards, next_obs, later_obs, greedy_actions = out[f"{name}_played"]
        assert plan["valid"].all()
        np.testing.assert_array_equal(plan["workload"][:, 1], next_obs.task_workload)
        np.testing.assert_array_equal(plan["price"][:, 1], next_obs.price_window[:, -1])
        np.testing.assert_array_equal(plan["discount"][:, 1], next_obs.hydro_window[:, -1])
        np.testing.assert_array_equal(plan["backlog"][:, 1], next_obs.node_backlog)
        np.testing.assert_array_equal(plan["workload"][:, 2], later_obs.task_workload[:, 0])
        np.testing.assert_array_equal(plan["backlog"][:, 2], later_obs.node_backlog[:, 0])
        np.testing.assert_array_equal(plan["action"][:, 1:], greedy_actions)
        np.testing.assert_allclose(plan["profit"], rewards, rtol=1e-6, atol=1e-6)
    assert not np.array_equal(out["mpc_plan"]["workload"][:, 1], out["mpc_plan"]["workload"][:, 2])  # the slots differ


def test_mpc_beats_greedy_over_its_horizon_in_the_env():
    """Played in the env, the MPC's choice followed by Greedy earns at least as much over the H
    slots as Greedy throughout (the plan it maximised starts from Greedy's), on every state, and
    more on average; over whole episodes it also beats Greedy."""
    env, params = shared_instance()
    states = mid_episode_states(env, params, jax.random.PRNGKey(2))
    out = jax.device_get(compiled_slot_check()(states, params))
    mpc, greedy = out["mpc_played"][0].sum(-1), out["greedy_played"][0].sum(-1)
    assert np.all(mpc >= greedy - 1e-4), mpc - greedy
    assert mpc.mean() > greedy.mean() + 0.1, (mpc.mean(), greedy.mean())
    assert np.any(out["mpc"] != out["greedy"])
    planned = out["mpc_plan"]["profit"].sum(-1)
    assert np.all(planned >= out["greedy_plan"]["profit"].sum(-1) - 1e-5)

    rollout = jax.jit(lambda key: {name: rollout_cpn(CPN_POLICIES[name], env, params, key, NUM_ENVS)["profit"]
                                   for name in ("mpc", "greedy")})
    episodes = jax.device_get(rollout(jax.random.PRNGKey(3)))
    assert episodes["mpc"].shape == (SHARED.episode_length, NUM_ENVS)
    assert np.isfinite(episodes["mpc"]).all()
    assert episodes["mpc"].mean() > episodes["greedy"].mean() + 0.1, {k: v.mean() for k, v in episodes.items()}


def test_horizon_one_and_sharing_off_are_coordinate_ascent():
    """Horizon 1 maximises the slot's own profit, the ascent of ``cpn_coordinate_ascent`` (same
    start, candidates and ties: the same actions); with sharing off the slots are independent and
    the MPC is coordinate ascent whatever the horizon."""
    env, params = shared_instance()
    states = mid_episode_states(env, params, jax.random.PRNGKey(4))
    independent = GreenCPN(dataclasses.replace(SHARED, compute_sharing=False))

    def actions(state, params):
        plain = state.replace(backlog=None)
        return (cpn_clairvoyant_mpc(None, env, state, params, horizon=1, sweeps=2),
                cpn_coordinate_ascent(None, env, state, params, sweeps=2),
                cpn_clairvoyant_mpc(None, independent, plain, params, horizon=HORIZON, sweeps=1),
                cpn_coordinate_ascent(None, independent, plain, params, sweeps=1))

    mpc_one, ascent, mpc_off, ascent_off = jax.device_get(jax.jit(jax.vmap(actions, (0, None)))(states, params))
    np.testing.assert_array_equal(mpc_one, ascent)
    np.testing.assert_array_equal(mpc_off, ascent_off)


def test_lookahead_stops_at_the_episode_end():
    """Slots past the episode's end are not valid and earn nothing (the queue is dropped with the reset)."""
    env, params = shared_instance()
    _, state = env.reset(jax.random.PRNGKey(5), params)
    state = state.replace(time=jnp.int32(SHARED.episode_length - 1))
    plan = jax.jit(lambda state, params: greedy_lookahead(env, state, cpn_greedy(None, env, state, params), params,
                                                          HORIZON))(state, params)
    np.testing.assert_array_equal(plan["valid"], [True, False, False])
    assert float(plan["profit"][0]) != 0.0
    np.testing.assert_array_equal(plan["profit"][1:], 0.0)


@pytest.mark.parametrize("field, value", [("horizon", 0), ("horizon", 2.0), ("horizon", True), ("horizon", "3"),
                                          ("sweeps", 0), ("sweeps", -1), ("sweeps", None)])
def test_bad_horizon_or_sweeps_raise(field, value):
    env, params = shared_instance()
    _, state = env.reset(jax.random.PRNGKey(0), params)
    with pytest.raises(ValueError, match=rf"{field}={value!r} is invalid: must be an int >= 1"):
        cpn_clairvoyant_mpc(None, env, state, params, **{field: value})
