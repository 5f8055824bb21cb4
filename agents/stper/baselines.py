"""Model-based and random baseline policies of the green CPN (pure JAX, vmappable).

Every policy has the signature ``policy(key, env, state, params) -> int32[U]`` so evaluation code
can treat them alike; ``key`` is unused by deterministic policies.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxcpn.cpn import CPNParams, CPNState, GreenCPN, routing_tables


def cpn_random(key: jax.Array, env: GreenCPN, state: CPNState, params: CPNParams) -> jax.Array:
    """Random: every task to a uniformly drawn node (paper's Random baseline)."""
    return env.action_space(params).sample(key)


def cpn_greedy(key: jax.Array, env: GreenCPN, state: CPNState, params: CPNParams) -> jax.Array:
    """Greedy: each task to the node with the best own profit, ignoring link conflicts."""
    del key
    return jnp.argmax(env.task_profit_matrix(state, params), axis=-1).astype(jnp.int32)


def cpn_oracle(key: jax.Array, env: GreenCPN, state: CPNState, params: CPNParams, sweeps: int = 3) -> jax.Array:
    """Oracle: per-slot coordinate ascent over all users' destinations with the true model.

    Starts from Greedy and, for ``sweeps`` rounds, sets each user's destination in turn to the
    node that maximises the slot profit with link conflicts included (all other users fixed).
    Slots are independent given the exogenous series, so the per-slot optimum is the episode
    optimum; coordinate ascent reaches a local optimum that is at least Greedy's profit.
    """
    del key
    num_users, num_nodes = env.config.num_users, env.config.num_nodes
    candidates = jnp.arange(num_nodes, dtype=jnp.int32)
    _, next_hop = routing_tables(params)  # once per slot, not once per trial

    def slot_profit(action):
        return env.evaluate_slot(state, action, params, next_hop)["profit"]

    def improve_user(action, user):
        trials = jnp.broadcast_to(action, (num_nodes, num_users)).at[:, user].set(candidates)
        profits = jax.vmap(slot_profit)(trials)
        return trials[jnp.argmax(profits)], None

    def sweep(action, _):
        action, _ = jax.lax.scan(improve_user, action, jnp.arange(num_users))
        return action, None

    start = cpn_greedy(None, env, state, params)
    action, _ = jax.lax.scan(sweep, start, None, length=sweeps)
    return action


CPN_POLICIES = {"random": cpn_random, "greedy": cpn_greedy, "oracle": cpn_oracle}


def rollout_cpn(policy, env: GreenCPN, params: CPNParams, key: jax.Array, num_envs: int) -> dict:
    """Runs ``num_envs`` parallel episodes of ``policy`` (one ``lax.scan`` over the episode).

    Returns:
        Dict of ``(T, num_envs)`` arrays: ``profit``, ``mean_delay``, ``miss_rate``.
    """
    key_reset, key_run = jax.random.split(key)
    _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key_reset, num_envs), params)

    def one_step(state, key):
        key_act, key_step = jax.random.split(key)
        keys_act = jax.random.split(key_act, num_envs)
        action = jax.vmap(policy, in_axes=(0, None, 0, None))(keys_act, env, state, params)
        _, state, reward, _, _, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(key_step, num_envs), state, action, params
        )
        metrics = dict(
            profit=reward,
            mean_delay=info["delay"].mean(-1),
            miss_rate=info["deadline_miss"].mean(-1),
        )
        return state, metrics

    _, metrics = jax.lax.scan(one_step, state, jax.random.split(key_run, env.config.episode_length))
    return metrics
