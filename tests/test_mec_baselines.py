"""MEC baselines: every deployment satisfies eq. (1), every schedule eqs. (2)-(3); Oracle facts."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.ttosc import baselines as mb
from agents.ttosc.ddpg import DDPGConfig, actor_schedule_fn, make_ddpg_trainer, masked_softmax_schedule
from agents.ttosc.ddqn import random_deployment
from jaxcpn.mec import model
from jaxcpn.mec.env import TwoTimescaleMEC
from jaxcpn.mec.generator import generate_params
from jaxcpn.mec.types import MECConfig

CONFIG = MECConfig(num_cells=3, num_services=6, slots_per_frame=3, frames_per_episode=4, qp_iterations=30)


def params_binding():
    """Storage binds: sizes 1..3, capacity 4."""
    params = generate_params(0, CONFIG)
    return params.replace(service_size=jnp.array([1, 2, 3, 1, 2, 3], jnp.int32),
                          storage_capacity=jnp.array([4, 4, 3], jnp.int32))


def assert_storage(deployment, params):
    deployment = np.asarray(deployment)
    assert deployment.dtype == np.bool_
    used = deployment.reshape(-1, deployment.shape[-1]).astype(np.int64) @ np.asarray(params.service_size)
    capacity = np.tile(np.asarray(params.storage_capacity), used.size // params.storage_capacity.shape[0])
    assert (used <= capacity).all(), "eq. (1) violated"


def assert_schedule(schedule, deployment):
    """Eq. (2): rows on the simplex; eq. (3): mass only on the cloud or ESs that host the service."""
    schedule, deployment = np.asarray(schedule), np.asarray(deployment)
    assert (schedule >= -1e-6).all()
    np.testing.assert_allclose(schedule.sum(-1), 1.0, atol=1e-5)
    mask = np.asarray(model.scheduling_mask(jnp.asarray(deployment)))
    assert np.abs(np.where(mask, 0.0, schedule)).max() <= 1e-7


def random_observation(key, m=3, l=3, k=6):
    return jax.random.poisson(key, 3.0, (m, l, k)).astype(jnp.float32)


def test_greedy_fill_hand_computed():
    scores = jnp.array([5.0, 4.0, 3.0, 2.0])
    sizes = jnp.array([3, 2, 1, 1], jnp.int32)
    # capacity 4: take 0 (3), skip 1 (would need 5), take 2 (4), skip 3 (full)
    chosen = mb.greedy_fill(scores, jnp.ones(4, bool), sizes, jnp.asarray(4, jnp.int32))
    np.testing.assert_array_equal(chosen, [True, False, True, False])
    chosen = mb.greedy_fill(scores, jnp.array([False, True, True, True]), sizes, jnp.asarray(4, jnp.int32))
    np.testing.assert_array_equal(chosen, [False, True, True, True])


@pytest.mark.parametrize("name", ["popularity", "greedy", "random"])
def test_deployments_satisfy_storage(name):
    params = params_binding()
    policy = {"popularity": mb.popularity_policy, "greedy": mb.greedy_policy,
              "random": mb.random_policy(CONFIG.max_storage_units)}[name]
    for i in range(4):
        obs = random_observation(jax.random.PRNGKey(i))
        deployment = jax.jit(policy)(jax.random.PRNGKey(10 + i), obs, None, params)
        assert_storage(deployment, params)
        if name != "random":  # only requested services are deployed
            assert not np.asarray(deployment & (obs.sum(1) == 0)).any()


def test_popularity_prefers_most_requested():
    params = params_binding()
    obs = jnp.zeros((3, 1, 6)).at[:, 0, :].set(jnp.array([1.0, 9.0, 2.0, 8.0, 0.0, 7.0]))
    deployment = np.asarray(mb.popularity_deployment(obs, params))
    # ES 0, capacity 4: 1 (size 2, 9 req), 3 (size 1, 8 req), then 5 (size 3) does not fit, 2 (size 3) neither,
    # 0 (size 1, 1 req) fits
    np.testing.assert_array_equal(deployment[0], [True, True, False, True, False, False])


@functools.cache
def _schedules():
    """One slot's greedy, DDPG (noise 0 and 1) and convex schedules and their delays: one program for every seed."""
    params = params_binding()
    env = TwoTimescaleMEC(CONFIG)
    trainer = make_ddpg_trainer(DDPGConfig(num_cells=3, num_services=6, slots_per_frame=3, frames_per_episode=4,
                                           num_envs=1, num_episodes=1), params)

    @jax.jit
    def schedules(key, params):
        key_dep, key_arr, key_actor = jax.random.split(key, 3)
        deployment = random_deployment(key_dep, params, CONFIG.max_storage_units)
        arrivals = jax.random.poisson(key_arr, 4.0, (3, 6)).astype(jnp.float32).at[0, 0].set(0.0)
        previous = model.cloud_schedule(3, 6)
        greedy = mb.greedy_schedule(key_dep, arrivals, deployment, params, previous)
        actor_params = trainer.actor.init(key_actor, random_observation(key_actor), arrivals, deployment)
        ddpg = [actor_schedule_fn(trainer.actor, actor_params, noise)(key_actor, arrivals, deployment, params,
                                                                      previous) for noise in (0.0, 1.0)]
        convex = env.schedule_slot(arrivals, deployment, params, warm_start=previous)
        delay = lambda s: model.slot_delay(arrivals, deployment, s, params).total  # noqa: E731
        return deployment, greedy, ddpg, convex, delay(convex), delay(greedy)

    return lambda key: schedules(key, params)


@pytest.mark.parametrize("seed", [0, 1])
def test_schedulers_satisfy_constraints(seed):
    """Greedy marginal-delay, DDPG masked softmax and the convex scheduler: eqs. (2)-(3)."""
    deployment, greedy, ddpg, convex, convex_delay, greedy_delay = _schedules()(jax.random.PRNGKey(seed))
    assert_schedule(greedy, deployment)
    for schedule in ddpg:  # noise 0 and 1
        assert_schedule(schedule, deployment)
    assert_schedule(convex, deployment)
    # the greedy marginal-delay schedule is feasible but not better than the convex optimum
    assert float(convex_delay) <= float(greedy_delay) * (1 + 1e-3)


def test_masked_softmax_zero_off_mask():
    deployment = jnp.array([[True, False], [False, False]])
    schedule = masked_softmax_schedule(jnp.zeros((2, 2, 3)), deployment)
    np.testing.assert_allclose(schedule[:, 0], [[0.5, 0.0, 0.5], [0.5, 0.0, 0.5]])
    np.testing.assert_allclose(schedule[:, 1], [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])


def test_oracle_sees_true_arrivals_and_is_best():
    params = params_binding()
    env = TwoTimescaleMEC(CONFIG)

    @jax.jit  # one program (reset, prediction, step), not op by op
    def predicted_and_played(key):
        obs, state = env.reset(jax.random.PRNGKey(0), params)
        predicted = mb.true_frame_arrivals(env, key, state, params)
        _, _, _, _, _, info = env.step(key, state, jnp.zeros((3, 6), bool), params)
        return predicted, info["final_observation"]

    predicted, final_observation = predicted_and_played(jax.random.PRNGKey(1))
    np.testing.assert_array_equal(jnp.swapaxes(predicted, 0, 1), final_observation)

    # the Oracle (clairvoyant search) is at least as good as Popularity on the same episodes;
    # the other policies' feasibility is covered above
    policies = {"oracle": mb.clairvoyant_search_policy(env, num_rounds=1, num_proposals=3), "popularity": mb.popularity_policy}
    out = {name: jax.jit(lambda k, p=p: mb.evaluate_policy(env, params, p, k, 2, 3))(jax.random.PRNGKey(3))
           for name, p in policies.items()}
    assert int(out["oracle"]["storage_violations"]) == 0
    assert_storage(out["oracle"]["deployments"], params)
    assert float(out["oracle"]["mean_delay"]) <= float(out["popularity"]["mean_delay"]) + 1e-6


@pytest.mark.timeout(300)
def test_ddpg_training_runs_and_its_schedules_are_feasible():
    params = params_binding()
    config = DDPGConfig(num_cells=3, num_services=6, slots_per_frame=3, frames_per_episode=4, num_envs=2,
                        num_episodes=4, learning_starts=4, batch_size=16, hidden=16)
    trainer = make_ddpg_trainer(config, params)
    runner, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0))
    assert np.isfinite(np.asarray(metrics["critic_loss"])[-1])
    assert np.isfinite(np.asarray(metrics["deployment_critic_loss"])[-1])
    assert not np.asarray(metrics["storage_violation"]).any()
    # the replayed deployments and schedules are what the actors emitted inside the environment:
    # eq. (1) for each frame's deployment, eqs. (2)-(3) for every slot's schedule
    data = runner.replay.data
    for schedules, deployment in zip(np.asarray(data.schedule[:int(runner.replay.size)]),
                                     np.asarray(data.deployment[:int(runner.replay.size)])):
        assert_storage(deployment, params)
        for schedule in schedules:
            assert_schedule(schedule, deployment)
