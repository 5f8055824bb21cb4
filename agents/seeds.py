"""The seed convention of every job: seed ``i`` of a run uses ``fold_in(PRNGKey(seed), i)``."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def seed_key(seed: int, index: int) -> jax.Array:
    """Key of seed ``index`` of a run with base ``seed``: row ``index`` of :func:`seed_keys`."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), index)


def seed_keys(seed: int, num: int) -> jax.Array:
    """``(num, 2)`` keys of a run's seeds: seed ``i`` uses ``fold_in(PRNGKey(seed), i)``.

    Every job follows this convention, so seed ``i`` of one job's run is seed ``i`` of
    another's (e.g. a scan's run equals the training run of the same config and seed).
    """
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(seed), i))(jnp.arange(num))
