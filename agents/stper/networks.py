"""STPer actor-critic networks (paper section IV-B): Jraph GCN + LSTMs + fusion MLP.

One module, :class:`STPerNetwork`, covers the paper's three learned variants:

- ``"stper"``: GCN over per-node demand (eqs. 16-17) on the topology mixed with a learned
  adjacency (the paper's "graph learning module", :class:`GraphLearning`) + three LSTMs over the price, per-node
  hydro and per-node demand series (eqs. 18-20) + the current observation, concatenated and
  fused by an MLP (section IV-B3);
- ``"stper-l"``: the same without the GNN;
- ``"stper-m"``: neither GNN nor LSTM: an MLP on the current observation only.

The GCN's adjacency (``adjacency``): ``"learned"`` (the default, the paper's method) propagates
eq. (16) over ``A = (1 - a) (A_topo + I) + a sigmoid(E E^T)``, learned node embeddings ``E`` and a
learned share ``a`` (:class:`GraphLearning`); ``"topology"`` (the ablation) over the fixed
``A_topo + I`` alone, the network of the project before the graph learning module.

Every variant sees the same "current observation" vector (current task workloads, per-node
demand, price and hydro discount, node features, time features), so the ablations remove the
spatial / temporal feature extractors and nothing else.

Two perceptions of the LSTM variants share all parameters: **recurrent** (the default, eqs.
18-20 as written, ``h(t) = LSTM(x(t), h(t-1))``): the LSTM states are carried from slot to slot,
initialised at an episode's first slot by a burn-in over the observation's look-back window, so
each later slot costs one LSTM step (:func:`restart`, :func:`batch_advance`,
:func:`advance_sequence`, :func:`policy_outputs`); and
**window**: the LSTMs re-run over the whole window of every observation from zero states (the
module's ``__call__``), ``W`` times the work.

The module takes **one** (unbatched) :class:`~jaxcpn.cpn.CPNObservation` and the ``(N, N)``
adjacency of the instance; batch it with ``jax.vmap(network.apply, in_axes=(None, 0, None))``
(see :func:`batch_apply`).

Input normalisation (a fixed choice, no running statistics, so a checkpoint fully defines the
policy): workloads and demands are divided by ``workload_scale`` (TFLOP), computing power by
``power_scale`` (TFLOPS); prices (already normalised by the environment), hydro discounts and
flags are in [0, 1]-ish ranges and enter unchanged.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from jaxcpn.cpn import CPNObservation

VARIANTS = ("stper", "stper-l", "stper-m")
PERCEPTIONS = ("recurrent", "window")
ADJACENCIES = ("learned", "topology")


def self_looped(adjacency: jax.Array) -> jax.Array:
    """``(N, N)`` float32 ``A + I`` of a 0/1 adjacency (the "renormalisation trick" of eq. 16); an
    adjacency that already holds self loops stays 0/1."""
    num_nodes = adjacency.shape[0]
    return jnp.minimum(jnp.asarray(adjacency, jnp.float32) + jnp.eye(num_nodes, dtype=jnp.float32), 1.0)


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
    return weighted_graph(self_looped(adjacency))


def weighted_graph(weights: jax.Array) -> jraph.GraphsTuple:
    """:func:`dense_graph` of an ``(N, N)`` non-negative float32 weight matrix, self loops included."""
    num_nodes = weights.shape[0]
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
    """One graph convolution ``sigma(D^-1/2 A D^-1/2 H W)`` (eq. 16, Kipf & Welling).

    ``A`` is the graph's edge weights: ``A_topo + I`` (:func:`dense_graph`) or the mixture of
    :class:`GraphLearning` (:func:`weighted_graph`). The normalised weights of the edges (``D``
    is the degree matrix of ``A``, edge-weight sums, so zero-weight pairs contribute nothing) are
    gathered into an ``(N, N)`` propagation matrix that multiplies ``H W``. The matrix depends on
    the graph only (and the learned adjacency's parameters),
    so under a ``vmap`` over observations it is built once and the batched work is two matmuls
    (a per-edge gather and scatter of batched messages is several times slower, mostly in its
    gradient).

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
        propagation = jnp.zeros((num_nodes, num_nodes), norm.dtype).at[graph.receivers, graph.senders].add(norm)
        transformed = nn.Dense(self.features, use_bias=False, name="W")(node_features)
        out = propagation @ transformed
        return out if self.activation is None else self.activation(out)


class GraphLearning(nn.Module):
    """The graph learning module of paper section IV-B1: the topology mixed with a learned adjacency.

    The paper names the module and gives no formula, so this is the self-adaptive adjacency of
    graph-learning GCNs (Graph WaveNet, Wu et al. 2019; AGCRN, Bai et al. 2020): learned node
    embeddings ``E`` ``(N, c)`` give ``A_learned = sigmoid(E E^T)``, mixed with the topology as
    ``A = (1 - a) (A_topo + I) + a A_learned``, ``a = sigmoid(mix_logit)``, so eq. (16)'s
    ``D^-1/2 A D^-1/2`` runs on it with ``D`` the degree matrix of the mixture. Two departures from
    those papers' ``softmax(relu(E1 E2^T))``, both for eq. (16): ``E E^T`` keeps ``A`` symmetric (the
    CPN's links are undirected, and the symmetric normalisation is the one eq. 16 writes), and a
    logistic rather than a row softmax keeps every learned weight in ``(0, 1)``, the scale of the
    topology's 0/1 weights (a row softmax gives weights ``~1/N``, so the topology would dominate
    the mixture whatever ``a``); unlike a ReLU, the logistic never cuts the gradient to zero.
    The learned adjacency is one per instance, not per observation: under a ``vmap`` over
    observations it is computed once.

    Attributes:
        embed_dim: ``c``, width of the node embeddings (the rank of ``E E^T``).

    Initialisation: ``E ~ N(0, c^-1/2)``, so the entries of ``E E^T`` have unit variance off the
    diagonal, and ``mix_logit = 0`` (``a = 0.5``).
    """

    embed_dim: int = 8

    @nn.compact
    def __call__(self, topology: jax.Array) -> jax.Array:
        """Args: topology ``(N, N)`` float32 ``A_topo + I`` (:func:`self_looped`). Returns the
        ``(N, N)`` float32 symmetric, non-negative mixed adjacency ``A``."""
        num_nodes = topology.shape[0]
        embedding = self.param("node_embedding", nn.initializers.normal(self.embed_dim ** -0.25),
                               (num_nodes, self.embed_dim), jnp.float32)
        learned = jax.nn.sigmoid(embedding @ embedding.T)
        mix = jax.nn.sigmoid(self.param("mix_logit", nn.initializers.zeros, (), jnp.float32))
        return (1.0 - mix) * topology + mix * learned


class MLP(nn.Module):
    """ReLU MLP with orthogonal init."""

    widths: Sequence[int]

    @nn.compact
    def __call__(self, x):
        for width in self.widths:
            x = nn.relu(nn.Dense(width, kernel_init=nn.initializers.orthogonal(np.sqrt(2)))(x))
        return x


class PerceptionCarry(NamedTuple):
    """States ``(c, h)`` of the three LSTMs of eqs. (18)-(20), each ``(H,)`` (batched ``(B, H)``)."""

    price: tuple[jax.Array, jax.Array]
    hydro: tuple[jax.Array, jax.Array]
    demand: tuple[jax.Array, jax.Array]


def _run_cell(cell: nn.Module, carry, inputs: jax.Array):
    """Runs an LSTM ``cell`` over inputs ``(L, F)`` from ``carry``; returns the final carry."""
    scan = nn.scan(lambda cell, carry, x: cell(carry, x), variable_broadcast="params",
                   split_rngs={"params": False})
    carry, _ = scan(cell, carry, inputs)
    return carry


def is_recurrent(network: "STPerNetwork") -> bool:
    """Whether ``network`` carries LSTM states from slot to slot (it has LSTMs and
    ``perception == "recurrent"``)."""
    return network.variant != "stper-m" and network.perception == "recurrent"


def zero_carry(network: "STPerNetwork", batch_shape: tuple[int, ...] = ()) -> PerceptionCarry | tuple:
    """All-zero LSTM states ``batch_shape + (H,)`` float32, or ``()`` for a network that is not
    :func:`is_recurrent` (nothing to carry)."""
    if not is_recurrent(network):
        return ()
    zeros = lambda: jnp.zeros(batch_shape + (network.lstm_hidden,), jnp.float32)  # noqa: E731
    return PerceptionCarry(*((zeros(), zeros()) for _ in PerceptionCarry._fields))


def temporal_features(carry: PerceptionCarry) -> jax.Array:
    """``h_i || h_alpha || h_r`` ``(..., 3H)`` of LSTM states (the inputs of the fusion)."""
    return jnp.concatenate([carry.price[1], carry.hydro[1], carry.demand[1]], axis=-1)


def current_slot(obs: CPNObservation) -> CPNObservation:
    """``obs`` with each window cut to its last (current) slot: all that :meth:`STPerNetwork.advance`
    and :meth:`STPerNetwork.head` read, so recurrent training stores and shuffles ``W`` times
    less. Works on any leading batch shape."""
    return obs.replace(price_window=obs.price_window[..., -1:], hydro_window=obs.hydro_window[..., -1:, :],
                       demand_window=obs.demand_window[..., -1:, :])


class STPerNetwork(nn.Module):
    """Actor-critic of STPer and its ablations for one CPN observation.

    Methods (all on one unbatched observation; see :func:`batch_apply`, :func:`restart`,
    :func:`batch_advance`, :func:`advance_sequence` and :func:`policy_outputs` for batches):

    - ``__call__(obs, adjacency)``: the **window encoder**: the LSTMs run over the observation's
      ``W``-slot windows from zero states (``advance(burn_in(obs), obs)``), then :meth:`head`.
      It is also the forward of ``stper-m`` and the one ``init`` uses (it creates every parameter).
    - ``burn_in(obs)`` and ``advance(carry, obs)``: **recurrent perception**, eqs. (18)-(20) as
      written, ``h(t) = LSTM(x(t), h(t-1))``. At an episode's first observation ``burn_in``
      runs the LSTMs over the ``W - 1`` slots of its window before the current one; every
      observation then advances the states by its own (current) slot, so the first decision
      sees all ``W`` slots and each later one costs one LSTM step.
    - ``head(obs, temporal, adjacency)``: GCN, fusion MLP, actor and critic on the current
      observation and the LSTMs' hidden states.

    Both perceptions share every parameter; ``perception`` only tells evaluation code
    (:func:`agents.stper.ppo.network_policy`) which one the network was trained with. At an
    episode's first slot they compute the same thing.

    Attributes:
        num_nodes: ``N``; num_users: ``U``.
        variant: ``"stper"`` | ``"stper-l"`` | ``"stper-m"`` (see the module docstring).
        perception: ``"recurrent"`` | ``"window"`` (ignored by ``stper-m``, which has no LSTM).
        adjacency: the GCN's graph, ``"learned"`` (:class:`GraphLearning` on the topology) |
            ``"topology"`` (the fixed topology, the ablation); ignored without the GNN.
        graph_embed_dim: ``c``, node-embedding width of :class:`GraphLearning`.
        embed_dim: ``d``, width of the per-node demand embedding and of the GCN layers (eq. 17).
        gcn_layers: number of graph convolutions (eq. 16).
        lstm_hidden: hidden size ``H`` of each of the three LSTMs (eqs. 18-20).
        fusion_hidden: widths of the fusion MLP applied to the concatenation (section IV-B3).
        head_hidden: widths of the separate actor and critic MLPs on the fused feature.
        workload_scale: TFLOP dividing workloads and demands; power_scale: TFLOPS dividing power.
    """

    num_nodes: int
    num_users: int
    variant: str = "stper"
    perception: str = "recurrent"
    adjacency: str = "learned"
    embed_dim: int = 16
    gcn_layers: int = 2
    lstm_hidden: int = 32
    fusion_hidden: Sequence[int] = (128,)
    head_hidden: Sequence[int] = (64,)
    graph_embed_dim: int = 8
    workload_scale: float = 2.0
    power_scale: float = 10.0

    def setup(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"STPerNetwork.variant={self.variant!r} is invalid: must be one of {VARIANTS}")
        if self.perception not in PERCEPTIONS:
            raise ValueError(f"STPerNetwork.perception={self.perception!r} is invalid: must be one of {PERCEPTIONS}")
        if self.adjacency not in ADJACENCIES:
            raise ValueError(f"STPerNetwork.adjacency={self.adjacency!r} is invalid: must be one of {ADJACENCIES}")
        if self.variant != "stper-m":
            self.lstm_price = nn.OptimizedLSTMCell(self.lstm_hidden)  # eq. (18)
            self.lstm_hydro = nn.OptimizedLSTMCell(self.lstm_hidden)  # eq. (19)
            self.lstm_demand = nn.OptimizedLSTMCell(self.lstm_hidden)  # eq. (20)
        if self.variant == "stper":
            self.demand_embed = MLP((self.embed_dim,))  # x_n
            self.gcn = [GCNLayer(self.embed_dim) for _ in range(self.gcn_layers)]  # eq. (16)
            if self.adjacency == "learned":
                self.graph_learning = GraphLearning(self.graph_embed_dim)  # section IV-B1
        self.fusion = MLP(tuple(self.fusion_hidden))  # h(t), section IV-B3
        self.actor = MLP(tuple(self.head_hidden))
        self.logits = nn.Dense(self.num_users * self.num_nodes, kernel_init=nn.initializers.orthogonal(0.01))
        self.critic = MLP(tuple(self.head_hidden))
        self.value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))

    def _lstm_inputs(self, obs: CPNObservation):
        """The windows feeding eqs. (18)-(20): price ``(W, 1)``, hydro and demand ``(W, N)``."""
        return obs.price_window[:, None], obs.hydro_window, obs.demand_window / self.workload_scale

    def burn_in(self, obs: CPNObservation) -> PerceptionCarry:
        """LSTM states after the window's slots before the current one (``W - 1``), from zero states."""
        cells = (self.lstm_price, self.lstm_hydro, self.lstm_demand)
        zero = (jnp.zeros((self.lstm_hidden,), jnp.float32),) * 2
        return PerceptionCarry(*(_run_cell(cell, zero, x[:-1]) for cell, x in zip(cells, self._lstm_inputs(obs))))

    def advance(self, carry: PerceptionCarry, obs: CPNObservation) -> PerceptionCarry:
        """LSTM states advanced by the current slot (the last entry of each window)."""
        cells = (self.lstm_price, self.lstm_hydro, self.lstm_demand)
        return PerceptionCarry(*(cell(state, x[-1])[0] for cell, state, x in zip(cells, carry, self._lstm_inputs(obs))))

    def head(self, obs: CPNObservation, temporal: jax.Array | None,
             adjacency: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Policy logits and state value from the current observation and the LSTM features.

        Args:
            obs: one unbatched :class:`CPNObservation` (only its current slot is read).
            temporal: ``(3H,)`` :func:`temporal_features`, or ``None`` for ``stper-m``.
            adjacency: ``(N, N)`` bool topology (``params.adjacency``); with ``self.adjacency ==
                "learned"`` the GCN runs on its mixture with the learned adjacency.

        Returns:
            ``(logits, value)``: ``(U, N)`` float32 logits of independent categoricals over each
            user's destination, and a scalar float32 value.
        """
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
        node_inputs = obs.node_demand[:, None] / self.workload_scale
        backlog = getattr(obs, "node_backlog", None)  # CPNConfig.compute_sharing: the node queues
        if backlog is not None:
            # log(1 + seconds each node needs to clear its queue), backlog TFLOP / power TFLOPS: the
            # raw seconds are unbounded, and fed in directly PPO training collapsed (docs/model.md)
            clear_time = jnp.log1p(backlog / obs.node_features[:, 0])  # power > 0 (validate_params)
            current = jnp.concatenate([current, clear_time])
            node_inputs = jnp.concatenate([node_inputs, clear_time[:, None]], axis=1)
        parts = [current]
        if self.variant != "stper-m":
            parts.append(temporal)
        if self.variant == "stper":
            h = self.demand_embed(node_inputs)
            if self.gcn:
                weights = self_looped(adjacency)
                if self.adjacency == "learned":
                    weights = self.graph_learning(weights)
                graph = weighted_graph(weights)
                for layer in self.gcn:
                    h = layer(graph, h)
            parts.append(h.reshape(-1))  # h_g, eq. (17): node order kept
        fused = self.fusion(jnp.concatenate(parts))
        logits = self.logits(self.actor(fused))
        value = self.value(self.critic(fused))
        return logits.reshape(self.num_users, self.num_nodes), value[0]

    def __call__(self, obs: CPNObservation, adjacency: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Logits ``(U, N)`` and value ``()`` of one observation with the window encoder."""
        temporal = None if self.variant == "stper-m" else temporal_features(self.advance(self.burn_in(obs), obs))
        return self.head(obs, temporal, adjacency)


def batch_apply(network: STPerNetwork, variables, obs: CPNObservation, adjacency: jax.Array):
    """Applies ``network`` (the window encoder) to a batch of observations with leading shape ``(B,)``.

    Returns:
        ``(logits (B, U, N), value (B,))``.
    """
    return jax.vmap(network.apply, in_axes=(None, 0, None))(variables, obs, adjacency)


def restart(network: STPerNetwork, variables, carry, obs: CPNObservation, first: jax.Array,
            may_start: jax.Array | bool = True):
    """LSTM states before the current slots of a batch: :meth:`STPerNetwork.burn_in` where
    ``first`` (an episode's first observation), else ``carry``.

    The ``W - 1``-step burn-in runs under ``lax.cond(may_start, ...)``: pass a predicate that is
    False at steps where no episode starts (a scan index under a ``vmap`` stays unbatched, so
    the cond stays a branch); a Python bool decides at trace time.

    Args:
        carry: :class:`PerceptionCarry` ``(B, H)`` leaves, the states after the previous slot.
        obs: ``(B,)`` batched observations; first: ``(B,)`` bool.
        may_start: ``()`` bool, False only if no ``first`` is set.

    Returns:
        :class:`PerceptionCarry` ``(B, H)``; ``carry`` (``()``) unchanged for a network that is
        not :func:`is_recurrent`.
    """
    if not is_recurrent(network):
        return carry

    def started(carry):
        burn_in = jax.vmap(functools.partial(network.apply, method=STPerNetwork.burn_in), in_axes=(None, 0))
        burnt = burn_in(variables, obs)
        return jax.tree.map(lambda s, c: jnp.where(first[:, None], s, c), burnt, carry)

    if isinstance(may_start, bool):
        return started(carry) if may_start else carry
    return jax.lax.cond(may_start, started, lambda carry: carry, carry)


def batch_advance(network: STPerNetwork, variables, carry, obs: CPNObservation):
    """:meth:`STPerNetwork.advance` of a ``(B,)`` batch by each observation's current slot (eqs.
    18-20); ``()`` unchanged for a network that is not :func:`is_recurrent`."""
    if not is_recurrent(network):
        return carry
    advance = jax.vmap(functools.partial(network.apply, method=STPerNetwork.advance), in_axes=(None, 0, 0))
    return advance(variables, carry, obs)


def advance_sequence(network: STPerNetwork, variables, start: PerceptionCarry, obs: CPNObservation,
                     first: jax.Array) -> jax.Array:
    """LSTM features after every observation of ``M`` sequences of ``T`` steps (one scan).

    Each step advances the previous step's states by its slot, except where ``first`` (and at
    step 0), which start from ``start``: the states before that slot as the rollout computed
    them (:func:`restart`). Only :meth:`STPerNetwork.advance` runs, so ``obs`` may be
    :func:`current_slot` observations.

    Args:
        start: :class:`PerceptionCarry` ``[T, M, H]``, read where ``first`` and at step 0.
        obs: ``[T, M]`` batched observations; first: ``[T, M]`` bool.

    Returns:
        ``[T, M, 3H]`` :func:`temporal_features` of the states after each step's slot (only the
        hidden states leave the scan).
    """

    def step(carry, inputs):
        start, obs, first = inputs
        carry = jax.tree.map(lambda s, c: jnp.where(first[:, None], s, c), start, carry)
        carry = batch_advance(network, variables, carry, obs)
        return carry, temporal_features(carry)

    return jax.lax.scan(step, jax.tree.map(lambda x: x[0], start), (start, obs, first))[1]


def policy_outputs(network: STPerNetwork, variables, carry, obs: CPNObservation, adjacency: jax.Array,
                   temporal: jax.Array | None = None):
    """``(logits (B, U, N), value (B,))`` of a batch: from the LSTM states ``carry`` after the
    current slots (:func:`batch_advance`), or their ``temporal`` features ``(B, 3H)`` if given,
    when :func:`is_recurrent`; else from the window encoder / MLP (``carry`` unused)."""
    if not is_recurrent(network):
        return batch_apply(network, variables, obs, adjacency)
    temporal = temporal_features(carry) if temporal is None else temporal
    head = jax.vmap(functools.partial(network.apply, method=STPerNetwork.head), in_axes=(None, 0, 0, None))
    return head(variables, obs, temporal, adjacency)


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
