"""Benchmarks of jaxcpn, measured side by side in one process and reported as ratios.

Usage:
    python scripts/bench.py                       # every available section, full size
    python scripts/bench.py --sections cpn mec --quick
    python scripts/bench.py --out bench.json      # JSON next to the printed markdown tables

Each section lives in ``scripts/benchmarks/<name>.py`` with ``run(quick) -> dict`` and
``markdown(results) -> str``; docs/bench.md records the tables with the command.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

import jaxcpn  # noqa: F401  (first: sets the XLA:CPU flag before JAX initialises)
import jax
import tyro

SECTIONS = ("cpn", "mec", "routing", "ppo", "sb3", "scan")
# Sections that need an optional extra: skipped with a message when it is not installed.
OPTIONAL = {"sb3": ("stable_baselines3", "torch")}


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """Benchmarks of jaxcpn, side by side in one process (docs/bench.md)."""

    sections: tuple[str, ...] = SECTIONS
    """Sections to run, among cpn, mec, routing, ppo, sb3, scan."""
    quick: bool = False
    """Fewer repeats and smaller sizes (a smoke run)."""
    out: Path | None = None
    """Write all results as JSON to this file."""

    def __post_init__(self):
        unknown = sorted(set(self.sections) - set(SECTIONS))
        if unknown or not self.sections:
            raise ValueError(f"--sections={self.sections!r} is invalid: allowed are {', '.join(SECTIONS)}")


def main(argv=None) -> int:
    args = tyro.cli(BenchConfig, args=sys.argv[1:] if argv is None else argv, description=__doc__)
    chosen = list(args.sections)
    report = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "jax": jax.__version__,
                    "devices": [str(d) for d in jax.devices()]},
        "quick": args.quick,
    }
    for name in chosen:
        missing = [m for m in OPTIONAL.get(name, ()) if importlib.util.find_spec(m) is None]
        if missing:
            print(f"\n## {name}\n\nskipped: {missing} not installed (pip install torch==2.13.0 && pip install -e '.[bench]')\n")
            report[name] = {"skipped": f"missing {missing}"}
            continue
        module = importlib.import_module(f"benchmarks.{name}")
        start = time.perf_counter()
        results = module.run(quick=args.quick)
        results["section_seconds"] = time.perf_counter() - start
        report[name] = results
        print(f"\n## {name}\n\n{module.markdown(results)}\n", flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
