"""Training throughput: this library's PPO vs Stable-Baselines3 PPO on the gymnasium adapter.

Both train on the same green-CPN instance with the same rollout batch (``num_envs x num_steps``),
epochs and minibatches, measured in one process; throughput = environment steps per second of
wall time with the updates included. SB3 steps ``num_envs`` copies of ``GreenCPNGymEnv`` (each
step one jitted JAX call) through its ``DummyVecEnv``; ours is one jitted program per chunk of
updates. Also: the gymnasium adapter's single-env step rate against the NumPy reference.

Needs the ``bench`` extra (``pip install torch==2.13.0`` first for the CPU build, then
``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import time

import jax
import numpy as np

from benchmarks.common import time_calls
from jaxcpn.cpn.reference import CPNReference


def jaxcpn_ppo_steps_per_second(variant: str, num_envs: int, num_steps: int, num_updates: int) -> float:
    from agents.stper.ppo import PPOConfig, make_trainer

    config = PPOConfig(variant=variant, num_envs=num_envs, num_steps=num_steps, update_epochs=4, num_minibatches=4)
    trainer = make_trainer(config)
    runner = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    chunk = jax.jit(trainer.train_chunk, static_argnums=1)
    holder = {"runner": runner}

    def run():
        holder["runner"], metrics = chunk(holder["runner"], num_updates)
        return metrics

    seconds = time_calls(run, repeats=3, warmup=1)
    return num_updates * num_envs * num_steps / seconds


def sb3_ppo_steps_per_second(num_envs: int, num_steps: int, num_updates: int) -> float:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from jaxcpn.wrappers.gymnasium import GreenCPNGymEnv

    torch.set_num_threads(max(1, torch.get_num_threads()))
    vec_env = DummyVecEnv([GreenCPNGymEnv for _ in range(num_envs)])
    batch = num_envs * num_steps
    model = PPO("MultiInputPolicy", vec_env, n_steps=num_steps, batch_size=batch // 4, n_epochs=4,
                learning_rate=1e-3, gamma=0.99, gae_lambda=0.95, clip_range=0.2, ent_coef=0.01,
                device="cpu", verbose=0, seed=0)
    model.learn(total_timesteps=batch)  # warm-up: one update, jit compilation of the env steps
    start = time.perf_counter()
    model.learn(total_timesteps=num_updates * batch, reset_num_timesteps=False)
    return num_updates * batch / (time.perf_counter() - start)


def adapter_vs_reference(seconds: float) -> dict:
    from jaxcpn.wrappers.gymnasium import GreenCPNGymEnv

    env = GreenCPNGymEnv()
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            env.reset()
    adapter = steps / (time.perf_counter() - start)
    ref = CPNReference(env.params, env.env.config)
    ref.reset(rng=rng)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, _, truncated, _ = ref.step(rng.integers(0, env.env.config.num_nodes, env.env.config.num_users))
        steps += 1
        if truncated:
            ref.reset(rng=rng)
    reference = steps / (time.perf_counter() - start)
    return {"adapter_steps_per_s": adapter, "reference_steps_per_s": reference, "ratio": adapter / reference}


def run(quick: bool = False) -> dict:
    num_steps = 24
    results = {"num_steps": num_steps, "update_epochs": 4, "num_minibatches": 4, "rows": []}
    for num_envs in ((16,) if quick else (16, 256)):
        sb3_updates = 1 if num_envs >= 256 else (2 if quick else 4)
        sb3 = sb3_ppo_steps_per_second(num_envs, num_steps, sb3_updates)
        for variant in ("stper-m", "stper"):
            ours = jaxcpn_ppo_steps_per_second(variant, num_envs, num_steps, num_updates=4 if quick else 10)
            results["rows"].append({"num_envs": num_envs, "variant": variant, "jaxcpn_steps_per_s": ours,
                                    "sb3_steps_per_s": sb3, "ratio": ours / sb3})
    results["adapter"] = adapter_vs_reference(2.0 if quick else 5.0)
    return results


def markdown(results: dict) -> str:
    lines = [
        f"PPO training throughput (env steps/s, updates included; rollout {results['num_steps']} steps x num_envs, "
        f"{results['update_epochs']} epochs, {results['num_minibatches']} minibatches). SB3: MultiInputPolicy (MLP) "
        "on DummyVecEnv of the gymnasium adapter.",
        "",
        "| num_envs | jaxcpn network | jaxcpn PPO steps/s | SB3 PPO steps/s | ratio |",
        "|---:|---|---:|---:|---:|",
    ]
    for row in results["rows"]:
        lines.append(f"| {row['num_envs']} | {row['variant']} | {row['jaxcpn_steps_per_s']:.0f} | "
                     f"{row['sb3_steps_per_s']:.0f} | {row['ratio']:.1f} |")
    a = results["adapter"]
    lines += ["", f"Gymnasium adapter (one env, one jitted call per step): {a['adapter_steps_per_s']:.0f} steps/s vs "
                  f"NumPy reference {a['reference_steps_per_s']:.0f} steps/s (ratio {a['ratio']:.2f})."]
    return "\n".join(lines)


if __name__ == "__main__":
    import json

    out = run(quick=True)
    print(json.dumps(out, indent=2))
    print(markdown(out))
