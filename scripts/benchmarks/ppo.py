"""PPO training throughput: env steps/s of whole jitted PPO updates (rollout + GAE + epochs)."""

from __future__ import annotations

import dataclasses
import time

import jax

from agents.stper.ppo import PPOConfig, make_trainer
from benchmarks.common import peak_rss_mib


def steps_per_second(config: PPOConfig, num_updates: int) -> dict:
    """Times ``num_updates`` updates (one chunk) after a compiled warm-up chunk."""
    trainer = make_trainer(config)
    chunk = jax.jit(trainer.train_chunk, static_argnums=1)
    start = time.perf_counter()
    runner = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    runner, metrics = chunk(runner, num_updates)
    jax.block_until_ready(metrics)
    compile_and_first = time.perf_counter() - start
    start = time.perf_counter()
    runner, metrics = chunk(runner, num_updates)
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - start
    steps = num_updates * config.num_envs * config.num_steps
    return dict(num_envs=config.num_envs, num_steps=config.num_steps, updates=num_updates,
                env_steps_per_s=steps / seconds, updates_per_s=num_updates / seconds,
                first_call_s=compile_and_first)


def run(quick: bool = False) -> dict:
    """PPO env steps/s (updates included) per variant at the quick batch and a larger batch."""
    base = PPOConfig()
    batches = [base.num_envs, 256] if quick else [base.num_envs, 1024]
    variants = ("stper",) if quick else ("stper", "stper-l", "stper-m")
    results = {"config": f"N={base.num_nodes}, U={base.num_users}, W={base.window}, epochs={base.update_epochs}, "
                         f"minibatches={base.num_minibatches}", "runs": []}
    for variant in variants:
        for num_envs in batches:
            config = dataclasses.replace(base, variant=variant, num_envs=num_envs)
            row = steps_per_second(config, num_updates=2 if quick else 5)
            row["variant"] = variant
            results["runs"].append(row)
    results["peak_rss_mib"] = peak_rss_mib()
    return results


def markdown(results: dict) -> str:
    lines = [f"PPO training throughput ({results['config']}; env steps/s include the updates)", "",
             "| variant | envs | steps/rollout | env steps/s | updates/s | first call (s) |", "|---|---|---|---|---|---|"]
    for r in results["runs"]:
        lines.append(f"| {r['variant']} | {r['num_envs']} | {r['num_steps']} | {r['env_steps_per_s']:.0f} | "
                     f"{r['updates_per_s']:.2f} | {r['first_call_s']:.1f} |")
    lines.append(f"\nPeak RSS: {results['peak_rss_mib']:.0f} MiB")
    return "\n".join(lines)
