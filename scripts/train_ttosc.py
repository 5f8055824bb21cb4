"""Train TTOSC (multi-agent DDQN deployment + convex scheduling): the ``jaxcpn train-ttosc`` job.

    python scripts/train_ttosc.py --help

The job is :mod:`agents.ttosc.train`; this file runs it from a checkout.
"""

from agents.ttosc.train import main

if __name__ == "__main__":
    raise SystemExit(main())
