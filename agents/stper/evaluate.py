"""The CPN baseline evaluation (``jaxcpn evaluate-cpn``): Random, Greedy, Oracle on one instance.

    jaxcpn evaluate-cpn                   # default instance, 256 parallel episodes
    jaxcpn evaluate-cpn --kappa 3e-4 --num-envs 1024
"""

from __future__ import annotations

import dataclasses
import sys
import time

import jax
import tyro

from agents.stper.baselines import CPN_POLICIES, rollout_cpn
from jaxcpn.cpn import CPNConfig, GreenCPN, generate_instance, validate_params


@dataclasses.dataclass(frozen=True)
class Args:
    """Evaluate baseline policies on parallel episodes of one instance."""

    seed: int = 0
    """Instance and rollout seed."""
    num_envs: int = 256
    """Parallel episodes per policy."""
    num_nodes: int = 10
    """Compute nodes."""
    num_users: int = 10
    """Users (one task each per slot)."""
    episode_length: int = 24
    """Slots (hours) per episode."""
    kappa: float | None = None
    """Energy coefficient; the calibrated default when not given."""
    policies: tuple[str, ...] = ("random", "greedy", "oracle")
    """Which of random, greedy, oracle to run."""


def evaluate_baselines(args: Args) -> dict:
    """Rolls out each policy on ``args.num_envs`` episodes, prints the table, returns its rows."""
    unknown = sorted(set(args.policies) - set(CPN_POLICIES))
    if unknown:
        raise ValueError(f"--policies: unknown {unknown}; allowed: {sorted(CPN_POLICIES)}")
    config = CPNConfig(num_nodes=args.num_nodes, num_users=args.num_users, episode_length=args.episode_length)
    overrides = {} if args.kappa is None else {"kappa": args.kappa}
    params = validate_params(generate_instance(jax.random.PRNGKey(args.seed), config, **overrides), config)
    env = GreenCPN(config)
    rows = {}
    for name in args.policies:
        start = time.perf_counter()
        run = jax.jit(lambda key, policy=CPN_POLICIES[name]: rollout_cpn(policy, env, params, key, args.num_envs))
        metrics = jax.device_get(run(jax.random.PRNGKey(args.seed + 1)))
        rows[name] = dict(
            episode_profit=float(metrics["profit"].sum(0).mean()),
            episode_profit_std=float(metrics["profit"].sum(0).std()),
            mean_delay=float(metrics["mean_delay"].mean()),
            miss_rate=float(metrics["miss_rate"].mean()),
            seconds=time.perf_counter() - start,
        )
    print(f"green CPN, N={config.num_nodes}, U={config.num_users}, T={config.episode_length}, "
          f"kappa={float(params.kappa):g}, {args.num_envs} episodes per policy")
    print(f"{'policy':<8} {'profit/episode':>16} {'mean delay (s)':>15} {'deadline misses':>16} {'time (s)':>9}")
    for name, r in rows.items():
        print(f"{name:<8} {r['episode_profit']:>9.1f} ± {r['episode_profit_std']:<5.1f} {r['mean_delay']:>15.3f} "
              f"{100 * r['miss_rate']:>15.1f}% {r['seconds']:>9.1f}")
    return rows


def main(argv: list[str] | None = None) -> int:
    """``jaxcpn evaluate-cpn``."""
    evaluate_baselines(tyro.cli(Args, args=sys.argv[1:] if argv is None else argv))
    return 0
