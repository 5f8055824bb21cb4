"""TTOSC agent: network output structure, DDQN target, replay, training, checkpoints."""

from __future__ import annotations

import dataclasses
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import checkpoint
from agents.ttosc import baselines as mb
from agents.ttosc.ddqn import (DDQNConfig, ddqn_policy, ddqn_target, epsilon_schedule, make_train, make_trainer,
                         random_deployment)
from agents.ttosc.networks import TTOSCNetwork, apply_agents, deployment_value, greedy_deployment, init_agents
from agents.replay import replay_add, replay_init, replay_sample
from jaxcpn.mec.env import TwoTimescaleMEC
from jaxcpn.mec.generator import generate_params
from jaxcpn.mec.types import MECConfig

TINY = DDQNConfig(num_cells=2, num_services=5, slots_per_frame=3, frames_per_episode=4, qp_iterations=10,
                  num_envs=2, num_episodes=8, hidden=16, num_gru_layers=1, batch_size=16, buffer_size=256,
                  learning_starts=16, epsilon_episodes=8, target_update_interval=5)


def tiny_params(config: DDQNConfig):
    """A tiny instance where storage binds: 2 of 5 services fit per ES."""
    params = generate_params(0, config.env_config())
    return params.replace(service_size=jnp.full((config.num_services,), 2, jnp.int32),
                          storage_capacity=jnp.full((config.num_cells,), 4, jnp.int32))


def storage_ok(deployment, params) -> bool:
    used = np.asarray(deployment).astype(np.int64) @ np.asarray(params.service_size)
    return bool((used <= np.asarray(params.storage_capacity)).all())


# ----------------------------------------------------------------------------- network


def test_two_layer_output_is_weighted_sum_of_partial_values():
    network = TTOSCNetwork(num_services=6, hidden=8, num_gru_layers=2)
    variables = network.init(jax.random.PRNGKey(0), jnp.zeros((3, 6)))
    obs = jax.random.poisson(jax.random.PRNGKey(1), 4.0, (7, 3, 6)).astype(jnp.float32)
    q = network.apply(variables, obs)
    chex.assert_shape(q, (7, 6))
    x = jax.random.bernoulli(jax.random.PRNGKey(2), 0.5, (7, 6))
    expected = np.einsum("bk,bk->b", np.asarray(q, np.float64), np.asarray(x, np.float64))  # eq. (14)
    np.testing.assert_allclose(deployment_value(q, x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_deployment_value_hand_computed(transform):
    q = jnp.array([[1.0, -2.0, 0.5], [3.0, 4.0, -1.0]])
    x = jnp.array([[True, True, False], [False, True, True]])
    np.testing.assert_allclose(transform(deployment_value)(q, x), [-1.0, 3.0])


def test_greedy_deployment_is_the_feasible_argmax():
    sizes = jnp.array([1, 2, 3, 2, 1], jnp.int32)
    capacity = jnp.array([4, 5], jnp.int32)
    q = jnp.array([[3.0, 2.0, 4.0, -1.0, 0.5], [1.0, 5.0, 4.5, 2.0, 0.2]])
    chosen = np.asarray(greedy_deployment(q, sizes, capacity, max_capacity=8))
    for m in range(2):
        best = max((sum(q[m, k] for k in range(5) if bits[k]), bits)
                   for bits in itertools.product([0, 1], repeat=5)
                   if np.dot(bits, np.asarray(sizes)) <= int(capacity[m]))
        assert np.isclose(float(deployment_value(q[m], chosen[m])), float(best[0]))
        assert int(np.dot(chosen[m], np.asarray(sizes))) <= int(capacity[m])


def test_stacked_agents_are_independent_networks():
    network = TTOSCNetwork(num_services=4, hidden=8, num_gru_layers=1)
    params = init_agents(network, jax.random.PRNGKey(0), 3, 2)
    obs = jnp.ones((3, 2, 4))
    q = apply_agents(network, params, obs)
    chex.assert_shape(q, (3, 4))
    assert not np.allclose(q[0], q[1])
    one = network.apply(jax.tree.map(lambda p: p[1], params), obs[1])
    np.testing.assert_allclose(q[1], one, rtol=1e-5)


# ----------------------------------------------------------------------------- DDQN maths


def test_ddqn_target_hand_computed():
    """Knapsack argmax on the online values, evaluated by the target, stop at termination."""
    params = generate_params(0, MECConfig(num_cells=2, num_services=3))
    params = params.replace(service_size=jnp.array([1, 2, 2], jnp.int32), storage_capacity=jnp.array([3, 2], jnp.int32))
    # online next values (M=2, B=2, K=3)
    online = jnp.array([[[3.0, 2.0, 2.5], [3.0, 2.0, 2.5]],
                        [[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]]])
    target = jnp.array([[[1.0, 10.0, 4.0], [1.0, 10.0, 4.0]],
                        [[7.0, 7.0, 1.0], [7.0, 7.0, 7.0]]])
    reward = jnp.array([1.0, 2.0])
    terminated = jnp.array([False, True])
    # agent 0 (capacity 3): argmax online = {0, 2} (5.5 > {0, 1} = 5), target value 1 + 4 = 5
    #                       (the target's own max {0, 1} = 11 must NOT be used).
    # agent 1 (capacity 2): sample 0: argmax online = {2} (3 > 2 > 1), target value 1;
    #                       sample 1: all online values negative -> deploy nothing, value 0.
    expected = np.array([[1.0 + 0.5 * 5.0, 2.0], [1.0 + 0.5 * 1.0, 2.0]])
    got = ddqn_target(reward, terminated, 0.5, online, target, params, max_capacity=8)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # truncation is not termination: passing terminated=False bootstraps sample 1 too
    got = ddqn_target(reward, jnp.array([False, False]), 0.5, online, target, params, max_capacity=8)
    np.testing.assert_allclose(got[:, 1], [2.0 + 0.5 * 5.0, 2.0 + 0.0])


def test_epsilon_schedule():
    config = DDQNConfig()
    values = [float(epsilon_schedule(jnp.asarray(e), config)) for e in (0, 250, 500, 2000)]
    np.testing.assert_allclose(values, [0.5, 0.255, 0.01, 0.01], rtol=1e-5)


def test_replay_ring_buffer_wraps_and_samples_filled_part():
    state = replay_init({"a": jnp.zeros((2,)), "b": jnp.zeros((), jnp.int32)}, capacity=5)
    add = jax.jit(replay_add)
    state = add(state, {"a": jnp.ones((3, 2)), "b": jnp.arange(3)})
    assert int(state.size) == 3 and int(state.position) == 3
    sample = replay_sample(state, jax.random.PRNGKey(0), 64)
    assert set(np.asarray(sample["b"]).tolist()) <= {0, 1, 2}
    state = add(state, {"a": jnp.ones((4, 2)), "b": jnp.arange(10, 14)})
    assert int(state.size) == 5 and int(state.position) == 2
    np.testing.assert_array_equal(state.data["b"], [12, 13, 2, 10, 11])


# ----------------------------------------------------------------------------- training


# One vmapped run of TINY over two seeds (4 episodes = 8 frames) serves the truncation, feasibility,
# seeds and checkpoint tests below: the training program is compiled once for all of them.
TINY_RUN = dataclasses.replace(TINY, num_episodes=4)


@pytest.fixture(scope="module")
def tiny_runs():
    params = tiny_params(TINY_RUN)
    trainer = make_trainer(TINY_RUN, params)
    runners, metrics = jax.jit(jax.vmap(trainer.train))(jax.random.split(jax.random.PRNGKey(0), 2))
    return trainer, params, runners, metrics


def test_truncation_bootstraps_from_final_observation_and_actions_feasible(tiny_runs):
    _, params, runners, metrics = tiny_runs
    assert TINY_RUN.num_iterations == 8
    for seed in range(2):
        runner = jax.tree.map(lambda x: x[seed], runners)
        data = runner.replay.data
        size = int(runner.replay.size)
        assert size == 8 * TINY.num_envs
        assert not np.asarray(data.terminated[:size]).any()  # the env only truncates
        # iterations 4 and 8 truncate; the next transition's observation is the reset one
        obs = np.asarray(data.observation[:size]).reshape(8, TINY.num_envs, *data.observation.shape[1:])
        nxt = np.asarray(data.next_observation[:size]).reshape(obs.shape)
        np.testing.assert_array_equal(nxt[:3], obs[1:4])  # within the episode: s' = next s
        assert not np.array_equal(nxt[3], obs[4])  # at truncation: s' is the true final obs, not the reset
        for deployment in np.asarray(data.deployment[:size]):
            assert storage_ok(deployment, params)  # eq. (1), greedy and exploratory actions alike
        assert not np.asarray(metrics["storage_violation"][seed]).any()


def test_random_deployment_feasible():
    params = tiny_params(TINY)
    for i in range(5):
        assert storage_ok(random_deployment(jax.random.PRNGKey(i), params, 64), params)


@pytest.mark.timeout(300)
def test_tiny_training_beats_random_deployment():
    config = dataclasses.replace(TINY, num_envs=4, num_episodes=64, epsilon_episodes=32, learning_rate=3e-3,
                                 gamma=0.0, hidden=32, buffer_size=1024, learning_starts=64)
    params = tiny_params(config)
    trainer = make_trainer(config, params)
    runner, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0))
    assert np.isfinite(np.asarray(metrics["reward"])).all()
    env = TwoTimescaleMEC(config.env_config(50))
    evaluate = lambda policy: jax.jit(lambda k: mb.evaluate_policy(env, params, policy, k, 8, 8))(  # noqa: E731
        jax.random.PRNGKey(7))
    trained = evaluate(ddqn_policy(trainer.network, runner.train_state.params, 64))
    random = evaluate(mb.random_policy(64))
    assert int(trained["storage_violations"]) == 0
    assert float(trained["reward"]) > float(random["reward"]) * 1.05, (trained["reward"], random["reward"])


def test_vmapped_training_over_seeds_and_checkpoint_round_trip(tiny_runs, tmp_path):
    trainer, _, runners, metrics = tiny_runs
    config = TINY_RUN
    # make_train is the trainer's train (PureJaxRL entry point): same outputs, traced only
    key = jax.random.PRNGKey(0)
    leaves = lambda tree: [(x.shape, x.dtype) for x in jax.tree.leaves(tree)]  # noqa: E731
    assert leaves(jax.eval_shape(make_train(config), key)) == leaves(jax.eval_shape(trainer.train, key))
    reward = np.asarray(metrics["reward"])
    assert reward.shape == (2, config.num_iterations)
    assert not np.allclose(reward[0], reward[1])  # different seeds, different runs
    # checkpoint round trip: restore into a fresh structure, continue identically
    runner = jax.tree.map(lambda x: x[0], runners)
    checkpoint.save_checkpoint(tmp_path / "ckpt", 8, runner)
    target = jax.jit(trainer.init)(jax.random.PRNGKey(99))
    restored, step = checkpoint.restore_checkpoint(tmp_path / "ckpt", target)
    assert step == 8
    chex.assert_trees_all_equal(jax.tree.leaves(restored), jax.tree.leaves(runner))
    assert jax.tree.structure(restored.train_state.params) == jax.tree.structure(runner.train_state.params)
