"""A jitted uniform replay ring buffer (flashbax-style API, pure JAX pytrees)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class ReplayState(NamedTuple):
    """Buffer contents and write position.

    Attributes:
        data: pytree of arrays with a leading (capacity,) axis.
        position: () int32, next slot to write.
        size: () int32, filled slots (<= capacity).
    """

    data: Any
    position: jax.Array
    size: jax.Array


def replay_init(example: Any, capacity: int) -> ReplayState:
    """Empty buffer for items shaped like ``example`` (one transition, no batch axis)."""
    data = jax.tree.map(lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example)
    return ReplayState(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def replay_add(state: ReplayState, batch: Any) -> ReplayState:
    """Writes a batch of items (leading axis B <= capacity), overwriting the oldest ones."""
    capacity = jax.tree.leaves(state.data)[0].shape[0]
    count = jax.tree.leaves(batch)[0].shape[0]
    index = (state.position + jnp.arange(count, dtype=jnp.int32)) % capacity
    data = jax.tree.map(lambda buf, x: buf.at[index].set(x.astype(buf.dtype)), state.data, batch)
    return ReplayState(data, (state.position + count) % capacity, jnp.minimum(state.size + count, capacity))


def replay_sample(state: ReplayState, key: jax.Array, batch_size: int) -> Any:
    """``batch_size`` items drawn uniformly with replacement from the filled part.

    Requires ``size >= 1`` (callers gate learning on a minimum fill).
    """
    index = jax.random.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1))
    return jax.tree.map(lambda buf: buf[index], state.data)
