"""DDPG baseline of TTOSC: its own deployment (not Popularity's), feasible actions, a rising training reward."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.ttosc import baselines as mb
from agents.ttosc.ddpg import (DDPGConfig, ddpg_env, ddpg_policy, deployment_from_logits, make_ddpg_trainer)
from jaxcpn.mec.generator import generate_params
from jaxcpn.mec.types import MECConfig

CONFIG = MECConfig(num_cells=3, num_services=6, slots_per_frame=3, frames_per_episode=8)


def params_binding():
    """Storage binds: sizes 1..3, capacity 4, 4, 3 (the sizes sum to 12)."""
    params = generate_params(0, CONFIG)
    return params.replace(service_size=jnp.array([1, 2, 3, 1, 2, 3], jnp.int32),
                          storage_capacity=jnp.array([4, 4, 3], jnp.int32))


def used_storage(deployment, params):
    return np.asarray(deployment).astype(np.int64) @ np.asarray(params.service_size)


def test_deployment_from_logits_hand_computed():
    """Eq. (15) on sigmoid(logits) - 1/2: only preferred services, the best packing that fits."""
    params = params_binding().replace(service_size=jnp.array([2, 1, 2, 1, 3, 3], jnp.int32),
                                      storage_capacity=jnp.array([3, 3, 0], jnp.int32))
    logits = jnp.array([[2.0, -1.0, 3.0, 1.0, -5.0, -5.0],    # values .38 -.23 .45 .23: {2, 3} = .68 > {0, 3} = .61
                        [-1.0, -1.0, -1.0, -1.0, -1.0, -1.0],  # nothing preferred: nothing deployed
                        [5.0, 5.0, 5.0, 5.0, 5.0, 5.0]])      # no storage: nothing deployed
    deployment = np.asarray(jax.jit(deployment_from_logits, static_argnums=2)(logits, params, CONFIG.max_storage_units))
    np.testing.assert_array_equal(deployment, [[False, False, True, True, False, False], [False] * 6, [False] * 6])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deployments_respect_storage(seed):
    """Any logits (large, random) give a deployment satisfying eq. (1) at every ES."""
    params = params_binding()
    logits = 10.0 * jax.random.normal(jax.random.PRNGKey(seed), (16, 3, 6))
    deployments = jax.jit(jax.vmap(lambda l: deployment_from_logits(l, params, CONFIG.max_storage_units)))(logits)
    assert (used_storage(deployments, params) <= np.asarray(params.storage_capacity)).all()
    assert np.asarray(deployments).any()


def _bias_everywhere(actor_params, value):
    """Actor parameters whose deployment preference logits are ``value`` for every (m, k)."""
    deployer = actor_params["params"]["deployer"]
    last = sorted(k for k in deployer["_MLP_0"] if k.startswith("Dense"))[-1]
    layer = {"kernel": jnp.zeros_like(deployer["_MLP_0"][last]["kernel"]),
             "bias": jnp.full_like(deployer["_MLP_0"][last]["bias"], value)}
    mlp = dict(deployer["_MLP_0"], **{last: layer})
    return {"params": dict(actor_params["params"], deployer={"_MLP_0": mlp})}


def test_deployment_is_the_actors_not_popularitys():
    """The DDPG's deployment comes from its actor: with the same observation it differs from Popularity's
    (an actor preferring nothing deploys nothing; one preferring everything packs the most services,
    where Popularity packs the most requested), and two initialisations differ."""
    params = params_binding()
    trainer = make_ddpg_trainer(DDPGConfig(num_cells=3, num_services=6, slots_per_frame=3, frames_per_episode=8,
                                           num_envs=1, num_episodes=1, learning_starts=1, hidden=8), params)
    runner = jax.jit(trainer.init)(jax.random.PRNGKey(0))  # one program, not flax's init op by op
    observation = jnp.zeros((3, 3, 6), jnp.float32).at[:, :, 2].set(9.0).at[:, :, 5].set(7.0)  # sizes 3, 3
    popularity = np.asarray(mb.popularity_deployment(observation, params))
    np.testing.assert_array_equal(popularity[0], [False, False, True, False, False, False])
    deploy = jax.jit(lambda a: ddpg_policy(trainer.actor, a, CONFIG.max_storage_units)(None, observation, None, params))
    policy = lambda a: np.asarray(deploy(a))  # noqa: E731  (one program for the four actors)
    actor_params = runner.learner.actor_params
    assert not policy(_bias_everywhere(actor_params, -3.0)).any()
    everything = policy(_bias_everywhere(actor_params, 3.0))
    assert everything[0].sum() == 3 and not everything[0, 2]  # 3 small services in 4 units, not the popular one
    assert not (everything == popularity).all()
    other = jax.jit(make_ddpg_trainer(trainer.config, params).init)(jax.random.PRNGKey(1)).learner.actor_params
    moved = lambda a: jax.tree.map(lambda x: x * 100.0, a)  # noqa: E731  (away from the ~0 initial logits)
    assert not (policy(moved(actor_params)) == policy(moved(other))).all()


@pytest.mark.timeout(600)
def test_tiny_training_reward_rises_and_beats_the_untrained_actor():
    """Two seeds of a tiny DDPG run under jit(vmap): the training reward of the last fifth of the frames
    beats the first fifth, and the trained noise-free actors beat the untrained ones on the same episodes."""
    params = params_binding()
    config = DDPGConfig(num_cells=3, num_services=6, slots_per_frame=3, frames_per_episode=8, num_envs=4,
                        num_episodes=64, batch_size=32, learning_starts=16, buffer_size=256, hidden=32)
    trainer = make_ddpg_trainer(config, params)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    runner, metrics = jax.jit(jax.vmap(trainer.train))(keys)
    reward = np.asarray(metrics["reward"])
    assert reward.shape == (2, config.num_iterations) and np.isfinite(reward).all()
    assert not np.allclose(reward[0], reward[1])  # two seeds, two runs
    fifth = config.num_iterations // 5
    first, last = reward[:, :fifth].mean(), reward[:, -fifth:].mean()
    assert last > 1.15 * first > 0, (first, last)  # measured: 1.28 -> 1.95

    def delay(actor_params, key):
        env = ddpg_env(CONFIG, trainer.actor, actor_params)
        policy = ddpg_policy(trainer.actor, actor_params, CONFIG.max_storage_units)
        out = mb.evaluate_policy(env, params, policy, key, 4, 8)
        return out["mean_delay"], out["storage_violations"]

    eval_keys = jax.random.split(jax.random.PRNGKey(7), 2)
    untrained = jax.jit(jax.vmap(trainer.init))(keys).learner.actor_params
    evaluate = jax.jit(jax.vmap(delay))  # one program for both
    trained_delay, violations = evaluate(runner.learner.actor_params, eval_keys)
    untrained_delay, _ = evaluate(untrained, eval_keys)
    assert int(np.sum(violations)) == 0
    assert float(np.mean(trained_delay)) < 0.97 * float(np.mean(untrained_delay)), (trained_delay, untrained_delay)
