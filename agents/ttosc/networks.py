"""TTOSC agent network (paper Sec. IV-C, Fig. 3): GRU layers + two-layer output structure.

One network per edge server (ES). Its input is the ES's ``L x K`` arrivals of the last frame;
GRU layers extract the temporal features, a first output layer of K linear neurons gives the
partial state-action values ``q_k`` and the second layer (one neuron, no activation, weights
``x_k``) gives ``Q(s, x) = sum_k x_k q_k`` (eq. 14). The greedy deployment maximises it under
the storage constraint (eq. 1) with an exact knapsack (eq. 15), so it is always feasible.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from solvers.knapsack import knapsack


class TTOSCNetwork(nn.Module):
    """Partial Q-values of one ES.

    Attributes:
        num_services: K.
        hidden: GRU hidden size (paper: 128).
        num_gru_layers: stacked GRU layers.
    """

    num_services: int
    hidden: int = 128
    num_gru_layers: int = 2

    @nn.compact
    def __call__(self, arrivals: jax.Array) -> jax.Array:
        """Partial values ``q``.

        Args:
            arrivals: (..., L, K) float32 tasks per slot of the last frame.

        Returns:
            (..., K) float32 partial state-action values ``q_k`` (first TLS layer).
        """
        # log1p keeps Poisson counts of 0..100s in a range the GRU gates handle.
        features = jnp.log1p(jnp.maximum(arrivals, 0.0))
        batch_shape = features.shape[:-2]
        features = features.reshape((-1,) + features.shape[-2:])
        for _ in range(self.num_gru_layers):
            features = nn.RNN(nn.GRUCell(self.hidden))(features)
        last = features[:, -1]
        partial = nn.Dense(self.num_services, name="partial_values")(last)
        return partial.reshape(batch_shape + (self.num_services,))


def deployment_value(partial_values: jax.Array, deployment: jax.Array) -> jax.Array:
    """Second TLS layer, eq. (14): ``Q(s, x) = sum_k x_k q_k``.

    Args:
        partial_values: (..., K) ``q_k``.
        deployment: (..., K) bool or {0, 1} ``x_k``.

    Returns:
        (...) float32.
    """
    return jnp.sum(partial_values * deployment.astype(partial_values.dtype), axis=-1)


def greedy_deployment(partial_values: jax.Array, service_size: jax.Array, storage_capacity: jax.Array,
                      max_capacity: int) -> jax.Array:
    """Eq. (15): ``argmax_x Q(s, x)`` subject to eq. (1), by exact knapsack, for all ESs.

    Args:
        partial_values: (M, K) ``q`` of each ES's agent.
        service_size: (K,) int32 storage units ``s_k``.
        storage_capacity: (M,) int32 ``S_m``.
        max_capacity: static bound on ``S_m`` (knapsack table size).

    Returns:
        (M, K) bool feasible deployment.
    """
    solve = lambda q, c: knapsack(q, service_size, c, max_capacity=max_capacity)  # noqa: E731
    return jax.vmap(solve)(partial_values, storage_capacity)


def init_agents(network: TTOSCNetwork, key: jax.Array, num_agents: int, slots_per_frame: int):
    """Independent parameters of ``num_agents`` networks, stacked on a leading agent axis."""
    dummy = jnp.zeros((slots_per_frame, network.num_services), jnp.float32)
    return jax.vmap(lambda k: network.init(k, dummy))(jax.random.split(key, num_agents))


def apply_agents(network: TTOSCNetwork, params, observation: jax.Array) -> jax.Array:
    """Each agent's partial values on its own row.

    Args:
        params: stacked parameters (leading axis M).
        observation: (M, L, K) or (M, B, L, K).

    Returns:
        (M, K) or (M, B, K).
    """
    return jax.vmap(network.apply)(params, observation)
