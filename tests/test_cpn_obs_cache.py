"""The CPN step's incremental observation: ``step_env`` shifts the state's cached demand window by one
slot and computes the new slot's row alone; its observations are ``get_obs`` of the next state (built
from the series) bit for bit, over episodes with auto-resets and with the cache stale or absent (within
float32 rounding under nested ``vmap``s, as the uncached fields)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcpn.cpn import CPNConfig, GreenCPN
from jaxcpn.cpn.env import _SMALL_BATCH, node_demand, window_workloads, workload_model
from jaxcpn.cpn.types import CPNState

SMALL = dict(num_nodes=6, num_users=9, episode_length=5)  # several users share some access nodes
# The paper's env, and every option that changes the windows at once (each is a separate branch
# of the step: a window over three days, the workload window ending a slot earlier, the queues).
CONFIGS = {
    "default": CPNConfig(),
    # 60 > 48 slots: the window spans three days
    "three-days-hidden-sharing": CPNConfig(**SMALL, window=60, observe_current_workload=False, compute_sharing=True),
}
BATCH = 16


def assert_equal(actual, expected):
    """Same tree, every leaf equal bit for bit."""
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def instance(config):
    env = GreenCPN(config)
    params = env.default_params
    if config.compute_sharing:  # a short service window, so that queues build up and carry over
        params = params.replace(slot_duration=jnp.float32(0.3))
    return env, params


def staggered(env, params, key):
    """``BATCH`` fresh episodes, half moved to slot 1 (they end at different steps)."""
    _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, BATCH), params)
    return state.replace(time=jnp.arange(BATCH, dtype=jnp.int32) % 2)


def cached(env, params, state, observe):
    """``state`` with its slot's demand window in the cache (``observe``: a ``get_obs`` run)."""
    return state.replace(demand_window=observe(state).demand_window, window_index=state.start + state.time)


def from_series(env, params):
    """``get_obs`` of a batch of states, jitted on its own (no cache read)."""
    return jax.jit(jax.vmap(lambda state: env.get_obs(state, params)))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_step_observations_are_get_obs_bit_for_bit(name):
    """Over three episodes of every env (some envs reset at a step, none at others), the
    observation and final observation of every step are ``get_obs`` of the states, and the
    state's cache is its slot's demand window; one trace."""
    config = CONFIGS[name]
    env, params = instance(config)
    reference = from_series(env, params)
    chex.clear_trace_counter()  # the counter is per function code, shared by the parametrised cases

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(keys, state, action):
        return jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)

    key = jax.random.PRNGKey(11)
    state = staggered(env, params, key)
    rng = np.random.default_rng(11)
    done_counts, shifted = set(), set()
    for t in range(3 * config.episode_length):
        shifted.add(bool(jnp.all(state.window_index == state.start + state.time)))
        action = jnp.asarray(rng.integers(0, config.num_nodes, (BATCH, config.num_users)), jnp.int32)
        before = state
        obs, state, _, terminated, truncated, info = step(jax.random.split(jax.random.fold_in(key, t), BATCH),
                                                          state, action)
        assert_equal(obs, reference(state))
        # The cache holds the observation's window, except in a fresh episode's (empty: -1).
        done = np.asarray(terminated | truncated)
        np.testing.assert_array_equal(state.window_index, np.where(done, -1, state.start + state.time))
        np.testing.assert_array_equal(np.asarray(state.demand_window)[~done], np.asarray(obs.demand_window)[~done])
        ended = before.replace(time=before.time + 1, demand_window=None, window_index=None)
        if config.compute_sharing:
            ended = ended.replace(backlog=info["backlog"])
        assert_equal(info["final_observation"], reference(ended))
        done_counts.add(int(jnp.sum(terminated | truncated)))
    assert 0 in done_counts and len(done_counts - {0}) > 0, done_counts
    assert shifted == {False, True}  # steps that shifted the cache, steps that rebuilt it (after resets)


@pytest.mark.parametrize("name", ["three-days-hidden-sharing"])  # the default's step is covered above
def test_stale_or_missing_cache_gives_the_same_step(name):
    """A state moved with ``replace(time=...)`` (cache of another slot) steps as one with its slot's
    cache, to ``get_obs`` of its next state: batched with some envs stale or all, a small batch,
    jitted alone and eagerly; a state without the cache (``CPNState(time, start)``) gives the
    same numbers."""
    config = CONFIGS[name]
    env, params = instance(config)
    reference = from_series(env, params)
    key = jax.random.PRNGKey(12)
    state = cached(env, params, staggered(env, params, key), reference)
    batch = jnp.arange(BATCH, dtype=jnp.int32)
    times = jnp.where(batch % 3 == 0, state.time, (state.time + 1 + batch) % config.episode_length)
    moved = state.replace(time=times)
    stale = np.asarray(moved.window_index != moved.start + moved.time)
    assert stale.any() and not stale.all()
    action = jax.random.randint(key, (BATCH, config.num_users), 0, config.num_nodes, jnp.int32)
    keys = jax.random.split(key, BATCH)
    step = jax.jit(jax.vmap(lambda key, state, action: env.step(key, state, action, params)))
    fast = step(keys, cached(env, params, moved, reference), action)
    all_stale = jax.vmap(env.clear_window_cache)(moved)
    uncached = moved.replace(demand_window=None, window_index=None)
    for start in (moved, all_stale):
        out = step(keys, start, action)
        assert_equal(out, fast)
        assert_equal(out[0], reference(out[1]))
    built = CPNState(time=uncached.time, start=uncached.start, backlog=uncached.backlog)
    for start in (uncached, built):  # stepped from the series; the next state has the cache
        assert_equal(step(keys, start, action), fast)
    # A batch under _SMALL_BATCH (always rebuilt): the first 4 envs, stale and fresh.
    one = lambda tree, i: jax.tree.map(lambda x: x[i], tree)  # noqa: E731
    assert 4 < _SMALL_BATCH
    small = jax.jit(jax.vmap(lambda key, state, action: env.step(key, state, action, params)))
    outs = [small(keys[:4], one(start, slice(0, 4)), action[:4]) for start in (moved, cached(env, params, moved, reference))]
    assert_equal(outs[0], outs[1])
    assert_equal(outs[0][0], reference(outs[0][1]))
    # One env, jitted and eager, stale and fresh, against get_obs and the cache run the same way:
    # a single env's program, the batch's and eager ops may round the workload profile's sin
    # differently (by an ulp).
    i = int(np.flatnonzero(stale)[0])
    for run in (jax.jit, lambda f: f):
        single, observe = run(env.step), run(lambda state: env.get_obs(state, params))
        outs = [single(keys[i], start, action[i], params)
                for start in (one(moved, i), cached(env, params, one(moved, i), observe))]
        assert_equal(outs[0], outs[1])
        assert_equal(outs[0][0], observe(outs[0][1]))


def test_nested_vmap_over_instances_and_envs():
    """Two stacked instances x a batch of envs (the cache's batch rule under an outer ``vmap``):
    ``get_obs`` within float32 rounding, as the uncached fields (under two nested ``vmap``s XLA
    fuses the step's program and ``get_obs``'s differently, tests/test_environment.py)."""
    config = CONFIGS["three-days-hidden-sharing"]
    env, params = instance(config)
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), params)
    stacked = stacked.replace(price_series=stacked.price_series.at[1].multiply(1.5),
                              workload_shock=stacked.workload_shock.at[1].multiply(-1.0))
    keys = jax.random.split(jax.random.PRNGKey(13), (2, BATCH))
    _, state = jax.vmap(jax.vmap(env.reset, in_axes=(0, None)))(keys, stacked)
    step = jax.jit(jax.vmap(jax.vmap(env.step, in_axes=(0, 0, 0, None))))
    reference = jax.jit(jax.vmap(jax.vmap(env.get_obs, in_axes=(0, None))))
    rng = np.random.default_rng(13)
    for t in range(config.episode_length + 2):
        action = jnp.asarray(rng.integers(0, config.num_nodes, (2, BATCH, config.num_users)), jnp.int32)
        obs, state, *_ = step(keys, state, action, stacked)
        chex.assert_trees_all_close(obs, reference(state, stacked), rtol=1e-6, atol=1e-6)
        kept = np.asarray(state.window_index) >= 0  # all but the fresh episodes (empty caches)
        assert kept.all() == (t != config.episode_length - 1)
        np.testing.assert_array_equal(np.asarray(state.demand_window)[kept], np.asarray(obs.demand_window)[kept])


@pytest.mark.parametrize("window", [1, 24, 60])
def test_one_slot_rows_are_the_window_rows(window):
    """``workload_model`` and ``node_demand`` of one slot are the rows of the window's, at every
    series index: the maths the cache's new row relies on."""
    config = CPNConfig(**SMALL, window=window)
    env, params = instance(config)
    firsts = jnp.arange(params.workload_shock.shape[0] - window, dtype=jnp.int32)

    def rows(first):
        shock = jax.lax.dynamic_slice(params.workload_shock, (first, jnp.zeros_like(first)), (window, config.num_users))
        whole = window_workloads(first, shock, params, window)
        one = jax.vmap(lambda w: workload_model((first + w)[None], shock[w][None], params)[0])(jnp.arange(window))
        demand = node_demand(whole, params.user_node, config.num_nodes)
        demand_rows = jax.vmap(lambda load: node_demand(load[None], params.user_node, config.num_nodes)[0])(one)
        return whole, one, demand, demand_rows

    whole, one, demand, demand_rows = jax.jit(jax.vmap(rows))(firsts)
    np.testing.assert_array_equal(one, whole)
    np.testing.assert_array_equal(demand_rows, demand)
