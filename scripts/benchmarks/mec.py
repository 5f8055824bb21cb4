"""MEC benchmarks: QP solves/s (JAX batched vs CVXPY), per-slot scheduling and per-frame
deployment latency (vs TTOSC's 7.21 ms and 19.39 ms), vmapped MEC frame steps/s.

``run(quick)`` returns JSON-able numbers (medians over repeats, warm-up excluded, both sides of
every ratio measured in this process); ``markdown(results)`` renders a table. Standalone:
``python scripts/benchmarks/mec.py [--quick]`` prints both.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxcpn.mec import MECConfig, TwoTimescaleMEC, model  # noqa: E402
from solvers.scheduling import solve_qp_cvxpy, solve_qp_jax  # noqa: E402

PAPER_SLOT_MS = 7.21
PAPER_FRAME_MS = 19.39


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (compilation, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _slot_problems(env, params, key, count):
    """``count`` per-service QPs from real env slots (popularity-style random deployments)."""
    cfg = env.config
    _, state = env.reset(key, params)
    values = jax.random.normal(key, (cfg.num_cells, cfg.num_services)) + 1.0
    deployment = env.deployment_from_values(values, params)
    lam, D, w, mask = jax.vmap(model.qp_inputs, in_axes=(0, None, None))(state.arrivals, deployment, params)
    flat = [np.asarray(a).reshape((-1,) + a.shape[2:]) for a in (lam, D, w, mask)]
    reps = -(-count // flat[0].shape[0])
    return [np.concatenate([a] * reps)[:count] for a in flat], deployment, state


def run(quick: bool = False) -> dict:
    """Runs every MEC benchmark; ``quick`` uses fewer repeats and smaller batches."""
    config = MECConfig()
    env = TwoTimescaleMEC(config)
    params = env.default_params
    key = jax.random.key(0)
    repeats = 5 if quick else 20
    results: dict = {"device": jax.devices()[0].device_kind, "num_cells": config.num_cells,
                     "num_services": config.num_services, "slots_per_frame": config.slots_per_frame}

    # QP solves/s: solve_qp_jax vmapped over 4096 vs solve_qp_cvxpy one by one.
    batch = 4096
    (lam, D, w, mask), deployment, state = _slot_problems(env, params, key, batch)
    solve_batch = jax.jit(jax.vmap(solve_qp_jax))
    args = [jnp.asarray(a) for a in (lam, D, w, mask)]
    jax_s = _median_seconds(lambda: jax.block_until_ready(solve_batch(*args)), max(3, repeats // 4))
    cvx_count = 20 if quick else 100
    solve_qp_cvxpy(lam[0], D[0], w[0], mask[0])  # warm-up: compile the DPP problem
    start = time.perf_counter()
    for i in range(cvx_count):
        solve_qp_cvxpy(lam[i], D[i], w[i], mask[i])
    cvx_s = (time.perf_counter() - start) / cvx_count
    results["qp_jax_batch"] = batch
    results["qp_jax_solves_per_s"] = batch / jax_s
    results["qp_cvxpy_solves_per_s"] = 1.0 / cvx_s
    results["qp_speedup_jax_over_cvxpy"] = (batch / jax_s) * cvx_s

    # Per-slot scheduling latency: the K QPs of one slot, one instance, jitted (warm start as
    # in the env; cold start also reported).
    arrivals = state.arrivals[0]
    warm = env.schedule_slot(arrivals, deployment, params)
    slot_warm = jax.jit(env.schedule_slot)
    slot_cold = jax.jit(lambda a, d, p: env.schedule_slot(a, d, p))
    cold_cfg = TwoTimescaleMEC(MECConfig(qp_iterations=200))
    slot_cold200 = jax.jit(cold_cfg.schedule_slot)
    lat_repeats = 50 if quick else 300
    results["slot_schedule_ms"] = 1e3 * _median_seconds(
        lambda: jax.block_until_ready(slot_warm(arrivals, deployment, params, warm)), lat_repeats)
    results["slot_schedule_cold_ms"] = 1e3 * _median_seconds(
        lambda: jax.block_until_ready(slot_cold(arrivals, deployment, params)), lat_repeats)
    results["slot_schedule_cold_200it_ms"] = 1e3 * _median_seconds(
        lambda: jax.block_until_ready(slot_cold200(arrivals, deployment, params)), lat_repeats)
    results["slot_schedule_paper_ms"] = PAPER_SLOT_MS
    results["qp_iterations"] = config.qp_iterations

    # Per-frame deployment latency: M knapsacks over (M, K) values, jitted.
    values = jax.random.normal(key, (config.num_cells, config.num_services))
    deploy = jax.jit(env.deployment_from_values)
    results["frame_deployment_ms"] = 1e3 * _median_seconds(
        lambda: jax.block_until_ready(deploy(values, params)), lat_repeats)
    results["frame_deployment_paper_ms"] = PAPER_FRAME_MS

    # MEC frame steps/s of the vmapped env (each frame = L slots of K QPs).
    for num_envs in ((64, 256) if quick else (1, 64, 1024)):
        keys = jax.random.split(key, num_envs)
        _, states = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
        deployments = jnp.broadcast_to(deployment, (num_envs,) + deployment.shape)
        step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
        seconds = _median_seconds(lambda: jax.block_until_ready(step(keys, states, deployments, params)),
                                  max(3, repeats // 4))
        results[f"frame_steps_per_s_{num_envs}"] = num_envs / seconds
    return results


def markdown(results: dict) -> str:
    """A markdown table of ``run``'s results."""
    rows = [
        ("QP solves/s, solve_qp_jax vmapped over %d" % results["qp_jax_batch"], results["qp_jax_solves_per_s"], ""),
        ("QP solves/s, solve_qp_cvxpy one by one", results["qp_cvxpy_solves_per_s"], ""),
        ("QP throughput ratio JAX / CVXPY", results["qp_speedup_jax_over_cvxpy"], "x"),
        ("per-slot scheduling, %d QPs, warm start, %d it (ms)" % (results["num_services"], results["qp_iterations"]),
         results["slot_schedule_ms"], "paper %.2f ms" % results["slot_schedule_paper_ms"]),
        ("per-slot scheduling, cold start, %d it (ms)" % results["qp_iterations"],
         results["slot_schedule_cold_ms"], ""),
        ("per-slot scheduling, cold start, 200 it (ms)", results["slot_schedule_cold_200it_ms"], ""),
        ("per-frame deployment, %d knapsacks (ms)" % results["num_cells"], results["frame_deployment_ms"],
         "paper %.2f ms (incl. DDQN forward)" % results["frame_deployment_paper_ms"]),
    ]
    rows += [(f"MEC frame steps/s, {key.rsplit('_', 1)[1]} envs", value, "")
             for key, value in results.items() if key.startswith("frame_steps_per_s_")]
    lines = ["| MEC benchmark | value | note |", "|---|---:|---|"]
    lines += [f"| {name} | {value:,.3f} | {note} |" for name, value, note in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    out = run(quick="--quick" in sys.argv)
    print(json.dumps(out, indent=2))
    print(markdown(out))
