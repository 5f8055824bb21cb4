"""Observation and action spaces shared by both environments (gymnax-style, pure JAX).

Spaces describe shapes, dtypes and bounds; ``sample`` draws from them with an explicit key and
``contains`` checks a value (traceable, returns a boolean scalar). ``contains`` checks the dtype
kind too (statically): a float array is not in a ``Discrete``/``MultiDiscrete``, a non-bool one
not in a ``MultiBinary``, and only arrays of the Box's own dtype are in a ``Box`` (so a float64
observation under ``jax_enable_x64`` is reported, not accepted). Bad constructor arguments raise
``ValueError`` naming the argument, the value and what is allowed.
"""

from __future__ import annotations

import abc
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _shape(name: str, shape) -> tuple[int, ...]:
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if dims is None or not all(_is_int(d) and d >= 0 for d in dims):
        raise ValueError(f"{name}: shape={shape!r} is invalid: must be a sequence of ints >= 0")
    return tuple(int(d) for d in dims)


def _is_integer_array(x) -> bool:
    return jnp.issubdtype(x.dtype, jnp.integer) and x.dtype != jnp.bool_


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
        if not _is_int(n) or n < 1:
            raise ValueError(f"Discrete: n={n!r} is invalid: must be an int >= 1")
        self.n = int(n)
        self.shape = ()
        self.dtype = dtype

    def sample(self, key):
        return jax.random.randint(key, (), 0, self.n, dtype=self.dtype)

    def contains(self, x):
        x = jnp.asarray(x)
        if x.shape != () or not _is_integer_array(x):
            return jnp.asarray(False)
        return jnp.logical_and(x >= 0, x < self.n).all()


class MultiDiscrete(Space):
    """Integer array where entry ``i`` lies in ``0 .. nvec[i] - 1``."""

    def __init__(self, nvec: Sequence[int], dtype=jnp.int32):
        raw = np.asarray(nvec)
        if (raw.ndim != 1 or raw.size == 0 or not np.issubdtype(raw.dtype, np.integer) or raw.dtype == np.bool_
                or (raw < 1).any()):
            raise ValueError(f"MultiDiscrete: nvec={raw.tolist()!r} is invalid: must be a non-empty list of ints >= 1")
        nvec = raw.astype(np.int64)
        self.nvec = nvec
        self.shape = (int(nvec.size),)
        self.dtype = dtype

    def sample(self, key):
        return jax.random.randint(key, self.shape, 0, jnp.asarray(self.nvec), dtype=self.dtype)

    def contains(self, x):
        x = jnp.asarray(x)
        if x.shape != self.shape or not _is_integer_array(x):
            return jnp.asarray(False)
        return jnp.all((x >= 0) & (x < jnp.asarray(self.nvec)))


class MultiBinary(Space):
    """Boolean array of a fixed shape."""

    def __init__(self, shape: Sequence[int]):
        self.shape = _shape("MultiBinary", shape)
        self.dtype = jnp.bool_

    def sample(self, key):
        return jax.random.bernoulli(key, 0.5, self.shape)

    def contains(self, x):
        x = jnp.asarray(x)
        return jnp.asarray(x.shape == self.shape and x.dtype == jnp.bool_)


class Box(Space):
    """Real array with elementwise bounds ``low <= x <= high`` (bounds may be +-inf)."""

    def __init__(self, low, high, shape: Sequence[int], dtype=jnp.float32):
        self.shape = _shape("Box", shape)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"Box: dtype={dtype!r} is invalid: must be a float dtype")
        low_array, high_array = np.asarray(low, np.float64), np.asarray(high, np.float64)
        try:
            low_b, high_b = np.broadcast_to(low_array, self.shape), np.broadcast_to(high_array, self.shape)
        except ValueError:
            raise ValueError(f"Box: low/high of shapes {low_array.shape}/{high_array.shape} are invalid: must "
                             f"broadcast to shape {self.shape}") from None
        if np.isnan(low_b).any() or np.isnan(high_b).any() or (low_b > high_b).any():
            raise ValueError(f"Box: low={low!r}, high={high!r} are invalid: must be low <= high elementwise, no NaN")
        self.low = low
        self.high = high
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
        if x.shape != self.shape or x.dtype != jnp.dtype(self.dtype):
            return jnp.asarray(False)
        return jnp.all((x >= jnp.asarray(self.low)) & (x <= jnp.asarray(self.high)))


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
