"""CPN env throughput: ``jit(vmap(env.step))`` at batch 1, 64, 1024, 4096, against the NumPy
reference and gymnax's CartPole measured in the same process with the same harness.

Run with ``python scripts/bench.py --sections cpn`` (``--quick`` for a smoke run). The CartPole
columns need gymnax (``pip install gymnax``, not a dependency of jaxcpn); without it they are
skipped.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import statistics
import time

import jax
import numpy as np

from benchmarks.common import peak_rss_mib, time_calls
from jaxcpn.cpn import CPNConfig, GreenCPN
from jaxcpn.cpn.reference import CPNReference

BATCHES = (1, 64, 1024, 4096)
RUNS = 3  # every rate is the median of this many timed runs


def reference_steps_per_second(env: GreenCPN, params, seconds: float, cache_windows: bool) -> float:
    """Steps/s of the NumPy reference (random actions, resets included), median of ``RUNS`` runs."""
    ref = CPNReference(jax.device_get(params), env.config, cache_windows=cache_windows)
    rng = np.random.default_rng(0)
    rates = []
    for _ in range(RUNS):
        ref.reset(rng=rng)
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            _, _, _, truncated, _ = ref.step(rng.integers(0, env.config.num_nodes, env.config.num_users))
            steps += 1
            if truncated:
                ref.reset(rng=rng)
        rates.append(steps / (time.perf_counter() - start))
    return statistics.median(rates)


def vmapped_steps_per_second(env, params, actions: jax.Array, repeats: int) -> float:
    """Env steps/s of ``jit(vmap(env.step))`` for any gymnax-style env (auto-reset included).

    Args:
        env, params: the environment and its params (shared by all envs).
        actions: ``(steps_per_call, batch, ...)`` actions; one timed call steps through all of
            them, one jitted batch step each, so the observations, states and infos of every
            step are materialised as a training loop would see them.
        repeats: timed calls; the median is reported (one warm-up call first, compilation).
    """
    steps_per_call = actions.shape[0]
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    keys, state = batch_start(env, params, actions.shape[1])
    holder = {"state": state}

    def run():
        state = holder["state"]
        for t in range(steps_per_call):
            _, state, reward, *_ = step(keys, state, actions[t], params)
        holder["state"] = state
        return reward

    return actions.shape[1] * steps_per_call / time_calls(run, repeats=repeats, warmup=1)


def batch_start(env, params, batch: int) -> tuple[jax.Array, object]:
    """``(keys, state)``: the per-env keys both harnesses step with, and the batch's reset state."""
    keys = jax.random.split(jax.random.PRNGKey(0), batch)
    _, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    return keys, state


def rollout_steps_per_second(env, params, actions: jax.Array, repeats: int) -> float:
    """Env steps/s of a rollout: one ``jit`` of ``lax.scan`` over ``vmap(env.step)`` (auto-reset included).

    The scan stores what an on-policy rollout keeps (observations, rewards, done flags), the
    PureJaxRL pattern; the infos, ``final_observation`` included, are left to XLA, which drops
    what nothing reads. Same arguments as :func:`vmapped_steps_per_second`.
    """
    steps_per_call, batch = actions.shape[:2]
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    keys, state = batch_start(env, params, batch)

    @jax.jit
    def rollout(state):
        def one_step(state, action):
            obs, state, reward, terminated, truncated, _ = step(keys, state, action, params)
            return state, (obs, reward, terminated | truncated)

        return jax.lax.scan(one_step, state, actions)

    holder = {"state": state}

    def run():
        holder["state"], stored = rollout(holder["state"])
        return stored

    return batch * steps_per_call / time_calls(run, repeats=repeats, warmup=1)


def gymnax_cartpole():
    """``(env, params, label)`` of gymnax's CartPole-v1, or ``(None, None, reason)`` without gymnax."""
    if importlib.util.find_spec("gymnax") is None:
        return None, None, "gymnax not installed (pip install gymnax)"
    try:
        import gymnax
    except ImportError as error:  # gymnax installed without one of its own dependencies
        return None, None, f"gymnax not importable: {error}"
    env, params = gymnax.make("CartPole-v1")
    return env, params, f"gymnax {importlib.metadata.version('gymnax')} CartPole-v1"


def run(quick: bool = False) -> dict:
    config = CPNConfig()
    env = GreenCPN(config)
    params = env.default_params
    steps_per_call = 10 if quick else config.episode_length
    seconds = 0.5 if quick else 2.0
    cartpole, cartpole_params, cartpole_label = gymnax_cartpole()
    results = {
        "config": f"N={config.num_nodes}, U={config.num_users}, W={config.window}, T={config.episode_length}",
        "steps_per_call": steps_per_call,
        "runs": RUNS,
        "cartpole": cartpole_label,
        "reference_steps_per_s": reference_steps_per_second(env, params, seconds, cache_windows=True),
        "reference_uncached_steps_per_s": reference_steps_per_second(env, params, seconds, cache_windows=False),
        "reference_peak_rss_mib": peak_rss_mib(),
        "jax": {},
    }
    for batch in BATCHES:
        key = jax.random.PRNGKey(batch)
        actions = jax.random.randint(key, (steps_per_call, batch, config.num_users), 0, config.num_nodes)
        rate = vmapped_steps_per_second(env, params, actions, repeats=RUNS)
        row = {
            "steps_per_s": rate,
            "x_reference": rate / results["reference_steps_per_s"],
            "x_reference_uncached": rate / results["reference_uncached_steps_per_s"],
            "cartpole_steps_per_s": None,
            "of_cartpole": None,
            "rollout_steps_per_s": rollout_steps_per_second(env, params, actions, repeats=RUNS),
            "cartpole_rollout_steps_per_s": None,
            "rollout_of_cartpole": None,
        }
        if cartpole is not None:
            # Measured right after the CPN rate, with the same harness, so both see the same load.
            cartpole_actions = jax.random.randint(key, (steps_per_call, batch), 0, 2)
            row["cartpole_steps_per_s"] = vmapped_steps_per_second(cartpole, cartpole_params, cartpole_actions, repeats=RUNS)
            row["of_cartpole"] = rate / row["cartpole_steps_per_s"]
            row["cartpole_rollout_steps_per_s"] = rollout_steps_per_second(cartpole, cartpole_params, cartpole_actions,
                                                                           repeats=RUNS)
            row["rollout_of_cartpole"] = row["rollout_steps_per_s"] / row["cartpole_rollout_steps_per_s"]
        row["peak_rss_mib"] = peak_rss_mib()
        results["jax"][str(batch)] = row
    return results


def markdown(results: dict) -> str:
    cartpole = results["jax"][str(BATCHES[0])]["cartpole_steps_per_s"] is not None
    lines = [
        f"CPN env ({results['config']}); each rate is the median of {results['runs']} timed runs of "
        f"{results['steps_per_call']} jitted batch steps. NumPy reference: "
        f"{results['reference_steps_per_s']:,.0f} steps/s with the episode's series cached (the fair baseline), "
        f"{results['reference_uncached_steps_per_s']:,.0f} steps/s uncached (every window rebuilt in Python each step, "
        f"the old reference). CartPole: {results['cartpole']}. Step columns: one jitted batch step per "
        f"call, every output materialised; rollout columns: one jit of a lax.scan over the steps, storing "
        f"observations, rewards and done flags (infos left to XLA).",
        "",
        "| batch | CPN env steps/s | x reference (cached) | x old reference (uncached) | CartPole steps/s | CPN / CartPole "
        "| CPN rollout steps/s | CartPole rollout steps/s | CPN / CartPole (rollout) | process peak RSS (MiB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for batch, row in results["jax"].items():
        cells = [batch, f"{row['steps_per_s']:,.0f}", f"{row['x_reference']:.1f}", f"{row['x_reference_uncached']:.1f}"]
        if cartpole:
            cells += [f"{row['cartpole_steps_per_s']:,.0f}", f"{row['of_cartpole']:.3f}"]
        else:
            cells += ["skipped", "skipped"]
        cells.append(f"{row['rollout_steps_per_s']:,.0f}")
        if cartpole:
            cells += [f"{row['cartpole_rollout_steps_per_s']:,.0f}", f"{row['rollout_of_cartpole']:.3f}"]
        else:
            cells += ["skipped", "skipped"]
        cells.append(f"{row['peak_rss_mib']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
