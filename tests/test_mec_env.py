"""Two-timescale MEC env: delay maths vs the NumPy reference, episodes under jit(vmap), errors."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcpn.mec import MECConfig, TwoTimescaleMEC, check_deployment, generate_params, model, reference

SMALL = MECConfig(num_cells=3, num_services=6, slots_per_frame=4, frames_per_episode=3, qp_iterations=30)


def random_slot(seed, config=MECConfig()):
    rng = np.random.default_rng(seed)
    params = generate_params(seed, config)
    arrivals = rng.poisson(2.0, (config.num_cells, config.num_services)).astype(np.float32)
    arrivals[rng.random(arrivals.shape) < 0.2] = 0.0
    deployment = rng.random(arrivals.shape) < 0.4
    raw = rng.random((config.num_cells, config.num_services, config.num_nodes)).astype(np.float32)
    schedule = model.clean_schedule(jnp.asarray(raw), jnp.asarray(deployment))
    return arrivals, deployment, schedule, params


def test_delay_maths_matches_numpy_reference():
    for seed in range(4):
        arrivals, deployment, schedule, params = random_slot(seed)
        delay = jax.jit(model.slot_delay)(arrivals, deployment, schedule, params)
        expected = reference.slot_delay(arrivals, deployment, schedule, params)
        np.testing.assert_allclose(delay.per_task, expected["per_task"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(delay.per_service, expected["per_service"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(delay.mean, expected["mean"], rtol=1e-5)
        np.testing.assert_allclose(delay.total, expected["total"], rtol=1e-5)


def two_es_slot():
    """One service on 2 ESs with hand-checkable numbers: ``(params, arrivals, deployment, schedule)``.

    ES 0 gets 2 tasks and sends half locally, a quarter to ES 1 and a quarter to the cloud; local
    compute 2 Gcycles / 4 GHz per task, ES 1 transfer 10 Mb / 20 Mb/s and compute on 8 GHz, cloud
    10 Mb / 5 Mb/s + 2 / 10 s.
    """
    config = MECConfig(num_cells=2, num_services=1)
    params = generate_params(0, config).replace(
        task_input_size=jnp.array([10.0]), task_cycles=jnp.array([2.0]), es_cpu=jnp.array([4.0, 8.0]),
        es_rate=jnp.array([[1.0, 20.0], [20.0, 1.0]]), cloud_rate=jnp.array([5.0, 5.0]),
        cloud_cpu=jnp.float32(10.0))
    arrivals = jnp.array([[2.0], [0.0]])
    deployment = jnp.array([[True], [True]])
    schedule = jnp.array([[[0.5, 0.25, 0.25]], [[1.0, 0.0, 0.0]]])
    return params, arrivals, deployment, schedule


class MathsTest(chex.TestCase):
    @chex.all_variants(with_pmap=False)
    def test_two_es_hand_computed(self):
        params, arrivals, deployment, schedule = two_es_slot()
        delay = self.variant(model.slot_delay)(arrivals, deployment, schedule, params)
        # local: 2 * 1 task / 4 GHz = 0.5 s; ES 1: 10/20 + 2 * 0.5 / 8 = 0.625 s; cloud 10/5 + 0.2 = 2.2 s
        per_task = 0.5 * 0.5 + 0.25 * 0.625 + 0.25 * 2.2
        np.testing.assert_allclose(delay.per_task[0, 0], per_task, rtol=1e-6)
        np.testing.assert_allclose(delay.mean, per_task, rtol=1e-6)
        np.testing.assert_allclose(delay.total, 2 * per_task, rtol=1e-6)


def test_episode_under_jit_vmap_256_envs_without_recompiling():
    env = TwoTimescaleMEC(SMALL)
    params = env.default_params
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))

    def batched_step(keys, state, deployment, params):
        return jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, state, deployment, params)

    step = jax.jit(chex.assert_max_traces(batched_step, n=1))
    keys = jax.random.split(jax.random.key(0), 256)
    obs, state = reset(keys, params)
    space = env.observation_space(params)
    values = jax.random.normal(jax.random.key(1), (256, SMALL.num_cells, SMALL.num_services))
    deployment = jax.vmap(env.deployment_from_values, in_axes=(0, None))(values, params)
    assert bool(jax.vmap(env.action_space(params).contains)(deployment).all())
    rewards, truncations = [], []
    for frame in range(SMALL.frames_per_episode):
        obs, state, reward, terminated, truncated, info = step(jax.random.split(jax.random.key(frame), 256),
                                                               state, deployment, params)
        assert obs.shape == (256, SMALL.num_cells, SMALL.slots_per_frame, SMALL.num_services)
        assert bool(jax.vmap(space.contains)(obs).all())
        assert np.isfinite(np.asarray(reward)).all() and not np.asarray(terminated).any()
        assert not np.asarray(info["storage_violation"]).any()
        rewards.append(np.asarray(reward))
        truncations.append(np.asarray(truncated))
    assert np.asarray(truncations)[-1].all() and not np.asarray(truncations)[:-1].any()
    assert np.asarray(state.frame).max() == 0  # auto-reset after truncation
    assert np.mean(rewards) > 0  # edge deployment beats all-to-cloud
    assert np.std(np.asarray(rewards)[0]) > 0  # different seeds, different rollouts


def test_cvxpy_scheduler_frame_reward_matches_jax():
    config = MECConfig(num_cells=3, num_services=5, slots_per_frame=3, frames_per_episode=2)
    # one env and one jitted step per scheduler, for both seeds (the params are arguments): the
    # CVXPY step's host callback is compiled once, not once per seed
    envs = {scheduler: TwoTimescaleMEC(MECConfig(**{**config.__dict__, "scheduler": scheduler}))
            for scheduler in ("jax", "cvxpy")}
    steps = {scheduler: jax.jit(env.step) for scheduler, env in envs.items()}
    for seed in range(2):
        params = generate_params(seed, config)
        rewards = {}
        for scheduler, env in envs.items():
            _, state = env.reset(jax.random.key(seed), params)
            values = jax.random.normal(jax.random.key(seed + 10), (config.num_cells, config.num_services))
            deployment = env.deployment_from_values(values, params)
            _, _, reward, *_ = steps[scheduler](jax.random.key(seed), state, deployment, params)
            rewards[scheduler] = float(reward)
        np.testing.assert_allclose(rewards["jax"], rewards["cvxpy"], rtol=1e-3)


def test_same_seed_same_rollout():
    env = TwoTimescaleMEC(SMALL)
    params = env.default_params
    deployment = jnp.zeros((SMALL.num_cells, SMALL.num_services), bool).at[:, 0].set(True)
    # jit(env.step) on SMALL: test_infeasible_deployment_eager_error_and_jit_flag compiles the same program (cached)
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    run = lambda key: step(key, reset(key, params)[1], deployment, params)[2]  # noqa: E731
    assert float(run(jax.random.key(3))) == float(run(jax.random.key(3)))
    assert float(run(jax.random.key(3))) != float(run(jax.random.key(4)))


def test_infeasible_deployment_eager_error_and_jit_flag():
    env = TwoTimescaleMEC(SMALL)
    params = env.default_params.replace(storage_capacity=jnp.full((SMALL.num_cells,), 6, jnp.int32))
    _, state = env.reset(jax.random.key(0), params)
    everything = jnp.ones((SMALL.num_cells, SMALL.num_services), bool)
    assert int(params.service_size.sum()) > int(params.storage_capacity.max())
    with pytest.raises(ValueError, match="eq. 1"):
        check_deployment(everything, params)
    with pytest.raises(ValueError, match="storage_capacity"):
        env.step(jax.random.key(1), state, everything, params)
    _, _, reward, _, _, info = jax.jit(env.step)(jax.random.key(1), state, everything, params)
    assert np.asarray(info["storage_violation"]).all()
    np.testing.assert_allclose(reward, 0.0, atol=1e-5)  # nothing deployed: all tasks at the cloud


def test_learned_scheduler_hook():
    cloud_only = lambda key, arrivals, deployment, params, previous: jnp.zeros_like(previous).at[..., -1].set(1.0)  # noqa: E731
    env = TwoTimescaleMEC(SMALL, schedule_fn=cloud_only)
    params = env.default_params
    _, state = env.reset(jax.random.key(0), params)
    deployment = jnp.zeros((SMALL.num_cells, SMALL.num_services), bool).at[:, :2].set(True)
    _, _, reward, _, _, info = jax.jit(env.step)(jax.random.key(1), state, deployment, params)
    assert info["schedule"].shape == (SMALL.slots_per_frame, SMALL.num_cells, SMALL.num_services, SMALL.num_nodes)
    np.testing.assert_allclose(reward, 0.0, atol=1e-5)


@pytest.mark.parametrize("field, value, message", [
    ("num_cells", 0, "num_cells"), ("slots_per_frame", 2.5, "slots_per_frame"),
    ("scheduler", "gurobi", "scheduler"), ("qp_iterations", -1, "qp_iterations"),
    ("switching_cost", 1, "switching_cost"),
])
def test_bad_config_raises(field, value, message):
    with pytest.raises(ValueError, match=message):
        MECConfig(**{field: value})


@pytest.mark.parametrize("field, value, message", [
    ("zipf_exponent", -1.0, "zipf_exponent"), ("users_max", 5, "users_max"),
    ("storage_capacity", [100] * 3, "max_storage_units"), ("task_cycles", [0.0] * 6, "task_cycles"),
    ("diurnal_amplitude", 1.5, "diurnal_amplitude"), ("unknown", 1, "unknown"),
    ("popularity_cycle_amplitude", -0.1, "popularity_cycle_amplitude"), ("backhaul_rate", -1.0, "backhaul_rate"),
    ("slot_duration", 0.0, "slot_duration"), ("popularity_cycle_phase", [0.0], "popularity_cycle_phase"),
])
def test_bad_params_raise(field, value, message):
    with pytest.raises(ValueError, match=message):
        generate_params(0, SMALL, **{field: value})
