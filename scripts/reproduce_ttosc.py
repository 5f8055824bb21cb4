"""Reproduce the TTOSC paper's Figs. 4-6 and decision times: the ``jaxcpn reproduce-ttosc`` job.

    python scripts/reproduce_ttosc.py --figure all --out docs/figures   # the committed figures
    python scripts/reproduce_ttosc.py --figure 5 --quick                # a tiny smoke run

The job is :mod:`agents.ttosc.figures`; this file runs it from a checkout.
"""

from agents.ttosc.figures import main

if __name__ == "__main__":
    raise SystemExit(main())
