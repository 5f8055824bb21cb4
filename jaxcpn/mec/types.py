"""Static config, dynamic params and state of the two-timescale MEC environment (TTOSC).

Units: time in seconds (s), data in megabits (Mb), rates in Mb/s, CPU work in gigacycles
(Gcycles), CPU speed in GHz (Gcycles/s), storage in integer units of 100 MB (the knapsack of
eq. 1 needs integer sizes). See docs/model.md, MEC section, for every default and choice.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

SCHEDULERS = ("jax", "cvxpy")


def _require(name: str, value, ok: bool, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")


@dataclasses.dataclass(frozen=True)
class MECConfig:
    """Shapes and code paths (static, hashable).

    Attributes:
        num_cells: M, cells = base stations = edge servers (ESs).
        num_services: K, services.
        slots_per_frame: L, small-timescale slots in one deployment frame.
        frames_per_episode: frames (deployment decisions) before the episode is truncated.
        scheduler: per-slot scheduling solver: ``"jax"`` (``solve_qp_jax``, default) or
            ``"cvxpy"`` (``solve_qp_cvxpy`` through a batched host callback).
        qp_iterations: cap on the interior-point iterations of the ``"jax"`` scheduler per slot
            (it stops earlier once each QP is certified within 2e-5; the previous slot's schedule
            is a warm-start candidate).
        max_storage_units: static bound on any ES storage capacity (size of the knapsack DP
            table used to pick deployments); params are checked against it.
        callback_processes: worker processes of the ``"cvxpy"`` callback (1: in process).
        switching_cost: beyond the paper (docs/model.md, "Coupled dynamics"): a service deployed
            on an ES that did not host it in the previous frame is downloaded over the backhaul
            first (``800 s_k / backhaul_rate[m]`` s); tasks sent there wait for the download.
            Also appends the hosted deployment to the observation (shape (M, L + 1, K)).
            Off (the paper's model) by default.
    """

    num_cells: int = 5
    num_services: int = 20
    slots_per_frame: int = 10
    frames_per_episode: int = 24
    scheduler: str = "jax"
    qp_iterations: int = 100
    max_storage_units: int = 64
    callback_processes: int = 1
    switching_cost: bool = False

    def __post_init__(self):
        for name, low in (("num_cells", 1), ("num_services", 1), ("slots_per_frame", 1),
                          ("frames_per_episode", 1), ("qp_iterations", 1), ("max_storage_units", 1),
                          ("callback_processes", 1)):
            value = getattr(self, name)
            _require(f"MECConfig.{name}", value, isinstance(value, int) and not isinstance(value, bool)
                     and value >= low, f"an int >= {low}")
        _require("MECConfig.scheduler", self.scheduler, self.scheduler in SCHEDULERS, f"one of {SCHEDULERS}")
        _require("MECConfig.switching_cost", self.switching_cost,
                 isinstance(self.switching_cost, (bool, np.bool_)), "a bool (True or False)")

    @property
    def observed_slots(self) -> int:
        """Rows of each agent's observation: the L slots, plus the hosted deployment with switching costs."""
        return self.slots_per_frame + int(bool(self.switching_cost))

    @property
    def num_nodes(self) -> int:
        """Computation nodes: the M ESs plus the cloud (index M)."""
        return self.num_cells + 1


@struct.dataclass
class MECParams:
    """Every number of one MEC instance (a pytree: vmap over it to sweep any value).

    Shapes use M = num_cells, K = num_services.

    Attributes:
        service_size: (K,) int32, storage of each service's software, units of 100 MB (s_k).
        storage_capacity: (M,) int32, ES storage, units of 100 MB (S_m, eq. 1).
        task_input_size: (K,) float32, input data of one task, Mb (d_k).
        task_cycles: (K,) float32, CPU work of one task, Gcycles (c_k).
        es_cpu: (M,) float32, ES CPU speed, GHz (F_m), shared equally by deployed services.
        es_rate: (M, M) float32, ES-to-ES rate available to one service's scheduled tasks,
            Mb/s (R_{m,n}); the diagonal is unused (local tasks are not transferred).
        cloud_rate: (M,) float32, ES-to-cloud rate, Mb/s (R_c); ``cloud_rate[m]`` must lie below
            every ES-ES rate ``es_rate[m, n]``, ``n != m`` (checked by ``validate_params``).
        cloud_cpu: () float32, cloud CPU per task, GHz (f_c). The generated default (60 GHz) is
            above any ES's whole CPU (50 GHz), so above any ES share; ``validate_params``
            requires it above the smallest share ``es_cpu[m] / K`` of every ES (an ES running
            all K services) and not more, since Fig. 6 sweeps ``es_cpu`` past it as the paper
            does.
        zipf_exponent: () float32, Zipf exponent of per-cell service popularity.
        users_min: () int32, fewest users of a cell (drawn per episode, inclusive).
        users_max: () int32, most users of a cell (inclusive).
        task_rate: () float32, mean tasks per user per slot at mean diurnal intensity.
        diurnal_amplitude: () float32, relative amplitude of the diurnal intensity, in [0, 1).
        diurnal_period: () float32, frames per diurnal cycle.
        ranking_drift: () float32, per-frame probability that a cell swaps two adjacent
            services of its popularity ranking.
        backhaul_rate: (M,) float32, Mb/s, rate at which ES m downloads a service's software from
            the cloud (beyond the paper; used only with ``MECConfig.switching_cost``).
        slot_duration: () float32, s, length of one slot (slot l of a frame starts at
            ``l * slot_duration``; used only with ``MECConfig.switching_cost``).
        popularity_cycle_amplitude: () float32 in [0, 1), relative amplitude of the per-service
            daily popularity cycle (beyond the paper; 0 = the paper's model).
        popularity_cycle_phase: (K,) float32, radians, phase of each service's popularity cycle.
    """

    service_size: jax.Array
    storage_capacity: jax.Array
    task_input_size: jax.Array
    task_cycles: jax.Array
    es_cpu: jax.Array
    es_rate: jax.Array
    cloud_rate: jax.Array
    cloud_cpu: jax.Array
    zipf_exponent: jax.Array
    users_min: jax.Array
    users_max: jax.Array
    task_rate: jax.Array
    diurnal_amplitude: jax.Array
    diurnal_period: jax.Array
    ranking_drift: jax.Array
    backhaul_rate: jax.Array
    slot_duration: jax.Array
    popularity_cycle_amplitude: jax.Array
    popularity_cycle_phase: jax.Array


@struct.dataclass
class MECState:
    """Environment state between frames.

    Attributes:
        arrivals: (L, M, K) float32, tasks that arrived in each slot of the last frame.
        ranking: (M, K) int32, popularity rank of each service in each cell (0 = most popular).
        users: (M,) int32, users of each cell in this episode.
        phase: () float32, diurnal phase of the episode's start, frames.
        frame: () int32, frames played in this episode.
        schedule: (M, K, M + 1) float32, the last slot's schedule (warm start of the next one).
        deployment: (M, K) bool, the deployment hosted during the last frame (after the storage
            check; all False at reset: the ESs start empty). With ``MECConfig.switching_cost``
            the next frame downloads every deployed service that is not in it.
    """

    arrivals: jax.Array
    ranking: jax.Array
    users: jax.Array
    phase: jax.Array
    frame: jax.Array
    schedule: jax.Array
    deployment: jax.Array


FLOAT_FIELDS = ("task_input_size", "task_cycles", "es_cpu", "es_rate", "cloud_rate", "cloud_cpu", "zipf_exponent",
                "task_rate", "diurnal_amplitude", "diurnal_period", "ranking_drift", "backhaul_rate", "slot_duration",
                "popularity_cycle_amplitude", "popularity_cycle_phase")
INT_FIELDS = ("service_size", "storage_capacity", "users_min", "users_max")


def validate_params(params: MECParams, config: MECConfig) -> None:
    """Checks concrete params against the config and the model's ranges (host side).

    Raises:
        ValueError: naming the field, the offending value and the allowed range.
    """
    m, k = config.num_cells, config.num_services
    shapes = {"service_size": (k,), "storage_capacity": (m,), "task_input_size": (k,),
              "task_cycles": (k,), "es_cpu": (m,), "es_rate": (m, m), "cloud_rate": (m,), "backhaul_rate": (m,),
              "popularity_cycle_phase": (k,)}
    for name in MECParams.__dataclass_fields__:
        leaf = getattr(params, name)
        if isinstance(leaf, jax.core.Tracer):
            raise ValueError(f"MECParams.{name} is traced: validate_params checks concrete params on the host "
                             "(call it before jit)")
        value = np.asarray(leaf)
        shape = shapes.get(name, ())
        _require(f"MECParams.{name}.shape", value.shape, value.shape == shape, f"{shape} for {config}")
        if name in INT_FIELDS:
            _require(f"MECParams.{name}.dtype", value.dtype, np.issubdtype(value.dtype, np.integer),
                     "an integer dtype (int32)")
        else:
            _require(f"MECParams.{name}.dtype", value.dtype, np.issubdtype(value.dtype, np.floating),
                     "a float dtype (float32)")
        _require(f"MECParams.{name}", value.tolist(), bool(np.isfinite(value).all()), "finite values")

    def get(name):
        return np.asarray(getattr(params, name))

    for name in ("task_input_size", "task_cycles", "es_cpu", "cloud_rate", "cloud_cpu", "diurnal_period",
                 "backhaul_rate", "slot_duration"):
        _require(f"MECParams.{name}", get(name).tolist(), bool((get(name) > 0).all()), "values > 0")
    off_diagonal = ~np.eye(m, dtype=bool)
    _require("MECParams.es_rate", get("es_rate").tolist(), bool((get("es_rate")[off_diagonal] > 0).all()),
             "off-diagonal values > 0")
    if m > 1:  # eq. (5) vs (4): the cloud link is the slowest link of each ES (docs/model.md)
        slowest = np.where(off_diagonal, get("es_rate"), np.inf).min(axis=1)
        _require("MECParams.cloud_rate", get("cloud_rate").tolist(), bool((get("cloud_rate") < slowest).all()),
                 f"cloud_rate[m] < every ES-ES rate es_rate[m, n != m] (per-ES minimum {slowest.tolist()} Mb/s)")
    smallest_share = get("es_cpu") / k
    _require("MECParams.cloud_cpu", float(get("cloud_cpu")), bool((get("cloud_cpu") > smallest_share).all()),
             f"> every ES's smallest CPU share es_cpu[m] / K (max {float(smallest_share.max())} GHz)")
    _require("MECParams.service_size", get("service_size").tolist(), bool((get("service_size") >= 1).all()),
             "integers >= 1 (storage units)")
    _require("MECParams.storage_capacity", get("storage_capacity").tolist(),
             bool(((get("storage_capacity") >= 0) & (get("storage_capacity") <= config.max_storage_units)).all()),
             f"integers in [0, MECConfig.max_storage_units={config.max_storage_units}]")
    _require("MECParams.zipf_exponent", float(get("zipf_exponent")), float(get("zipf_exponent")) >= 0, ">= 0")
    _require("MECParams.users_min", int(get("users_min")), int(get("users_min")) >= 0, "an int >= 0")
    _require("MECParams.users_max", int(get("users_max")), int(get("users_max")) >= int(get("users_min")),
             f">= users_min={int(get('users_min'))}")
    _require("MECParams.task_rate", float(get("task_rate")), float(get("task_rate")) >= 0, ">= 0 tasks/user/slot")
    _require("MECParams.diurnal_amplitude", float(get("diurnal_amplitude")),
             0 <= float(get("diurnal_amplitude")) < 1, "[0, 1)")
    _require("MECParams.popularity_cycle_amplitude", float(get("popularity_cycle_amplitude")),
             0 <= float(get("popularity_cycle_amplitude")) < 1, "[0, 1)")
    _require("MECParams.ranking_drift", float(get("ranking_drift")), 0 <= float(get("ranking_drift")) <= 1, "[0, 1]")


def check_deployment_spec(deployment, num_cells: int, num_services: int) -> None:
    """Raises unless ``deployment`` is a bool ``(M, K)`` array (static: works on traced values too).

    Raises:
        ValueError: naming the shape or dtype and what is allowed.
    """
    array = deployment if hasattr(deployment, "dtype") else np.asarray(deployment)
    shape, dtype = tuple(np.shape(array)), array.dtype
    if shape != (num_cells, num_services) or dtype != jnp.bool_:
        raise ValueError(f"deployment of shape {shape} dtype {dtype} is invalid: must be a bool array of shape "
                         f"(M, K) = {(num_cells, num_services)} (MultiBinary; use env.deployment_from_values or "
                         "compare values, e.g. x > 0, to get one)")


def check_deployment(deployment, params: MECParams) -> None:
    """Raises if a concrete deployment breaks the storage constraint (eq. 1) at some ES.

    Args:
        deployment: (M, K) bool, ``x_{m,k}``.
        params: concrete params.

    Raises:
        ValueError: naming the ES, the storage it needs and its capacity.
    """
    size = np.asarray(params.service_size)
    capacity = np.asarray(params.storage_capacity)
    check_deployment_spec(deployment, capacity.shape[0], size.shape[0])
    deployment = np.asarray(deployment)
    used = deployment.astype(np.int64) @ size
    for m in np.flatnonzero(used > capacity):
        raise ValueError(f"deployment of ES {m} needs {used[m]} storage units > storage_capacity[{m}]="
                         f"{capacity[m]} (eq. 1); services {np.flatnonzero(deployment[m]).tolist()}")


def storage_feasible(deployment: jax.Array, params: MECParams) -> jax.Array:
    """Traceable eq. (1) per ES: (M,) bool, ``sum_k s_k x_{m,k} <= S_m``."""
    used = jnp.sum(jnp.where(deployment, params.service_size[None, :], 0), axis=-1)
    return used <= params.storage_capacity
