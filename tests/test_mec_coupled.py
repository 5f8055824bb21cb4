"""MEC options beyond the paper: switching cost and per-service popularity cycle.

Off (the defaults) they must leave the paper's model bitwise as it was; on, the JAX env must
match the NumPy reference, a deployment that changes pays more than one that stays, and the
arrivals must follow the cycle.
"""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcpn.mec import MECConfig, TwoTimescaleMEC, generate_params, model, reference
from test_mec_env import two_es_slot  # the hand-computed slot of the paper model's maths test

SMALL = MECConfig(num_cells=3, num_services=6, slots_per_frame=4, frames_per_episode=3, qp_iterations=30)
SWITCHING = dataclasses.replace(SMALL, switching_cost=True)


def random_ranking(rng, num_cells, num_services):
    return np.stack([rng.permutation(num_services) for _ in range(num_cells)]).astype(np.int32)


# ----------------------------------------------------------------------------- options off


# Recorded with the code before the options existed (commit 0dbc988): per seed, the sum and a
# weighted checksum of the 5 observations of a reset + 4 steps (the last one auto-resets) and
# the 4 rewards, for random knapsack deployments (scripted in `recorded_rollout`).
RECORDED = {
    0: (963, 43217, [2.9956185817718506, 3.138890027999878, 3.001272201538086, 3.076817512512207]),
    1: (819, 40132, [2.4078996181488037, 2.929349184036255, 2.8522186279296875, 2.120152235031128]),
}


def recorded_rollout(env, seed):
    params = generate_params(seed, env.config)
    obs, state = jax.jit(env.reset)(jax.random.key(seed), params)
    step, deploy = jax.jit(env.step), jax.jit(env.deployment_from_values)  # one program each, not op by op
    observations, rewards = [np.asarray(obs)], []
    for frame in range(4):
        values = jax.random.normal(jax.random.key(100 + frame), (env.config.num_cells, env.config.num_services))
        deployment = deploy(values, params)
        obs, state, reward, *_ = step(jax.random.fold_in(jax.random.key(seed), frame), state, deployment, params)
        observations.append(np.asarray(obs))
        rewards.append(float(reward))
    observations = np.stack(observations)
    weights = np.arange(observations.size).reshape(observations.shape) % 97 + 1
    return int(observations.sum()), int((observations * weights).sum()), rewards


@pytest.mark.parametrize("seed", [0, 1])
def test_options_off_reproduce_the_rollout_recorded_before_them(seed):
    total, checksum, rewards = recorded_rollout(TwoTimescaleMEC(SMALL), seed)
    assert (total, checksum) == RECORDED[seed][:2]  # the same Poisson draws, count for count
    np.testing.assert_allclose(rewards, RECORDED[seed][2], rtol=1e-6)


def test_generator_keeps_the_papers_draws():
    """The new leaves draw from their own stream: the paper's leaves are unchanged (recorded sums)."""
    params = generate_params(0, MECConfig())
    recorded = {"service_size": 59.0, "task_input_size": 497.9953804016113, "task_cycles": 62.77928972244263,
                "es_rate": 2092.9814529418945, "cloud_rate": 80.85725975036621}
    for name, value in recorded.items():  # 1e-6: XLA's optimisation level moves uniform draws by an ulp (FMA)
        np.testing.assert_allclose(np.asarray(getattr(params, name), np.float64).sum(), value, rtol=1e-6,
                                   err_msg=name)
    assert float(params.popularity_cycle_amplitude) == 0.0
    phase = np.asarray(params.popularity_cycle_phase)
    assert phase.shape == (20,) and (phase >= 0).all() and (phase < 2 * np.pi).all()
    assert (np.asarray(params.backhaul_rate) >= 200).all() and (np.asarray(params.backhaul_rate) <= 400).all()


def test_amplitude_zero_rate_is_the_papers_zipf_bitwise():
    env = TwoTimescaleMEC(SMALL)
    params = env.default_params
    rng = np.random.default_rng(0)
    ranking = jnp.asarray(random_ranking(rng, 3, 6))
    users = jnp.array([10, 30, 50], jnp.int32)
    rate = jax.jit(env.arrival_rate)(ranking, users, jnp.float32(2.5), jnp.int32(3), params)
    time = 2.5 + 3 + jnp.arange(4, dtype=jnp.float32) / 4
    paper = (model.diurnal_intensity(time, params.diurnal_amplitude, params.diurnal_period)[:, None, None]
             * users.astype(jnp.float32)[None, :, None] * params.task_rate
             * model.zipf_popularity(ranking, params.zipf_exponent)[None])
    np.testing.assert_array_equal(np.asarray(rate), np.asarray(jax.jit(lambda: paper)()))


def test_default_observation_and_info_unchanged():
    env = TwoTimescaleMEC(SMALL)
    params = env.default_params
    obs, state = jax.jit(env.reset)(jax.random.key(0), params)
    assert obs.shape == (3, 4, 6) and env.observation_space(params).shape == (3, 4, 6)
    deployment = jnp.zeros((3, 6), bool).at[:, 0].set(True)
    # jit(env.step) on SMALL: the recorded-rollout test's program (compiled once), not a scan run op by op
    _, state, _, _, _, info = jax.jit(env.step)(jax.random.key(1), state, deployment, params)
    assert "download_time" not in info
    np.testing.assert_array_equal(state.deployment, deployment)  # tracked, unused with the option off


# ----------------------------------------------------------------------------- maths


class CoupledMathsTest(chex.TestCase):
    @chex.all_variants(with_pmap=False)
    def test_download_wait_hand_computed(self):
        params = generate_params(0, MECConfig(num_cells=2, num_services=2)).replace(
            service_size=jnp.array([1, 3], jnp.int32), backhaul_rate=jnp.array([100.0, 400.0]),
            slot_duration=jnp.float32(5.0))
        deployment = jnp.array([[True, True], [False, True]])
        hosted = jnp.array([[True, False], [False, False]])
        wait = self.variant(model.download_wait, static_argnums=3)(deployment, hosted, params, 3)
        # ES 0 downloads service 1: 2400 Mb / 100 Mb/s = 24 s; ES 1 downloads it at 400 Mb/s: 6 s
        expected = np.zeros((3, 2, 2))
        expected[:, 0, 1] = [24.0, 19.0, 14.0]
        expected[:, 1, 1] = [6.0, 1.0, 0.0]
        np.testing.assert_allclose(wait, expected, rtol=1e-6)

    @chex.all_variants(with_pmap=False)
    def test_wait_overlaps_the_transfer(self):
        params, arrivals, deployment, schedule = two_es_slot()
        wait = jnp.array([[0.3], [0.2]])  # ES 0 still downloads for 0.3 s, ES 1 for 0.2 s
        delay = self.variant(model.slot_delay)(arrivals, deployment, schedule, params, wait)
        # local: 0.3 + 0.5 s; ES 1: max(10/20, 0.2) + 0.125 s; cloud 2.2 s (never waits)
        per_task = 0.5 * (0.3 + 0.5) + 0.25 * (0.5 + 0.125) + 0.25 * 2.2
        np.testing.assert_allclose(delay.per_task[0, 0], per_task, rtol=1e-6)
        expected = reference.slot_delay(arrivals, deployment, schedule, params, np.asarray(wait))
        np.testing.assert_allclose(delay.mean, expected["mean"], rtol=1e-6)


# ----------------------------------------------------------------------------- reference equivalence


@pytest.mark.parametrize("amplitude", [0.0, 0.7])
def test_arrival_rate_matches_reference(amplitude):
    config = MECConfig(num_cells=3, num_services=7, slots_per_frame=5)
    env = TwoTimescaleMEC(config)
    rate_fn = jax.jit(env.arrival_rate)
    for seed in range(4):
        rng = np.random.default_rng(seed)
        params = generate_params(seed, config, popularity_cycle_amplitude=amplitude, zipf_exponent=rng.uniform(0, 2))
        ranking = random_ranking(rng, 3, 7)
        users = rng.integers(0, 60, 3).astype(np.int32)
        phase, frame = np.float32(rng.uniform(0, 24)), int(rng.integers(0, 100))
        rate = rate_fn(jnp.asarray(ranking), jnp.asarray(users), jnp.float32(phase), jnp.int32(frame), params)
        expected = reference.arrival_rate(ranking, users, phase, frame, 5, params)
        np.testing.assert_allclose(rate, expected, rtol=2e-5, atol=1e-6)


def random_scheduler(key, arrivals, deployment, params, previous):
    """Random schedules (the env cleans them): every node, downloading ESs included, gets tasks."""
    return jax.random.uniform(key, previous.shape)


@pytest.mark.parametrize("switching_cost", [False, True])
def test_frames_match_reference_on_random_instances_and_actions(switching_cost):
    config = dataclasses.replace(SMALL, switching_cost=switching_cost, frames_per_episode=5)
    env = TwoTimescaleMEC(config, schedule_fn=random_scheduler)
    step = jax.jit(env.step)
    changed = 0
    for seed in range(3):
        rng = np.random.default_rng(seed)
        params = generate_params(seed, config, popularity_cycle_amplitude=0.6, backhaul_rate=rng.uniform(50, 400, 3),
                                 storage_capacity=6)  # about half the services fit: deployments change
        _, state = env.reset(jax.random.key(seed), params)
        for frame in range(4):
            values = jnp.asarray(rng.normal(size=(3, 6)), jnp.float32)
            deployment = env.deployment_from_values(values, params)
            hosted = np.asarray(state.deployment)
            changed += int((np.asarray(deployment) & ~hosted).sum()) if frame else 0
            obs, state, reward, _, _, info = step(jax.random.key(10 * seed + frame), state, deployment, params)
            expected = reference.frame_reward(state.arrivals, deployment, hosted, info["schedule"], params,
                                              switching_cost)
            for name in ("slot_delay", "slot_cloud_delay", "slot_reward", "num_tasks"):
                np.testing.assert_allclose(info[name], expected[name], rtol=1e-5, atol=1e-5, err_msg=name)
            np.testing.assert_allclose(info["mean_delay"], expected["mean_delay"], rtol=1e-5)
            np.testing.assert_allclose(reward, expected["slot_reward"].sum(), rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(state.deployment, deployment)
            if switching_cost:
                assert obs.shape == (3, 5, 6)
                np.testing.assert_array_equal(obs[:, -1, :], np.asarray(deployment, np.float32))
                waits = reference.download_wait(deployment, hosted, params, 4)
                np.testing.assert_allclose(info["download_time"], waits[0], rtol=1e-6)
                np.testing.assert_allclose(env.download_wait(deployment, state.replace(deployment=hosted), params),
                                           waits, rtol=1e-6, atol=1e-6)
            else:
                assert obs.shape == (3, 4, 6)
    assert changed > 5  # services newly deployed after the first frame were exercised


# ----------------------------------------------------------------------------- properties


_PROGRAMS = {}  # env -> its jitted reset and step: each compiled once for all seeds and deployments


def frame_rewards(env, params, deployments, seed):
    reset, step = _PROGRAMS.setdefault(env, (jax.jit(env.reset), jax.jit(env.step)))
    _, state = reset(jax.random.key(seed), params)
    rewards = []
    for frame, deployment in enumerate(deployments):
        _, state, reward, *_ = step(jax.random.key(1000 * seed + frame), state, deployment, params)
        rewards.append(float(reward))
    return np.array(rewards)


def test_a_deployment_that_changes_every_frame_pays_more_than_one_that_stays():
    """Same arrivals (switching draws nothing); the penalty is reward without minus with switching."""
    config = dataclasses.replace(SMALL, frames_per_episode=5)
    off, on = TwoTimescaleMEC(config), TwoTimescaleMEC(dataclasses.replace(config, switching_cost=True))
    deploy = jax.jit(off.deployment_from_values)
    for seed in range(3):
        params = generate_params(seed, config, storage_capacity=6)  # about half the services fit
        keys = jax.random.split(jax.random.key(seed))
        first = deploy(jax.random.uniform(keys[0], (3, 6)), params)
        second = deploy(jax.random.uniform(keys[1], (3, 6)), params)
        assert bool((first != second).any())
        stay, change = [first] * 4, [first, second, first, second]
        stay_penalty = frame_rewards(off, params, stay, seed) - frame_rewards(on, params, stay, seed)
        change_penalty = frame_rewards(off, params, change, seed) - frame_rewards(on, params, change, seed)
        assert stay_penalty[0] > 0.01  # the ESs start empty: the first frame downloads everything
        np.testing.assert_allclose(stay_penalty[1:], 0.0, atol=1e-4)  # nothing new to download
        assert (change_penalty[1:] > 1e-3).all()  # every change downloads
        assert change_penalty.sum() > stay_penalty.sum() + 0.01


def test_the_scheduler_prices_the_download_wait():
    """With switching costs the convex scheduler beats the schedule that ignores the wait."""
    env = TwoTimescaleMEC(SWITCHING)
    params = generate_params(0, SWITCHING)
    rng = np.random.default_rng(0)
    arrivals = jnp.asarray(rng.poisson(3.0, (3, 6)), jnp.float32)
    deployment = env.deployment_from_values(jnp.asarray(rng.uniform(size=(3, 6)), jnp.float32), params)

    @jax.jit  # one program, not op by op
    def delays(arrivals, deployment, params):
        wait = model.download_wait(deployment, jnp.zeros((3, 6), bool), params, 4)[0]
        aware = env.schedule_slot(arrivals, deployment, params, wait=wait)
        blind = env.schedule_slot(arrivals, deployment, params)
        return (model.slot_delay(arrivals, deployment, aware, params, wait).mean,
                model.slot_delay(arrivals, deployment, blind, params, wait).mean)

    aware_delay, blind_delay = delays(arrivals, deployment, params)
    assert float(aware_delay) < float(blind_delay) - 1e-3


def test_arrivals_follow_the_popularity_cycle():
    """Each service's mean arrivals at its cycle's peaks exceed those at its troughs; A = 0: no cycle."""
    config = MECConfig(num_cells=3, num_services=6, slots_per_frame=4)
    env = TwoTimescaleMEC(config)
    ranking = jnp.asarray(random_ranking(np.random.default_rng(0), 3, 6))
    users = jnp.full((3,), 40, jnp.int32)
    frames = jnp.arange(48, dtype=jnp.int32)  # two days
    for amplitude in (0.0, 0.8):
        params = generate_params(0, config, popularity_cycle_amplitude=amplitude, diurnal_amplitude=0.0,
                                 zipf_exponent=0.5)

        def draw(key, frame):
            return env._frame_arrivals(key, ranking, users, jnp.float32(0.0), frame, params)

        keys = jax.random.split(jax.random.key(1), (16, frames.size))
        arrivals = jax.jit(jax.vmap(jax.vmap(draw)))(keys, jnp.broadcast_to(frames, (16, frames.size)))
        per_service = np.asarray(arrivals).sum(axis=(0, 3)).reshape(-1, 6)  # (frames x slots, K)
        time = (frames[:, None] + jnp.arange(4) / 4).reshape(-1)
        angle = 2 * np.pi * np.asarray(time)[:, None] / 24.0 + np.asarray(params.popularity_cycle_phase)[None]
        peak, trough = np.sin(angle) > 0.7, np.sin(angle) < -0.7
        ratio = np.array([per_service[peak[:, k], k].mean() / per_service[trough[:, k], k].mean() for k in range(6)])
        if amplitude == 0.0:
            np.testing.assert_allclose(ratio, 1.0, atol=0.1)
        else:
            assert (ratio > 3.0).all(), ratio  # (1 + 0.8 x ~0.85) / (1 - 0.8 x ~0.85), renormalised


def test_coupled_episode_under_jit_vmap_without_recompiling():
    env = TwoTimescaleMEC(SWITCHING)
    params = generate_params(0, SWITCHING, popularity_cycle_amplitude=0.5)
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    def batched_step(keys, state, deployment, params):
        return jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, state, deployment, params)

    step = jax.jit(chex.assert_max_traces(batched_step, n=1))
    obs, state = reset(jax.random.split(jax.random.key(0), 32), params)
    space = env.observation_space(params)
    assert space.shape == (3, 5, 6) and not np.asarray(state.deployment).any()
    for frame in range(SWITCHING.frames_per_episode):
        values = jax.random.normal(jax.random.key(frame), (32, 3, 6))
        deployment = jax.vmap(env.deployment_from_values, in_axes=(0, None))(values, params)
        obs, state, reward, _, truncated, info = step(jax.random.split(jax.random.key(10 + frame), 32), state,
                                                      deployment, params)
        assert bool(jax.vmap(space.contains)(obs).all()) and np.isfinite(np.asarray(reward)).all()
        assert info["download_time"].shape == (32, 3, 6)
    assert np.asarray(truncated).all()
    assert not np.asarray(state.deployment).any() and not np.asarray(obs[:, :, -1]).any()  # auto-reset: empty ESs
