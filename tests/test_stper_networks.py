"""STPer networks: output shapes per variant, no recompilation, GCN layer vs dense maths."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.stper.networks import VARIANTS, GCNLayer, STPerNetwork, batch_apply, dense_graph, entropy, log_prob
from jaxcpn.cpn import CPNConfig, GreenCPN

CONFIG = CPNConfig(num_nodes=4, num_users=5, window=6, episode_length=6)


@pytest.fixture(scope="module")
def env_and_obs():
    env = GreenCPN(CONFIG)
    params = env.default_params
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(0), 3), params)
    return env, params, obs, state


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_and_no_recompilation(variant, env_and_obs):
    env, params, obs, state = env_and_obs
    chex.clear_trace_counter()
    net = STPerNetwork(num_nodes=4, num_users=5, variant=variant, lstm_hidden=8, fusion_hidden=(16,), head_hidden=(8,))
    variables = net.init(jax.random.PRNGKey(1), jax.tree.map(lambda x: x[0], obs), params.adjacency)
    names = set(variables["params"])
    assert ("gcn_0" in names) == (variant == "stper")
    assert ("lstm_price" in names) == (variant != "stper-m")

    @jax.jit
    @chex.assert_max_traces(n=1)
    def forward(variables, obs):
        return batch_apply(net, variables, obs, params.adjacency)

    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    keys = jax.random.split(jax.random.PRNGKey(2), 3)
    for _ in range(3):
        logits, value = forward(variables, obs)
        chex.assert_shape(logits, (3, 5, 4))
        chex.assert_shape(value, (3,))
        chex.assert_tree_all_finite((logits, value))
        action = jnp.argmax(logits, -1).astype(jnp.int32)
        obs, state, *_ = step(keys, state, action, params)


def test_gcn_layer_equals_dense():
    rng = np.random.default_rng(0)
    adjacency = np.array([[0, 1, 0, 0, 1], [1, 0, 1, 0, 0], [0, 1, 0, 1, 1], [0, 0, 1, 0, 0], [1, 0, 1, 0, 0]], bool)
    features = rng.normal(size=(5, 3)).astype(np.float32)
    layer = GCNLayer(features=4, activation=None)
    graph = dense_graph(jnp.asarray(adjacency))
    variables = layer.init(jax.random.PRNGKey(0), graph, features)
    out = layer.apply(variables, graph, features)
    weight = np.asarray(variables["params"]["W"]["kernel"])
    a_hat = adjacency.astype(np.float64) + np.eye(5)
    d_inv_sqrt = np.diag(1.0 / np.sqrt(a_hat.sum(1)))
    expected = d_inv_sqrt @ a_hat @ d_inv_sqrt @ features @ weight  # eq. (16) before sigma
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    relu = GCNLayer(features=4).apply(variables, graph, features)
    np.testing.assert_allclose(relu, np.maximum(expected, 0.0), rtol=1e-5, atol=1e-5)


def test_categorical_helpers():
    logits = jnp.log(jnp.array([[[0.5, 0.5], [0.25, 0.75]]]))  # (1, U=2, N=2)
    action = jnp.array([[1, 0]])
    np.testing.assert_allclose(log_prob(logits, action), np.log(0.5 * 0.25), rtol=1e-6)
    h = -(2 * 0.5 * np.log(0.5)) - (0.25 * np.log(0.25) + 0.75 * np.log(0.75))
    np.testing.assert_allclose(entropy(logits), [h], rtol=1e-6)


def test_bad_variant():
    net = STPerNetwork(num_nodes=4, num_users=5, variant="nope")
    env = GreenCPN(CONFIG)
    obs, _ = env.reset(jax.random.PRNGKey(0), env.default_params)
    with pytest.raises(ValueError, match="variant"):
        net.init(jax.random.PRNGKey(0), obs, env.default_params.adjacency)
