"""Routing MILP: solve time per slot at the paper's size and the eq. (21) gap to ``"shortest"``.

Standalone: ``.venv/bin/python scripts/benchmarks/routing.py [--quick]``.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from solvers.routing import (
    STATUS_NAMES, RoutingInstance, RoutingOptions, objective, shortest_routing, solve_routing, status_ok,
)


def paper_instances(count: int, num_nodes: int = 10, num_users: int = 10, seed: int = 0):
    """Random slots of the environment's generator at the paper's size, random destinations."""
    import jax

    from jaxcpn.cpn import CPNConfig, GreenCPN, generate_instance

    config = CPNConfig(num_nodes=num_nodes, num_users=num_users)
    env = GreenCPN(config)
    generate = jax.jit(lambda k: generate_instance(k, config, series_hours=48), static_argnums=())
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        params = generate(jax.random.PRNGKey(seed * 100_000 + k))
        state = env.reset(jax.random.PRNGKey(k), params)[1]
        workload = np.asarray(env.slot_inputs(state, params)[0], np.float64)
        destination = rng.integers(0, num_nodes, num_users)
        power = np.asarray(params.power, np.float64)
        out.append(RoutingInstance(
            adjacency=np.asarray(params.adjacency), bandwidth=np.asarray(params.bandwidth),
            switch_delay=np.asarray(params.switch_delay), source=np.asarray(params.user_node),
            destination=destination, packet_size=np.asarray(params.packet_size),
            access_bandwidth=np.asarray(params.access_bandwidth), deadline=np.asarray(params.deadline),
            workload=workload, compute_delay=workload / power[destination],
            unit_price=float(params.unit_price), eta=float(params.eta),
        ))
    return out


def run(quick: bool = False) -> dict:
    """Solves ``50`` (``quick``: 5) random paper-size slots with the default options.

    Deadlines use ``"reachable"`` (eq. 14 for tasks that can meet it alone): with the paper's
    2 s deadline and random destinations most slots have a task that no routing can make on time,
    which ``"strict"`` reports as infeasible (counted separately).
    """
    count = 5 if quick else 50
    instances = paper_instances(count)
    options = RoutingOptions(deadlines="reachable")
    times, gaps, rel_gaps, statuses, iterations = [], [], [], [], []
    strict_infeasible = 0
    for inst in instances:
        _, _, t_short = shortest_routing(inst)
        short = objective(inst, t_short)
        start = time.perf_counter()
        res = solve_routing(inst, options)
        times.append(time.perf_counter() - start)
        statuses.append(STATUS_NAMES[res.status])
        iterations.append(res.iterations)
        if status_ok(res.status):
            gaps.append(res.objective - short)
            rel_gaps.append((res.objective - short) / short)
        strict = solve_routing(inst, RoutingOptions(max_iterations=1))
        strict_infeasible += int(not status_ok(strict.status))
    gaps, rel_gaps = np.asarray(gaps), np.asarray(rel_gaps)
    return dict(
        instances=count, num_nodes=10, num_users=10, tick_s=options.tick, num_paths=options.num_paths,
        formulation=options.formulation, solve_time_median_s=float(np.median(times)),
        solve_time_mean_s=float(np.mean(times)), solve_time_max_s=float(np.max(times)),
        iterations_mean=float(np.mean(iterations)),
        statuses={s: statuses.count(s) for s in sorted(set(statuses))},
        gap_mean=float(gaps.mean()), gap_min=float(gaps.min()), gap_max=float(gaps.max()),
        rel_gap_mean=float(rel_gaps.mean()), rel_gap_min=float(rel_gaps.min()), rel_gap_max=float(rel_gaps.max()),
        strict_deadline_fallbacks=strict_infeasible,
    )


def markdown(results: dict) -> str:
    """The ``docs/bench.md`` section."""
    r = results
    return "\n".join([
        "### Routing MILP (`solvers/routing.py`)",
        "",
        f"{r['instances']} random slots of the environment's generator at the paper's size "
        f"({r['num_nodes']} nodes, {r['num_users']} users, random destinations); options: "
        f"tick {r['tick_s'] * 1000:g} ms, {r['num_paths']} candidate paths, `{r['formulation']}` formulation, "
        "`deadlines=\"reachable\"`, quadratic-transform loop up to 5 MILPs, HiGHS on 1 thread.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| solve time per slot, median / mean / max (s) | {r['solve_time_median_s']:.3f} / "
        f"{r['solve_time_mean_s']:.3f} / {r['solve_time_max_s']:.3f} |",
        f"| MILP solves per slot (mean) | {r['iterations_mean']:.2f} |",
        f"| statuses | {', '.join(f'{k}: {v}' for k, v in r['statuses'].items())} |",
        f"| eq. (21) gain `milp - shortest`, mean / worst (min) / best | {r['gap_mean']:.4f} / "
        f"{r['gap_min']:.4f} / {r['gap_max']:.4f} |",
        f"| relative gain, mean / worst / best | {100 * r['rel_gap_mean']:.2f}% / "
        f"{100 * r['rel_gap_min']:.2f}% / {100 * r['rel_gap_max']:.2f}% |",
        f"| slots infeasible with `deadlines=\"strict\"` (would fall back) | {r['strict_deadline_fallbacks']} "
        f"of {r['instances']} |",
        "",
        "A negative worst gain is the tick discretisation: the MILP's schedule rounds every "
        "separating duration up to whole ticks, the continuous `\"shortest\"` FIFO does not.",
    ])


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    result = run(quick=quick)
    print(result)
    print(markdown(result))
