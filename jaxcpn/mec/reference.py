"""Plain NumPy, loop-by-loop maths of TTOSC: the oracle for the JAX model.

Delay (eqs. 4-8), demand rates, and the options beyond the paper (switching cost, popularity
cycle; docs/model.md, "Coupled dynamics"), written straight from the equations with explicit
loops over ES ``m``, service ``k``, node ``n`` (cloud = ``M``) and slot ``l``, in float64.
"""

from __future__ import annotations

import math

import numpy as np

MEGABITS_PER_STORAGE_UNIT = 800.0  # 100 MB


def arrival_rate(ranking, users, phase, frame, slots_per_frame, params) -> np.ndarray:
    """Mean tasks per slot ``U_m task_rate (1 + a sin(2 pi t / P)) p_{m,k}(t)`` of one frame.

    ``t = phase + frame + l / L`` frames; ``p_{m,k}(t) = z_{m,k} g_k(t) / sum_j z_{m,j} g_j(t)``
    with Zipf weights ``z_{m,k} = (rank_{m,k} + 1)^-s`` and the popularity cycle
    ``g_k(t) = 1 + A sin(2 pi t / P + phi_k)`` (``g = 1`` when ``A = 0``: the paper's model).

    Args:
        ranking: (M, K) ranks; users: (M,); phase: frames; frame: int; slots_per_frame: L.
        params: MECParams.

    Returns:
        (L, M, K) float64.
    """
    ranking = np.asarray(ranking)
    num_es, num_services = ranking.shape
    exponent = float(np.asarray(params.zipf_exponent))
    period = float(np.asarray(params.diurnal_period))
    amplitude = float(np.asarray(params.diurnal_amplitude))
    cycle_amplitude = float(np.asarray(params.popularity_cycle_amplitude))
    cycle_phase = np.asarray(params.popularity_cycle_phase, np.float64)
    task_rate = float(np.asarray(params.task_rate))
    rate = np.zeros((slots_per_frame, num_es, num_services))
    for slot in range(slots_per_frame):
        t = float(phase) + frame + slot / slots_per_frame
        intensity = 1.0 + amplitude * math.sin(2.0 * math.pi * t / period)
        for m in range(num_es):
            weight = [(ranking[m, k] + 1.0) ** -exponent
                      * (1.0 + cycle_amplitude * math.sin(2.0 * math.pi * t / period + cycle_phase[k]))
                      for k in range(num_services)]
            for k in range(num_services):
                rate[slot, m, k] = float(np.asarray(users)[m]) * task_rate * intensity * weight[k] / sum(weight)
    return rate


def download_wait(deployment, hosted, params, slots_per_frame) -> np.ndarray:
    """Switching cost: seconds a task sent to ES n for service k waits in slot l.

    A service deployed this frame but not hosted in the previous one is downloaded first,
    ``T_{n,k} = 800 s_k / B_n`` s from the frame's start; slot l starts at ``l tau``, so
    ``W_{l,n,k} = max(0, T_{n,k} - l tau)``, 0 for hosted or undeployed services.

    Returns:
        (L, M, K) float64.
    """
    x = np.asarray(deployment, bool)
    before = np.asarray(hosted, bool)
    size = np.asarray(params.service_size, np.float64)
    backhaul = np.asarray(params.backhaul_rate, np.float64)
    tau = float(np.asarray(params.slot_duration))
    num_es, num_services = x.shape
    wait = np.zeros((slots_per_frame, num_es, num_services))
    for slot in range(slots_per_frame):
        for n in range(num_es):
            for k in range(num_services):
                if x[n, k] and not before[n, k]:
                    wait[slot, n, k] = max(0.0, MEGABITS_PER_STORAGE_UNIT * size[k] / backhaul[n] - slot * tau)
    return wait


def frame_reward(arrivals, deployment, hosted, schedules, params, switching_cost: bool) -> dict:
    """One frame's delays and reward under given per-slot schedules.

    Args:
        arrivals: (L, M, K) tasks per slot.
        deployment: (M, K) bool, this frame's deployment (storage-feasible).
        hosted: (M, K) bool, the previous frame's deployment.
        schedules: (L, M, K, M + 1) per-slot schedules.
        params: MECParams.
        switching_cost: whether downloads delay the newly deployed services.

    Returns:
        dict with ``slot_delay``, ``slot_cloud_delay``, ``slot_reward``, ``num_tasks`` (L,) and
        ``mean_delay`` (task-weighted over the frame).
    """
    arrivals = np.asarray(arrivals, np.float64)
    num_slots, num_es, num_services = arrivals.shape
    wait = (download_wait(deployment, hosted, params, num_slots) if switching_cost
            else np.zeros((num_slots, num_es, num_services)))
    cloud = np.zeros((num_es, num_services, num_es + 1))
    cloud[..., num_es] = 1.0
    out = {name: np.zeros(num_slots) for name in ("slot_delay", "slot_cloud_delay", "slot_reward", "num_tasks")}
    for slot in range(num_slots):
        delay = slot_delay(arrivals[slot], deployment, schedules[slot], params, wait[slot])["mean"]
        baseline = slot_delay(arrivals[slot], deployment, cloud, params)["mean"]
        out["slot_delay"][slot] = delay
        out["slot_cloud_delay"][slot] = baseline
        out["slot_reward"][slot] = baseline - delay
        out["num_tasks"][slot] = arrivals[slot].sum()
    tasks = out["num_tasks"].sum()
    out["mean_delay"] = float((out["slot_delay"] * out["num_tasks"]).sum() / tasks) if tasks > 0 else 0.0
    return out


def slot_delay(arrivals, deployment, schedule, params, wait=None) -> dict:
    """Expected delays of one slot.

    Args:
        arrivals: (M, K) tasks ``lambda_{m,k}``.
        deployment: (M, K) bool ``x_{m,k}``.
        schedule: (M, K, M + 1) ``pi_{m,k,n}``.
        params: MECParams (any array type; converted to NumPy float64).
        wait: optional (M, K) s download wait ``W_{n,k}``: at ES n the task starts after
            ``max(transfer, W_{n,k})`` (switching cost; None = the paper's eq. 4).

    Returns:
        dict with ``per_task`` (M, K), ``per_service`` (K,), ``mean`` and ``total`` (floats), s.
    """
    lam = np.asarray(arrivals, np.float64)
    x = np.asarray(deployment, bool)
    pi = np.asarray(schedule, np.float64)
    d = np.asarray(params.task_input_size, np.float64)
    c = np.asarray(params.task_cycles, np.float64)
    cpu = np.asarray(params.es_cpu, np.float64)
    rate = np.asarray(params.es_rate, np.float64)
    cloud_rate = np.asarray(params.cloud_rate, np.float64)
    cloud_cpu = float(np.asarray(params.cloud_cpu))
    num_es, num_services = lam.shape

    share = np.zeros((num_es, num_services))  # equal CPU share among deployed services
    for n in range(num_es):
        deployed = x[n].sum()
        for k in range(num_services):
            if x[n, k]:
                share[n, k] = cpu[n] / deployed

    load = np.zeros((num_es, num_services))  # L_{n,k}
    for n in range(num_es):
        for k in range(num_services):
            for m in range(num_es):
                load[n, k] += lam[m, k] * pi[m, k, n]

    per_task = np.zeros((num_es, num_services))
    for m in range(num_es):
        for k in range(num_services):
            for n in range(num_es + 1):
                if pi[m, k, n] == 0.0:
                    continue
                if n == num_es:  # eq. (5)
                    delay = d[k] / cloud_rate[m] + c[k] / cloud_cpu
                else:  # eq. (4)
                    transfer = 0.0 if n == m else d[k] / rate[m, n]
                    if wait is not None:  # the transfer overlaps the download
                        transfer = max(transfer, float(wait[n, k]))
                    delay = transfer + c[k] * load[n, k] / share[n, k]
                per_task[m, k] += pi[m, k, n] * delay  # eq. (6)

    per_service = np.zeros(num_services)
    for k in range(num_services):
        tasks = lam[:, k].sum()
        if tasks > 0:
            per_service[k] = sum(lam[m, k] * per_task[m, k] for m in range(num_es)) / tasks  # eq. (7)
    total_tasks = lam.sum()
    total = sum(lam[:, k].sum() * per_service[k] for k in range(num_services))
    mean = total / total_tasks if total_tasks > 0 else 0.0  # eq. (8)
    return {"per_task": per_task, "per_service": per_service, "mean": mean, "total": total}
