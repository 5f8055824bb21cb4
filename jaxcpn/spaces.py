"""Observation and action spaces shared by both environments (gymnax-style, pure JAX).

Spaces describe shapes, dtypes and bounds; ``sample`` draws from them with an explicit key and
``contains`` checks a value (traceable, returns a boolean scalar).
"""

from __future__ import annotations

import abc
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np


class Space(abc.ABC):
    """Base class: a set of values with a shape and a dtype."""

    shape: tuple[int, ...]
    dtype: Any

    @abc.abstractmethod
    def sample(self, key: jax.Array) -> Any:
        """A random element, drawn with ``key``."""

    @abc.abstractmethod
    def contains(self, x: Any) -> jax.Array:
        """Boolean scalar: ``x`` is an element (traceable)."""


class Discrete(Space):
    """Integers ``0 .. n - 1`` (scalar)."""

    def __init__(self, n: int, dtype=jnp.int32):
        if int(n) < 1:
            raise ValueError(f"Discrete: n={n} must be >= 1")
        self.n = int(n)
        self.shape = ()
        self.dtype = dtype

    def sample(self, key):
        return jax.random.randint(key, (), 0, self.n, dtype=self.dtype)

    def contains(self, x):
        x = jnp.asarray(x)
        return jnp.logical_and(x >= 0, x < self.n).all()


class MultiDiscrete(Space):
    """Integer array where entry ``i`` lies in ``0 .. nvec[i] - 1``."""

    def __init__(self, nvec: Sequence[int], dtype=jnp.int32):
        nvec = np.asarray(nvec, dtype=np.int64)
        if nvec.ndim != 1 or nvec.size == 0 or (nvec < 1).any():
            raise ValueError(f"MultiDiscrete: nvec={nvec.tolist()} must be a non-empty list of ints >= 1")
        self.nvec = nvec
        self.shape = (int(nvec.size),)
        self.dtype = dtype

    def sample(self, key):
        return jax.random.randint(key, self.shape, 0, jnp.asarray(self.nvec), dtype=self.dtype)

    def contains(self, x):
        x = jnp.asarray(x)
        return jnp.logical_and(x.shape == self.shape, jnp.all((x >= 0) & (x < jnp.asarray(self.nvec))))


class MultiBinary(Space):
    """Boolean array of a fixed shape."""

    def __init__(self, shape: Sequence[int]):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = jnp.bool_

    def sample(self, key):
        return jax.random.bernoulli(key, 0.5, self.shape)

    def contains(self, x):
        x = jnp.asarray(x)
        return jnp.asarray(x.shape == self.shape and x.dtype == jnp.bool_)


class Box(Space):
    """Real array with elementwise bounds ``low <= x <= high`` (bounds may be +-inf)."""

    def __init__(self, low, high, shape: Sequence[int], dtype=jnp.float32):
        self.low = low
        self.high = high
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype

    def sample(self, key):
        low = jnp.broadcast_to(jnp.asarray(self.low, self.dtype), self.shape)
        high = jnp.broadcast_to(jnp.asarray(self.high, self.dtype), self.shape)
        # Infinite bounds sample from a unit normal around the finite side.
        finite = jnp.isfinite(low) & jnp.isfinite(high)
        u = jax.random.uniform(key, self.shape, self.dtype)
        n = jax.random.normal(key, self.shape, self.dtype)
        base = jnp.where(jnp.isfinite(low), low + jnp.abs(n), jnp.where(jnp.isfinite(high), high - jnp.abs(n), n))
        return jnp.where(finite, low + u * (high - low), base)

    def contains(self, x):
        x = jnp.asarray(x)
        ok = jnp.all((x >= jnp.asarray(self.low)) & (x <= jnp.asarray(self.high)))
        return jnp.logical_and(x.shape == self.shape, ok)


class Dict(Space):
    """Mapping of names to spaces; samples and contains work on dicts or dataclass pytrees."""

    def __init__(self, spaces: Mapping[str, Space]):
        self.spaces = dict(spaces)
        self.shape = ()
        self.dtype = None

    def sample(self, key):
        keys = jax.random.split(key, len(self.spaces))
        return {name: space.sample(k) for (name, space), k in zip(self.spaces.items(), keys)}

    def contains(self, x):
        get = (lambda n: x[n]) if isinstance(x, Mapping) else (lambda n: getattr(x, n))
        oks = [space.contains(get(name)) for name, space in self.spaces.items()]
        return jnp.all(jnp.stack([jnp.asarray(o) for o in oks]))
