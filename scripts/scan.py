"""Hyperparameter scans as one vmapped, device-sharded program: ``jaxcpn scan-stper`` / ``scan-ttosc``.

    python scripts/scan.py [stper] --learning-rates 3e-4 1e-3 --num-seeds 3   # STPer PPO (the default)
    python scripts/scan.py ttosc --learning-rates 1e-3 1e-2                   # TTOSC DDQN

The jobs are :mod:`agents.stper.scan` and :mod:`agents.ttosc.scan`; this file runs them from a
checkout.
"""

import sys

from agents.stper import scan as stper_scan
from agents.ttosc import scan as ttosc_scan


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ttosc"]:
        return ttosc_scan.main(argv[1:])
    return stper_scan.main(argv[1:] if argv[:1] == ["stper"] else argv)


if __name__ == "__main__":
    raise SystemExit(main())
