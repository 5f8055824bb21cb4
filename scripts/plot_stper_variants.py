"""Training curves of STPer, STPer-L and STPer-M from their run folders (the paper's Fig. 3 metrics).

    python scripts/plot_stper_variants.py runs/variants-stper runs/variants-stper-l runs/variants-stper-m \
        --out docs/figures/stper_variants_training.png

Each run folder is one `scripts/train_stper.py --num-seeds S` run; the plot shows the mean over
seeds and a band of one standard deviation, for the episode return and the explained variance.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def load(run: Path) -> tuple[str, dict[str, np.ndarray]]:
    config = json.loads((run / "config.json").read_text())
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    seeds = sorted({int(r["seed"]) for r in rows})
    updates = sorted({int(r["update"]) for r in rows})
    data = {}
    for name in ("env_steps", "episode_return", "explained_variance"):
        table = np.full((len(seeds), len(updates)), np.nan)
        for r in rows:
            table[seeds.index(int(r["seed"])), updates.index(int(r["update"]))] = float(r[name])
        data[name] = table
    return config["ppo"]["variant"], data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of scripts/train_stper.py")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = parser.parse_args()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run in args.runs:
        variant, data = load(run)
        steps = data["env_steps"][0]
        for ax, name in zip(axes, ("episode_return", "explained_variance")):
            mean, std = np.nanmean(data[name], 0), np.nanstd(data[name], 0)
            ax.plot(steps, mean, label=f"{variant} ({data[name].shape[0]} seeds)")
            ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    axes[0].set_title("cumulative reward (episode profit)")
    axes[1].set_title("explained variance of the value function")
    for ax in axes:
        ax.set_xlabel("env steps per seed")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
