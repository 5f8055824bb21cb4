"""STPer networks: output shapes per variant, no recompilation, GCN layer vs dense maths, the
graph learning module (eq. 16 on the mixed adjacency, its gradient, the topology ablation as the
network before it), the recurrent LSTMs (eqs. 18-20) vs a NumPy LSTM stepped slot by slot."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.stper import networks as nets
from agents.stper.networks import (VARIANTS, GCNLayer, GraphLearning, STPerNetwork, batch_apply, dense_graph, entropy,
                                   log_prob, self_looped, weighted_graph)
from jaxcpn.cpn import CPNConfig, CPNObservation, GreenCPN

CONFIG = CPNConfig(num_nodes=4, num_users=5, window=6, episode_length=6)
# One env for the module and its reset / step jitted once: the tests check the networks, and one
# compiled program costs less than running the env op by op (each primitive compiled on its own).
ENV = GreenCPN(CONFIG)
RESET, STEP = jax.jit(ENV.reset), jax.jit(ENV.step)
BATCH_STEP = jax.jit(jax.vmap(ENV.step, in_axes=(0, 0, 0, None)))


@pytest.fixture(scope="module")
def env_and_obs():
    env = ENV
    params = env.default_params
    obs, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(jax.random.split(jax.random.PRNGKey(0), 3), params)
    return env, params, obs, state


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_and_no_recompilation(variant, env_and_obs):
    env, params, obs, state = env_and_obs
    chex.clear_trace_counter()
    net = STPerNetwork(num_nodes=4, num_users=5, variant=variant, lstm_hidden=8, fusion_hidden=(16,), head_hidden=(8,))
    variables = jax.jit(net.init)(jax.random.PRNGKey(1), jax.tree.map(lambda x: x[0], obs), params.adjacency)
    names = set(variables["params"])
    assert ("gcn_0" in names) == (variant == "stper")
    assert ("lstm_price" in names) == (variant != "stper-m")

    @jax.jit
    @chex.assert_max_traces(n=1)
    def forward(variables, obs):
        return batch_apply(net, variables, obs, params.adjacency)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def recurrent(variables, carry, obs, first):
        carry = nets.restart(net, variables, carry, obs, first, jnp.any(first))
        carry = nets.batch_advance(net, variables, carry, obs)
        return carry, nets.policy_outputs(net, variables, carry, obs, params.adjacency)

    step = BATCH_STEP
    keys = jax.random.split(jax.random.PRNGKey(2), 3)
    carry, first = nets.zero_carry(net, (3,)), jnp.ones(3, bool)
    for t in range(3):
        logits, value = forward(variables, obs)
        chex.assert_shape(logits, (3, 5, 4))
        chex.assert_shape(value, (3,))
        chex.assert_tree_all_finite((logits, value))
        carry, (rec_logits, rec_value) = recurrent(variables, carry, obs, first)
        chex.assert_equal_shape([rec_logits, logits])
        chex.assert_equal_shape([rec_value, value])
        if t == 0 or variant == "stper-m":  # the first slot (or no LSTM): the two perceptions agree
            np.testing.assert_allclose(rec_logits, logits, rtol=1e-5, atol=1e-6)
        action = jnp.argmax(logits, -1).astype(jnp.int32)
        obs, state, *_ = step(keys, state, action, params)
        first = jnp.zeros(3, bool)


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


def synthetic_observation(num_nodes=4, num_users=5, window=6) -> CPNObservation:
    """A fixed observation that does not depend on the environment's code."""
    rng = np.random.default_rng(7)
    draw = lambda *shape: jnp.asarray(rng.uniform(0.0, 2.0, shape), jnp.float32)  # noqa: E731
    return CPNObservation(task_workload=draw(num_users), node_demand=draw(num_nodes), price_window=draw(window),
                          hydro_window=draw(window, num_nodes), demand_window=draw(window, num_nodes),
                          node_features=draw(num_nodes, 3), time_features=draw(3))


SQUARE = jnp.asarray(np.array([[0, 1, 1, 0], [1, 0, 0, 1], [1, 0, 0, 1], [0, 1, 1, 0]], bool))
SMALL = dict(num_nodes=4, num_users=5, lstm_hidden=8, fusion_hidden=(16,), head_hidden=(8,))


def test_graph_learning_mixes_and_eq16_runs_on_the_mixture():
    """A = (1 - a)(A_topo + I) + a sigmoid(E E^T), symmetric and non-negative; the GCN layer on it is
    eq. (16) with D the degree matrix of the mixture."""
    module = GraphLearning(embed_dim=3)
    topology = self_looped(SQUARE)
    variables = module.init(jax.random.PRNGKey(0), topology)
    embedding = np.asarray(variables["params"]["node_embedding"], np.float64)
    assert embedding.shape == (4, 3) and float(variables["params"]["mix_logit"]) == 0.0
    mixed = np.asarray(module.apply(variables, topology), np.float64)
    learned = 1.0 / (1.0 + np.exp(-embedding @ embedding.T))
    np.testing.assert_allclose(mixed, 0.5 * (np.asarray(SQUARE) + np.eye(4)) + 0.5 * learned, rtol=1e-6)
    np.testing.assert_allclose(mixed, mixed.T, rtol=1e-6)
    assert (mixed > 0).all()
    features = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    layer = GCNLayer(features=2, activation=None)
    graph = weighted_graph(jnp.asarray(mixed, jnp.float32))
    layer_vars = layer.init(jax.random.PRNGKey(2), graph, features)
    d_inv_sqrt = np.diag(1.0 / np.sqrt(mixed.sum(1)))
    expected = d_inv_sqrt @ mixed @ d_inv_sqrt @ features @ np.asarray(layer_vars["params"]["W"]["kernel"])
    np.testing.assert_allclose(layer.apply(layer_vars, graph, features), expected, rtol=1e-5, atol=1e-6)


def test_learned_adjacency_has_a_gradient():
    """The graph learning module trains: the value and the logits pass a non-zero, finite gradient to
    the node embeddings and the mixing share."""
    obs = jax.tree.map(lambda *x: jnp.stack(x), synthetic_observation(), synthetic_observation())
    net = STPerNetwork(**SMALL)
    assert net.adjacency == "learned"  # the paper's method is the default
    variables = jax.jit(net.init)(jax.random.PRNGKey(1), jax.tree.map(lambda x: x[0], obs), SQUARE)

    def objective(variables):
        logits, value = batch_apply(net, variables, obs, SQUARE)
        return value.sum() + (logits * jnp.arange(4.0)).sum()

    grads = jax.jit(jax.grad(objective))(variables)["params"]["graph_learning"]
    chex.assert_tree_all_finite(grads)
    assert float(jnp.abs(grads["node_embedding"]).max()) > 0
    assert float(jnp.abs(grads["mix_logit"])) > 0


def test_topology_adjacency_is_the_network_before_graph_learning():
    """``adjacency="topology"``: the parameters and outputs of the network before the module (values
    pinned from that code, commit 0dbc988), and the learned network with its share ``a = 0``."""
    obs = synthetic_observation()
    net = STPerNetwork(**SMALL, adjacency="topology")
    variables = jax.jit(net.init)(jax.random.PRNGKey(1), obs, SQUARE)
    assert set(variables["params"]) == {"actor", "critic", "demand_embed", "fusion", "gcn_0", "gcn_1", "logits",
                                        "lstm_demand", "lstm_hydro", "lstm_price", "value"}
    logits, value = net.apply(variables, obs, SQUARE)
    np.testing.assert_allclose(logits[0], [0.0004242493, -0.0011847165, 0.010426962, -0.0006815808],
                               rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(value, -1.0394635200500488, rtol=1e-5)
    learned = STPerNetwork(**SMALL)
    learned_vars = jax.jit(learned.init)(jax.random.PRNGKey(1), obs, SQUARE)
    assert set(learned_vars["params"]) == set(variables["params"]) | {"graph_learning"}
    switched_off = dict(variables["params"], graph_learning=dict(learned_vars["params"]["graph_learning"],
                                                                 mix_logit=jnp.asarray(-jnp.inf)))
    chex.assert_trees_all_equal(learned.apply({"params": switched_off}, obs, SQUARE), (logits, value))
    stper_l = STPerNetwork(**SMALL, variant="stper-l")  # no GNN: nothing to learn, the option is ignored
    assert "graph_learning" not in jax.eval_shape(stper_l.init, jax.random.PRNGKey(1), obs, SQUARE)["params"]


def test_bad_adjacency():
    with pytest.raises(ValueError, match="adjacency"):
        STPerNetwork(**SMALL, adjacency="nope").init(jax.random.PRNGKey(0), synthetic_observation(), SQUARE)


def test_categorical_helpers():
    logits = jnp.log(jnp.array([[[0.5, 0.5], [0.25, 0.75]]]))  # (1, U=2, N=2)
    action = jnp.array([[1, 0]])
    np.testing.assert_allclose(log_prob(logits, action), np.log(0.5 * 0.25), rtol=1e-6)
    h = -(2 * 0.5 * np.log(0.5)) - (0.25 * np.log(0.25) + 0.75 * np.log(0.75))
    np.testing.assert_allclose(entropy(logits), [h], rtol=1e-6)


def test_bad_variant():
    net = STPerNetwork(num_nodes=4, num_users=5, variant="nope")
    obs, _ = RESET(jax.random.PRNGKey(0), ENV.default_params)
    with pytest.raises(ValueError, match="variant"):
        net.init(jax.random.PRNGKey(0), obs, ENV.default_params.adjacency)


def numpy_lstm(cell, carry, x):
    """One step of Flax's OptimizedLSTMCell from its parameters (float64): ``(c, h)``."""
    sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    c, h = (np.asarray(a, np.float64) for a in carry)

    def gate(name):
        kernel_x, hidden = np.asarray(cell[f"i{name}"]["kernel"]), cell[f"h{name}"]
        return x @ kernel_x + h @ np.asarray(hidden["kernel"]) + np.asarray(hidden["bias"])

    c = sigmoid(gate("f")) * c + sigmoid(gate("i")) * np.tanh(gate("g"))
    return c, sigmoid(gate("o")) * np.tanh(c)


@pytest.mark.parametrize("variant", ["stper", "stper-l"])
def test_recurrent_lstms_step_slot_by_slot(variant):
    """h(t) = LSTM(x(t), h(t-1)) (eqs. 18-20): burn-in over the first window's W - 1 earlier slots,
    then one step per slot, equals a NumPy LSTM run over the whole series W - 1 + t + 1 slots long."""
    env = ENV
    params = env.default_params
    obs, state = RESET(jax.random.PRNGKey(5), params)
    net = STPerNetwork(num_nodes=4, num_users=5, variant=variant, lstm_hidden=8, fusion_hidden=(16,), head_hidden=(8,))
    variables = jax.jit(net.init)(jax.random.PRNGKey(1), obs, params.adjacency)
    burn_in = jax.jit(lambda o: net.apply(variables, o, method=STPerNetwork.burn_in))
    advance = jax.jit(lambda c, o: net.apply(variables, c, o, method=STPerNetwork.advance))
    window = CONFIG.window
    series = dict(price=list(np.asarray(obs.price_window)[:, None]), hydro=list(np.asarray(obs.hydro_window)),
                  demand=list(np.asarray(obs.demand_window) / net.workload_scale))
    carry = burn_in(obs)
    for t in range(CONFIG.episode_length):
        if t:
            obs, state, *_ = STEP(jax.random.PRNGKey(0), state, jnp.zeros(5, jnp.int32), params)
            series["price"].append(np.asarray(obs.price_window)[-1:])
            series["hydro"].append(np.asarray(obs.hydro_window)[-1])
            series["demand"].append(np.asarray(obs.demand_window)[-1] / net.workload_scale)
        carry = advance(carry, obs)
        for name in ("price", "hydro", "demand"):
            assert len(series[name]) == window + t
            expected = (np.zeros(8), np.zeros(8))
            for x in series[name]:
                expected = numpy_lstm(variables["params"][f"lstm_{name}"], expected, np.asarray(x, np.float64))
            np.testing.assert_allclose(getattr(carry, name)[1], expected[1], rtol=2e-5, atol=2e-6,
                                       err_msg=f"{name} t={t}")
    # the window encoder at the first slot is the same LSTM over the same W slots
    first_obs, _ = RESET(jax.random.PRNGKey(5), params)
    temporal = nets.temporal_features(advance(burn_in(first_obs), first_obs))
    head = jax.jit(lambda o, t: net.apply(variables, o, t, params.adjacency, method=STPerNetwork.head))
    window = jax.jit(lambda o: net.apply(variables, o, params.adjacency))
    chex.assert_trees_all_close(head(first_obs, temporal), window(first_obs), rtol=1e-5, atol=1e-6)


def test_current_slot_keeps_what_advance_and_head_read():
    env = ENV
    params = env.default_params
    obs, _ = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(jax.random.split(jax.random.PRNGKey(0), 2), params)
    net = STPerNetwork(num_nodes=4, num_users=5, lstm_hidden=8, fusion_hidden=(16,), head_hidden=(8,))
    variables = jax.jit(net.init)(jax.random.PRNGKey(1), jax.tree.map(lambda x: x[0], obs), params.adjacency)
    slim = nets.current_slot(obs)
    assert slim.price_window.shape == (2, 1) and slim.hydro_window.shape == (2, 1, 4)
    carry = jax.jit(lambda o: nets.restart(net, variables, nets.zero_carry(net, (2,)), o, jnp.ones(2, bool)))(obs)
    # one program for both (a jit per shape of the observation): the whole windows and their last slots
    outputs = jax.jit(lambda c, o: nets.policy_outputs(net, variables, nets.batch_advance(net, variables, c, o), o,
                                                       params.adjacency))
    chex.assert_trees_all_close(outputs(carry, obs), outputs(carry, slim), rtol=1e-6, atol=1e-7)


def test_bad_perception():
    obs, _ = RESET(jax.random.PRNGKey(0), ENV.default_params)
    with pytest.raises(ValueError, match="perception"):
        net = STPerNetwork(num_nodes=4, num_users=5, perception="nope")
        net.init(jax.random.PRNGKey(0), obs, ENV.default_params.adjacency)
