"""Seeded MEC instance generator: the single source of ``MECParams``.

Defaults follow TTOSC's reference [12] (Chen et al., IEEE Trans. Commun. 2022) where it gives
them (ES CPU 50 GHz, ES storage 2 GB, service software 100-500 MB, task input 1-5 MB,
1-5 Gcycles per task) and are this project's choice elsewhere (docs/model.md, MEC section).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxcpn.mec.types import MECConfig, MECParams, validate_params


@dataclasses.dataclass(frozen=True)
class InstanceRanges:
    """Distributions of the generated instance (uniform over each range, inclusive for ints).

    Attributes:
        service_size: storage units of 100 MB (100-500 MB, [12]).
        storage_capacity: ES storage, units of 100 MB (2 GB, [12]).
        task_input_size: Mb (1-5 MB, [12]).
        task_cycles: Gcycles (1-5 x 10^9 cycles, [12]).
        es_cpu: GHz (50 GHz, [12]).
        es_rate: ES-ES rate per service, Mb/s, symmetric (choice).
        cloud_rate: ES-cloud rate, Mb/s (choice; below every ES-ES rate).
        cloud_cpu: cloud CPU per task, GHz (choice; above any ES's whole CPU).
    """

    service_size: tuple[int, int] = (1, 5)
    storage_capacity: tuple[int, int] = (20, 20)
    task_input_size: tuple[float, float] = (8.0, 40.0)
    task_cycles: tuple[float, float] = (1.0, 5.0)
    es_cpu: tuple[float, float] = (50.0, 50.0)
    es_rate: tuple[float, float] = (50.0, 100.0)
    cloud_rate: tuple[float, float] = (10.0, 20.0)
    cloud_cpu: float = 60.0
    zipf_exponent: float = 1.2
    users: tuple[int, int] = (10, 50)
    task_rate: float = 0.5
    diurnal_amplitude: float = 0.5
    diurnal_period: float = 24.0
    ranking_drift: float = 0.5


def sample_params(key: jax.Array, config: MECConfig, ranges: InstanceRanges = InstanceRanges()) -> MECParams:
    """Draws one instance (traceable: ``jax.vmap`` over keys gives a batch of instances).

    Args:
        key: PRNG key.
        config: shapes.
        ranges: the distributions.

    Returns:
        MECParams (not validated; use ``generate_params`` on the host).
    """
    m, k = config.num_cells, config.num_services
    keys = jax.random.split(key, 7)

    def uniform(key, shape, bounds):
        return jax.random.uniform(key, shape, jnp.float32, bounds[0], bounds[1])

    rate = uniform(keys[5], (m, m), ranges.es_rate)
    rate = jnp.triu(rate, 1) + jnp.triu(rate, 1).T + jnp.diag(jnp.full((m,), ranges.es_rate[1], jnp.float32))
    return MECParams(
        service_size=jax.random.randint(keys[0], (k,), ranges.service_size[0], ranges.service_size[1] + 1, jnp.int32),
        storage_capacity=jax.random.randint(keys[1], (m,), ranges.storage_capacity[0],
                                            ranges.storage_capacity[1] + 1, jnp.int32),
        task_input_size=uniform(keys[2], (k,), ranges.task_input_size),
        task_cycles=uniform(keys[3], (k,), ranges.task_cycles),
        es_cpu=uniform(keys[4], (m,), ranges.es_cpu),
        es_rate=rate,
        cloud_rate=uniform(keys[6], (m,), ranges.cloud_rate),
        cloud_cpu=jnp.asarray(ranges.cloud_cpu, jnp.float32),
        zipf_exponent=jnp.asarray(ranges.zipf_exponent, jnp.float32),
        users_min=jnp.asarray(ranges.users[0], jnp.int32),
        users_max=jnp.asarray(ranges.users[1], jnp.int32),
        task_rate=jnp.asarray(ranges.task_rate, jnp.float32),
        diurnal_amplitude=jnp.asarray(ranges.diurnal_amplitude, jnp.float32),
        diurnal_period=jnp.asarray(ranges.diurnal_period, jnp.float32),
        ranking_drift=jnp.asarray(ranges.ranking_drift, jnp.float32),
    )


def generate_params(key: jax.Array | int, config: MECConfig, ranges: InstanceRanges = InstanceRanges(),
                    **overrides) -> MECParams:
    """Draws one instance on the host and validates it.

    Args:
        key: PRNG key or an int seed.
        config: shapes.
        ranges: the distributions.
        **overrides: MECParams fields to replace after drawing (e.g. ``zipf_exponent=0.8``).

    Returns:
        Validated MECParams.

    Raises:
        ValueError: on an unknown override or out-of-range values.
    """
    if isinstance(key, int):
        key = jax.random.key(key)
    params = sample_params(key, config, ranges)
    unknown = set(overrides) - set(MECParams.__dataclass_fields__)
    if unknown:
        raise ValueError(f"generate_params: unknown fields {sorted(unknown)}; allowed: "
                         f"{sorted(MECParams.__dataclass_fields__)}")
    fields = {name: jnp.asarray(value, getattr(params, name).dtype) for name, value in overrides.items()}
    params = params.replace(**fields)
    validate_params(params, config)
    return params
