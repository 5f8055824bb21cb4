"""Trade-off diagnostics used to calibrate ``kappa`` and the workload scale (docs/model.md).

A default instance is useful only if scheduling is a real decision: the most profitable node for
a task must move with price, hydropower and load over a day, and no fixed assignment may be best.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxcpn.cpn.env import GreenCPN
from jaxcpn.cpn.types import CPNParams


def tradeoff_report(env: GreenCPN, params: CPNParams, key: jax.Array, num_envs: int = 256) -> dict:
    """Measures how much the best destination moves, and how policies compare, on one instance.

    Runs ``num_envs`` episodes; in each slot it evaluates the conflict-free profit of every
    (task, node) pair, the Greedy action (argmax), Random, every fixed single-node policy
    ("all tasks to node n") and the best static per-user assignment (each user always to the node
    with its highest mean conflict-free profit), all with link conflicts included.

    Returns:
        Dict of floats: ``best_node_changes`` (share of episode-users whose best node takes at
        least two values over the day), ``best_node_green_and_not`` (share whose best node is a
        green node in some slot and a non-green one in another), ``greedy``, ``random``,
        ``best_fixed_node``, ``static_assignment`` (mean episode profit of each policy).
    """
    cfg = env.config
    key_reset, key_random = jax.random.split(key)
    _, state0 = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key_reset, num_envs), params)
    times = jnp.arange(cfg.episode_length, dtype=jnp.int32)
    # States of every slot of every episode: (T, B).
    states = jax.vmap(lambda t: state0.replace(time=jnp.full_like(state0.time, t)))(times)
    over_slots = lambda f: jax.vmap(jax.vmap(f))  # noqa: E731

    profit_matrix = over_slots(lambda s: env.task_profit_matrix(s, params))(states)  # (T, B, U, N)
    best = jnp.argmax(profit_matrix, axis=-1)  # (T, B, U)
    changes = jnp.any(best != best[:1], axis=0)  # (B, U)
    best_green = params.green[best]
    green_and_not = jnp.any(best_green, axis=0) & jnp.any(~best_green, axis=0)

    def episode_profit(actions):  # actions (T, B, U) -> mean over episodes of the summed profit
        profit = over_slots(lambda s, a: env.evaluate_slot(s, a, params)["profit"])(states, actions)
        return profit.sum(0).mean()

    shape = best.shape
    random_actions = jax.random.randint(key_random, shape, 0, cfg.num_nodes, jnp.int32)
    fixed = jax.vmap(lambda n: episode_profit(jnp.full(shape, n, jnp.int32)))(jnp.arange(cfg.num_nodes))
    static = jnp.argmax(profit_matrix.mean(axis=(0, 1)), axis=-1).astype(jnp.int32)  # (U,)
    return dict(
        best_node_changes=changes.mean(),
        best_node_green_and_not=green_and_not.mean(),
        greedy=episode_profit(best.astype(jnp.int32)),
        random=episode_profit(random_actions),
        best_fixed_node=fixed.max(),
        static_assignment=episode_profit(jnp.broadcast_to(static, shape)),
    )
