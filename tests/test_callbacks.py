"""The batched host-callback helper: one host call per traced call, serial and pooled."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solvers.callbacks import batched_callback, run_batch

CALLS = []


def affine_batch(x, y):
    """Module-level (picklable) batch solver: (B, 3), (B,) -> (B, 3), (B,)."""
    CALLS.append(x.shape[0])
    return x * 2.0 + y[:, None], np.sum(x, axis=1)


def test_one_host_call_for_nested_vmap():
    CALLS.clear()
    shapes = (jax.ShapeDtypeStruct((3,), jnp.float32), jax.ShapeDtypeStruct((), jnp.float32))
    solve = batched_callback(affine_batch, shapes, processes=1)
    x = jnp.arange(24, dtype=jnp.float32).reshape(2, 4, 3)
    y = jnp.arange(8, dtype=jnp.float32).reshape(2, 4)
    doubled, total = jax.jit(jax.vmap(jax.vmap(solve)))(x, y)
    assert CALLS == [8]
    np.testing.assert_allclose(doubled, 2 * x + y[..., None])
    np.testing.assert_allclose(total, x.sum(-1))
    single, _ = jax.jit(solve)(x[0, 0], y[0, 0])
    np.testing.assert_allclose(single, 2 * x[0, 0])


def test_process_pool_matches_serial():
    x = np.random.default_rng(0).normal(size=(40, 3))
    y = np.arange(40.0)
    pooled = run_batch(affine_batch, (x, y), processes=2, min_pool_batch=8)
    np.testing.assert_allclose(pooled[0], 2 * x + y[:, None])
    np.testing.assert_allclose(pooled[1], x.sum(1))


def test_bad_arguments():
    with pytest.raises(ValueError, match="context"):
        batched_callback(affine_batch, jax.ShapeDtypeStruct((3,), jnp.float32), context="fork")
    with pytest.raises(ValueError, match="processes"):
        batched_callback(affine_batch, jax.ShapeDtypeStruct((3,), jnp.float32), processes=0)
