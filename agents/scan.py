"""Hyperparameter scans as one vmapped, device-sharded program: the engine both systems' scans use.

Every run of a grid (points x seeds) is one element of a ``vmap`` over the trainer's dynamic
hyperparameters and keys, and that run axis is split over the devices
(``NamedSharding(mesh, P("batch"))``). Seed ``s`` of a run uses ``fold_in(PRNGKey(seed), s)``
(:mod:`agents.seeds`), so a scan's run equals the training job's run with the same config and
seed. The system-specific grids are :mod:`agents.stper.scan` and :mod:`agents.ttosc.scan`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import jax
import numpy as np

from agents import outputs, sharding
from agents.seeds import seed_key


def train_runs(trainer, chunk_call, keys: np.ndarray, hparams, mesh, total: int, chunk_size: int, bar,
               runs_per_step: int, postfix_metric: str) -> tuple[dict, float, float]:
    """Trains ``R`` runs (keys ``(R, 2)``, hparams batched ``(R,)``) as one vmapped program split over ``mesh``.

    ``chunk_call(runner, n, hparams)`` runs ``n`` steps of one run. Returns the metrics
    ``{name: (R, total)}``, the execution seconds and the compile seconds.
    """
    split = sharding.batch_sharding(mesh)
    start = time.perf_counter()
    # Each run's initial state by the one-run program, stacked: jit(vmap(init)) of the LSTM
    # variants hung at 0% CPU on JAX 0.10.2 CPU (DESIGN.md section D); the result is the same.
    init = jax.jit(trainer.init)
    runner = jax.device_put(jax.tree.map(lambda *xs: np.stack(xs), *(jax.device_get(init(k)) for k in keys)), split)
    chunk_sizes = sorted({min(chunk_size, total - done) for done in range(0, total, chunk_size)})
    compiled = {
        n: jax.jit(jax.vmap(lambda r, h, n=n: chunk_call(r, n, h)), in_shardings=(split, split),
                   out_shardings=(split, split)).lower(runner, hparams).compile()
        for n in chunk_sizes
    }
    jax.block_until_ready(runner)
    compile_seconds = time.perf_counter() - start
    run_seconds = 0.0
    chunks = []
    done = 0
    while done < total:
        n = min(chunk_size, total - done)
        start = time.perf_counter()
        runner, chunk_metrics = compiled[n](runner, hparams)
        chunk_metrics = jax.device_get(chunk_metrics)
        run_seconds += time.perf_counter() - start
        chunks.append(chunk_metrics)
        done += n
        bar.update(n * runs_per_step)
        recent = np.asarray(chunk_metrics[postfix_metric])
        recent = recent[np.isfinite(recent)]
        bar.set_postfix(ret=f"{recent.mean():.3g}" if recent.size else "-")
    metrics = {name: np.concatenate([np.asarray(c[name]) for c in chunks], axis=1) for name in chunks[0]}
    return metrics, run_seconds, compile_seconds


def padded_runs(indices: list[int], num_seeds: int, seed: int, mesh) -> tuple[list[tuple[int, int]], np.ndarray, int]:
    """``(point, seed)`` runs padded (by repeating the last) to a multiple of the device count, their keys."""
    runs = [(i, s) for i in indices for s in range(num_seeds)]
    extra = -len(runs) % mesh.size
    runs = runs + [runs[-1]] * extra
    return runs, np.stack([np.asarray(seed_key(seed, s)) for _, s in runs]), extra


def write_outputs(out_dir: Path, points: list[dict], finals: np.ndarray, fields: Sequence[str],
                  ylabel: str) -> list[dict]:
    """Writes scan.csv, scan_summary.csv and scan.png; returns the summary rows, best first.

    Args:
        points: the ``C`` grid points (``{field: value}``).
        finals: ``(C, S)`` final return of every run.
        fields: the grid fields, in column order.
    """
    rows = [dict(config=c, **{k: point[k] for k in fields}, seed=s, final_return=float(finals[c, s]))
            for c, point in enumerate(points) for s in range(finals.shape[1])]
    outputs.write_csv(out_dir / "scan.csv", rows)
    summary = [dict(config=c, **{k: point[k] for k in fields}, mean=float(np.mean(finals[c])),
                    std=float(np.std(finals[c])), min=float(np.min(finals[c])), max=float(np.max(finals[c])))
               for c, point in enumerate(points)]
    summary.sort(key=lambda row: -row["mean"])
    outputs.write_csv(out_dir / "scan_summary.csv", summary)
    order = [row["config"] for row in summary]
    plt = outputs.pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(points) + 2), 4.2))
    x = np.arange(len(points))
    ax.errorbar(x, [finals[c].mean() for c in order], yerr=[finals[c].std() for c in order], fmt="o", capsize=3,
                label="mean ± std over seeds")
    for position, c in enumerate(order):
        ax.scatter(np.full(finals.shape[1], position), finals[c], s=10, color="grey", alpha=0.6)
    ax.set_xticks(x, [str(c) for c in order])
    ax.set_xlabel("config (see scan_summary.csv), best first")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    outputs.save_figure(fig, out_dir / "scan.png")
    return summary


def report(result: dict, summary: list[dict], fields: Sequence[str], top: int, unit: str, value: str) -> None:
    """Prints the scan's throughput and its ``top`` best configs."""
    rate = result["env_steps"] / result["run_seconds"]
    print(f"\ncompile {result['compile_seconds']:.1f} s, run {result['run_seconds']:.1f} s: "
          f"{rate:,.0f} (runs x {unit})/s\n")
    print(f"best {min(top, len(summary))} of {len(summary)} configs ({value}, mean ± std over seeds):")
    for row in summary[:top]:
        settings = ", ".join(f"{k}={row[k]:g}" for k in fields)
        print(f"  #{row['config']:<3} {row['mean']:10.3f} ± {row['std']:6.3f}   {settings}")
