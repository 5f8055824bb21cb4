"""Seeded MEC instance generator: the single source of ``MECParams``.

Defaults follow TTOSC's reference [12] (Chen et al., IEEE Trans. Commun. 2022) where it gives
them (ES CPU 50 GHz, ES storage 2 GB, service software 100-500 MB, task input 1-5 MB,
1-5 Gcycles per task) and are this project's choice elsewhere (docs/model.md, MEC section).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxcpn.mec.types import INT_FIELDS, MECConfig, MECParams, validate_params


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
        cloud_rate: ES-cloud rate, Mb/s (choice; below every ES-ES rate: ``cloud_rate[1] <
            es_rate[0]`` is required).
        cloud_cpu: cloud CPU per task, GHz (choice; above any ES's whole CPU: ``cloud_cpu >
            es_cpu[1]`` is required).
        zipf_exponent: Zipf exponent of service popularity, >= 0.
        users: users per cell (inclusive int range, >= 0).
        task_rate: tasks per user per slot, >= 0.
        diurnal_amplitude: in [0, 1).
        diurnal_period: frames, > 0.
        ranking_drift: probability per frame, in [0, 1].
        backhaul_rate: Mb/s, rate at which an ES downloads service software (beyond the paper;
            used with ``MECConfig.switching_cost``). Default 200-400 Mb/s: the whole ES-cloud
            link whose per-service share is ``cloud_rate`` (20 services x 10-20 Mb/s).
        slot_duration: s, length of one slot (5 s, [12]; used with switching costs).
        popularity_cycle_amplitude: in [0, 1), per-service daily popularity cycle (beyond the
            paper; 0 = off). Each service's phase is drawn uniformly in [0, 2 pi).

    Every range is ``(low, high)`` with ``low <= high``; a bad one raises ``ValueError`` at
    construction (``sample_params`` is traceable and checks nothing itself).
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
    backhaul_rate: tuple[float, float] = (200.0, 400.0)
    slot_duration: float = 5.0
    popularity_cycle_amplitude: float = 0.0

    def __post_init__(self):
        integer_ranges = {"service_size": 1, "storage_capacity": 0, "users": 0}
        real_ranges = ("task_input_size", "task_cycles", "es_cpu", "es_rate", "cloud_rate", "backhaul_rate")
        for name in (*integer_ranges, *real_ranges):
            value = getattr(self, name)
            integer = name in integer_ranges
            kind = "ints" if integer else "finite numbers"
            ok = (isinstance(value, (tuple, list)) and len(value) == 2
                  and all(_is_number(v, integer) for v in value))
            low_bound = integer_ranges.get(name, 0)
            ok = ok and value[0] <= value[1] and (value[0] >= low_bound if integer else value[0] > 0)
            bound = f">= {low_bound}" if integer else "> 0"
            _range_require(name, value, ok, f"a (low, high) pair of {kind}, {bound}, low <= high")
        scalars = {"cloud_cpu": (lambda v: v > 0, "> 0 GHz"), "zipf_exponent": (lambda v: v >= 0, ">= 0"),
                   "task_rate": (lambda v: v >= 0, ">= 0 tasks/user/slot"),
                   "diurnal_amplitude": (lambda v: 0 <= v < 1, "in [0, 1)"),
                   "diurnal_period": (lambda v: v > 0, "> 0 frames"),
                   "ranking_drift": (lambda v: 0 <= v <= 1, "in [0, 1]"),
                   "slot_duration": (lambda v: v > 0, "> 0 s"),
                   "popularity_cycle_amplitude": (lambda v: 0 <= v < 1, "in [0, 1)")}
        for name, (rule, allowed) in scalars.items():
            value = getattr(self, name)
            _range_require(name, value, _is_number(value, False) and rule(value), f"a finite number {allowed}")
        _range_require("cloud_rate", self.cloud_rate, self.cloud_rate[1] < self.es_rate[0],
                       f"high < es_rate low = {self.es_rate[0]} (the cloud link is below every ES-ES rate)")
        _range_require("cloud_cpu", self.cloud_cpu, self.cloud_cpu > self.es_cpu[1],
                       f"> es_cpu high = {self.es_cpu[1]} GHz (the cloud is above any ES's whole CPU)")


def _is_number(value, integer: bool) -> bool:
    """A Python/NumPy int (``integer``) or finite real, never a bool."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if integer:
        return isinstance(value, (int, np.integer))
    return isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value)


def _range_require(name: str, value, ok: bool, allowed: str) -> None:
    if not ok:
        raise ValueError(f"InstanceRanges.{name}={value!r} is invalid: must be {allowed}")


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

    # The options beyond the paper draw from their own stream, so the paper's leaves are the
    # same draws as before they existed.
    key_backhaul, key_cycle = jax.random.split(jax.random.fold_in(key, 7))
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
        backhaul_rate=uniform(key_backhaul, (m,), ranges.backhaul_rate),
        slot_duration=jnp.asarray(ranges.slot_duration, jnp.float32),
        popularity_cycle_amplitude=jnp.asarray(ranges.popularity_cycle_amplitude, jnp.float32),
        popularity_cycle_phase=uniform(key_cycle, (k,), (0.0, 2.0 * math.pi)),
    )


def generate_params(key: jax.Array | int, config: MECConfig, ranges: InstanceRanges = InstanceRanges(),
                    **overrides) -> MECParams:
    """Draws one instance on the host and validates it.

    Args:
        key: PRNG key or an int seed.
        config: shapes.
        ranges: the distributions.
        **overrides: MECParams fields to replace after drawing (e.g. ``zipf_exponent=0.8``); a
            scalar is broadcast to the field's shape (``es_cpu=100.0``). Integer fields
            (``service_size``, ``storage_capacity``, ``users_min``, ``users_max``) must be
            whole numbers: ``2.5`` is refused, never truncated.

    Returns:
        Validated MECParams.

    Raises:
        ValueError: on an unknown override or out-of-range values.
    """
    if isinstance(key, (bool, np.bool_)) or not (isinstance(key, (int, np.integer)) or hasattr(key, "dtype")):
        raise ValueError(f"generate_params: key={key!r} is invalid: must be a PRNG key or an int seed")
    if isinstance(key, (int, np.integer)):
        key = jax.random.key(int(key))
    params = sample_params(key, config, ranges)
    unknown = set(overrides) - set(MECParams.__dataclass_fields__)
    if unknown:
        raise ValueError(f"generate_params: unknown fields {sorted(unknown)}; allowed: "
                         f"{sorted(MECParams.__dataclass_fields__)}")
    fields = {name: _override(name, value, getattr(params, name)) for name, value in overrides.items()}
    params = params.replace(**fields)
    validate_params(params, config)
    return params


def _override(name: str, value, drawn: jax.Array) -> jax.Array:
    """One ``generate_params`` override as an array of the field's dtype and shape (or an error)."""
    if isinstance(value, jax.core.Tracer):
        raise ValueError(f"generate_params: {name} is traced; generate_params runs on the host "
                         "(use sample_params inside jit)")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        array = np.asarray(value, object)
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"generate_params: {name}={value!r} is invalid: must be numbers (dtype {array.dtype})")
    if array.ndim == 0 and drawn.ndim > 0:
        array = np.broadcast_to(array, drawn.shape)
    if name in INT_FIELDS:
        finite = np.isfinite(array)
        if not finite.all() or (array != np.round(array)).any():
            raise ValueError(f"generate_params: {name}={array.tolist()!r} is invalid: must be whole numbers "
                             "(an integer field; fractions are refused, not truncated)")
        info = np.iinfo(np.int32)
        if (array < info.min).any() or (array > info.max).any():
            raise ValueError(f"generate_params: {name}={array.tolist()!r} is invalid: must fit in int32")
    return jnp.asarray(array, drawn.dtype)
