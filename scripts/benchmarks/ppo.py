"""PPO training throughput: env steps/s of whole jitted PPO updates (rollout + GAE + epochs).

STPer with recurrent perception (the default), STPer with the window encoder, and STPer-M (no
LSTM), measured one after the other in this process, so the ratio to STPer-M at the same batch
is the number to read on a shared machine.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import jax

from agents.stper.ppo import PPOConfig, make_trainer
from benchmarks.common import peak_rss_mib, time_calls

# (variant, perception): STPer-M has no LSTM, so its perception is moot.
QUICK_MODELS = (("stper", "recurrent"), ("stper", "window"), ("stper-m", "recurrent"))
FULL_MODELS = (("stper", "recurrent"), ("stper", "window"), ("stper-l", "recurrent"), ("stper-m", "recurrent"))


def compiled_chunk(config: PPOConfig, num_updates: int) -> tuple:
    """``(run, first_call_s)``: ``run()`` runs one chunk of ``num_updates`` updates from a fixed
    runner state; ``first_call_s`` is the compile + first call time."""
    trainer = make_trainer(config)
    chunk = jax.jit(trainer.train_chunk, static_argnums=1)
    start = time.perf_counter()
    runner = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    jax.block_until_ready(chunk(runner, num_updates))
    return (lambda: chunk(runner, num_updates)), time.perf_counter() - start


def run(quick: bool = False, batches: tuple[int, ...] | None = None, models: tuple[tuple[str, str], ...] | None = None,
        repeats: int | None = None) -> dict:
    """PPO env steps/s (updates included) per model ``(variant, perception)`` and batch.

    At each batch size every model is compiled first, then the models' chunks are timed in
    turn, ``repeats`` rounds, and each model's median is reported: a load change on a shared
    machine then hits all models of a round alike, and the ratios to STPer-M stay readable.
    ``models`` must include STPer-M (the reference of the ratios).
    """
    base = PPOConfig()
    batches = batches or ((base.num_envs, 256) if quick else (base.num_envs, 256, 1024))
    models = models or (QUICK_MODELS if quick else FULL_MODELS)
    repeats = repeats or (1 if quick else 3)
    num_updates = 2
    results = {"config": f"N={base.num_nodes}, U={base.num_users}, W={base.window}, epochs={base.update_epochs}, "
                         f"minibatches={base.num_minibatches}", "repeats": repeats, "updates": num_updates, "runs": []}
    for num_envs in batches:
        chunks = {}
        for variant, perception in models:
            config = dataclasses.replace(base, variant=variant, perception=perception, num_envs=num_envs)
            chunks[variant, perception] = (config,) + compiled_chunk(config, num_updates)
        samples = {model: [] for model in chunks}
        for _ in range(repeats):
            for model, (_, chunk, _) in chunks.items():
                samples[model].append(time_calls(chunk, repeats=1, warmup=0))
        for (variant, perception), (config, _, first_call_s) in chunks.items():
            seconds = statistics.median(samples[variant, perception])
            steps = num_updates * config.num_envs * config.num_steps
            results["runs"].append(dict(
                variant=variant, perception="-" if variant == "stper-m" else perception, num_envs=num_envs,
                num_steps=config.num_steps, env_steps_per_s=steps / seconds, updates_per_s=num_updates / seconds,
                first_call_s=first_call_s, seconds=samples[variant, perception]))
        del chunks
    mlp = {r["num_envs"]: r["env_steps_per_s"] for r in results["runs"] if r["variant"] == "stper-m"}
    for row in results["runs"]:
        row["vs_stper_m"] = row["env_steps_per_s"] / mlp[row["num_envs"]]
    results["peak_rss_mib"] = peak_rss_mib()
    return results


def markdown(results: dict) -> str:
    lines = [f"PPO training throughput ({results['config']}; env steps/s include the updates, median of "
             f"{results['repeats']} chunks of {results['updates']} updates)", "",
             "| variant | perception | envs | steps/rollout | env steps/s | vs stper-m | updates/s | first call (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        lines.append(f"| {r['variant']} | {r['perception']} | {r['num_envs']} | {r['num_steps']} | "
                     f"{r['env_steps_per_s']:.0f} | {r['vs_stper_m']:.2f} | {r['updates_per_s']:.2f} | "
                     f"{r['first_call_s']:.1f} |")
    lines.append(f"\nPeak RSS: {results['peak_rss_mib']:.0f} MiB")
    return "\n".join(lines)
