"""Parameter sweeps of environments as one compiled program: a ``vmap`` over one params leaf.

Every number of an instance is a leaf of its ``*Params`` pytree (DESIGN.md section 1), so a
sweep replaces one leaf with a batch of values and ``vmap``s the function over that leaf
only; the rest of the params stay unbatched (``in_axes=None``), the same for every value.

Example (mean delay vs node computing power, one compiled program)::

    scales = jnp.linspace(0.5, 2.0, 8)
    delays = sweep_scale(mean_delay, params, "power", scales)      # (8,)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp


def _with_axes(params: Any, field: str, leaf_axis: Any) -> Any:
    """``params`` with ``field`` set to ``leaf_axis`` and every other leaf to ``None`` (vmap in_axes)."""
    axes = jax.tree.map(lambda _: None, params)
    return dataclasses.replace(axes, **{field: leaf_axis}) if dataclasses.is_dataclass(params) else axes._replace(
        **{field: leaf_axis})


def _replace(params: Any, field: str, value: Any) -> Any:
    if dataclasses.is_dataclass(params):
        return dataclasses.replace(params, **{field: value})
    return params._replace(**{field: value})


def _checked_values(params: Any, field: str, values: jax.Array) -> jax.Array:
    """``values`` as an array of the leaf's dtype, after checking ``field`` and the shape."""
    if not hasattr(params, field):
        names = [f.name for f in dataclasses.fields(params)] if dataclasses.is_dataclass(params) else list(params._fields)
        raise ValueError(f"field={field!r} is invalid: must be one of {names}")
    leaf = jnp.asarray(getattr(params, field))
    values = jnp.asarray(values, leaf.dtype)
    if values.ndim < 1 or values.shape[1:] != leaf.shape:
        raise ValueError(f"values of shape {values.shape} are invalid for {field!r}: must be (K, *{leaf.shape})")
    return values


def sweep(fn: Callable[..., Any], params: Any, field: str, values: jax.Array, *args: Any, jit: bool = True) -> Any:
    """``fn(params with params.field = v, *args)`` for every ``v`` in ``values``, vmapped.

    Args:
        fn: ``fn(params, *args) -> pytree`` (traceable).
        params: a params pytree (``flax.struct.dataclass`` or ``NamedTuple``) with a leaf ``field``.
        field: the name of the swept leaf.
        values: ``(K, *leaf.shape)`` the K values of the leaf (cast to its dtype).
        *args: passed unbatched to every call.
        jit: compile the sweep (one program for all ``K`` values).

    Returns:
        ``fn``'s output with a leading ``K`` dimension on every leaf.

    Raises:
        ValueError: if ``field`` is not a field of ``params`` or ``values`` has the wrong shape.
    """
    values = _checked_values(params, field, values)
    batched = _replace(params, field, values)

    def call(p, *a):
        return fn(p, *a)

    mapped = jax.vmap(call, in_axes=(_with_axes(params, field, 0),) + (None,) * len(args))
    return (jax.jit(mapped) if jit else mapped)(batched, *args)


def sweep_scale(fn: Callable[..., Any], params: Any, field: str, scales: jax.Array, *args: Any,
                jit: bool = True) -> Any:
    """:func:`sweep` over ``params.field * scale`` for every scale in ``scales`` (``(K,)``)."""
    leaf = jnp.asarray(getattr(params, field)) if hasattr(params, field) else None
    if leaf is None:
        return sweep(fn, params, field, scales, *args, jit=jit)  # raises the field error
    scales = jnp.asarray(scales, jnp.float32)
    values = scales.reshape((-1,) + (1,) * leaf.ndim) * leaf
    return sweep(fn, params, field, values, *args, jit=jit)


def stack_sweep(params: Any, field: str, values: jax.Array) -> Any:
    """``params`` with ``field`` set to each of ``values`` and stacked: every leaf gets a leading ``K``.

    The result is a batch of ``K`` complete instances (``in_axes=0`` on every leaf), so sweeps of
    different fields share one compiled program, e.g. a whole training run ``vmap``ped over
    instances (scripts/reproduce_stper.py). Costs ``K`` copies of ``params``.

    Raises:
        ValueError: as :func:`sweep`.
    """
    values = _checked_values(params, field, values)
    num = values.shape[0]
    stacked = jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (num,) + jnp.shape(x)), params)
    return _replace(stacked, field, values)
