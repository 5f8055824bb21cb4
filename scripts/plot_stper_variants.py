"""Training curves of several ``jaxcpn train-stper`` run folders in one PNG: ``jaxcpn plot-stper-curves``.

    python scripts/plot_stper_variants.py --runs runs/variants-stper runs/variants-stper-l runs/variants-stper-m \
        --out docs/figures/stper_variants_training.png

Mean over seeds and a band of one standard deviation, for the episode return and the explained
variance. The job is :func:`agents.stper.train.plot_main`.
"""

from agents.stper.train import plot_main

if __name__ == "__main__":
    raise SystemExit(plot_main())
