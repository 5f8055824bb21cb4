"""The ``jaxcpn`` command: one subcommand per job, each a typed (tyro) front-end of library code.

    jaxcpn train-stper [--preset quick|paper] [--num-seeds N] [--run-dir D | --resume D] [--devices N]
    jaxcpn train-ttosc ...          jaxcpn reproduce-stper [--figure all] [--preset full|quick|paper] [--out D]
    jaxcpn reproduce-ttosc ...      jaxcpn scan-stper ... / scan-ttosc ...
    jaxcpn evaluate-cpn ...         jaxcpn plot-stper-curves --runs D ... --out PNG

``jaxcpn <job> --help`` lists a job's flags. The same things have the same flag names in every
job: ``--num-seeds``, ``--seed``, ``--preset``, ``--out`` (result files), ``--run-dir`` (a run's
folder), ``--devices``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Mapping, TypeVar

T = TypeVar("T")

JOBS = {
    "train-stper": ("agents.stper.train", "main", "train STPer (PPO) on the green CPN, compare with the baselines"),
    "train-ttosc": ("agents.ttosc.train", "main", "train TTOSC (multi-agent DDQN) on the MEC, compare with baselines"),
    "reproduce-stper": ("agents.stper.figures", "main", "the STPer paper's Figs. 3-6 (CSV + PNG)"),
    "reproduce-ttosc": ("agents.ttosc.figures", "main", "the TTOSC paper's Figs. 4-6 and decision times (CSV + PNG)"),
    "scan-stper": ("agents.stper.scan", "main", "PPO hyperparameter grid x seeds as one vmapped program"),
    "scan-ttosc": ("agents.ttosc.scan", "main", "DDQN hyperparameter grid x seeds as one vmapped program"),
    "evaluate-cpn": ("agents.stper.evaluate", "main", "Random, Greedy and Oracle on one CPN instance"),
    "evaluate-stper": ("agents.stper.evaluate", "evaluate_run_main",
                       "a saved train-stper run against the baselines, on its own or another instance; --render"),
    "evaluate-ttosc": ("agents.ttosc.evaluate", "main",
                       "a saved train-ttosc run against the baselines, on its own or another instance; --render"),
    "plot-stper-curves": ("agents.stper.train", "plot_main", "learning curves of train-stper run folders"),
    "where-learning-pays": ("agents.where_learning_pays", "main", "learned agents vs myopic and MPC baselines as coupling grows"),
}


def parse_with_presets(config_type: type[T], presets: Mapping[str, T], argv: list[str], description: str,
                       default_preset: str = "quick") -> T:
    """Parses ``argv`` with tyro, taking the defaults from the preset named by ``--preset``.

    ``--quick`` is a shorthand for ``--preset quick``.

    Raises:
        ValueError: ``--preset`` names no preset (the message lists the allowed ones).
    """
    import tyro

    argv = ["--preset=quick" if a == "--quick" and "quick" in presets else a for a in argv]
    preset = default_preset
    for i, arg in enumerate(argv):
        if arg == "--preset" and i + 1 < len(argv):
            preset = argv[i + 1]
        elif arg.startswith("--preset="):
            preset = arg.split("=", 1)[1]
    if preset not in presets:
        raise ValueError(f"--preset={preset!r} is invalid: allowed presets are {sorted(presets)}")
    return tyro.cli(config_type, default=presets[preset], args=argv, description=description)


def usage() -> str:
    width = max(map(len, JOBS))
    lines = [__doc__.strip().splitlines()[0], "", "usage: jaxcpn <job> [flags]   (jaxcpn <job> --help)", "", "jobs:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, _, text) in JOBS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Runs ``jaxcpn <job> ...``; returns the job's exit code (2 for an unknown job)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] not in JOBS:
        print(f"jaxcpn: unknown job {argv[0]!r}; allowed: {', '.join(JOBS)}\n\n{usage()}", file=sys.stderr)
        return 2
    import jaxcpn  # noqa: F401  (first: sets the XLA:CPU flag before JAX initialises)

    module, function, _ = JOBS[argv[0]]
    return getattr(importlib.import_module(module), function)(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
