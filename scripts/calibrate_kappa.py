"""Trade-off diagnostics over a grid of the energy coefficient ``kappa`` (docs/model.md).

    python scripts/calibrate_kappa.py --instance-seeds 0 1 2 --num-envs 256
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import tyro

from jaxcpn.cpn import CPNConfig, GreenCPN, generate_instance
from jaxcpn.cpn.calibration import tradeoff_report


@dataclasses.dataclass(frozen=True)
class Args:
    """Sweep kappa and print how much the best destination moves and how policies compare."""

    kappas: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    """Values of the energy coefficient."""
    instance_seeds: tuple[int, ...] = (0, 1, 2)
    """Instance seeds (results are averaged)."""
    num_envs: int = 256
    """Episodes per instance."""


def main(args: Args) -> None:
    config = CPNConfig()
    env = GreenCPN(config)
    report = jax.jit(lambda p, k: tradeoff_report(env, p, k, args.num_envs))
    header = ("kappa", "best moves", "green&not", "greedy", "random", "best node", "static", "greedy/static")
    print(" | ".join(f"{h:>12}" for h in header))
    for kappa in args.kappas:
        rows = []
        for seed in args.instance_seeds:
            params = generate_instance(jax.random.PRNGKey(seed), config, kappa=kappa)
            rows.append({k: float(v) for k, v in report(params, jax.random.PRNGKey(100 + seed)).items()})
        mean = {k: np.mean([r[k] for r in rows]) for k in rows[0]}
        ratio = np.mean([r["greedy"] / r["static_assignment"] for r in rows])
        values = (kappa, mean["best_node_changes"], mean["best_node_green_and_not"], mean["greedy"], mean["random"],
                  mean["best_fixed_node"], mean["static_assignment"], ratio)
        print(" | ".join(f"{v:>12.4g}" for v in values))


if __name__ == "__main__":
    main(tyro.cli(Args))
