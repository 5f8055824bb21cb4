"""Green CPN environment: batched episodes, reference equivalence, params sweeps, validation."""

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.stper.baselines import cpn_coordinate_ascent, cpn_greedy, cpn_random, rollout_cpn
from jaxcpn.cpn import CPNConfig, GreenCPN, generate_instance, validate_params
from jaxcpn.cpn.env import hydro_discount
from jaxcpn.cpn.reference import CPNReference
from jaxcpn.cpn.types import CPNObservation

CONFIG = CPNConfig()


@pytest.fixture(scope="module")
def env():
    return GreenCPN(CONFIG)


@pytest.fixture(scope="module")
def params(env):
    return env.default_params


def test_episode_jit_vmap_1024_no_recompilation(env, params):
    num_envs = 1024
    obs_space, act_space = env.observation_space(params), env.action_space(params)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(keys, state, action):
        return jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)

    obs_ok = jax.jit(jax.vmap(obs_space.contains))
    act_ok = jax.jit(jax.vmap(act_space.contains))
    sample = jax.jit(jax.vmap(act_space.sample))
    key = jax.random.PRNGKey(0)
    obs, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(jax.random.split(key, num_envs), params)
    returns = jnp.zeros(num_envs)
    for t in range(CONFIG.episode_length):
        key, key_act, key_step = jax.random.split(key, 3)
        action = sample(jax.random.split(key_act, num_envs))
        assert bool(act_ok(action).all())
        obs, state, reward, terminated, truncated, info = step(jax.random.split(key_step, num_envs), state, action)
        assert bool(obs_ok(obs).all())
        assert bool(obs_ok(info["final_observation"]).all())
        chex.assert_tree_all_finite((obs, reward, info))
        chex.assert_shape(info["delay"], (num_envs, CONFIG.num_users))
        assert not bool(terminated.any())
        assert bool(truncated.all()) == (t == CONFIG.episode_length - 1)
        assert not bool(info["invalid_action"].any())
        returns += reward
    # Auto-reset: the time index restarted for every env.
    assert bool((state.time == 0).all())
    assert bool(jnp.isfinite(returns).all())


def test_reference_equivalence_50_instances(env):
    """JAX env == NumPy reference on 50 random instances and random action sequences."""
    num_instances = 50
    keys = jax.random.split(jax.random.PRNGKey(42), num_instances)
    batch = jax.jit(jax.vmap(lambda k: generate_instance(k, CONFIG, series_hours=24 * 21)))(keys)
    reset = jax.jit(jax.vmap(env.reset))  # one program, not op-by-op dispatch (the same states)
    _, states = reset(keys, batch)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, CONFIG.num_nodes, (CONFIG.episode_length, num_instances, CONFIG.num_users))
    step = jax.jit(jax.vmap(env.step))
    jax_out = []
    for t in range(CONFIG.episode_length):
        obs, states, reward, _, truncated, info = step(keys, states, jnp.asarray(actions[t]), batch)
        jax_out.append((jax.tree.map(np.asarray, info["final_observation"]), np.asarray(reward), jax.tree.map(np.asarray, info)))
    starts = np.asarray(reset(keys, batch)[1].start)
    batch = jax.device_get(batch)
    for i in range(num_instances):
        instance = jax.tree.map(lambda x: x[i], batch)
        ref = CPNReference(instance, CONFIG)
        ref.reset(int(starts[i]))
        for t in range(CONFIG.episode_length):
            ref_obs, ref_reward, _, _, ref_info = ref.step(actions[t, i])
            final_obs, reward, info = jax_out[t]
            np.testing.assert_allclose(reward[i], ref_reward, rtol=2e-5, atol=1e-4)
            for name in ("delay", "offset", "revenue", "cost"):
                np.testing.assert_allclose(info[name][i], ref_info[name], rtol=2e-5, atol=1e-5, err_msg=name)
            np.testing.assert_array_equal(info["deadline_miss"][i], ref_info["deadline_miss"])
            for name, value in ref_obs.items():
                np.testing.assert_allclose(getattr(final_obs, name)[i], value, rtol=2e-5, atol=1e-5, err_msg=name)


def _observation_formula(config, state, params):
    """The observation as ``get_obs`` built it before issue 14, a sin per window entry, kept as the oracle."""
    first = state.start + state.time - (config.window - 1)
    index = first + jnp.arange(config.window, dtype=jnp.int32)
    hours = jnp.arange(24, dtype=jnp.float32)[:, None]
    profile = params.workload_base * (1.0 + params.workload_amplitude * jnp.sin(2.0 * math.pi * hours / 24.0 + params.workload_phase))
    shock = jax.lax.dynamic_slice(params.workload_shock, (first, 0), (config.window, config.num_users))
    load = jnp.maximum(params.workload_floor, profile[(params.series_start_hour + index) % 24] + params.workload_noise * shock)
    demand = load @ jax.nn.one_hot(params.user_node, config.num_nodes, dtype=jnp.float32)
    angle = 2.0 * math.pi * ((params.series_start_hour + state.start + state.time) % 24).astype(jnp.float32) / 24.0
    return CPNObservation(
        task_workload=load[-1],
        node_demand=demand[-1],
        price_window=jax.lax.dynamic_slice(params.price_series, (first,), (config.window,)),
        hydro_window=hydro_discount(jax.lax.dynamic_slice(params.hydro_series, (first,), (config.window,)), params),
        demand_window=demand,
        node_features=jnp.stack([params.power, params.green.astype(jnp.float32), params.hydro_share], axis=-1),
        time_features=jnp.stack([jnp.sin(angle), jnp.cos(angle), state.time.astype(jnp.float32) / config.episode_length]),
    )


def test_observation_matches_the_formula_over_an_episode(env, params):
    """Observations (reset, every step, the final one and the auto-reset one) == the plain formula."""
    num_envs = 8
    formula = jax.jit(jax.vmap(lambda s: _observation_formula(CONFIG, s, params)))
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    key = jax.random.PRNGKey(7)
    obs, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(jax.random.split(key, num_envs), params)
    chex.assert_trees_all_close(obs, formula(state), rtol=1e-6, atol=1e-6)
    first_start = state.start
    rng = np.random.default_rng(7)
    for t in range(CONFIG.episode_length + 2):
        key, key_step = jax.random.split(key)
        action = jnp.asarray(rng.integers(0, CONFIG.num_nodes, (num_envs, CONFIG.num_users)))
        before = state
        obs, state, _, _, truncated, info = step(jax.random.split(key_step, num_envs), state, action, params)
        assert bool(truncated.all()) == (t == CONFIG.episode_length - 1)
        chex.assert_trees_all_close(info["final_observation"], formula(before.replace(time=before.time + 1)), rtol=1e-6, atol=1e-6)
        chex.assert_trees_all_close(obs, formula(state), rtol=1e-6, atol=1e-6)
    # Two steps into the next episode, which starts elsewhere in the series.
    assert bool((state.time == 2).all()) and bool((state.start != first_start).all())


def test_cached_reference_matches_uncached(params):
    """The reference with the episode's series cached gives exactly the numbers of the uncached one."""
    host_params = jax.device_get(params)
    cached, uncached = CPNReference(host_params, CONFIG), CPNReference(host_params, CONFIG, cache_windows=False)
    rng = np.random.default_rng(3)
    for start in (CONFIG.window - 1, 500):
        chex.assert_trees_all_equal(cached.reset(start), uncached.reset(start))
        for _ in range(CONFIG.episode_length):
            action = rng.integers(0, CONFIG.num_nodes, CONFIG.num_users)
            chex.assert_trees_all_equal(cached.step(action), uncached.step(action))


def test_seeds_repeat_and_differ(env, params):
    rollout = jax.jit(lambda key: rollout_cpn(cpn_random, env, params, key, num_envs=4)["profit"])

    def run(seed):
        return rollout(jax.random.PRNGKey(seed))

    chex.assert_trees_all_close(run(1), run(1))
    assert not np.allclose(run(1), run(2))
    instance_a = generate_instance(jax.random.PRNGKey(1), CONFIG)
    instance_b = generate_instance(jax.random.PRNGKey(2), CONFIG)
    assert not np.allclose(instance_a.power, instance_b.power)


def test_params_sweep_is_one_program(env, params):
    """A vmap over a params leaf (node computing power) runs as one compiled program."""
    scales = jnp.array([1.0, 2.0, 4.0])
    sweep = lambda s: params.replace(power=params.power[None, :] * s[:, None])  # noqa: E731
    swept = sweep(scales)
    axes = jax.tree.map(lambda _: None, params).replace(power=0)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def delays(swept):
        _, state = env.reset(jax.random.PRNGKey(0), params)
        action = jnp.arange(CONFIG.num_users) % CONFIG.num_nodes
        info = jax.vmap(env.evaluate_slot, in_axes=(None, None, axes))(state, action, swept)
        return info["compute_delay"].mean(-1)

    out = delays(swept)
    delays(sweep(scales + 0.5))
    # Compute delay m / f scales inversely with power.
    np.testing.assert_allclose(out[0] / out[1], 2.0, rtol=1e-5)
    np.testing.assert_allclose(out[0] / out[2], 4.0, rtol=1e-5)


def test_shared_hop_table_gives_the_numbers_of_per_env_tables():
    """Under vmap a shared (U, N, H) hop table is materialised before the batch looks its routes up
    (env._route_hop_sum): the transmission delays equal, bit for bit, those of the same params
    stacked per env (a batched table, looked up as it is) on random actions of three instances."""
    config = CPNConfig(num_nodes=8, num_users=12)
    env = GreenCPN(config)
    for seed in range(3):
        params = validate_params(jax.jit(generate_instance, static_argnums=1)(jax.random.PRNGKey(seed), config), config)
        _, state = env.reset(jax.random.PRNGKey(seed), params)
        actions = jax.random.randint(jax.random.PRNGKey(10 + seed), (256, config.num_users), 0, config.num_nodes)
        stacked = jax.tree.map(lambda x: jnp.broadcast_to(x, (256,) + jnp.shape(x)), params)
        delay = lambda a, p: env.evaluate_slot(state, a, p)["transmission_delay"]  # noqa: E731
        shared = jax.jit(jax.vmap(delay, in_axes=(0, None)))(actions, params)
        per_env = jax.jit(jax.vmap(delay))(actions, stacked)
        np.testing.assert_array_equal(shared, per_env)


@pytest.fixture(scope="module")
def act(env, params):
    """``act(policy, keys, states)``: one ``jit(vmap)`` program per policy, shared by the tests below."""
    programs = {}

    def act(policy, keys, states):
        if policy not in programs:
            programs[policy] = jax.jit(jax.vmap(lambda k, s: policy(k, env, s, params)))
        return programs[policy](keys, states)

    return act


def test_policies_emit_valid_actions(env, params, act):
    _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(3), 32), params)
    space = env.action_space(params)
    for policy in (cpn_random, cpn_greedy, cpn_coordinate_ascent):
        action = act(policy, jax.random.split(jax.random.PRNGKey(4), 32), state)
        assert action.dtype == jnp.int32
        assert bool(jax.vmap(space.contains)(action).all()), policy.__name__


def test_coordinate_ascent_at_least_greedy(env, params, act):
    _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(5), 32), params)
    profit = jax.jit(jax.vmap(lambda s, a: env.evaluate_slot(s, a, params)["profit"]))
    keys = jax.random.split(jax.random.PRNGKey(6), 32)  # both policies ignore the key
    greedy = profit(state, act(cpn_greedy, keys, state))
    oracle = profit(state, act(cpn_coordinate_ascent, keys, state))
    assert bool((oracle >= greedy - 1e-4).all())


def test_step_outside_jit_rejects_bad_action(env, params):
    _, state = env.reset(jax.random.PRNGKey(0), params)
    bad = jnp.full((CONFIG.num_users,), CONFIG.num_nodes)
    with pytest.raises(ValueError, match="destinations must be in"):
        env.step(jax.random.PRNGKey(1), state, bad, params)
    # Inside jit it cannot raise: the flag says so.
    info = jax.jit(env.step)(jax.random.PRNGKey(1), state, bad, params)[-1]
    assert bool(info["invalid_action"])


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_nodes=0), r"CPNConfig.num_nodes=0 .* >= 1"),
        (dict(num_users=-1), r"CPNConfig.num_users=-1"),
        (dict(window=0), r"CPNConfig.window=0"),
        (dict(episode_length=0), r"CPNConfig.episode_length=0"),
        (dict(routing="teleport"), r"CPNConfig.routing='teleport'"),
    ],
)
def test_invalid_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CPNConfig(**kwargs)


def _edit(params, **changes):
    return params.replace(**{k: jnp.asarray(v) for k, v in changes.items()})


def test_invalid_params(params):
    n = CONFIG.num_nodes
    i, j = map(int, np.argwhere(np.asarray(params.adjacency))[0])
    cases = [
        (_edit(params, power=params.power.at[0].set(-1.0)), r"CPNParams.power: min -1"),
        (_edit(params, bandwidth=params.bandwidth.at[i, j].set(0.0).at[j, i].set(0.0)), r"CPNParams.bandwidth"),
        (_edit(params, access_bandwidth=params.access_bandwidth.at[2].set(0.0)), r"access_bandwidth.*disconnected"),
        (_edit(params, user_node=params.user_node.at[0].set(n)), r"CPNParams.user_node"),
        (_edit(params, adjacency=jnp.zeros((n, n), bool), bandwidth=jnp.zeros((n, n))), r"disconnected graph"),
        (_edit(params, price_series=params.price_series.at[5].set(jnp.nan)), r"price_series: non-finite value nan at index \(5,\)"),
        (_edit(params, hydro_series=params.hydro_series.at[3].set(jnp.nan)), r"hydro_series: non-finite"),
        (_edit(params, kappa=-0.1), r"CPNParams.kappa"),
        (_edit(params, deadline=params.deadline.at[0].set(0.0)), r"CPNParams.deadline"),
        (_edit(params, hydro_share=params.hydro_share + 2.0), r"CPNParams.hydro_share"),
    ]
    for bad, match in cases:
        with pytest.raises(ValueError, match=match):
            validate_params(bad, CONFIG)


def test_window_longer_than_series(params):
    config = dataclasses.replace(CONFIG, window=params.price_series.shape[0])
    with pytest.raises(ValueError, match=r"window \+ episode_length \+ 1"):
        validate_params(params, config)


def test_unknown_override():
    with pytest.raises(ValueError, match="unknown override"):
        generate_instance(jax.random.PRNGKey(0), CONFIG, kapa=1.0)


# ----------------------------------------------------------------------------- link conflicts
def test_link_conflicts_option_is_validated_and_defaults_to_arrival():
    assert CPNConfig().link_conflicts == "arrival"
    with pytest.raises(ValueError, match=r"CPNConfig.link_conflicts='lifo' is invalid"):
        CPNConfig(link_conflicts="lifo")


def test_priority_rule_matches_reference_over_episodes():
    """``link_conflicts="priority"`` (the old rule, kept as an option) == the NumPy reference's."""
    config = dataclasses.replace(CONFIG, link_conflicts="priority")
    env = GreenCPN(config)
    num_instances = 6
    keys = jax.random.split(jax.random.PRNGKey(11), num_instances)
    batch = jax.jit(jax.vmap(lambda k: generate_instance(k, config, series_hours=24 * 21)))(keys)
    _, states = jax.jit(jax.vmap(env.reset))(keys, batch)
    starts = np.asarray(states.start)
    actions = np.random.default_rng(1).integers(0, config.num_nodes, (config.episode_length, num_instances, config.num_users))
    step = jax.jit(jax.vmap(env.step))
    infos = []
    for t in range(config.episode_length):
        _, states, reward, _, _, info = step(keys, states, jnp.asarray(actions[t]), batch)
        infos.append((np.asarray(reward), np.asarray(info["offset"])))
    batch = jax.device_get(batch)
    for i in range(num_instances):
        ref = CPNReference(jax.tree.map(lambda x: x[i], batch), config)
        ref.reset(int(starts[i]))
        for t in range(config.episode_length):
            _, ref_reward, _, _, ref_info = ref.step(actions[t, i])
            np.testing.assert_allclose(infos[t][0][i], ref_reward, rtol=2e-5, atol=1e-4)
            np.testing.assert_allclose(infos[t][1][i], ref_info["offset"], rtol=2e-5, atol=1e-5)


def test_arrival_order_waits_less_than_priority_for_random_destinations(params):
    """On the default instance, FIFO in order of arrival cuts the mean offset of random slots."""
    arrival, priority = GreenCPN(CONFIG), GreenCPN(dataclasses.replace(CONFIG, link_conflicts="priority"))
    num_slots = 256
    _, state = jax.jit(jax.vmap(arrival.reset, in_axes=(0, None)))(jax.random.split(jax.random.PRNGKey(6), num_slots), params)
    action = jax.random.randint(jax.random.PRNGKey(7), (num_slots, CONFIG.num_users), 0, CONFIG.num_nodes)

    def offsets(env):
        return jax.jit(jax.vmap(env.evaluate_slot, in_axes=(0, 0, None)))(state, action, params)["offset"]

    new, old = offsets(arrival), offsets(priority)
    assert bool((new >= 0).all()) and bool((old >= 0).all())
    assert float(new.mean()) < 0.5 * float(old.mean())
    # ... and the two rules do time some slots differently.
    assert bool((np.abs(np.asarray(new - old)).max(-1) > 1e-3).any())
