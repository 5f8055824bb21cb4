"""MEC benchmarks: QP solves/s (JAX batched and inside vmapped MEC frames, vs CVXPY one by one),
objective gaps against CVXPY, per-slot scheduling and per-frame deployment latency (vs TTOSC's
7.21 ms and 19.39 ms), vmapped MEC frame steps/s.

``run(quick)`` returns JSON-able numbers (medians over repeats, warm-up excluded, both sides of
every ratio measured in this process); ``markdown(results)`` renders a table
(``python scripts/bench.py --sections mec [--quick]``).
"""

from __future__ import annotations

import statistics
import time

import jaxcpn  # noqa: F401  (first: sets the XLA:CPU flag before JAX initialises)
import jax
import jax.numpy as jnp
import numpy as np

from jaxcpn.mec import MECConfig, TwoTimescaleMEC, model
from benchmarks.common import time_calls
from solvers.scheduling import qp_objective, solve_qp_cvxpy, solve_qp_jax

PAPER_SLOT_MS = 7.21
PAPER_FRAME_MS = 19.39
FRAME_BATCH = 256  # the batch of the "QPs/s inside vmapped MEC frames" figure


def _side_by_side(fn, repeats: int, problems, solves_per_repeat: int):
    """Median seconds of ``fn()`` and median CVXPY solves/s, measured alternately.

    Each repeat times one ``fn()`` and then ``solves_per_repeat`` one-by-one CVXPY solves (next
    QPs of ``problems``, the compiled DPP problem), so both sides of the ratio see the same
    machine load (this workplace's machines are shared).
    """
    lam, D, w, mask = problems
    fn()  # warm-up (compilation, caches)
    solve_qp_cvxpy(lam[0], D[0], w[0], mask[0])  # warm-up: compile the DPP problem
    seconds, rates = [], []
    for r in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        for i in range(r * solves_per_repeat, (r + 1) * solves_per_repeat):
            i %= lam.shape[0]
            solve_qp_cvxpy(lam[i], D[i], w[i], mask[i])
        rates.append(solves_per_repeat / (time.perf_counter() - start))
    return statistics.median(seconds), statistics.median(rates)


def _relative_gaps(pi, lam, D, w, mask) -> np.ndarray:
    """|f(pi) - f(CVXPY)| / f(CVXPY) per QP (objective of eq. 13, float64)."""
    lam, D, w = (np.asarray(a, np.float64) for a in (lam, D, w))
    reference = np.array([qp_objective(solve_qp_cvxpy(*a), *a[:3]) for a in zip(lam, D, w, np.asarray(mask))])
    objective = qp_objective(np.asarray(pi, np.float64), lam, D, w)
    return np.abs(objective - reference) / np.maximum(np.abs(reference), 1e-12)


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


def _slot_objective_gaps(env, params, arrivals, deployment, num_envs: int) -> np.ndarray:
    """Relative gap of each slot's eq. (13) total (the env's warm-started scheduler vs CVXPY per QP)
    over the frames of ``num_envs`` envs: arrivals (E, L, M, K) from a vmapped step."""
    cfg = env.config

    def frame(arrivals_env):
        def slot(previous, arrivals_slot):
            schedule = env.schedule_slot(arrivals_slot, deployment, params, warm_start=previous)
            return schedule, model.slot_delay(arrivals_slot, deployment, schedule, params).total
        return jax.lax.scan(slot, model.cloud_schedule(cfg.num_cells, cfg.num_services), arrivals_env)[1]

    totals = np.asarray(jax.jit(jax.vmap(frame))(arrivals[:num_envs]), np.float64).ravel()
    lam, D, w, mask = jax.vmap(jax.vmap(model.qp_inputs, in_axes=(0, None, None)), in_axes=(0, None, None))(
        arrivals[:num_envs], deployment, params)
    lam, D, w, mask = (np.asarray(a).reshape((-1, cfg.num_services) + a.shape[3:]) for a in (lam, D, w, mask))
    lam, D, w = (a.astype(np.float64) for a in (lam, D, w))
    reference = np.array([sum(qp_objective(solve_qp_cvxpy(*a), *a[:3]) for a in zip(*slot))
                          for slot in zip(lam, D, w, mask)])
    return np.abs(totals - reference) / np.maximum(reference, 1e-12)


def run(quick: bool = False) -> dict:
    """Runs every MEC benchmark; ``quick`` uses fewer repeats and smaller batches."""
    config = MECConfig()
    env = TwoTimescaleMEC(config)
    params = env.default_params
    key = jax.random.key(0)
    repeats = 5 if quick else 20
    qps_per_frame = config.slots_per_frame * config.num_services
    results: dict = {"device": jax.devices()[0].device_kind, "num_cells": config.num_cells,
                     "num_services": config.num_services, "slots_per_frame": config.slots_per_frame,
                     "qp_iterations": config.qp_iterations}

    # solve_qp_jax vmapped over 4096 QPs of real slots (the QPs alone) and CVXPY one by one on
    # the same QPs, side by side.
    batch = 4096
    problems, deployment, state = _slot_problems(env, params, key, batch)
    lam, D, w, mask = problems
    solves_per_repeat = 10 if quick else 20
    solve_batch = jax.jit(jax.vmap(solve_qp_jax))
    args = [jnp.asarray(a) for a in (lam, D, w, mask)]
    jax_s, cvxpy_rate = _side_by_side(lambda: jax.block_until_ready(solve_batch(*args)), max(3, repeats // 2),
                                      problems, solves_per_repeat)
    pi = np.asarray(solve_batch(*args))
    results["qp_jax_batch"] = batch
    results["qp_jax_solves_per_s"] = batch / jax_s
    results["qp_cvxpy_solves_per_s"] = cvxpy_rate
    results["qp_speedup_jax_over_cvxpy"] = batch / jax_s / cvxpy_rate
    sample = slice(0, 200 if quick else 1000)
    results["qp_max_relative_gap"] = float(_relative_gaps(pi[sample], lam[sample], D[sample], w[sample],
                                                          mask[sample]).max())

    # Per-slot scheduling latency: the K QPs of one slot, one instance, jitted; warm-started as in
    # the env (with the previous slot's schedule), and cold.
    arrivals = state.arrivals[1]
    previous = env.schedule_slot(state.arrivals[0], deployment, params)
    slot_warm = jax.jit(env.schedule_slot)
    slot_cold = jax.jit(lambda a, d, p: env.schedule_slot(a, d, p))
    lat_repeats = 50 if quick else 300
    results["slot_schedule_ms"] = 1e3 * time_calls(
        lambda: jax.block_until_ready(slot_warm(arrivals, deployment, params, previous)), lat_repeats)
    results["slot_schedule_cold_ms"] = 1e3 * time_calls(
        lambda: jax.block_until_ready(slot_cold(arrivals, deployment, params)), lat_repeats)
    results["slot_schedule_paper_ms"] = PAPER_SLOT_MS

    # Per-frame deployment latency: M knapsacks over (M, K) values, jitted.
    values = jax.random.normal(key, (config.num_cells, config.num_services))
    deploy = jax.jit(env.deployment_from_values)
    results["frame_deployment_ms"] = 1e3 * time_calls(
        lambda: jax.block_until_ready(deploy(values, params)), lat_repeats)
    results["frame_deployment_paper_ms"] = PAPER_FRAME_MS

    # MEC frame steps/s of the vmapped env (each frame = L slots of K QPs, env dynamics included).
    for num_envs in ((64, FRAME_BATCH) if quick else (1, 64, FRAME_BATCH, 1024)):
        keys = jax.random.split(key, num_envs)
        _, states = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
        deployments = jnp.broadcast_to(deployment, (num_envs,) + deployment.shape)
        step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
        run_step = lambda: jax.block_until_ready(step(keys, states, deployments, params))  # noqa: E731
        if num_envs == FRAME_BATCH:
            seconds, frame_cvxpy_rate = _side_by_side(run_step, max(3, repeats // 2), problems, solves_per_repeat)
            frame_arrivals = step(keys, states, deployments, params)[1].arrivals
        else:
            seconds = time_calls(run_step, max(3, repeats // 4))
        results[f"frame_steps_per_s_{num_envs}"] = num_envs / seconds
    frame_rate = results[f"frame_steps_per_s_{FRAME_BATCH}"] * qps_per_frame
    results["frame_batch"] = FRAME_BATCH
    results["frame_qp_solves_per_s"] = frame_rate
    results["frame_cvxpy_solves_per_s"] = frame_cvxpy_rate
    results["frame_qp_speedup_over_cvxpy"] = frame_rate / frame_cvxpy_rate
    results["slot_max_relative_gap"] = float(_slot_objective_gaps(env, params, frame_arrivals, deployment,
                                                                  1 if quick else 5).max())
    return results


def markdown(results: dict) -> str:
    """A markdown table of ``run``'s results."""
    frames = results["frame_batch"]
    rows = [
        ("QP solves/s, solve_qp_jax vmapped over %d (QPs alone)" % results["qp_jax_batch"],
         results["qp_jax_solves_per_s"], ""),
        ("QP solves/s, solve_qp_cvxpy one by one, alternating", results["qp_cvxpy_solves_per_s"],
         "Clarabel, DPP, compiled once"),
        ("QP throughput ratio JAX / CVXPY", results["qp_speedup_jax_over_cvxpy"], "x"),
        ("QP solves/s inside vmapped MEC frames, %d envs" % frames, results["frame_qp_solves_per_s"],
         "frame steps/s x L x K, env dynamics included"),
        ("QP solves/s, solve_qp_cvxpy one by one, alternating with the frames", results["frame_cvxpy_solves_per_s"],
         ""),
        ("QP throughput ratio, MEC frames / CVXPY", results["frame_qp_speedup_over_cvxpy"], "x"),
        ("max relative objective gap to CVXPY, single QPs", results["qp_max_relative_gap"], ""),
        ("max relative gap to CVXPY, slot totals in frames", results["slot_max_relative_gap"],
         "warm-started as in the env"),
        ("per-slot scheduling, %d QPs, previous slot as warm start (ms)" % results["num_services"],
         results["slot_schedule_ms"],
         "paper %.2f ms" % results["slot_schedule_paper_ms"]),
        ("per-slot scheduling, %d QPs, cold start (ms)" % results["num_services"], results["slot_schedule_cold_ms"],
         ""),
        ("per-frame deployment, %d knapsacks (ms)" % results["num_cells"], results["frame_deployment_ms"],
         "paper %.2f ms (incl. DDQN forward)" % results["frame_deployment_paper_ms"]),
    ]
    rows += [(f"MEC frame steps/s, {key.rsplit('_', 1)[1]} envs", value, "")
             for key, value in results.items() if key.startswith("frame_steps_per_s_")]
    lines = ["| MEC benchmark | value | note |", "|---|---:|---|"]
    lines += [f"| {name} | {value:.2e} | {note} |" if value < 0.01 else f"| {name} | {value:,.3f} | {note} |"
              for name, value, note in rows]
    return "\n".join(lines)

