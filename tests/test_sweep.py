"""jaxcpn.sweep: a vmap over one params leaf of the CPN env is one traced, compiled program."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcpn.cpn import CPNConfig, GreenCPN
from jaxcpn.sweep import stack_sweep, sweep, sweep_scale

ENV = GreenCPN(CPNConfig(num_nodes=4, num_users=4, window=4, episode_length=4))


def mean_delay_all_to_node_zero(params, key):
    """Mean task delay of one slot when every user sends its task to node 0."""
    _, state = ENV.reset(key, params)
    action = jnp.zeros((ENV.config.num_users,), jnp.int32)
    _, _, _, _, _, info = ENV.step(key, state, action, params)
    return info["delay"].mean()


def test_power_sweep_is_one_trace_and_matches_separate_calls():
    params = ENV.default_params
    key = jax.random.PRNGKey(0)
    traced = chex.assert_max_traces(mean_delay_all_to_node_zero, n=1)
    scales = jnp.array([0.5, 1.0, 2.0, 4.0])
    delays = np.asarray(sweep_scale(traced, params, "power", scales, key))
    assert delays.shape == (4,) and np.all(np.isfinite(delays))
    assert np.all(np.diff(delays) < 0), delays            # more computing power, shorter delay
    one = jax.jit(mean_delay_all_to_node_zero)
    for scale, delay in zip(scales, delays):
        expected = one(params.replace(power=params.power * scale), key)
        np.testing.assert_allclose(delay, expected, rtol=1e-6)


def test_sweep_full_leaf_values_and_errors():
    params = ENV.default_params
    key = jax.random.PRNGKey(1)
    values = jnp.stack([params.power, params.power * 3.0])
    out = sweep(mean_delay_all_to_node_zero, params, "power", values, key)
    np.testing.assert_allclose(out, sweep_scale(mean_delay_all_to_node_zero, params, "power", jnp.array([1.0, 3.0]), key),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="nonexistent"):
        sweep(mean_delay_all_to_node_zero, params, "nonexistent", values, key)
    with pytest.raises(ValueError, match="power"):
        sweep(mean_delay_all_to_node_zero, params, "power", jnp.ones((2, 7)), key)


def test_stack_sweep_batches_every_leaf_and_matches_sweep():
    params = ENV.default_params
    key = jax.random.PRNGKey(2)
    values = jnp.stack([params.packet_size * 2.0, params.packet_size * 6.0])
    stacked = stack_sweep(params, "packet_size", values)
    for name in ("power", "kappa", "adjacency", "price_series"):
        leaf = getattr(params, name)
        chex.assert_shape(getattr(stacked, name), (2,) + leaf.shape)
        np.testing.assert_array_equal(getattr(stacked, name)[1], leaf)
    np.testing.assert_array_equal(stacked.packet_size, values)
    out = jax.vmap(mean_delay_all_to_node_zero, in_axes=(0, None))(stacked, key)
    np.testing.assert_allclose(out, sweep(mean_delay_all_to_node_zero, params, "packet_size", values, key), rtol=1e-6)
    assert out[1] > out[0]                                 # bigger tasks, longer transmission
    with pytest.raises(ValueError, match="packet_size"):
        stack_sweep(params, "packet_size", jnp.ones((3,)))
