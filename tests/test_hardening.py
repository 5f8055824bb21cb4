"""Bad input, refused with a clear error: the matrix of issue 17 as tables of cases.

Each case is ``(id, call, exception type, message fragment)``: ``call(ctx)`` must raise that type
with a message that contains the fragment (the field, the value or the rule). Some tables are
generated from the dataclasses themselves (every ``CPNParams`` leaf, every ``MECParams`` field),
and ``test_every_field_has_a_case`` fails when a field of a config, a generator or a params
pytree has no bad-input case, so a new field cannot come without one. Valid edge cases that
must keep working, determinism and a long jitted MEC run are at the end. Everything is tiny:
no training, a few small compiled programs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import subprocess
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcpn import spaces
from jaxcpn.cpn.env import GreenCPN
from jaxcpn.cpn.generator import DEFAULTS, generate_instance, validate_params
from jaxcpn.cpn.types import CPNConfig, CPNParams
from jaxcpn.data.loaders import load_entsoe_day_ahead, load_hourly_csv, load_smard_generation
from jaxcpn.mec.env import TwoTimescaleMEC
from jaxcpn.mec.generator import InstanceRanges, generate_params
from jaxcpn.mec.types import MECConfig, MECParams, validate_params as validate_mec_params
from solvers.knapsack import knapsack
from solvers.routing import RoutingInstance, RoutingOptions
from solvers.scheduling import solve_qp_cvxpy, solve_qp_jax

CPN = CPNConfig(num_nodes=4, num_users=3, window=4, episode_length=4)
MEC = MECConfig(num_cells=2, num_services=3, slots_per_frame=2, frames_per_episode=3, qp_iterations=5)
KEY = jax.random.PRNGKey(0)


class Case(NamedTuple):
    id: str
    call: Callable[[Any], Any]
    error: type
    match: str
    field: str = ""  # "Owner.field" this case covers (for test_every_field_has_a_case)


@functools.cache
def cpn_params() -> CPNParams:
    return generate_instance(KEY, CPN, series_hours=64)


@functools.cache
def cpn_env() -> GreenCPN:
    return GreenCPN(CPN)


@functools.cache
def cpn_state():
    return cpn_env().reset(jax.random.PRNGKey(1), cpn_params())[1]


@functools.cache
def cpn_jit_step():
    return jax.jit(cpn_env().step)


def cpn_step(action, jit: bool = False):
    step = cpn_jit_step() if jit else cpn_env().step
    return step(jax.random.PRNGKey(2), cpn_state(), action, cpn_params())


@functools.cache
def mec_env() -> TwoTimescaleMEC:
    return TwoTimescaleMEC(MEC)


@functools.cache
def mec_state():
    env = mec_env()
    return env.reset(jax.random.PRNGKey(1), env.default_params)[1]


def mec_step(deployment, jit: bool = False):
    env = mec_env()
    step = jax.jit(env.step) if jit else env.step
    return step(jax.random.PRNGKey(2), mec_state(), deployment, env.default_params)


def gen(**overrides):
    return lambda ctx: generate_instance(KEY, CPN, series_hours=64, **overrides)


# ----------------------------------------------------------------------------- CPN generator


CPN_GENERATOR = [
    Case("packet_size<0", gen(packet_size=-5), ValueError,
         "generate_instance: packet_size=-5 is invalid: must be finite and > 0 (Mb)", "DEFAULTS.packet_size"),
    Case("packet_size-nan", gen(packet_size=float("nan")), ValueError, "packet_size=nan is invalid"),
    Case("packet_size-bool", gen(packet_size=True), ValueError, "packet_size=True is invalid"),
    Case("deadline=0", gen(deadline=0), ValueError, "deadline=0 is invalid: must be finite and > 0 (s)",
         "DEFAULTS.deadline"),
    Case("deadline=inf", gen(deadline=float("inf")), ValueError, "deadline=inf is invalid"),
    Case("bandwidth-negative", gen(bandwidth_range=(-50, -10)), ValueError, "bandwidth_range=(-50, -10) is invalid",
         "DEFAULTS.bandwidth_range"),
    Case("bandwidth-reversed", gen(bandwidth_range=(50, 10)), ValueError, "low <= high"),
    Case("power=(0,0)", gen(power_range=(0, 0)), ValueError, "power_range=(0, 0) is invalid", "DEFAULTS.power_range"),
    Case("power-one-number", gen(power_range=5.0), ValueError, "a (low, high) pair"),
    Case("power-inf", gen(power_range=(1.0, float("inf"))), ValueError, "power_range=(1.0, inf)"),
    Case("switch_delay<0", gen(switch_delay_range=(-0.01, 0.05)), ValueError, "switch_delay_range=(-0.01, 0.05)",
         "DEFAULTS.switch_delay_range"),
    Case("hydro_share>1", gen(hydro_share_range=(0.5, 1.5)), ValueError, "in [0, 1]", "DEFAULTS.hydro_share_range"),
    Case("workload_base-reversed", gen(workload_base_range=(2.5, 1.5)), ValueError, "workload_base_range=(2.5, 1.5)",
         "DEFAULTS.workload_base_range"),
    Case("workload_amplitude-length", gen(workload_amplitude_range=(0.2,)), ValueError, "workload_amplitude_range=(0.2,)",
         "DEFAULTS.workload_amplitude_range"),
    Case("unit_price<0", gen(unit_price=-1.0), ValueError, "unit_price=-1.0 is invalid", "DEFAULTS.unit_price"),
    Case("eta-string", gen(eta="2"), ValueError, "eta='2' is invalid", "DEFAULTS.eta"),
    Case("usage_price=inf", gen(usage_price=float("inf")), ValueError, "usage_price=inf", "DEFAULTS.usage_price"),
    Case("kappa<0", gen(kappa=-0.1), ValueError, "kappa=-0.1 is invalid", "DEFAULTS.kappa"),
    Case("green_fraction>1", gen(green_fraction=1.5), ValueError, "green_fraction=1.5", "DEFAULTS.green_fraction"),
    Case("noise<0", gen(workload_noise_fraction=-0.1), ValueError, "workload_noise_fraction=-0.1",
         "DEFAULTS.workload_noise_fraction"),
    Case("floor=0", gen(workload_floor=0.0), ValueError, "workload_floor=0.0 is invalid: must be finite and > 0",
         "DEFAULTS.workload_floor"),
    Case("waxman_alpha=0", gen(waxman_alpha=0.0), ValueError, "waxman_alpha=0.0", "DEFAULTS.waxman_alpha"),
    Case("waxman_beta>1", gen(waxman_beta=2.0), ValueError, "waxman_beta=2.0", "DEFAULTS.waxman_beta"),
    Case("slot_duration=0", gen(slot_duration=0), ValueError,
         "generate_instance: slot_duration=0 is invalid: must be finite and > 0 (s)", "DEFAULTS.slot_duration"),
    Case("slot_duration=inf", gen(slot_duration=float("inf")), ValueError, "slot_duration=inf is invalid"),
    Case("unknown-override", gen(kapa=1.0), ValueError, "unknown override(s) ['kapa']"),
    Case("price-nan", lambda ctx: generate_instance(KEY, CPN, price_series=np.full(64, np.nan),
                                                    hydro_series=np.full(64, 0.5)),
         ValueError, "price_series with 64 non-finite value(s), first nan at index 0"),
    Case("hydro-inf", lambda ctx: generate_instance(KEY, CPN, price_series=np.ones(64),
                                                    hydro_series=np.r_[np.full(63, 0.5), np.inf]),
         ValueError, "hydro_series with 1 non-finite value(s), first inf at index 63"),
    Case("hydro>1", lambda ctx: generate_instance(KEY, CPN, price_series=np.ones(64), hydro_series=np.full(64, 2.0)),
         ValueError, "values in [0, 1]"),
    Case("price-2d", lambda ctx: generate_instance(KEY, CPN, price_series=np.ones((64, 2)), hydro_series=np.ones(64)),
         ValueError, "price_series of shape (64, 2) is invalid"),
    Case("series-lengths", lambda ctx: generate_instance(KEY, CPN, price_series=np.ones(64), hydro_series=np.ones(65)),
         ValueError, "the shape of price_series (64,)"),
    Case("price-only-wrong-length", lambda ctx: generate_instance(KEY, CPN, price_series=np.ones(50), series_hours=64),
         ValueError, "series_hours=64 long"),
    Case("start_hour-float", lambda ctx: generate_instance(KEY, CPN, series_start_hour=1.5), ValueError,
         "series_start_hour=1.5 is invalid"),
    Case("series_hours=0", lambda ctx: generate_instance(KEY, CPN, series_hours=0), ValueError,
         "series_hours=0 is invalid"),
    Case("num_nodes=200000", lambda ctx: generate_instance(KEY, CPNConfig(num_nodes=200000, max_bytes=2**62)),
         ValueError, "num_nodes=200000, num_users=10, series of 8760 hours is too large: needs about 1192.1 GiB"),
    Case("num_users=10**6", lambda ctx: generate_instance(KEY, CPNConfig(num_users=10**6)), ValueError,
         "num_users=1000000, series of 8760 hours is too large: needs about 65.3 GiB"),
    Case("max_bytes=0", gen(max_bytes=0), ValueError, "max_bytes=0 is invalid"),
    Case("config-not-a-config", lambda ctx: generate_instance(KEY, MEC), ValueError, "must be a CPNConfig"),
]


def _wrong_dtype(leaf: np.ndarray) -> jax.Array:
    """A leaf of the same shape and the wrong dtype kind: float for bool/int leaves, bool for float."""
    return jnp.asarray(leaf, jnp.bool_ if np.issubdtype(leaf.dtype, np.floating) else jnp.float32)


CPN_PARAMS = [
    Case(f"CPNParams.{name}-dtype",
         lambda ctx, name=name: validate_params(cpn_params().replace(**{name: _wrong_dtype(getattr(cpn_params(), name))}), CPN),
         ValueError, f"CPNParams.{name}: dtype", f"CPNParams.{name}")
    for name in CPNParams.__dataclass_fields__
] + [
    Case("user_node-float", lambda ctx: validate_params(
        cpn_params().replace(user_node=cpn_params().user_node.astype(jnp.float32)), CPN), ValueError,
        "CPNParams.user_node: dtype float32 is invalid; allowed: an integer dtype"),
    Case("user_node-bool", lambda ctx: validate_params(
        cpn_params().replace(user_node=jnp.zeros(3, bool)), CPN), ValueError, "CPNParams.user_node: dtype bool"),
    Case("slot_duration<=0", lambda ctx: validate_params(
        cpn_params().replace(slot_duration=jnp.asarray(0.0, jnp.float32)), CPN), ValueError,
        "CPNParams.slot_duration: 0.0 is invalid; allowed: a finite scalar > 0 s", "CPNParams.slot_duration"),
    Case("slot_duration-shape", lambda ctx: validate_params(
        cpn_params().replace(slot_duration=jnp.ones(3, jnp.float32)), CPN), ValueError,
        "CPNParams.slot_duration: [1. 1. 1.] is invalid"),
    Case("hidden-workload-series-short", lambda ctx: validate_params(
        generate_instance(KEY, dataclasses.replace(CPN, observe_current_workload=False), series_hours=CPN.window
                          + CPN.episode_length + 1), dataclasses.replace(CPN, observe_current_workload=False)),
        ValueError, "+ 1 (observe_current_workload=False)"),
    Case("params-traced", lambda ctx: jax.jit(lambda p: validate_params(p, CPN))(cpn_params()), ValueError,
         "validate_params runs on the host"),
]

# ----------------------------------------------------------------------------- CPN config and actions


def cpn_config(**fields):
    return lambda ctx: CPNConfig(**fields)


CPN_CONFIG = [Case(f"CPNConfig.{name}={value!r}", cpn_config(**{name: value}), ValueError,
                   f"CPNConfig.{name}={value!r} is invalid", f"CPNConfig.{name}")
              for name, value in [
                  ("num_nodes", 0), ("num_nodes", 2.0), ("num_users", -1), ("window", 0), ("episode_length", True),
                  ("routing", "fastest"), ("link_conflicts", "random"), ("max_hops", 2.5), ("max_hops", "3"),
                  ("max_hops", 0), ("max_hops", True), ("milp_tick", float("inf")), ("milp_tick", float("nan")),
                  ("milp_tick", 0.0), ("milp_tick", True), ("milp_paths", 0), ("milp_paths", True),
                  ("milp_formulation", "arcs"), ("milp_time_limit", 0.0), ("milp_time_limit", float("nan")),
                  ("milp_iterations", 0), ("milp_iterations", 1.5), ("milp_deadlines", "soft"),
                  ("milp_processes", 0), ("milp_processes", 2.0), ("max_bytes", 0), ("max_bytes", 1e9),
                  ("compute_sharing", 1), ("compute_sharing", "yes"), ("observe_current_workload", 0),
                  ("observe_current_workload", None),
              ]] + [
    Case("config-too-large", cpn_config(num_nodes=3000, num_users=3000), ValueError,
         "CPNConfig: num_nodes=3000, num_users=3000 is too large: one environment needs about 201.4 GiB"),
    Case("config-over-max_bytes", cpn_config(num_nodes=100, num_users=100, max_bytes=2**20), ValueError,
         "needs about 7.9 MiB (8 B x num_users x num_nodes^2 of routing tables + 32 B x num_nodes^2 of "
         "instance), over max_bytes=1.0 MiB"),
    Case("max_hops<route", lambda ctx: validate_params(cpn_params(), dataclasses.replace(CPN, max_hops=2)), ValueError,
         "CPNConfig.max_hops=2 is invalid for this instance: the route of user 2 (packet_size=5 Mb) from node 2 to "
         "node 0 has 3 hops; allowed: max_hops >= 3"),
    Case("max_hops<route-env", lambda ctx: GreenCPN(dataclasses.replace(CPN, max_hops=1)).default_params, ValueError,
         "CPNConfig.max_hops=1 is invalid for this instance"),
]

CPN_ACTIONS = [
    Case("eager-int64-2**40", lambda ctx: cpn_step(np.array([2**40, 0, 1], np.int64)), ValueError,
         "action[0]=1099511627776 is invalid: destinations must be in [0, 3]"),
    Case("eager-negative", lambda ctx: cpn_step(jnp.array([0, -1, 1])), ValueError, "action[1]=-1 is invalid"),
    Case("eager-N", lambda ctx: cpn_step(np.array([0, 1, 4])), ValueError, "action[2]=4 is invalid"),
    Case("eager-float", lambda ctx: cpn_step(np.array([1.7, 0, 1])), ValueError,
         "action of dtype float64 is invalid: must be an integer array of destinations in [0, 3] (got [1.7, 0.0, 1.0])"),
    Case("eager-whole-float", lambda ctx: cpn_step(jnp.array([1.0, 0.0, 1.0])), ValueError, "action of dtype float32"),
    Case("eager-nan", lambda ctx: cpn_step(np.array([np.nan, 0, 1])), ValueError, "(got [nan, 0.0, 1.0])"),
    Case("eager-bool", lambda ctx: cpn_step(np.array([True, False, True])), ValueError, "action of dtype bool is invalid"),
    Case("eager-list-of-floats", lambda ctx: cpn_step([1.5, 0, 1]), ValueError, "action of dtype float64"),
    Case("eager-shape", lambda ctx: cpn_step(np.zeros(4, np.int32)), ValueError,
         "action of shape (4,) is invalid: must be (num_users,) = (3,), one destination per user"),
    Case("eager-batched-shape", lambda ctx: cpn_step(np.zeros((2, 3), np.int32)), ValueError, "action of shape (2, 3)"),
    Case("eager-scalar", lambda ctx: cpn_step(1), ValueError, "action of shape () is invalid"),
    Case("jit-shape", lambda ctx: cpn_step(jnp.zeros(4, jnp.int32), jit=True), ValueError,
         "action of shape (4,) is invalid: must be (num_users,) = (3,)"),
    Case("jit-batched-shape", lambda ctx: cpn_step(jnp.zeros((2, 3), jnp.int32), jit=True), ValueError,
         "action of shape (2, 3) is invalid"),
    Case("evaluate_slot-float", lambda ctx: cpn_env().evaluate_slot(cpn_state(), np.array([0.5, 0, 1], np.float32),
                                                                    cpn_params()), ValueError, "action of dtype float32"),
    Case("evaluate_slot-jit-shape", lambda ctx: jax.jit(cpn_env().evaluate_slot)(cpn_state(), jnp.zeros(2, jnp.int32),
                                                                                 cpn_params()), ValueError,
         "action of shape (2,) is invalid"),
]

# ----------------------------------------------------------------------------- MEC


def mec(**overrides):
    return lambda ctx: generate_params(0, MEC, **overrides)


def ranges(**fields):
    return lambda ctx: InstanceRanges(**fields)


_MEC_FLOATS = [n for n in MECParams.__dataclass_fields__ if n not in ("service_size", "storage_capacity",
                                                                      "users_min", "users_max")]
_MEC_INTS = ["service_size", "storage_capacity", "users_min", "users_max"]

MEC_PARAMS = [
    Case("service_size-fraction", mec(service_size=[1.5, 2, 3]), ValueError,
         "service_size=[1.5, 2.0, 3.0] is invalid: must be whole numbers"),
    Case("users_min-fraction", mec(users_min=2.5), ValueError, "users_min=2.5 is invalid: must be whole numbers"),
    Case("users_max-fraction", mec(users_max=30.5), ValueError, "users_max=30.5 is invalid"),
    Case("storage-fraction", mec(storage_capacity=[10.5, 20]), ValueError, "storage_capacity=[10.5, 20.0]"),
    Case("storage>max", mec(storage_capacity=[100, 100]), ValueError, "max_storage_units=64"),
    Case("es_cpu=0", mec(es_cpu=0.0), ValueError, "MECParams.es_cpu=[0.0, 0.0] is invalid; allowed: values > 0"),
    Case("cloud_rate>es_rate", mec(cloud_rate=200.0), ValueError,
         "MECParams.cloud_rate=[200.0, 200.0] is invalid; allowed: cloud_rate[m] < every ES-ES rate"),
    Case("cloud_cpu<share", mec(cloud_cpu=1.0), ValueError,
         "MECParams.cloud_cpu=1.0 is invalid; allowed: > every ES's smallest CPU share"),
    Case("es_rate-diag-only", mec(es_rate=np.eye(2) * 60.0), ValueError, "off-diagonal values > 0"),
    Case("zipf-bool", mec(zipf_exponent=True), ValueError, "zipf_exponent=True is invalid: must be numbers"),
    Case("task_rate-string", mec(task_rate="a lot"), ValueError, "task_rate='a lot' is invalid: must be numbers"),
    Case("users_max<users_min", mec(users_min=20, users_max=10), ValueError, "users_max=10 is invalid; allowed: >= users_min=20"),
    Case("shape", mec(task_cycles=[1.0, 2.0]), ValueError, "MECParams.task_cycles.shape=(2,) is invalid"),
    Case("key-bool", lambda ctx: generate_params(True, MEC), ValueError, "key=True is invalid"),
    Case("unknown", mec(cloud_speed=1.0), ValueError, "unknown fields ['cloud_speed']"),
    Case("validate-int-dtype", lambda ctx: validate_mec_params(
        mec_env().default_params.replace(users_min=jnp.float32(10.0)), MEC), ValueError,
        "MECParams.users_min.dtype=dtype('float32') is invalid; allowed: an integer dtype"),
    Case("validate-float-dtype", lambda ctx: validate_mec_params(
        mec_env().default_params.replace(es_cpu=jnp.array([50, 50], jnp.int32)), MEC), ValueError,
        "MECParams.es_cpu.dtype=dtype('int32') is invalid; allowed: a float dtype"),
    Case("backhaul_rate=0", mec(backhaul_rate=0.0), ValueError,
         "MECParams.backhaul_rate=[0.0, 0.0] is invalid; allowed: values > 0", "MECParams.backhaul_rate"),
    Case("slot_duration<0", mec(slot_duration=-5.0), ValueError,
         "MECParams.slot_duration=-5.0 is invalid; allowed: values > 0", "MECParams.slot_duration"),
    Case("cycle-amplitude=1", mec(popularity_cycle_amplitude=1.0), ValueError,
         "MECParams.popularity_cycle_amplitude=1.0 is invalid; allowed: [0, 1)", "MECParams.popularity_cycle_amplitude"),
    Case("cycle-phase-shape", mec(popularity_cycle_phase=[0.0, 1.0]), ValueError,
         "MECParams.popularity_cycle_phase.shape=(2,) is invalid", "MECParams.popularity_cycle_phase"),
    Case("switching_cost-int", lambda ctx: MECConfig(switching_cost=1), ValueError,
         "MECConfig.switching_cost=1 is invalid; allowed: a bool", "MECConfig.switching_cost"),
    Case("switching_cost-string", lambda ctx: MECConfig(switching_cost="yes"), ValueError,
         "MECConfig.switching_cost='yes' is invalid"),
] + [
    Case(f"MECParams.{name}-nan", mec(**{name: np.nan}), ValueError, f"MECParams.{name}=", f"MECParams.{name}")
    for name in _MEC_FLOATS
] + [
    Case(f"MECParams.{name}-fraction", mec(**{name: 2.5}), ValueError, f"{name}=", f"MECParams.{name}")
    for name in _MEC_INTS
]

MEC_RANGES = [
    Case("service_size=(0,5)", ranges(service_size=(0, 5)), ValueError, "InstanceRanges.service_size=(0, 5) is invalid",
         "InstanceRanges.service_size"),
    Case("service_size-float", ranges(service_size=(1.5, 3)), ValueError, "pair of ints"),
    Case("storage-reversed", ranges(storage_capacity=(20, 10)), ValueError, "InstanceRanges.storage_capacity=(20, 10)",
         "InstanceRanges.storage_capacity"),
    Case("task_input-nan", ranges(task_input_size=(float("nan"), 1.0)), ValueError, "InstanceRanges.task_input_size",
         "InstanceRanges.task_input_size"),
    Case("task_cycles<0", ranges(task_cycles=(-1.0, 5.0)), ValueError, "InstanceRanges.task_cycles",
         "InstanceRanges.task_cycles"),
    Case("es_cpu=(0,0)", ranges(es_cpu=(0.0, 0.0)), ValueError, "InstanceRanges.es_cpu=(0.0, 0.0) is invalid",
         "InstanceRanges.es_cpu"),
    Case("es_rate-one", ranges(es_rate=50.0), ValueError, "InstanceRanges.es_rate=50.0", "InstanceRanges.es_rate"),
    Case("cloud_rate>=es_rate", ranges(cloud_rate=(10.0, 60.0)), ValueError, "high < es_rate low = 50.0",
         "InstanceRanges.cloud_rate"),
    Case("cloud_cpu<es_cpu", ranges(cloud_cpu=40.0), ValueError, "> es_cpu high = 50.0 GHz", "InstanceRanges.cloud_cpu"),
    Case("zipf<0", ranges(zipf_exponent=-1.0), ValueError, "InstanceRanges.zipf_exponent=-1.0",
         "InstanceRanges.zipf_exponent"),
    Case("users-reversed", ranges(users=(50, 10)), ValueError, "InstanceRanges.users=(50, 10)", "InstanceRanges.users"),
    Case("task_rate<0", ranges(task_rate=-0.5), ValueError, "InstanceRanges.task_rate", "InstanceRanges.task_rate"),
    Case("amplitude=1", ranges(diurnal_amplitude=1.0), ValueError, "in [0, 1)", "InstanceRanges.diurnal_amplitude"),
    Case("period=0", ranges(diurnal_period=0.0), ValueError, "InstanceRanges.diurnal_period",
         "InstanceRanges.diurnal_period"),
    Case("drift<0", ranges(ranking_drift=-0.1), ValueError, "InstanceRanges.ranking_drift",
         "InstanceRanges.ranking_drift"),
    Case("backhaul-reversed", ranges(backhaul_rate=(400.0, 200.0)), ValueError,
         "InstanceRanges.backhaul_rate=(400.0, 200.0) is invalid", "InstanceRanges.backhaul_rate"),
    Case("slot_duration=0", ranges(slot_duration=0.0), ValueError, "InstanceRanges.slot_duration=0.0 is invalid",
         "InstanceRanges.slot_duration"),
    Case("cycle-amplitude<0", ranges(popularity_cycle_amplitude=-0.2), ValueError, "in [0, 1)",
         "InstanceRanges.popularity_cycle_amplitude"),
]

_M, _K = MEC.num_cells, MEC.num_services
MEC_ACTIONS = [
    Case("eager-shape", lambda ctx: mec_step(jnp.zeros((_M, _K + 1), bool)), ValueError,
         "deployment of shape (2, 4) dtype bool is invalid: must be a bool array of shape (M, K) = (2, 3)"),
    Case("eager-int", lambda ctx: mec_step(jnp.zeros((_M, _K), jnp.int32)), ValueError, "dtype int32 is invalid"),
    Case("eager-float", lambda ctx: mec_step(np.zeros((_M, _K))), ValueError, "dtype float"),
    Case("jit-shape", lambda ctx: mec_step(jnp.zeros((_K, _M), bool), jit=True), ValueError,
         "deployment of shape (3, 2) dtype bool is invalid"),
    Case("jit-float", lambda ctx: mec_step(jnp.zeros((_M, _K), jnp.float32), jit=True), ValueError,
         "dtype float32 is invalid"),
    Case("eager-storage", lambda ctx: mec_env().step(
        jax.random.PRNGKey(2), mec_state(), jnp.ones((_M, _K), bool),
        mec_env().default_params.replace(storage_capacity=jnp.ones((_M,), jnp.int32))), ValueError,
         "storage units > storage_capacity[0]=1 (eq. 1)"),
]

# ----------------------------------------------------------------------------- solvers

KNAPSACK = [
    Case("negative-jnp", lambda ctx: knapsack(jnp.array([1.0, 2.0]), jnp.array([-1, 2]), 3), ValueError,
         "knapsack: weights=[-1, 2] is invalid: must be integers >= 0"),
    Case("negative-list", lambda ctx: knapsack([1.0, 2.0], [-1, 2], 3), ValueError, "weights=[-1, 2] is invalid"),
    Case("fractional", lambda ctx: knapsack([1.0, 2.0], [5.7, 2], 3), ValueError, "(entry 0 is 5.7)"),
    Case("bool-weights", lambda ctx: knapsack([1.0, 2.0], [True, False], 3), ValueError, "weights of dtype bool"),
    Case("nan-value", lambda ctx: knapsack([np.nan, 2.0], [1, 2], 3), ValueError, "values=[nan, 2.0] is invalid: must not be NaN"),
    Case("more-weights", lambda ctx: knapsack([1.0, 2.0], [1, 2, 3], 3), ValueError,
         "weights of shape (3,) is invalid: must match values' shape (2,)"),
    Case("values-2d", lambda ctx: knapsack(np.ones((2, 2)), np.ones((2, 2), int), 3), ValueError, "must be 1-D (K,)"),
    Case("capacity<0", lambda ctx: knapsack([1.0], [1], -1), ValueError, "capacity=-1 is invalid: must be an integer >= 0"),
    Case("capacity-fraction", lambda ctx: knapsack([1.0], [1], 2.5), ValueError, "capacity=2.5 is invalid"),
    Case("capacity-vector", lambda ctx: knapsack([1.0], [1], [3]), ValueError, "capacity of shape (1,)"),
    Case("max_capacity<0", lambda ctx: knapsack([1.0], [1], 0, max_capacity=-1), ValueError, "max_capacity=-1 is invalid"),
    Case("traced-float-weights", lambda ctx: jax.jit(lambda w: knapsack(jnp.ones(2), w, 3))(jnp.ones(2)), ValueError,
         "traced weights of dtype float32 is invalid: must have an integer dtype"),
    Case("traced-capacity", lambda ctx: jax.jit(lambda c: knapsack(jnp.ones(3), jnp.ones(3, jnp.int32), c))(3),
         ValueError, "pass a static max_capacity"),
]


def routing(**changes):
    def call(ctx):
        fields = dict(adjacency=np.array([[0, 1], [1, 0]], bool), bandwidth=np.full((2, 2), 20.0),
                      switch_delay=np.full(2, 0.01), source=np.array([0, 1]), destination=np.array([1, 0]),
                      packet_size=np.full(2, 5.0), access_bandwidth=np.full(2, 20.0), deadline=np.full(2, 2.0),
                      workload=np.full(2, 2.0), compute_delay=np.full(2, 0.4), unit_price=0.5, eta=2.0)
        return RoutingInstance(**{**fields, **changes})
    return call


ROUTING = [
    Case("destination-out-of-range", routing(destination=np.array([1, 5])), ValueError,
         "RoutingInstance.destination=[1, 5] is invalid: must be node indices in [0, 1]"),
    Case("destination-count", routing(destination=np.array([1, 0, 1])), ValueError,
         "RoutingInstance.destination=shape (3,) is invalid: must be shape (2,)"),
    Case("source-float", routing(source=np.array([0.0, 1.0])), ValueError, "RoutingInstance.source=shape (2,) dtype float64"),
    Case("packet<0", routing(packet_size=np.array([5.0, -1.0])), ValueError, "RoutingInstance.packet_size=[5.0, -1.0]"),
    Case("adjacency-not-square", routing(adjacency=np.ones((2, 3), bool)), ValueError, "a square (N, N) array"),
    Case("link-bandwidth-0", routing(bandwidth=np.zeros((2, 2))), ValueError, "> 0 Mb/s on every link"),
    Case("deadline-nan", routing(deadline=np.array([np.nan, 1.0])), ValueError, "RoutingInstance.deadline="),
    Case("tick=inf", lambda ctx: RoutingOptions(tick=float("inf")), ValueError,
         "RoutingOptions.tick=inf is invalid: must be a finite float > 0 (s)"),
    Case("num_paths-bool", lambda ctx: RoutingOptions(num_paths=True), ValueError, "RoutingOptions.num_paths=True"),
]

SPACES = [
    Case("Discrete-fraction", lambda ctx: spaces.Discrete(2.5), ValueError, "Discrete: n=2.5 is invalid"),
    Case("Discrete-0", lambda ctx: spaces.Discrete(0), ValueError, "Discrete: n=0 is invalid: must be an int >= 1"),
    Case("MultiDiscrete-fraction", lambda ctx: spaces.MultiDiscrete([2.5, 3]), ValueError, "nvec=[2.5, 3.0] is invalid"),
    Case("MultiDiscrete-empty", lambda ctx: spaces.MultiDiscrete([]), ValueError, "a non-empty list of ints >= 1"),
    Case("MultiBinary-negative", lambda ctx: spaces.MultiBinary((-1, 2)), ValueError, "shape=(-1, 2) is invalid"),
    Case("Box-low>high", lambda ctx: spaces.Box(1.0, 0.0, (2,)), ValueError, "must be low <= high"),
    Case("Box-int", lambda ctx: spaces.Box(0.0, 1.0, (2,), jnp.int32), ValueError, "must be a float dtype"),
]

def qp(**changes):
    """One valid scheduling QP (M = 2) with ``changes`` applied: ``(lam, D, w, mask)``."""
    fields = dict(lam=np.array([2.0, 1.0]), D=np.array([[0.0, 0.1, 0.5], [0.1, 0.0, 0.5]]),
                  w=np.array([0.1, 0.2, 0.0]), mask=np.ones((2, 3), bool))
    fields.update(changes)
    return tuple(fields[name] for name in ("lam", "D", "w", "mask"))


_NO_ROW = np.array([[False, False, False], [True, True, True]])
_NO_CLOUD = np.array([[True, True, True], [True, True, False]])
SCHEDULING = [
    Case("jax-all-false-row", lambda ctx: solve_qp_jax(*qp(mask=_NO_ROW)), ValueError,
         "solve_qp_jax: mask[0, 2]=False is invalid: the cloud column (the last) must be True in every row"),
    Case("jax-no-cloud", lambda ctx: solve_qp_jax(*qp(mask=_NO_CLOUD)), ValueError, "mask[1, 2]=False is invalid"),
    Case("jax-nan-D", lambda ctx: solve_qp_jax(*qp(D=np.array([[0.0, np.nan, 0.5], [0.1, 0.0, 0.5]]))), ValueError,
         "solve_qp_jax: D[0, 1]=nan is invalid: must be finite and >= 0 (s)"),
    Case("jax-negative-lam", lambda ctx: solve_qp_jax(*qp(lam=jnp.array([-1.0, 1.0]))), ValueError,
         "solve_qp_jax: lam[0]=-1.0 is invalid: must be finite and >= 0 (tasks)"),
    Case("jax-inf-w", lambda ctx: solve_qp_jax(*qp(w=np.array([0.1, np.inf, 0.0]))), ValueError,
         "solve_qp_jax: w[1]=inf is invalid"),
    Case("jax-mask-float", lambda ctx: solve_qp_jax(*qp(mask=np.full((2, 3), 0.5))), ValueError,
         "solve_qp_jax: mask of dtype float64 is invalid: must be bool (or 0/1)"),
    Case("jax-lam-bool", lambda ctx: solve_qp_jax(*qp(lam=np.array([True, False]))), ValueError,
         "solve_qp_jax: lam of dtype bool is invalid"),
    Case("jax-shapes", lambda ctx: solve_qp_jax(*qp(w=np.zeros(2))), ValueError, "solve_qp_jax: shapes lam=(2,)"),
    Case("jax-num_iterations-float", lambda ctx: solve_qp_jax(*qp(), num_iterations=2.5), ValueError,
         "solve_qp_jax: num_iterations=2.5 is invalid: must be an int >= 0"),
    Case("jax-num_iterations<0", lambda ctx: solve_qp_jax(*qp(), num_iterations=-1), ValueError, "num_iterations=-1"),
    Case("jax-tolerance-nan", lambda ctx: solve_qp_jax(*qp(), tolerance=float("nan")), ValueError,
         "solve_qp_jax: tolerance=nan is invalid: must be a finite number >= 0"),
    Case("cvxpy-no-cloud", lambda ctx: solve_qp_cvxpy(*qp(mask=_NO_CLOUD)), ValueError,
         "solve_qp_cvxpy: mask[1, 2]=False is invalid: the cloud column (the last) must be True in every row"),
    Case("cvxpy-all-false-row", lambda ctx: solve_qp_cvxpy(*qp(mask=_NO_ROW)), ValueError, "mask[0, 2]=False"),
    Case("cvxpy-nan-lam", lambda ctx: solve_qp_cvxpy(*qp(lam=np.array([np.nan, 1.0]))), ValueError,
         "solve_qp_cvxpy: lam[0]=nan is invalid: must be finite and >= 0 (tasks)"),
    Case("cvxpy-nan-D", lambda ctx: solve_qp_cvxpy(*qp(D=np.full((2, 3), np.nan))), ValueError,
         "solve_qp_cvxpy: D[0, 0]=nan is invalid"),
    Case("cvxpy-negative-w", lambda ctx: solve_qp_cvxpy(*qp(w=np.array([0.1, -0.2, 0.0]))), ValueError,
         "solve_qp_cvxpy: w[1]=-0.2 is invalid"),
    Case("cvxpy-scalar-lam", lambda ctx: solve_qp_cvxpy(*qp(lam=np.float64(1.0))), ValueError,
         "solve_qp_cvxpy: shapes lam=()"),
]

# ----------------------------------------------------------------------------- loaders

SMARD_HEADER = "Datum von;Datum bis;Wasserkraft [MWh] Originalauflösungen\n"
SMARD_ROWS = "01.01.2025 00:00;01.01.2025 01:00;1.451,50\n01.01.2025 01:00;01.01.2025 02:00;1.402,00\n"


def smard_file(ctx, encoding: str) -> Path:
    path = ctx.tmp_path / f"smard_{encoding}.csv"
    path.write_bytes((SMARD_HEADER + SMARD_ROWS).encode(encoding))
    return path


LOADERS = [
    Case("smard-latin-1", lambda ctx: load_smard_generation(smard_file(ctx, "latin-1")), ValueError,
         "smard_latin-1.csv: line 1, byte 50: b'\\xf6' is not valid utf-8-sig"),
    Case("smard-latin-1-hint", lambda ctx: load_smard_generation(smard_file(ctx, "latin-1")), ValueError,
         "pass encoding='cp1252' or encoding='latin-1'"),
    Case("entsoe-latin-1", lambda ctx: load_entsoe_day_ahead(smard_file(ctx, "latin-1")), ValueError, "is not valid utf-8"),
    Case("unknown-encoding", lambda ctx: load_hourly_csv(smard_file(ctx, "utf-8"), ["x"], encoding="klingon"),
         ValueError, "encoding='klingon' is invalid"),
]

# ----------------------------------------------------------------------------- DDQN config


def ddqn(**fields):
    def call(ctx):
        from agents.ttosc.ddqn import DDQNConfig

        return DDQNConfig(**fields)
    return call


DDQN = [Case(f"DDQNConfig.{name}={value!r}", ddqn(**{name: value}), ValueError,
             f"DDQNConfig.{name}={value!r} is invalid", f"DDQNConfig.{name}")
        for name, value in [
            ("num_cells", 0), ("num_services", 0), ("slots_per_frame", 0), ("frames_per_episode", -1),
            ("qp_iterations", 0), ("instance_seed", 1.5), ("num_envs", 0), ("num_envs", -2), ("num_episodes", 0),
            ("num_episodes", -4), ("learning_rate", 0.0), ("learning_rate", -0.01), ("learning_rate", float("nan")),
            ("batch_size", 0), ("target_update_interval", 0), ("epsilon_start", 1.5), ("epsilon_end", -0.1),
            ("epsilon_episodes", 0), ("gamma", 1.5), ("buffer_size", 0), ("learning_starts", -1),
            ("updates_per_frame", 0), ("hidden", 0), ("num_gru_layers", 0), ("max_grad_norm", -1.0),
            ("num_envs", True),
        ]] + [
    Case("episodes-not-multiple", ddqn(num_envs=4, num_episodes=6), ValueError,
         "DDQNConfig.num_episodes=6 is invalid: must be a multiple of num_envs=4"),
    Case("buffer<num_envs", ddqn(num_envs=8, buffer_size=4, learning_starts=4, num_episodes=8), ValueError,
         "DDQNConfig.buffer_size=4 is invalid: must be >= num_envs=8"),
    Case("learning_starts>buffer", ddqn(buffer_size=100, learning_starts=256), ValueError,
         "learning_starts=256 is invalid: must be <= buffer_size=100"),
]


def ddpg(**fields):
    def call(ctx):
        from agents.ttosc.ddpg import DDPGConfig

        return DDPGConfig(**fields)
    return call


DDPG = [Case(f"DDPGConfig.{name}={value!r}", ddpg(**{name: value}), ValueError,
             f"DDPGConfig.{name}={value!r} is invalid", f"DDPGConfig.{name}")
        for name, value in [
            ("num_cells", 0), ("num_services", 0), ("slots_per_frame", 0), ("frames_per_episode", 0),
            ("instance_seed", 0.5), ("num_envs", 0), ("num_episodes", 0), ("num_episodes", -4),
            ("actor_learning_rate", 0.0), ("actor_learning_rate", float("inf")), ("critic_learning_rate", -1e-3),
            ("batch_size", 0), ("buffer_size", 0), ("learning_starts", -1), ("updates_per_frame", 0),
            ("tau", 0.0), ("tau", 1.5), ("noise_std", -0.5), ("hidden", 0), ("num_envs", True),
        ]] + [
    Case("DDPGConfig.gamma=0.5", ddpg(gamma=0.5), ValueError, "DDPGConfig.gamma", "DDPGConfig.gamma"),
    Case("ddpg-episodes-not-multiple", ddpg(num_envs=4, num_episodes=6), ValueError,
         "DDPGConfig.num_episodes=6 is invalid: must be a multiple of num_envs=4"),
    Case("ddpg-learning_starts>buffer", ddpg(buffer_size=100, learning_starts=256), ValueError,
         "DDPGConfig.learning_starts=256 is invalid"),
]

def ppo(**fields):
    def call(ctx):
        from agents.stper.ppo import PPOConfig

        return PPOConfig(**fields)
    return call


PPO = [Case(f"PPOConfig.{name}={value!r}", ppo(**{name: value}), ValueError,
            f"PPOConfig.{name}={value!r} is invalid", f"PPOConfig.{name}")
       for name, value in [
           ("variant", "stper-x"), ("perception", "lstm"), ("num_nodes", 0), ("num_users", 0), ("window", 0),
           ("episode_length", -1), ("instance_seed", 1.5), ("num_envs", 0), ("num_steps", 0), ("num_updates", 0),
           ("update_epochs", 0), ("num_minibatches", 0), ("learning_rate", -0.01), ("learning_rate", float("nan")),
           ("anneal_lr", 1), ("max_grad_norm", -1), ("max_grad_norm", 0.0), ("gamma", 1.5), ("gamma", -0.1),
           ("gae_lambda", 2), ("clip_eps", -0.2), ("clip_eps", 0.0), ("vf_coef", -0.5), ("ent_coef", -1),
           ("ent_coef", float("inf")), ("reward_scale", 0.0), ("reward_scale", -0.01), ("embed_dim", 0),
           ("gcn_layers", -1), ("lstm_hidden", 0), ("fusion_hidden", [128]), ("head_hidden", (64.5,)),
           ("num_envs", True), ("adjacency", "fixed"), ("adjacency", True),
           ("compute_sharing", 1), ("observe_current_workload", "no"),
       ]] + [
    Case("PPOConfig.fusion_hidden-entry-0", ppo(fusion_hidden=(64, 0)), ValueError,
         "PPOConfig.fusion_hidden=(64, 0) is invalid: must be a tuple of ints >= 1 (layer widths) (entry 1 is 0)"),
    Case("ppo-minibatches-recurrent", ppo(num_envs=6, num_steps=2, num_minibatches=4), ValueError,
         "PPOConfig.num_minibatches=4 is invalid: must divide num_envs = 6"),
]

# ----------------------------------------------------------------------------- run folders


def resume(job_module: str, setup: Callable[[Path], None]):
    def call(ctx):
        import importlib

        folder = ctx.tmp_path / "run"
        setup(folder)
        return importlib.import_module(job_module).main(["--resume", str(folder)])
    return call


def _write(folder: Path, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(text)


RUNS = [
    Case("resume-missing", resume("agents.ttosc.train", lambda f: None), FileNotFoundError,
         "is not a run folder: no such folder"),
    Case("resume-empty-folder", resume("agents.stper.train", lambda f: f.mkdir()), FileNotFoundError,
         "is not a run folder: it has no config.json"),
    Case("resume-garbage", resume("agents.ttosc.train", lambda f: _write(f, "{not json")), ValueError,
         "is not a run's config.json"),
    Case("resume-list", resume("agents.stper.train", lambda f: _write(f, "[1, 2]")), ValueError, "a JSON list"),
    Case("resume-no-job", resume("agents.ttosc.train", lambda f: _write(f, "{}")), ValueError,
         "names no job and is not a train-ttosc config"),
    Case("resume-other-job", resume("agents.ttosc.train",
                                    lambda f: _write(f, json.dumps({"job": "train-stper", "config": {}}))),
         ValueError, "is a run of train-stper, not of train-ttosc"),
]

MATRIX = CPN_GENERATOR + CPN_PARAMS + CPN_CONFIG + CPN_ACTIONS + MEC_PARAMS + MEC_RANGES + MEC_ACTIONS + KNAPSACK \
    + ROUTING + SCHEDULING + SPACES + LOADERS + DDQN + DDPG + PPO + RUNS


@pytest.mark.parametrize("case", MATRIX, ids=[c.id for c in MATRIX])
def test_bad_input_is_refused(case, tmp_path):
    ctx = type("Ctx", (), {"tmp_path": tmp_path})
    with pytest.raises(case.error) as error:
        case.call(ctx)
    assert case.match in str(error.value), f"message {str(error.value)!r} lacks {case.match!r}"


# ----------------------------------------------------------------------------- command lines

CLI = [
    ("agents.ttosc.train", ["--eval-envs", "0"], "--eval-envs=0 is invalid: must be an integer >= 1"),
    ("agents.ttosc.train", ["--eval-frames", "0"], "--eval-frames=0 is invalid"),
    ("agents.ttosc.train", ["--num-seeds", "0"], "--num-seeds=0 is invalid"),
    ("agents.ttosc.train", ["--chunk-iterations", "0"], "--chunk-iterations=0 is invalid"),
    ("agents.ttosc.train", ["--eval-qp-iterations", "0"], "--eval-qp-iterations=0 is invalid"),
    ("agents.ttosc.train", ["--oracle-rounds", "0"], "--oracle-rounds=0 is invalid"),
    ("agents.ttosc.train", ["--oracle-proposals", "0"], "--oracle-proposals=0 is invalid"),
    ("agents.ttosc.train", ["--oracle-search-iterations", "0"], "--oracle-search-iterations=0 is invalid"),
    ("agents.ttosc.train", ["--smoothing-window", "0"], "--smoothing-window=0 is invalid"),
    ("agents.ttosc.train", ["--devices", "-1"], "--devices=-1 is invalid: must be an integer >= 0"),
    ("agents.ttosc.train", ["--num-envs", "0"], "DDQNConfig.num_envs=0 is invalid"),
    ("agents.ttosc.train", ["--num-envs", "-2"], "DDQNConfig.num_envs=-2 is invalid"),
    ("agents.ttosc.train", ["--num-episodes", "0"], "DDQNConfig.num_episodes=0 is invalid"),
    ("agents.ttosc.train", ["--num-episodes", "-4"], "DDQNConfig.num_episodes=-4 is invalid"),
    ("agents.ttosc.train", ["--learning-rate", "-0.01"], "DDQNConfig.learning_rate=-0.01 is invalid"),
    ("agents.ttosc.train", ["--batch-size", "0"], "DDQNConfig.batch_size=0 is invalid"),
    ("agents.ttosc.train", ["--epsilon-start", "1.5"], "DDQNConfig.epsilon_start=1.5 is invalid"),
    ("agents.ttosc.train", ["--run-dir", "a", "--resume", "b"], "name two folders"),
    ("agents.stper.train", ["--eval-episodes", "0"], "--eval-episodes=0 is invalid: must be an integer >= 1"),
    ("agents.stper.train", ["--num-seeds", "0"], "--num-seeds=0 is invalid"),
    ("agents.stper.train", ["--chunk-updates", "0"], "--chunk-updates=0 is invalid"),
    ("agents.stper.train", ["--chunk-updates", "-1"], "--chunk-updates=-1 is invalid"),
    ("agents.stper.train", ["--devices", "-1"], "--devices=-1 is invalid"),
    ("agents.stper.train", ["--num-processes", "2"], "--num-processes given without --distributed"),
    ("agents.stper.train", ["--distributed", "--num-processes", "0"], "--num-processes=0 is invalid"),
    ("agents.stper.train", ["--distributed", "--num-processes", "2", "--process-id", "2"],
     "--process-id=2 is invalid: must be an integer >= 0, < --num-processes=2"),
    ("agents.stper.train", ["--run-dir", "a", "--resume", "b"], "name two folders"),
    ("agents.stper.train", ["--gamma", "1.5"], "PPOConfig.gamma=1.5 is invalid: must be a finite number in [0, 1]"),
    ("agents.stper.train", ["--gae-lambda", "2"], "PPOConfig.gae_lambda=2.0 is invalid"),
    ("agents.stper.train", ["--clip-eps", "-0.2"], "PPOConfig.clip_eps=-0.2 is invalid: must be a finite number > 0"),
    ("agents.stper.train", ["--max-grad-norm", "-1"], "PPOConfig.max_grad_norm=-1.0 is invalid"),
    ("agents.stper.train", ["--ent-coef", "-1"], "PPOConfig.ent_coef=-1.0 is invalid: must be a finite number >= 0"),
    ("agents.stper.train", ["--num-envs", "0"], "PPOConfig.num_envs=0 is invalid: must be an int >= 1"),
]


@pytest.mark.parametrize("module, argv, match", CLI, ids=[f"{m.split('.')[1]}:{' '.join(a)}" for m, a, _ in CLI])
def test_bad_flags_are_refused_before_any_work(module, argv, match, capsys):
    import importlib

    with pytest.raises(SystemExit) as error:
        importlib.import_module(module).parse_config(argv)
    assert error.value.code == 2
    captured = capsys.readouterr()
    text = " ".join((captured.out + captured.err).replace("│", " ").split())  # tyro's box, re-wrapped
    assert match in text, text


# ----------------------------------------------------------------------------- coverage of the fields


def _int_fields(config_type) -> set[str]:
    hints = typing.get_type_hints(config_type)
    return {f.name for f in dataclasses.fields(config_type) if hints[f.name] in (int, int | None)}


def test_every_field_has_a_case():
    """A new field of these configs, generators and params must come with its bad-input case."""
    from agents.stper.ppo import PPOConfig
    from agents.stper.train import TrainConfig as STPerTrainConfig
    from agents.ttosc.ddpg import DDPGConfig
    from agents.ttosc.ddqn import DDQNConfig
    from agents.ttosc.train import TrainConfig as TTOSCTrainConfig

    covered = {c.field for c in MATRIX}
    required = ({f"DEFAULTS.{name}" for name in DEFAULTS}
                | {f"CPNParams.{name}" for name in CPNParams.__dataclass_fields__}
                | {f"MECParams.{name}" for name in MECParams.__dataclass_fields__}
                | {f"InstanceRanges.{f.name}" for f in dataclasses.fields(InstanceRanges)}
                | {f"DDQNConfig.{f.name}" for f in dataclasses.fields(DDQNConfig)}
                | {f"DDPGConfig.{f.name}" for f in dataclasses.fields(DDPGConfig)}
                | {f"PPOConfig.{f.name}" for f in dataclasses.fields(PPOConfig)}
                | {f"CPNConfig.{f.name}" for f in dataclasses.fields(CPNConfig)})
    assert not required - covered, f"fields without a bad-input case: {sorted(required - covered)}"
    seeds = {"seed", "eval_seed"}  # any int is a valid seed
    flags = {arg for _, argv, _ in CLI for arg in argv if arg.startswith("--")}
    for config_type, module in ((TTOSCTrainConfig, "agents.ttosc.train"), (STPerTrainConfig, "agents.stper.train")):
        missing = {n for n in _int_fields(config_type) - seeds if "--" + n.replace("_", "-") not in flags}
        assert not missing, f"{module}: int flags without a bad-input case: {sorted(missing)}"


def test_matrix_size():
    assert len(MATRIX) + len(CLI) >= 80


# ----------------------------------------------------------------------------- valid edge cases


def test_valid_cpn_edge_cases_keep_working():
    for config in (CPNConfig(num_nodes=1, num_users=1, window=2, episode_length=2),  # a single node
                   CPNConfig(num_nodes=3, num_users=5, window=2, episode_length=2),  # num_users != num_nodes
                   CPNConfig(num_nodes=5, num_users=2, window=2, episode_length=2)):
        params = validate_params(generate_instance(KEY, config, series_hours=16), config)
        assert params.user_node.shape == (config.num_users,)
    equal = generate_instance(KEY, CPN, series_hours=64, power_range=(5.0, 5.0), deadline=1e6, kappa=0.0,
                              green_fraction=0.0, switch_delay_range=(0.0, 0.0))
    np.testing.assert_array_equal(validate_params(equal, CPN).power, 5.0)
    hours = 64
    given = generate_instance(KEY, CPN, price_series=np.linspace(-0.5, 2.0, hours), hydro_series=np.zeros(hours))
    validate_params(given, CPN)


def test_single_node_cpn_steps():
    from jaxcpn.cpn.env import GreenCPN

    config = CPNConfig(num_nodes=1, num_users=2, window=2, episode_length=2)
    env = GreenCPN(config)
    params = env.default_params
    obs, state = jax.jit(env.reset)(KEY, params)
    _, _, reward, _, _, info = jax.jit(env.step)(KEY, state, jnp.zeros(2, jnp.int32), params)
    assert np.isfinite(float(reward)) and not bool(info["invalid_action"])


# Under jit a bad action cannot raise: each is flagged, clamped to [0, N - 1] (NaN to 0), and the
# slot's numbers stay finite. One compiled step per dtype (int32, float32, bool).
JIT_ACTIONS = [
    ("out-of-range", jnp.array([9, 0, 1]), [3, 0, 1]),
    ("negative", jnp.array([-5, 0, 1]), [0, 0, 1]),
    ("nan", jnp.array([jnp.nan, 0.0, 1.0]), [0, 0, 1]),
    ("fractional", jnp.array([1.5, 0.0, 1.0]), [1, 0, 1]),
    ("whole-float", jnp.array([2.0, 0.0, 1.0]), [2, 0, 1]),
    ("inf", jnp.array([jnp.inf, 0.0, 1.0]), [3, 0, 1]),
    ("bool", jnp.array([True, False, True]), [1, 0, 1]),
]


@pytest.mark.parametrize("action, clamped", [a[1:] for a in JIT_ACTIONS], ids=[a[0] for a in JIT_ACTIONS])
def test_jitted_bad_cpn_action_is_flagged_clamped_and_finite(action, clamped):
    *_, reward, _, _, info = cpn_step(action, jit=True)
    assert bool(info["invalid_action"])
    for name in ("delay", "transmission_delay", "offset", "compute_delay", "revenue", "cost", "profit"):
        assert np.isfinite(np.asarray(info[name])).all(), name
    assert np.isfinite(float(reward))
    valid = cpn_step(jnp.array(clamped, jnp.int32), jit=True)[-1]
    assert not bool(valid["invalid_action"])
    np.testing.assert_array_equal(np.asarray(info["delay"]), np.asarray(valid["delay"]))


def test_cpn_action_checks_under_vmap_and_valid_dtypes():
    env, state, params = cpn_env(), cpn_state(), cpn_params()
    actions = jnp.array([[0, 1, 2], [0, 4, 1]], jnp.int32)
    # Under vmap the action is traced (the flag, not the host check): one compiled program.
    flags = jax.jit(jax.vmap(lambda a: env.evaluate_slot(state, a, params)["invalid_action"]))(actions)
    np.testing.assert_array_equal(np.asarray(flags), [False, True])
    for action in ([3, 0, 1], np.array([3, 0, 1], np.uint8), np.array([3, 0, 1], np.int64)):  # any integer dtype
        assert not bool(env.evaluate_slot(state, action, params)["invalid_action"])


def test_traced_qp_inputs_are_not_checked_as_documented():
    """Under jit the QP's values cannot be checked: an all-False mask row gets a row of zeros."""
    pi = np.asarray(jax.jit(solve_qp_jax)(*qp(mask=_NO_ROW)))
    np.testing.assert_array_equal(pi[0], 0.0)
    np.testing.assert_allclose(pi[1].sum(), 1.0, rtol=1e-5)


def test_valid_cpn_config_edge_cases():
    assert dataclasses.replace(CPN, max_hops=3).hops == 3  # the longest route of the test instance
    validate_params(cpn_params(), dataclasses.replace(CPN, max_hops=3))
    assert CPNConfig(num_nodes=4, max_hops=np.int64(10)).hops == 3  # a NumPy int; capped at N - 1
    CPNConfig(milp_time_limit=float("inf"), milp_processes=None, max_hops=None)  # no time limit, all cores
    CPNConfig(num_nodes=3000, num_users=3000, max_bytes=2**40)  # a larger ceiling moves the size limit


def test_valid_solver_and_space_edge_cases():
    np.testing.assert_array_equal(knapsack([1.0, 2.0], [1, 2], 0), [False, False])  # zero capacity
    np.testing.assert_array_equal(knapsack([1.0, 2.0], [0, 2], 0), [True, False])  # weightless item fits
    np.testing.assert_array_equal(knapsack([3.0, 2.0], np.array([1.0, 2.0]), 3), [True, True])  # whole floats
    np.testing.assert_array_equal(knapsack(jnp.zeros(0), jnp.zeros(0, jnp.int32), 4), np.zeros(0, bool))
    box = spaces.Box(0.0, jnp.inf, (2,))
    assert bool(box.contains(jnp.ones(2))) and not bool(box.contains(jnp.full(2, jnp.nan)))
    assert not bool(spaces.MultiDiscrete([3, 3]).contains(jnp.array([1.0, 2.0])))  # float actions are not in it
    assert not bool(spaces.MultiBinary((2,)).contains(jnp.array([0, 1])))
    RoutingOptions(time_limit=float("inf"))  # no time limit is allowed


def test_valid_mec_edge_cases():
    params = generate_params(0, MEC, es_cpu=100.0, service_size=[1.0, 2.0, 3.0], users_min=0, users_max=0)
    np.testing.assert_array_equal(params.es_cpu, [100.0, 100.0])  # a scalar broadcasts
    assert params.service_size.dtype == jnp.int32 and params.service_size.tolist() == [1, 2, 3]
    single = MECConfig(num_cells=1, num_services=2)  # no ES-ES link: the cloud-rate rule has nothing to compare
    validate_mec_params(generate_params(0, single), single)
    from agents.ttosc.ddqn import DDQNConfig

    DDQNConfig(epsilon_start=1.0, epsilon_end=0.0, gamma=0.0, learning_starts=0)


def test_latin_1_smard_file_reads_with_its_encoding(tmp_path):
    series = load_smard_generation(smard_file(type("Ctx", (), {"tmp_path": tmp_path}), "latin-1"), encoding="latin-1")
    np.testing.assert_allclose(series.column("Wasserkraft [MWh] Originalauflösungen"), [1451.5, 1402.0])


@pytest.mark.parametrize("module", ["agents.ttosc.train", "agents.stper.train"])
def test_presets_still_parse(module):
    import importlib

    job = importlib.import_module(module)
    for preset in job.PRESETS:
        assert job.parse_config(["--preset", preset]).preset == preset


# ----------------------------------------------------------------------------- determinism, long horizon, x64


def mec_rollout(env: TwoTimescaleMEC, num_envs: int, num_frames: int):
    """Jitted ``lax.scan`` of ``num_frames`` frames x ``num_envs`` envs with random feasible deployments."""
    params = env.default_params

    def run(key):
        key_reset, key_run = jax.random.split(key)
        obs, state = jax.vmap(env.reset, (0, None))(jax.random.split(key_reset, num_envs), params)

        def frame(carry, key):
            obs, state = carry
            key_values, key_step = jax.random.split(key)
            values = jax.random.normal(key_values, (num_envs, env.config.num_cells, env.config.num_services))
            deployment = jax.vmap(env.deployment_from_values, (0, None))(values, params)
            obs, state, reward, terminated, truncated, info = jax.vmap(env.step, (0, 0, 0, None))(
                jax.random.split(key_step, num_envs), state, deployment, params)
            return (obs, state), (obs, reward, truncated, info["mean_delay"], info["slot_delay"])

        (obs, state), trace = jax.lax.scan(frame, (obs, state), jax.random.split(key_run, num_frames))
        return obs, state, trace

    return jax.jit(run)


@functools.cache
def long_mec_rollout():
    """The long-horizon rollout (200 frames x 4 envs, episodes of 7 frames): one compiled program for
    the determinism and the long-horizon tests."""
    env = TwoTimescaleMEC(dataclasses.replace(MEC, frames_per_episode=7))
    return env, mec_rollout(env, 4, 200)


def test_mec_same_seed_bit_identical_rollouts():
    """Same key: bit-identical 200 frames (28 auto-resets); another key: other rewards."""
    run = long_mec_rollout()[1]
    first, again, other = run(jax.random.PRNGKey(7)), run(jax.random.PRNGKey(7)), run(jax.random.PRNGKey(8))
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(first[2][1]), np.asarray(other[2][1]))


def test_mec_long_horizon_finite_and_no_dtype_drift():
    """200 frames x 4 envs (many auto-resets) under jit: every value finite, every dtype fixed."""
    env, run = long_mec_rollout()
    obs0, state0 = env.reset(KEY, env.default_params)
    obs, state, (observations, rewards, truncated, mean_delay, slot_delay) = run(KEY)
    for name, value in dict(observations=observations, rewards=rewards, mean_delay=mean_delay,
                            slot_delay=slot_delay, schedule=state.schedule, arrivals=state.arrivals).items():
        assert np.isfinite(np.asarray(value)).all(), name
    assert observations.dtype == obs0.dtype == jnp.float32 and rewards.dtype == jnp.float32
    assert jax.tree.map(lambda x: x.dtype, state) == jax.tree.map(lambda x: x.dtype, state0)
    assert int(np.asarray(truncated).sum()) == 4 * (200 // 7)
    space = env.observation_space(env.default_params)
    assert bool(jax.vmap(space.contains)(obs).all())


# Both envs' checks run in one child Python (one interpreter and JAX start, not two): each part
# runs on its own and prints "<env> x64 ok" or its traceback, so the two tests below fail apart.
X64_SCRIPT = textwrap.dedent("""
    import traceback

    import jax
    jax.config.update("jax_enable_x64", True)
    import jaxcpn  # noqa: F401
    import jax.numpy as jnp
    import numpy as np
    from jaxcpn.cpn.env import GreenCPN
    from jaxcpn.cpn.types import CPNConfig
    from jaxcpn.mec.env import TwoTimescaleMEC
    from jaxcpn.mec.types import MECConfig


    def mec():
        env = TwoTimescaleMEC(MECConfig(num_cells=2, num_services=3, slots_per_frame=2, frames_per_episode=2,
                                        qp_iterations=5))
        params = env.default_params
        space = env.observation_space(params)
        deployment = jnp.zeros((2, 3), bool).at[:, 0].set(True)
        for reset, step in ((env.reset, env.step), (jax.jit(env.reset), jax.jit(env.step))):
            obs, state = reset(jax.random.PRNGKey(0), params)
            obs2, state2, reward, _, _, info = step(jax.random.PRNGKey(1), state, deployment, params)
            dtypes = {str(x.dtype) for x in jax.tree.leaves((obs, obs2, state, state2, reward, info))}
            assert dtypes <= {"float32", "int32", "bool"}, dtypes
            assert bool(space.contains(obs2)), "observation outside its space"
        assert not bool(space.contains(obs2.astype(jnp.float64))), "the space must report float64 drift"


    def cpn():
        env = GreenCPN(CPNConfig(num_nodes=4, num_users=3, window=4, episode_length=2))
        params = env.default_params
        space = env.observation_space(params)
        action = jnp.array([0, 1, 2])  # int64 under x64
        assert action.dtype == jnp.int64
        for reset, step in ((env.reset, env.step), (jax.jit(env.reset), jax.jit(env.step))):
            obs, state = reset(jax.random.PRNGKey(0), params)
            obs2, state2, reward, _, _, info = step(jax.random.PRNGKey(1), state, action, params)
            dtypes = {str(x.dtype) for x in jax.tree.leaves((params, obs, obs2, state, state2, reward, info))}
            assert dtypes <= {"float32", "int32", "bool"}, dtypes
            assert bool(space.contains(obs)) and bool(space.contains(obs2)), "observation outside its space"
        huge = jnp.array([2**40, 0, 1], jnp.int64)  # a cast to int32 would wrap it to 0
        assert bool(jax.jit(env.step)(jax.random.PRNGKey(1), state, huge, params)[-1]["invalid_action"])
        try:
            env.step(jax.random.PRNGKey(1), state, huge, params)
            raise AssertionError("an eager int64 2**40 action was accepted")
        except ValueError as error:
            assert "action[0]=1099511627776 is invalid" in str(error), error


    for name, check in (("mec", mec), ("cpn", cpn)):
        try:
            check()
            print(f"{name} x64 ok")
        except BaseException:
            print(f"{name} x64 failed")
            traceback.print_exc()
""")


@pytest.fixture(scope="module")
def x64_run():
    """The child Python under jax_enable_x64 (its own process, so the flag does not leak)."""
    return subprocess.run([sys.executable, "-c", X64_SCRIPT], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])


@pytest.mark.xdist_group("hardening-x64")  # one worker runs both: the child Python runs once
def test_mec_float64_mode_keeps_float32(x64_run):
    """Under jax_enable_x64 (in its own process, so it does not leak) the MEC stays float32."""
    assert x64_run.returncode == 0, x64_run.stderr[-3000:]
    assert "mec x64 ok" in x64_run.stdout, x64_run.stdout[-3000:] + x64_run.stderr[-3000:]


@pytest.mark.xdist_group("hardening-x64")
def test_cpn_float64_mode_keeps_float32(x64_run):
    """Under jax_enable_x64 (in its own process) the CPN env runs, stays float32/int32 and checks int64 actions."""
    assert x64_run.returncode == 0, x64_run.stderr[-3000:]
    assert "cpn x64 ok" in x64_run.stdout, x64_run.stdout[-3000:] + x64_run.stderr[-3000:]


def test_cpn_long_horizon_finite_and_no_dtype_drift():
    """2,000 slots x 64 envs under jit (many auto-resets, random actions): finite values, fixed dtypes."""
    env = GreenCPN(CPN)
    params = env.default_params
    obs0, state0 = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(jax.random.split(KEY, 64), params)

    @jax.jit
    def run(key):
        def body(carry, key):
            state = carry
            key_act, key_step = jax.random.split(key)
            action = jax.random.randint(key_act, (64, CPN.num_users), 0, CPN.num_nodes, jnp.int32)
            obs, state, reward, _, truncated, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(key_step, 64), state, action, params)
            bad = jnp.any(~jnp.isfinite(reward)) | jnp.any(~jnp.isfinite(info["delay"]))
            bad |= jnp.any(jnp.stack([jnp.any(~jnp.isfinite(x)) for x in jax.tree.leaves(obs)]))
            return state, (bad, truncated.sum(), reward.dtype == jnp.float32)
        return jax.lax.scan(body, state0, jax.random.split(key, 2000))

    state, (bad, truncated, _) = run(jax.random.PRNGKey(3))
    assert not bool(np.asarray(bad).any())
    assert int(np.asarray(truncated).sum()) == 64 * (2000 // CPN.episode_length)
    assert jax.tree.map(lambda x: x.dtype, state) == jax.tree.map(lambda x: x.dtype, state0)
