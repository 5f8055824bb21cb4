"""Hyperparameter-scan throughput: (runs x env steps)/s of the scans on 1 and 2 host devices.

Both scans: STPer's PPO (env steps, ``jaxcpn scan-stper``) and TTOSC's DDQN (env frames, ``jaxcpn scan-ttosc``).

The host device count is fixed when JAX starts, so each device count runs in its own Python
process with ``XLA_FLAGS=--xla_force_host_platform_device_count=n``. Compiles are timed apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import json
from agents import sharding
from agents.stper import scan
from agents.stper.ppo import PPOConfig

num_updates, num_envs = {num_updates}, {num_envs}
ppo = PPOConfig(num_envs=num_envs, num_steps=24, num_updates=num_updates, num_minibatches=4, fusion_hidden=(64,),
                head_hidden=(32,))
config = scan.ScanConfig(ppo=ppo, learning_rates=(3e-4, 1e-3), clip_ranges=(0.1, 0.2), ent_coefs=(0.0, 0.01),
                         num_seeds=2, chunk_updates=num_updates)
points = scan.grid_points(config)
mesh = sharding.make_mesh()
result = scan.run_scan(ppo, points, config.num_seeds, config.seed, mesh, config.chunk_updates, progress=False)
print("RESULT", json.dumps(dict(devices=mesh.size, runs=len(points) * config.num_seeds, configs=len(points),
                                seeds=config.num_seeds, num_envs=num_envs, num_steps=24, updates=num_updates,
                                env_steps=result["env_steps"], run_s=result["run_seconds"],
                                compile_s=result["compile_seconds"],
                                run_env_steps_per_s=result["env_steps"] / result["run_seconds"])))
"""


TTOSC_WORKER = """
import json
from agents import sharding
from agents.ttosc import scan
from agents.ttosc.ddqn import DDQNConfig

ddqn = DDQNConfig(num_cells=3, num_services=10, num_envs=4, num_episodes={num_episodes}, epsilon_episodes=8,
                  num_gru_layers=1, hidden=64, learning_starts=32)
config = scan.ScanConfig(ddqn=ddqn, learning_rates=(1e-3, 1e-2), epsilon_anneals=(4.0, 8.0), num_seeds=2,
                              chunk_iterations=ddqn.num_iterations)
points = scan.grid_points(config)
mesh = sharding.make_mesh()
result = scan.run_scan(ddqn, points, config.num_seeds, config.seed, mesh, config.chunk_iterations,
                             progress=False)
print("RESULT", json.dumps(dict(devices=mesh.size, runs=len(points) * config.num_seeds, configs=len(points),
                                seeds=config.num_seeds, num_envs=ddqn.num_envs, frames=ddqn.num_iterations,
                                env_steps=result["env_steps"], run_s=result["run_seconds"],
                                compile_s=result["compile_seconds"],
                                run_env_steps_per_s=result["env_steps"] / result["run_seconds"])))
"""


def measure(devices: int, num_updates: int, num_envs: int, worker: str = WORKER, **fields) -> dict:
    """One scan in a fresh process with ``devices`` host devices; its timings."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    code = worker.format(num_updates=num_updates, num_envs=num_envs, **fields)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=1800)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        raise RuntimeError(f"scan benchmark on {devices} device(s) failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(lines[-1][len("RESULT "):])


def run(quick: bool = False) -> dict:
    """Scan throughput (8 configs x 2 seeds of STPer, N = U = 10, W = 24) at 1 and 2 host devices."""
    num_updates = 4 if quick else 10
    runs = [measure(devices, num_updates, num_envs=16) for devices in (1, 2)]
    ttosc = [measure(devices, 0, 4, TTOSC_WORKER, num_episodes=8 if quick else 16) for devices in (1, 2)]
    return dict(runs=runs, speedup=runs[1]["run_env_steps_per_s"] / runs[0]["run_env_steps_per_s"],
                ttosc=ttosc, ttosc_speedup=ttosc[1]["run_env_steps_per_s"] / ttosc[0]["run_env_steps_per_s"],
                cpu_count=os.cpu_count())


def markdown(results: dict) -> str:
    """Markdown table of :func:`run`'s results."""
    first = results["runs"][0]
    lines = [
        f"Scan of {first['configs']} configs x {first['seeds']} seeds (STPer, N = U = 10, W = 24, "
        f"{first['num_envs']} envs x {first['num_steps']} steps per update, {first['updates']} updates), "
        f"one vmapped program sharded over the run axis; {results['cpu_count']} CPU cores; compile excluded.",
        "",
        "| host devices | runs | env steps | run (s) | compile (s) | (runs x env steps)/s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["runs"]:
        lines.append(f"| {row['devices']} | {row['runs']} | {row['env_steps']:,} | {row['run_s']:.1f} | "
                     f"{row['compile_s']:.1f} | {row['run_env_steps_per_s']:,.0f} |")
    lines.append("")
    lines.append(f"2 devices / 1 device: {results['speedup']:.2f}x.")
    if "ttosc" in results:
        first = results["ttosc"][0]
        lines += [
            "",
            f"TTOSC scan (`scan.py ttosc`) of {first['configs']} configs x {first['seeds']} seeds (M = 3, K = 10, "
            f"{first['num_envs']} envs, {first['frames']} frames), one vmapped program; compile excluded.",
            "",
            "| host devices | runs | env frames | run (s) | compile (s) | (runs x env frames)/s |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for row in results["ttosc"]:
            lines.append(f"| {row['devices']} | {row['runs']} | {row['env_steps']:,} | {row['run_s']:.1f} | "
                         f"{row['compile_s']:.1f} | {row['run_env_steps_per_s']:,.0f} |")
        lines += ["", f"2 devices / 1 device: {results['ttosc_speedup']:.2f}x."]
    return "\n".join(lines)


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    results = run(quick)
    print(markdown(results))
