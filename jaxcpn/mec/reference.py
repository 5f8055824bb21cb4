"""Plain NumPy, loop-by-loop delay maths of TTOSC (eqs. 4-8): the oracle for the JAX model.

Written straight from the equations with explicit loops over ES ``m``, service ``k`` and node
``n`` (cloud = ``M``), in float64.
"""

from __future__ import annotations

import numpy as np


def slot_delay(arrivals, deployment, schedule, params) -> dict:
    """Expected delays of one slot.

    Args:
        arrivals: (M, K) tasks ``lambda_{m,k}``.
        deployment: (M, K) bool ``x_{m,k}``.
        schedule: (M, K, M + 1) ``pi_{m,k,n}``.
        params: MECParams (any array type; converted to NumPy float64).

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
