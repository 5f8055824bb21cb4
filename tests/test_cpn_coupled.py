"""CPN options beyond the paper (issue 18): shared compute with carried-over backlog, hidden current workload."""

import dataclasses
import hashlib
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcpn.cpn import CPNConfig, GreenCPN, generate_instance, validate_params
from jaxcpn.cpn.reference import CPNReference
from jaxcpn.cpn.types import CPNBacklogObservation, CPNObservation

SHARED = CPNConfig(compute_sharing=True)
HIDDEN = CPNConfig(observe_current_workload=False)
BOTH = CPNConfig(compute_sharing=True, observe_current_workload=False)
WORKLOAD_FIELDS = ("task_workload", "node_demand", "demand_window")

# ----------------------------------------------------------------------------- options off

# Recorded with the code before the options existed (commit d8976f0): 3 default envs of the seed-0
# instance, 30 vmapped steps (an auto-reset at 24) of random actions (scripted in
# `recorded_rollout`): the rewards as float32 values, and a digest of the float64 sums of every
# leaf of the reset observation and of each step's (observation, state, info). XLA's optimisation
# level moves the float32 maths by an ulp, so each setting has its recording: the test session's
# FAST_COMPILE (tests/conftest.py) and XLA's defaults (the digest only).
RECORDED_REWARDS = [
    [13.847585678100586, -8.719970703125, 4.733328819274902], [-2.9531679153442383, -15.110365867614746, -6.184645652770996],
    [-1.0161596536636353, -1.4735901355743408, -1.9453964233398438], [2.216662883758545, -12.066567420959473, -9.14982795715332],
    [-0.5988764762878418, -7.968806266784668, -5.214449882507324], [-25.16033172607422, -32.29661178588867, 11.010876655578613],
    [-16.18154525756836, -25.45952796936035, 13.609099388122559], [-15.924211502075195, -30.740814208984375, 19.160654067993164],
    [-21.208410263061523, -12.552553176879883, 18.740901947021484], [-10.406453132629395, -5.401937007904053, 12.367545127868652],
    [-23.33397674560547, -24.471435546875, 8.55238151550293], [-3.5757555961608887, 2.082897186279297, 8.357994079589844],
    [-30.076374053955078, 7.910104751586914, -4.051645755767822], [-9.369983673095703, 4.145336151123047, -9.183805465698242],
    [12.090291023254395, 2.6259946823120117, -26.77492904663086], [4.878810882568359, 10.110758781433105, -5.647139549255371],
    [-1.4709031581878662, 9.9505615234375, -10.323091506958008], [-2.346517562866211, 9.030920028686523, -11.43148422241211],
    [-12.10173511505127, -3.5277597904205322, -11.041857719421387], [-18.321718215942383, 12.183736801147461, 8.973664283752441],
    [-29.34551239013672, 15.838218688964844, 4.078635215759277], [-21.156681060791016, 18.872236251831055, 5.636904239654541],
    [-7.684542179107666, 23.87656593322754, 6.306268692016602], [-0.3205904960632324, 32.290924072265625, 6.4561004638671875],
    [37.08013916015625, 11.225934028625488, -11.965166091918945], [29.77788543701172, 14.487531661987305, 0.9791301488876343],
    [30.88849449157715, 9.932843208312988, -5.672223091125488], [45.12136459350586, 13.990283966064453, -31.220108032226562],
    [56.41683578491211, 3.7000792026519775, -7.1060991287231445], [45.76609802246094, 5.434600353240967, 8.42673397064209],
]
RECORDED_DIGEST = {"fast_compile": "ef8de9e1efb7262cc1119800309f9503965a993d54071db1ac754a017437cdc7",
                   "default": "05bf6b474335fe5bc5f3248f62b45a5e64292b0ddb18cda4113b1aa856db172d"}


def recorded_rollout(env):
    params = env.default_params
    num_envs, steps = 3, 30
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(7), num_envs), params)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    leaves = lambda tree: [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]  # noqa: E731
    rewards, sums = [], [[float(x.sum()) for x in leaves(obs)]]
    for t in range(steps):
        action = jax.random.randint(jax.random.PRNGKey(100 + t), (num_envs, 10), 0, 10)
        obs, state, reward, _, _, info = step(jax.random.split(jax.random.PRNGKey(t), num_envs), state, action, params)
        rewards.append([float(r) for r in np.asarray(reward)])
        # The state's observation cache came later (the demand window, the observation's but in
        # a fresh episode): the recording has the state's leaves without it.
        kept = np.asarray(state.window_index) >= 0
        np.testing.assert_array_equal(np.asarray(state.demand_window)[kept], np.asarray(obs.demand_window)[kept])
        uncached = state.replace(demand_window=None, window_index=None)
        sums.append([float(x.sum()) for x in leaves((obs, uncached, info))])
    return rewards, sums


def test_options_off_reproduce_the_rollout_recorded_before_them():
    env = GreenCPN(CPNConfig(compute_sharing=False, observe_current_workload=True))
    rewards, sums = recorded_rollout(env)
    fast = "xla_backend_optimization_level=0" in os.environ.get("XLA_FLAGS", "")
    if fast:
        assert rewards == RECORDED_REWARDS  # bit for bit
    else:
        np.testing.assert_allclose(rewards, RECORDED_REWARDS, rtol=1e-5, atol=1e-5)
    assert hashlib.sha256(repr(sums).encode()).hexdigest() == RECORDED_DIGEST["fast_compile" if fast else "default"]
    obs, state = env.reset(jax.random.PRNGKey(0), env.default_params)
    assert type(obs) is CPNObservation and state.backlog is None  # no new leaf, no new field
    assert "node_backlog" not in env.observation_space().spaces


# ----------------------------------------------------------------------------- reference equivalence


def _instances(config, num, seed, series_hours=24 * 21):
    keys = jax.random.split(jax.random.PRNGKey(seed), num)
    batch = jax.jit(jax.vmap(lambda k: generate_instance(k, config, series_hours=series_hours)))(keys)
    # A random service window per instance, from crowded to roomy.
    windows = jax.random.uniform(jax.random.PRNGKey(seed + 1), (num,), jnp.float32, 0.3, 3.0)
    return keys, batch.replace(slot_duration=windows)


def _actions(rng, num_steps, num_envs, config):
    """Random destinations; half the slots crowd every task onto 2 nodes so that queues build up."""
    spread = rng.integers(0, config.num_nodes, (num_steps, num_envs, config.num_users))
    crowded = rng.integers(0, 2, (num_steps, num_envs, config.num_users)) + rng.integers(0, config.num_nodes - 1,
                                                                                         (1, num_envs, 1))
    return np.where(rng.random((num_steps, num_envs, 1)) < 0.5, spread, crowded)


@pytest.mark.parametrize("config", [BOTH, SHARED, HIDDEN], ids=["both", "sharing", "hidden"])
def test_jax_matches_reference_with_options_on(config):
    num_instances = 6
    env = GreenCPN(config)
    keys, batch = _instances(config, num_instances, seed=5)
    _, states = jax.vmap(env.reset)(keys, batch)
    starts = np.asarray(states.start)
    actions = _actions(np.random.default_rng(1), config.episode_length, num_instances, config)
    step = jax.jit(jax.vmap(env.step))
    out = []
    for t in range(config.episode_length):
        _, states, reward, _, _, info = step(keys, states, jnp.asarray(actions[t]), batch)
        out.append((np.asarray(reward), jax.tree.map(np.asarray, info)))
    batch = jax.device_get(batch)
    names = ["delay", "offset", "revenue", "cost"] + (["queue_delay", "backlog", "served_work"] if config.compute_sharing else [])
    queued = 0.0
    for i in range(num_instances):
        ref = CPNReference(jax.tree.map(lambda x: x[i], batch), config)
        ref.reset(int(starts[i]))
        for t in range(config.episode_length):
            ref_obs, ref_reward, _, _, ref_info = ref.step(actions[t, i])
            reward, info = out[t]
            np.testing.assert_allclose(reward[i], ref_reward, rtol=2e-5, atol=1e-3)
            for name in names:
                np.testing.assert_allclose(info[name][i], ref_info[name], rtol=2e-5, atol=1e-4, err_msg=name)
            np.testing.assert_array_equal(info["deadline_miss"][i], ref_info["deadline_miss"])
            final = info["final_observation"]
            for name, value in ref_obs.items():
                np.testing.assert_allclose(getattr(final, name)[i], value, rtol=2e-5, atol=1e-4, err_msg=name)
            if config.compute_sharing:
                queued += float(ref_info["queue_delay"].sum())
    if config.compute_sharing:
        assert queued > 0  # the queues were exercised


# ----------------------------------------------------------------------------- work conservation


def test_backlog_conserves_work_over_an_episode():
    num_envs = 6  # test_jax_matches_reference_with_options_on's batch: its compiled programs serve this test
    env = GreenCPN(SHARED)
    keys, batch = _instances(SHARED, num_envs, seed=9)
    _, states = jax.vmap(env.reset)(keys, batch)
    actions = _actions(np.random.default_rng(2), SHARED.episode_length, num_envs, SHARED)
    step = jax.jit(jax.vmap(env.step))
    backlog = np.zeros((num_envs, SHARED.num_nodes))
    entered = served = 0.0
    for t in range(SHARED.episode_length):
        workload, _, _ = jax.vmap(env.slot_inputs)(states, batch)
        before = np.asarray(states.backlog, np.float64)
        np.testing.assert_allclose(before, backlog, atol=1e-6)  # the state carries the queue left by the last slot
        _, states, _, _, _, info = step(keys, states, jnp.asarray(actions[t]), batch)
        arriving = np.zeros_like(backlog)
        for e in range(num_envs):
            np.add.at(arriving[e], actions[t, e], np.asarray(workload[e], np.float64))
        backlog = np.asarray(info["backlog"], np.float64)
        # Per slot and node: what was queued plus what arrived = what was served + what stays.
        np.testing.assert_allclose(before + arriving, np.asarray(info["served_work"]) + backlog, rtol=1e-5, atol=1e-4)
        entered += arriving.sum()
        served += float(np.asarray(info["served_work"], np.float64).sum())
        capacity = np.asarray(batch.power)[:, :] * np.asarray(batch.slot_duration)[:, None]
        assert (np.asarray(info["served_work"]) <= capacity * (1 + 1e-5)).all()
    assert backlog.sum() > 0  # the crowded slots left work behind
    np.testing.assert_allclose(entered, served + backlog.sum(), rtol=1e-5)
    assert bool((states.backlog == 0).all())  # the auto-reset empties the queues


# ----------------------------------------------------------------------------- properties


def test_one_node_for_every_task_delays_more_than_spreading_when_compute_is_shared():
    shared, paper = GreenCPN(SHARED), GreenCPN(CPNConfig())
    everyone_to = jnp.broadcast_to(jnp.arange(SHARED.num_nodes, dtype=jnp.int32)[:, None],
                                   (SHARED.num_nodes, SHARED.num_users))  # row n: every task to node n
    mean_delay = lambda env: jax.jit(jax.vmap(  # noqa: E731  one compiled call per env for all actions
        lambda s, a, p: env.evaluate_slot(s, a, p)["delay"].mean(), in_axes=(None, 0, None)))
    shared_delay, paper_delay = mean_delay(shared), mean_delay(paper)
    step = jax.jit(shared.step)
    for seed in range(4):
        params = validate_params(generate_instance(jax.random.PRNGKey(seed), SHARED, series_hours=24 * 7), SHARED)
        _, state = shared.reset(jax.random.PRNGKey(seed), params)
        spread = params.user_node  # every task to its own access node: one per node
        spread_delay = float(shared_delay(state, spread[None], params)[0])
        one_delay = np.asarray(shared_delay(state, everyone_to, params))
        assert np.all(one_delay > spread_delay), (seed, one_delay, spread_delay)
        # The queue is what sharing adds: without it the same action waits less.
        assert np.all(one_delay > np.asarray(paper_delay(state.replace(backlog=None), everyone_to, params)))
        # Crowding slot after slot carries the queue over: the delay grows along the episode.
        one = jnp.zeros((SHARED.num_users,), jnp.int32)
        delays = []
        for t in range(4):
            _, state, _, _, _, info = step(jax.random.PRNGKey(t), state, one, params)
            delays.append(float(info["delay"].mean()))
        assert all(b > a for a, b in zip(delays, delays[1:])), delays


def test_hidden_workload_observation_ignores_the_current_slot():
    params = validate_params(generate_instance(jax.random.PRNGKey(0), BOTH, series_hours=24 * 7), BOTH)
    hidden, visible = GreenCPN(BOTH), GreenCPN(SHARED)
    _, state = hidden.reset(jax.random.PRNGKey(3), params)
    state = state.replace(time=jnp.asarray(5, jnp.int32))
    now = int(state.start + state.time)
    changed = params.replace(workload_shock=params.workload_shock.at[now].add(3.0))
    obs, obs_changed = hidden.get_obs(state, params), hidden.get_obs(state, changed)
    for a, b in zip(jax.tree.leaves(obs), jax.tree.leaves(obs_changed)):
        np.testing.assert_array_equal(a, b)
    # The slot's outcome does see the new workload, and so does the default observation.
    assert float(hidden.evaluate_slot(state, params.user_node, changed)["profit"]) != float(
        hidden.evaluate_slot(state, params.user_node, params)["profit"])
    assert not np.array_equal(visible.get_obs(state, params).task_workload, visible.get_obs(state, changed).task_workload)
    # What is hidden, exactly: the workload entries are those of the previous slot; the rest is the slot's own.
    shown, previous = visible.get_obs(state, params), visible.get_obs(state.replace(time=state.time - 1), params)
    for name in WORKLOAD_FIELDS:
        np.testing.assert_array_equal(getattr(obs, name), getattr(previous, name), err_msg=name)
    for name in ("price_window", "hydro_window", "node_features", "time_features", "node_backlog"):
        np.testing.assert_array_equal(getattr(obs, name), getattr(shown, name), err_msg=name)
    # The first slot's window reaches one hour further back: the reset keeps it inside the series.
    starts = jax.vmap(hidden.reset, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(1), 4096), params)[1].start
    assert int(starts.min()) >= BOTH.window


def test_options_on_one_program_finite_and_in_space():
    num_envs = 64
    env = GreenCPN(BOTH)
    params = env.default_params
    space = env.observation_space(params)
    sweep = params.replace(slot_duration=jnp.linspace(0.2, 4.0, num_envs, dtype=jnp.float32))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(keys, state, action, params):
        return jax.vmap(env.step)(keys, state, action, params)

    batch = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_envs,) + x.shape), params).replace(
        slot_duration=sweep.slot_duration)
    key = jax.random.PRNGKey(0)
    obs, state = jax.vmap(env.reset)(jax.random.split(key, num_envs), batch)
    assert isinstance(obs, CPNBacklogObservation) and obs.node_backlog.shape == (num_envs, BOTH.num_nodes)
    contains = jax.jit(jax.vmap(space.contains))
    for t in range(BOTH.episode_length + 2):
        action = jax.random.randint(jax.random.fold_in(key, t), (num_envs, BOTH.num_users), 0, 3)
        obs, state, reward, _, _, info = step(jax.random.split(key, num_envs), state, action, batch)
        chex.assert_tree_all_finite((obs, reward, info))
        assert bool(contains(obs).all()) and bool(contains(info["final_observation"]).all())
        assert bool((info["queue_delay"] >= 0).all()) and bool((info["backlog"] >= 0).all())
    # A shorter service window leaves more work behind (same actions, same workloads).
    totals = np.asarray(info["backlog"]).sum(axis=-1)
    assert totals[0] > totals[-1]


def test_greedy_profit_matrix_sees_the_backlog():
    env = GreenCPN(SHARED)
    params = env.default_params
    _, state = env.reset(jax.random.PRNGKey(0), params)
    empty = env.task_profit_matrix(state, params)
    np.testing.assert_array_equal(empty, GreenCPN(CPNConfig()).task_profit_matrix(state.replace(backlog=None), params))
    loaded = env.task_profit_matrix(state.replace(backlog=state.backlog.at[0].set(100.0)), params)
    assert bool((loaded[:, 0] < empty[:, 0]).all())
    np.testing.assert_array_equal(loaded[:, 1:], empty[:, 1:])


def test_options_change_nothing_when_nothing_queues():
    """With a window long enough for every queue to drain and one task per node, sharing = the paper's model."""
    params = GreenCPN(SHARED).default_params.replace(slot_duration=jnp.asarray(1e4, jnp.float32))
    _, state = GreenCPN(SHARED).reset(jax.random.PRNGKey(0), params)
    shared = GreenCPN(SHARED).evaluate_slot(state, params.user_node, params)
    paper = GreenCPN(CPNConfig()).evaluate_slot(state.replace(backlog=None), params.user_node, params)
    np.testing.assert_array_equal(shared["queue_delay"], 0.0)
    np.testing.assert_array_equal(shared["backlog"], 0.0)
    for name in ("delay", "revenue", "cost", "profit"):
        np.testing.assert_array_equal(shared[name], paper[name], err_msg=name)
    assert dataclasses.replace(SHARED, compute_sharing=False) == CPNConfig()
