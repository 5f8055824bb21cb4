"""Flax networks of the agents."""

from agents.networks.stper import (
    VARIANTS,
    GCNLayer,
    STPerNetwork,
    batch_apply,
    dense_graph,
    entropy,
    log_prob,
    sample,
)

from agents.networks.ttosc import TTOSCNetwork, apply_agents, deployment_value, greedy_deployment, init_agents

__all__ = [
    "VARIANTS", "GCNLayer", "STPerNetwork", "TTOSCNetwork", "apply_agents", "batch_apply", "dense_graph",
    "deployment_value", "entropy", "greedy_deployment", "init_agents", "log_prob", "sample",
]
