"""Reproduce the STPer paper's Figs. 3-6: the ``jaxcpn reproduce-stper`` job.

    python scripts/reproduce_stper.py --figure all --out docs/figures   # the committed figures
    python scripts/reproduce_stper.py --figure 5 --quick                # a few CPU minutes

The job is :mod:`agents.stper.figures`; this file runs it from a checkout.
"""

from agents.stper.figures import main

if __name__ == "__main__":
    raise SystemExit(main())
