"""MEC baselines with the coupled options on (switching cost, popularity cycle), and the clairvoyant MPC."""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.ttosc import baselines as mb
from jaxcpn.mec.env import TwoTimescaleMEC
from jaxcpn.mec.generator import generate_params
from jaxcpn.mec.types import MECConfig

PAPER = MECConfig(num_cells=3, num_services=6, slots_per_frame=3, frames_per_episode=4, qp_iterations=20)
SWITCHING = dataclasses.replace(PAPER, switching_cost=True)
SEARCH = dict(num_rounds=1, num_proposals=2)  # the one-frame Oracle's search, kept small


def instance(config, amplitude=0.5):
    """About half the services fit; popularity cycle on."""
    return generate_params(0, config, storage_capacity=6, popularity_cycle_amplitude=amplitude)


def played_state(env, params, seed=0):
    """A state one frame into an episode (something hosted), and the key of the next frame."""
    _, state = env.reset(jax.random.key(seed), params)
    first = env.deployment_from_values(jax.random.uniform(jax.random.key(seed + 1), (3, 6)), params)
    _, state, *_ = env.step(jax.random.key(seed + 2), state, first, params)
    return state, jax.random.key(seed + 3)


def test_popularity_and_greedy_read_only_the_arrivals_rows():
    env = TwoTimescaleMEC(SWITCHING)
    params = instance(SWITCHING)
    state, key = played_state(env, params)
    obs = env.get_obs(state)
    assert obs.shape == (3, 4, 6) and bool(obs[:, -1].any())  # row L: the hosted deployment
    arrivals = obs[:, :SWITCHING.slots_per_frame]
    np.testing.assert_array_equal(arrivals, jnp.swapaxes(state.arrivals, 0, 1))
    flipped = obs.at[:, -1].set(1.0 - obs[:, -1])  # another hosted deployment: same decision
    for policy, deployment in ((mb.popularity_policy, mb.popularity_deployment),
                               (mb.greedy_policy, mb.greedy_density_deployment)):
        expected = np.asarray(deployment(arrivals, params))
        np.testing.assert_array_equal(policy(key, obs, state, params), expected)
        np.testing.assert_array_equal(policy(key, flipped, state, params), expected)
    # without the row (the paper's observation) nothing is dropped
    np.testing.assert_array_equal(mb.arrival_rows(arrivals, state), arrivals)


@pytest.mark.parametrize("make_env", [TwoTimescaleMEC, mb.GreedyScheduledMEC], ids=["convex", "greedy"])
def test_scored_delay_is_what_the_env_charges(make_env):
    """``frame_delay`` with ``env.download_wait`` on the true arrivals = the env's charged delay."""
    env = make_env(SWITCHING)
    params = instance(SWITCHING)
    state, key = played_state(env, params)
    deployment = env.deployment_from_values(jax.random.uniform(jax.random.key(9), (3, 6)), params)
    assert bool((deployment & ~state.deployment).any())  # something to download
    arrivals = mb.true_frame_arrivals(env, key, state, params)
    _, _, _, _, _, info = env.step(key, state, deployment, params)
    np.testing.assert_array_equal(jnp.swapaxes(arrivals, 0, 1), info["final_observation"][:, :-1])
    wait = env.download_wait(deployment, state, params)
    charged = float(jnp.sum(info["slot_delay"]))
    scored = float(mb.frame_delay(env, arrivals, deployment, params, state.schedule, wait))
    np.testing.assert_allclose(scored, charged, rtol=1e-5)
    blind = float(mb.frame_delay(env, arrivals, deployment, params, state.schedule))
    assert blind < charged - 1e-3  # the wait is what the downloads cost


def test_greedy_scheduled_env():
    """Options off: Greedy's schedule_fn numbers; on: it sees the wait and pays less than the blind one."""
    for config, same in ((PAPER, True), (SWITCHING, False)):
        params = instance(config, amplitude=0.0)
        aware, blind = mb.GreedyScheduledMEC(config), TwoTimescaleMEC(config, schedule_fn=mb.greedy_schedule)
        state, key = played_state(aware, params)
        deployment = aware.deployment_from_values(jax.random.uniform(jax.random.key(9), (3, 6)), params)
        aware_reward = float(aware.step(key, state, deployment, params)[2])
        blind_reward = float(blind.step(key, state, deployment, params)[2])
        if same:
            assert aware_reward == blind_reward
        else:
            assert aware_reward > blind_reward + 1e-3


def evaluate(env, params, policy, num_envs=2, num_frames=6):
    return jax.jit(lambda k: mb.evaluate_policy(env, params, policy, k, num_envs, num_frames))


def test_horizon_one_plays_the_oracle():
    """H = 1: the Oracle's pick is the first candidate, the others it scored itself. With switching
    costs on, so both price the downloads (the paper's model runs in the tests below)."""
    env = TwoTimescaleMEC(SWITCHING)
    params = instance(SWITCHING)
    key = jax.random.key(3)
    oracle = evaluate(env, params, mb.clairvoyant_search_policy(env, **SEARCH), 1, 5)(key)
    mpc = evaluate(env, params, mb.clairvoyant_mpc_policy(env, 1, **SEARCH), 1, 5)(key)
    np.testing.assert_array_equal(mpc["deployments"], oracle["deployments"])
    assert float(mpc["mean_delay"]) == float(oracle["mean_delay"])


def test_horizon_mpc_beats_popularity_with_switching_costs_without_recompiling():
    env = TwoTimescaleMEC(SWITCHING)
    params = instance(SWITCHING)
    policy = mb.clairvoyant_mpc_policy(env, 2, **SEARCH)

    def evaluate_mpc(key):
        return mb.evaluate_policy(env, params, policy, key, 2, 6)

    mpc, popularity = jax.jit(chex.assert_max_traces(evaluate_mpc, n=1)), evaluate(env, params, mb.popularity_policy)
    keys = jax.random.split(jax.random.key(5))
    out = {name: [jax.device_get(run(k)) for k in keys] for name, run in (("mpc", mpc), ("popularity", popularity))}
    for run in out["mpc"]:
        assert int(run["storage_violations"]) == 0 and np.isfinite(run["mean_delay"])
    assert not np.array_equal(out["mpc"][0]["deployments"], out["mpc"][1]["deployments"])  # two episodes
    delay = {name: np.mean([run["mean_delay"] for run in runs]) for name, runs in out.items()}
    assert delay["mpc"] < delay["popularity"], delay  # clairvoyant over 2 frames, downloads priced


def test_lookahead_policy_is_played_by_evaluate_policy_only():
    env = TwoTimescaleMEC(SWITCHING)
    policy = mb.clairvoyant_mpc_policy(env, 2)
    assert policy.horizon == 2
    with pytest.raises(TypeError, match="evaluate_policy"):
        policy(jax.random.key(0), None, None, None)
    for horizon in (0, 1.5):
        with pytest.raises(ValueError, match="horizon"):
            mb.clairvoyant_mpc_policy(env, horizon)
