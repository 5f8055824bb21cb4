"""STPer actor-critic networks (paper section IV-B): Jraph GCN + LSTMs + fusion MLP.

One module, :class:`STPerNetwork`, covers the paper's three learned variants:

- ``"stper"``: GCN over per-node demand (eqs. 16-17) + three LSTMs over the price, per-node
  hydro and per-node demand windows (eqs. 18-20) + the current observation, concatenated and
  fused by an MLP (section IV-B3);
- ``"stper-l"``: the same without the GNN;
- ``"stper-m"``: neither GNN nor LSTM: an MLP on the current observation only.

Every variant sees the same "current observation" vector (current task workloads, per-node
demand, price and hydro discount, node features, time features), so the ablations remove the
spatial / temporal feature extractors and nothing else.

The module takes **one** (unbatched) :class:`~jaxcpn.cpn.CPNObservation` and the ``(N, N)``
adjacency of the instance; batch it with ``jax.vmap(network.apply, in_axes=(None, 0, None))``
(see :func:`batch_apply`).

Input normalisation (a fixed choice, no running statistics, so a checkpoint fully defines the
policy): workloads and demands are divided by ``workload_scale`` (TFLOP), computing power by
``power_scale`` (TFLOPS); prices (already normalised by the environment), hydro discounts and
flags are in [0, 1]-ish ranges and enter unchanged.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from jaxcpn.cpn import CPNObservation

VARIANTS = ("stper", "stper-l", "stper-m")


def dense_graph(adjacency: jax.Array) -> jraph.GraphsTuple:
    """Fixed-size ``GraphsTuple`` of all ``N * N`` ordered pairs, weighted by ``A + I``.

    Built inside ``jit`` from the topology array in the params: the edge set never changes
    shape, absent links carry weight 0 and every node has a self loop of weight 1 (the
    "renormalisation trick" of eq. 16).

    Args:
        adjacency: ``(N, N)`` bool (or 0/1), symmetric, no self loops.

    Returns:
        A single graph with ``N`` nodes (``nodes=None``) and ``N * N`` edges whose ``edges``
        are the ``(N * N,)`` float32 weights of ``A + I``.
    """
    num_nodes = adjacency.shape[0]
    weights = jnp.asarray(adjacency, jnp.float32) + jnp.eye(num_nodes, dtype=jnp.float32)
    weights = jnp.minimum(weights, 1.0)  # an adjacency that already holds self loops stays 0/1
    senders, receivers = np.meshgrid(np.arange(num_nodes), np.arange(num_nodes), indexing="ij")
    return jraph.GraphsTuple(
        nodes=None,
        edges=weights.reshape(-1),
        senders=jnp.asarray(senders.reshape(-1), jnp.int32),
        receivers=jnp.asarray(receivers.reshape(-1), jnp.int32),
        n_node=jnp.asarray([num_nodes], jnp.int32),
        n_edge=jnp.asarray([num_nodes * num_nodes], jnp.int32),
        globals=None,
    )


class GCNLayer(nn.Module):
    """One graph convolution ``sigma(D^-1/2 (A + I) D^-1/2 H W)`` (eq. 16, Kipf & Welling).

    Messages run over the weighted edges of :func:`dense_graph`; ``D`` is the degree matrix of
    ``A + I`` (edge-weight sums), so zero-weight pairs contribute nothing.

    Attributes:
        features: output width of ``W``.
        activation: ``sigma`` (``None`` = identity, used by the tests).
    """

    features: int
    activation: object = nn.relu

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple, node_features: jax.Array) -> jax.Array:
        """Args: node_features ``(N, F)``. Returns ``(N, features)``."""
        num_nodes = node_features.shape[0]
        weights = graph.edges
        degree = jax.ops.segment_sum(weights, graph.receivers, num_segments=num_nodes)
        inv_sqrt = jax.lax.rsqrt(jnp.maximum(degree, 1e-12))
        norm = weights * inv_sqrt[graph.senders] * inv_sqrt[graph.receivers]
        transformed = nn.Dense(self.features, use_bias=False, name="W")(node_features)
        messages = norm[:, None] * transformed[graph.senders]
        out = jax.ops.segment_sum(messages, graph.receivers, num_segments=num_nodes)
        return out if self.activation is None else self.activation(out)


class MLP(nn.Module):
    """ReLU MLP with orthogonal init."""

    widths: Sequence[int]

    @nn.compact
    def __call__(self, x):
        for width in self.widths:
            x = nn.relu(nn.Dense(width, kernel_init=nn.initializers.orthogonal(np.sqrt(2)))(x))
        return x


def _last_hidden(hidden: int, sequence: jax.Array, name: str) -> jax.Array:
    """Final LSTM hidden state over a ``(W, F)`` window (eqs. 18-20)."""
    rnn = nn.RNN(nn.OptimizedLSTMCell(hidden, name=name), return_carry=True, name=f"{name}_rnn")
    (_, last), _ = rnn(sequence)
    return last


class STPerNetwork(nn.Module):
    """Actor-critic of STPer and its ablations for one CPN observation.

    Attributes:
        num_nodes: ``N``; num_users: ``U``.
        variant: ``"stper"`` | ``"stper-l"`` | ``"stper-m"`` (see the module docstring).
        embed_dim: ``d``, width of the per-node demand embedding and of the GCN layers (eq. 17).
        gcn_layers: number of graph convolutions (eq. 16).
        lstm_hidden: hidden size of each of the three LSTMs (eqs. 18-20).
        fusion_hidden: widths of the fusion MLP applied to the concatenation (section IV-B3).
        head_hidden: widths of the separate actor and critic MLPs on the fused feature.
        workload_scale: TFLOP dividing workloads and demands; power_scale: TFLOPS dividing power.
    """

    num_nodes: int
    num_users: int
    variant: str = "stper"
    embed_dim: int = 16
    gcn_layers: int = 2
    lstm_hidden: int = 32
    fusion_hidden: Sequence[int] = (128,)
    head_hidden: Sequence[int] = (64,)
    workload_scale: float = 2.0
    power_scale: float = 10.0

    @nn.compact
    def __call__(self, obs: CPNObservation, adjacency: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Policy logits and state value of one observation.

        Args:
            obs: one unbatched :class:`CPNObservation`.
            adjacency: ``(N, N)`` bool topology (``params.adjacency``).

        Returns:
            ``(logits, value)``: ``(U, N)`` float32 logits of independent categoricals over each
            user's destination, and a scalar float32 value.
        """
        if self.variant not in VARIANTS:
            raise ValueError(f"STPerNetwork.variant={self.variant!r} is invalid: must be one of {VARIANTS}")
        demand_window = obs.demand_window / self.workload_scale
        node_features = obs.node_features * jnp.asarray([1.0 / self.power_scale, 1.0, 1.0], jnp.float32)
        current = jnp.concatenate(
            [
                obs.task_workload / self.workload_scale,
                obs.node_demand / self.workload_scale,
                obs.price_window[-1:],
                obs.hydro_window[-1],
                node_features.reshape(-1),
                obs.time_features,
            ]
        )
        parts = [current]
        if self.variant in ("stper", "stper-l"):
            h_price = _last_hidden(self.lstm_hidden, obs.price_window[:, None], "lstm_price")  # eq. (18)
            h_hydro = _last_hidden(self.lstm_hidden, obs.hydro_window, "lstm_hydro")  # eq. (19)
            h_demand = _last_hidden(self.lstm_hidden, demand_window, "lstm_demand")  # eq. (20)
            parts += [h_price, h_hydro, h_demand]
        if self.variant == "stper":
            graph = dense_graph(adjacency)
            h = MLP((self.embed_dim,), name="demand_embed")(obs.node_demand[:, None] / self.workload_scale)  # x_n
            for layer in range(self.gcn_layers):
                h = GCNLayer(self.embed_dim, name=f"gcn_{layer}")(graph, h)  # eq. (16)
            parts.append(h.reshape(-1))  # h_g, eq. (17): node order kept
        fused = MLP(tuple(self.fusion_hidden), name="fusion")(jnp.concatenate(parts))  # h(t)
        actor = MLP(tuple(self.head_hidden), name="actor")(fused)
        logits = nn.Dense(self.num_users * self.num_nodes, kernel_init=nn.initializers.orthogonal(0.01), name="logits")(actor)
        critic = MLP(tuple(self.head_hidden), name="critic")(fused)
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0), name="value")(critic)
        return logits.reshape(self.num_users, self.num_nodes), value[0]


def batch_apply(network: STPerNetwork, variables, obs: CPNObservation, adjacency: jax.Array):
    """Applies ``network`` to a batch of observations with leading shape ``(B,)``.

    Returns:
        ``(logits (B, U, N), value (B,))``.
    """
    return jax.vmap(network.apply, in_axes=(None, 0, None))(variables, obs, adjacency)


def log_prob(logits: jax.Array, action: jax.Array) -> jax.Array:
    """Joint log-probability of independent categoricals.

    Args:
        logits: ``(..., U, N)``; action: ``(..., U)`` int32.

    Returns:
        ``(...)``: ``sum_u log softmax(logits_u)[action_u]``.
    """
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logp, action[..., None].astype(jnp.int32), axis=-1)[..., 0].sum(-1)


def entropy(logits: jax.Array) -> jax.Array:
    """Joint entropy ``(...)`` of independent categoricals with logits ``(..., U, N)``."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -(jnp.exp(logp) * logp).sum((-2, -1))


def sample(key: jax.Array, logits: jax.Array) -> jax.Array:
    """Samples ``(..., U)`` int32 destinations from logits ``(..., U, N)``."""
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)
