"""Roll out the model-based baselines (Random, Greedy, Oracle) on the green CPN: ``jaxcpn evaluate-cpn``.

    python scripts/evaluate_cpn.py --kappa 3e-4 --num-envs 1024

The job is :mod:`agents.stper.evaluate`; this file runs it from a checkout.
"""

from agents.stper.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
