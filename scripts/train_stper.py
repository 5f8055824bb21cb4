"""Train the STPer PPO agent (or an ablation) on the green CPN: the ``jaxcpn train-stper`` job.

    python scripts/train_stper.py --help

The job is :mod:`agents.stper.train`; this file runs it from a checkout.
"""

from agents.stper.train import main

if __name__ == "__main__":
    raise SystemExit(main())
