"""Feasibility checker of a routing (pure NumPy, independent of the MILP that produced it).

Reads only the instance, the paths, the start time of every hop and the reported ``t_sum``, in
continuous time (seconds), with the environment's delay model (docs/model.md).
"""

from __future__ import annotations

import numpy as np


def check_routing(inst, paths, start_times, t_sum, tol: float = 1e-6) -> list[str]:
    """Every violated condition, as a readable line (empty list: feasible).

    Checks: each path runs from the task's source to its destination over existing links
    without revisiting a node; the first hop starts after the access link and the source's
    switching delay, every later hop after the previous transmission plus the forwarding node's
    switching delay (eq. 11); no two transmissions overlap on an undirected link (eqs. 12-13);
    the reported ``t_sum`` equals the last hop's end plus ``t_comp`` and is at least
    ``t_tr + t_comp`` of eq. (1) (eq. 2 with ``t_off >= 0``).

    Args:
        inst: a ``solvers.routing.RoutingInstance``.
        paths: per task, node sequence (length 1 when computed at the access node).
        start_times: per task, ``(hops,)`` start of each hop's transmission (s).
        t_sum: ``(U,)`` reported total delay (s).
        tol: absolute tolerance (s).
    """
    errors = []
    adjacency = np.asarray(inst.adjacency, bool)
    size, bw, sw = inst.packet_size, inst.bandwidth, inst.switch_delay
    busy = {}  # undirected link -> [(begin, end, task)]
    if len(paths) != inst.num_tasks:
        return [f"{len(paths)} paths for {inst.num_tasks} tasks"]
    for u, (path, starts) in enumerate(zip(paths, start_times)):
        path = [int(n) for n in path]
        starts = np.asarray(starts, np.float64)
        if path[0] != inst.source[u] or path[-1] != inst.destination[u]:
            errors.append(f"task {u}: path {path} does not run {inst.source[u]} -> {inst.destination[u]}")
            continue
        if len(set(path)) != len(path):
            errors.append(f"task {u}: path {path} revisits a node")
        if starts.shape != (len(path) - 1,):
            errors.append(f"task {u}: {starts.shape[0]} start times for {len(path) - 1} hops")
            continue
        ready = inst.access_delay[u]
        transmission = inst.access_delay[u]
        for h, (i, j) in enumerate(zip(path[:-1], path[1:])):
            if not adjacency[i, j]:
                errors.append(f"task {u}: hop {i}-{j} is not a link")
                continue
            tx = size[u] / bw[i, j]
            transmission += tx + sw[i]
            if starts[h] < ready + sw[i] - tol:
                errors.append(f"task {u}: hop {h} ({i}-{j}) starts at {starts[h]:.6f} s, before "
                              f"arrival + switching {ready + sw[i]:.6f} s")
            ready = starts[h] + tx
            busy.setdefault((min(i, j), max(i, j)), []).append((starts[h], starts[h] + tx, u))
        arrival = ready if len(path) > 1 else inst.access_delay[u]
        expected = arrival + inst.compute_delay[u]
        if abs(expected - t_sum[u]) > tol:
            errors.append(f"task {u}: reported t_sum {t_sum[u]:.6f} s != last arrival + t_comp {expected:.6f} s")
        if t_sum[u] < transmission + inst.compute_delay[u] - tol:
            errors.append(f"task {u}: t_sum {t_sum[u]:.6f} s < t_tr + t_comp {transmission + inst.compute_delay[u]:.6f} s")
    for link, intervals in busy.items():
        intervals.sort()
        for (b0, e0, u0), (b1, e1, u1) in zip(intervals[:-1], intervals[1:]):
            if b1 < e0 - tol:
                errors.append(f"link {link}: tasks {u0} [{b0:.6f}, {e0:.6f}] and {u1} [{b1:.6f}, {e1:.6f}] overlap")
    return errors
