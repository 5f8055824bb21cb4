"""Gymnasium and PettingZoo adapters pass their own checkers and match the JAX environments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")
pytest.importorskip("pettingzoo")

from gymnasium.utils.env_checker import check_env  # noqa: E402
from pettingzoo.test import parallel_api_test  # noqa: E402

from jaxcpn.cpn import CPNConfig, GreenCPN  # noqa: E402
from jaxcpn.mec import MECConfig  # noqa: E402
from jaxcpn.wrappers.gymnasium import GreenCPNGymEnv, GreenCPNVectorEnv  # noqa: E402
from jaxcpn.wrappers.pettingzoo import MECParallelEnv, repair_deployment  # noqa: E402

SMALL_CPN = CPNConfig(num_nodes=5, num_users=5, window=6, episode_length=4)
SMALL_MEC = MECConfig(num_cells=3, num_services=6, slots_per_frame=2, frames_per_episode=3)


def test_gymnasium_check_env():
    check_env(GreenCPNGymEnv(SMALL_CPN), skip_render_check=True)


def test_gymnasium_make_registered_ids():
    env = gymnasium.make("jaxcpn/GreenCPN-v0", config=SMALL_CPN)
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    vec = gymnasium.make_vec("jaxcpn/GreenCPN-v0", num_envs=3, vectorization_mode="vector_entry_point", config=SMALL_CPN)
    obs, _ = vec.reset(seed=3)
    assert obs["task_workload"].shape == (3, SMALL_CPN.num_users)


def test_gymnasium_bad_action_is_an_error():
    env = GreenCPNGymEnv(SMALL_CPN)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.full(SMALL_CPN.num_users, SMALL_CPN.num_nodes))


def test_vector_env_equals_vmapped_jax_env():
    num_envs, seed = 4, 11
    vec = GreenCPNVectorEnv(num_envs, SMALL_CPN)
    env, params = GreenCPN(SMALL_CPN), vec.params
    obs, _ = vec.reset(seed=seed)
    # The same key schedule, by hand, on the vmapped JAX env.
    key = jax.random.PRNGKey(seed)
    key, sub = jax.random.split(key)
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    jax_obs, state = reset(jax.random.split(sub, num_envs), params)
    np.testing.assert_array_equal(obs["price_window"], np.asarray(jax_obs.price_window))
    rng = np.random.default_rng(0)
    for t in range(2 * SMALL_CPN.episode_length):
        actions = rng.integers(0, SMALL_CPN.num_nodes, (num_envs, SMALL_CPN.num_users))
        obs, reward, terminated, truncated, infos = vec.step(actions)
        key, sub = jax.random.split(key)
        jax_obs, state, jax_reward, _, jax_truncated, info = step(
            jax.random.split(sub, num_envs), state, jnp.asarray(actions, jnp.int32), params)
        np.testing.assert_array_equal(reward, np.asarray(jax_reward))
        np.testing.assert_array_equal(truncated, np.asarray(jax_truncated))
        np.testing.assert_allclose(obs["demand_window"], np.asarray(jax_obs.demand_window), rtol=1e-6)
        np.testing.assert_allclose(infos["final_obs"]["task_workload"], np.asarray(info["final_observation"].task_workload), rtol=1e-6)
        np.testing.assert_array_equal(infos["_final_obs"], np.asarray(jax_truncated))
        np.testing.assert_allclose(infos["delay"], np.asarray(info["delay"]), rtol=1e-6)


def test_pettingzoo_parallel_api():
    parallel_api_test(MECParallelEnv(SMALL_MEC), num_cycles=10)


def test_repair_rule_keeps_services_in_index_order():
    sizes = np.array([3, 2, 4, 1])
    requested = np.array([True, True, True, True])
    # capacity 6: keep 0 (3), keep 1 (5), drop 2 (would be 9), keep 3 (6)
    np.testing.assert_array_equal(repair_deployment(requested, sizes, 6), [True, True, False, True])
    np.testing.assert_array_equal(repair_deployment(np.array([False, True, False, False]), sizes, 6), [False, True, False, False])


def test_pettingzoo_over_storage_deployment_is_repaired_as_documented():
    base = MECParallelEnv(SMALL_MEC).params
    params = base.replace(storage_capacity=jnp.full_like(base.storage_capacity, 5))
    env = MECParallelEnv(SMALL_MEC, params)
    env.reset(seed=0)
    sizes, capacity = np.asarray(env.params.service_size), np.asarray(env.params.storage_capacity)
    everything = {agent: np.ones(SMALL_MEC.num_services, np.int8) for agent in env.agents}
    assert (sizes.sum() > capacity).all(), "the default instance must make 'deploy everything' infeasible"
    _, rewards, _, _, infos = env.step(everything)
    for m, agent in enumerate(env.possible_agents):
        assert infos[agent]["repaired"]
        expected = repair_deployment(np.ones(SMALL_MEC.num_services, bool), sizes, int(capacity[m]))
        np.testing.assert_array_equal(infos[agent]["deployment"], expected)
        assert sizes[infos[agent]["deployment"]].sum() <= capacity[m]
    # The repaired frame equals stepping the JAX env with the repaired deployment directly.
    env.reset(seed=0)
    repaired = {agent: infos[agent]["deployment"].astype(np.int8) for agent in env.agents}
    _, rewards2, _, _, infos2 = env.step(repaired)
    assert rewards2 == rewards
    assert not any(infos2[agent]["repaired"] for agent in env.possible_agents)
