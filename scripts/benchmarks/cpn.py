"""CPN env throughput: ``jit(vmap(step))`` at several batch sizes vs the NumPy reference."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import peak_rss_mib, time_calls
from jaxcpn.cpn import CPNConfig, GreenCPN
from jaxcpn.cpn.reference import CPNReference


def reference_steps_per_second(env: GreenCPN, params, seconds: float) -> float:
    """Steps/s of the NumPy reference (random actions, resets included)."""
    ref = CPNReference(params, env.config)
    rng = np.random.default_rng(0)
    ref.reset(rng=rng)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, _, truncated, _ = ref.step(rng.integers(0, env.config.num_nodes, env.config.num_users))
        steps += 1
        if truncated:
            ref.reset(rng=rng)
    return steps / (time.perf_counter() - start)


def jax_steps_per_second(env: GreenCPN, params, batch: int, steps_per_call: int, repeats: int) -> float:
    """Env steps/s of the vmapped env; each timed call runs ``steps_per_call`` jitted batch steps."""
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    keys = jax.random.split(jax.random.PRNGKey(0), batch)
    _, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    actions = jax.random.randint(jax.random.PRNGKey(1), (steps_per_call, batch, env.config.num_users), 0, env.config.num_nodes)
    holder = {"state": state}

    def run():
        state = holder["state"]
        for t in range(steps_per_call):
            _, state, reward, *_ = step(keys, state, actions[t], params)
        holder["state"] = state
        return reward

    seconds = time_calls(run, repeats=repeats, warmup=1)
    return batch * steps_per_call / seconds


def run(quick: bool = False) -> dict:
    config = CPNConfig()
    env = GreenCPN(config)
    params = env.default_params
    results = {"config": f"N={config.num_nodes}, U={config.num_users}, W={config.window}, T={config.episode_length}"}
    results["reference_steps_per_s"] = reference_steps_per_second(env, params, seconds=2.0 if quick else 5.0)
    results["reference_peak_rss_mib"] = peak_rss_mib()
    batches = [1, 64, 1024, 4096]
    results["jax"] = {}
    for batch in batches:
        rate = jax_steps_per_second(env, params, batch, steps_per_call=5 if quick else 10, repeats=3 if quick else 7)
        results["jax"][str(batch)] = {
            "steps_per_s": rate,
            "speedup_vs_reference": rate / results["reference_steps_per_s"],
            "peak_rss_mib": peak_rss_mib(),
        }
    return results


def markdown(results: dict) -> str:
    lines = [
        f"CPN env ({results['config']}), NumPy reference: {results['reference_steps_per_s']:.0f} steps/s",
        "",
        "| batch | JAX env steps/s | x reference | process peak RSS (MiB) |",
        "|---:|---:|---:|---:|",
    ]
    for batch, row in results["jax"].items():
        lines.append(f"| {batch} | {row['steps_per_s']:.0f} | {row['speedup_vs_reference']:.1f} | {row['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import json

    out = run(quick=True)
    print(json.dumps(out, indent=2))
    print(markdown(out))
