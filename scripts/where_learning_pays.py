"""Where does learning pay? The ``jaxcpn where-learning-pays`` job.

    python scripts/where_learning_pays.py --preset full --out docs/figures   # the committed files
    python scripts/where_learning_pays.py --quick                           # a smoke run, < 1 min

The job is :mod:`agents.where_learning_pays`; this file runs it from a checkout.
"""

from agents.where_learning_pays import main

if __name__ == "__main__":
    raise SystemExit(main())
