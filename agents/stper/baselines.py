"""Model-based and random baseline policies of the green CPN (pure JAX, vmappable).

Every policy has the signature ``policy(key, env, state, params) -> decision`` so evaluation code
can treat them alike; ``key`` is unused by deterministic policies. A decision is either the
``int32[U]`` destinations (the environment's action: each task then travels the shortest path),
or a :class:`Schedule`, destinations and the routes to them, for a policy that also routes (the
paper's Random, :func:`cpn_random_routing`). :func:`evaluate_decision` scores either with the
environment's own delay and profit maths, and :func:`rollout_cpn` runs episodes of either.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcpn.cpn import CPNParams, CPNState, GreenCPN, model, routing_tables


class Schedule(NamedTuple):
    """A scheduling and routing decision for one slot.

    Attributes:
        destination: ``(U,)`` int32 destination node of each user's task (the env's action).
        next_hop: ``(U, N, N)`` int32 next-hop tables (``next_hop[u, i, j]``: the node after ``i``
            towards ``j``, as :func:`~jaxcpn.cpn.routing_tables` returns them); task ``u``
            travels from its user's node along ``next_hop[u, :, destination[u]]``.
    """

    destination: jax.Array
    next_hop: jax.Array


def evaluate_decision(env: GreenCPN, state: CPNState, decision, params: CPNParams) -> dict:
    """:meth:`GreenCPN.evaluate_slot` of a decision: destinations (shortest paths) or a :class:`Schedule`."""
    if isinstance(decision, Schedule):
        return env.evaluate_slot(state, decision.destination, params, decision.next_hop)
    return env.evaluate_slot(state, decision, params)


def cpn_random(key: jax.Array, env: GreenCPN, state: CPNState, params: CPNParams) -> jax.Array:
    """Random destinations: every task to a uniformly drawn node, routed by the env's shortest path.

    The first Random of this project (``"random-shortest"`` in :data:`CPN_POLICIES`); the paper's
    Random also routes at random (:func:`cpn_random_routing`).
    """
    return env.action_space(params).sample(key)


def random_next_hops(key: jax.Array, params: CPNParams) -> jax.Array:
    """Next-hop tables of random simple paths, one table per user.

    Each user's table holds the shortest paths under its own i.i.d. link weights, uniform on
    ``(0, 1]``. A shortest path under positive weights is a simple path over existing links, and
    every simple path from ``i`` to ``j`` has a positive probability (give its links weights below
    ``1 / N`` and all others more), so this is a jittable sampler of random simple paths between
    any two connected nodes; it favours paths of few hops but draws long ones too. The weights are
    drawn per ordered pair, so the route of ``i -> j`` is drawn independently of ``j -> i``.

    Args:
        key: PRNG key.
        params: the instance (``adjacency`` ``(N, N)`` bool, ``user_node`` ``(U,)``).

    Returns:
        ``(U, N, N)`` int32 next hops (``-1`` where unreachable), as :func:`~jaxcpn.cpn.routing_tables`.
    """
    num_users, num_nodes = params.user_node.shape[0], params.adjacency.shape[0]
    weight = 1.0 - jax.random.uniform(key, (num_users, num_nodes, num_nodes), jnp.float32)  # (0, 1]
    _, next_hop = jax.vmap(model.shortest_paths)(jnp.where(params.adjacency, weight, jnp.inf))
    return next_hop


def cpn_random_routing(key: jax.Array, env: GreenCPN, state: CPNState, params: CPNParams) -> Schedule:
    """Random (the paper's Random, "random scheduling and routing"): every task to a uniformly
    drawn node over a random simple path (:func:`random_next_hops`).

    The destinations are :func:`cpn_random`'s for the same key, so the two Randoms differ only
    by their routes. Requires ``"shortest"`` routing (the ``"milp"`` env routes every task itself)
    and routes of up to ``N - 1`` hops (``max_hops`` unset or at least ``N - 1``).

    Raises:
        ValueError: the env's config cannot carry random routes.
    """
    config = env.config
    if config.routing != "shortest":
        raise ValueError(f"cpn_random_routing needs CPNConfig.routing='shortest', not {config.routing!r}: the "
                         "MILP routes every task itself (use cpn_random, 'random-shortest')")
    if config.hops < config.num_nodes - 1:
        raise ValueError(f"cpn_random_routing needs routes of up to N - 1 = {config.num_nodes - 1} hops, but "
                         f"CPNConfig.max_hops={config.max_hops} (leave it None)")
    key_destination, key_route = jax.random.split(key)
    return Schedule(destination=cpn_random(key_destination, env, state, params),
                    next_hop=random_next_hops(key_route, params))


def cpn_greedy(key: jax.Array, env: GreenCPN, state: CPNState, params: CPNParams) -> jax.Array:
    """Greedy: each task to the node with the best own profit, ignoring link conflicts."""
    del key
    return jnp.argmax(env.task_profit_matrix(state, params), axis=-1).astype(jnp.int32)


def cpn_coordinate_ascent(key: jax.Array, env: GreenCPN, state: CPNState, params: CPNParams, sweeps: int = 3) -> jax.Array:
    """Per-slot coordinate ascent over all users' destinations with the true model (``"coord-ascent"``).

    Starts from Greedy and, for ``sweeps`` rounds, sets each user's destination in turn to the
    node that maximises the slot profit with link conflicts included (all other users fixed).
    Slots are independent given the exogenous series, so the per-slot optimum is the episode
    optimum; coordinate ascent reaches a local optimum that is at least Greedy's profit. It is a
    clairvoyant heuristic, not a bound (it was called the Oracle): :mod:`agents.stper.bounds` has
    the upper bound and the exact per-slot optimum.
    """
    del key
    num_nodes = env.config.num_nodes
    candidates = jnp.arange(num_nodes, dtype=jnp.int32)
    _, next_hop = routing_tables(params)  # once per slot, not once per trial

    def slot_profit(action):
        return env.evaluate_slot(state, action, params, next_hop)["profit"]

    return _coordinate_ascent(slot_profit, cpn_greedy(None, env, state, params), candidates, sweeps)


def _coordinate_ascent(objective, start: jax.Array, candidates: jax.Array, sweeps: int) -> jax.Array:
    """``sweeps`` passes over the users, each setting one user's destination to the candidate of
    the best ``objective`` (all candidates scored in one ``vmap``; ties to the lowest node)."""
    num_users = start.shape[0]

    def improve_user(action, user):
        trials = jnp.broadcast_to(action, (candidates.shape[0], num_users)).at[:, user].set(candidates)
        return trials[jnp.argmax(jax.vmap(objective)(trials))], None

    def sweep(action, _):
        action, _ = jax.lax.scan(improve_user, action, jnp.arange(num_users))
        return action, None

    action, _ = jax.lax.scan(sweep, start, None, length=sweeps)
    return action


def _require_count(name: str, value) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"cpn_clairvoyant_mpc: {name}={value!r} is invalid: must be an int >= 1")


def greedy_lookahead(env: GreenCPN, state: CPNState, action: jax.Array, params: CPNParams, horizon: int,
                     next_hop: jax.Array | None = None) -> dict:
    """The next ``horizon`` slots as the env will play them: ``action`` now, then Greedy (pure).

    Nothing in a slot's outcome is random given the state: ``step`` ignores its key, and the
    workloads, prices and hydro of every slot of the series are fixed by the instance
    (``params.workload_shock``, ``price_series``, ``hydro_series`` at index ``start + time``,
    :meth:`GreenCPN.slot_inputs`). So the look-ahead is exact foresight, not a forecast: each
    slot is :meth:`GreenCPN.evaluate_slot` on the state ``step`` would reach (time + 1, and with
    ``compute_sharing`` the node backlog the previous slot left), and slot ``k >= 1`` plays
    :func:`cpn_greedy` on that state. Slots at or past the episode's end (``time + k >=
    episode_length``) are flagged not ``valid``: the episode's last queue is dropped with the
    reset, so they earn nothing here.

    Args:
        action: ``(U,)`` int32 destinations of the current slot.
        horizon: static ``H >= 1`` slots, the current one included.
        next_hop: ``(U, N, N)`` from :func:`~jaxcpn.cpn.routing_tables` (computed if None).

    Returns:
        dict of ``(H, ...)`` arrays, slot ``k`` of the plan in row ``k``: ``action`` ``(H, U)``
        int32, ``profit`` ``(H,)`` (0 where not valid), ``workload`` ``(H, U)`` TFLOP, ``price``
        ``(H,)``, ``discount`` ``(H, N)`` (the slot's exogenous numbers), ``backlog`` ``(H, N)``
        TFLOP at the slot's start (zeros without ``compute_sharing``), ``valid`` ``(H,)`` bool.
    """
    if next_hop is None:
        _, next_hop = routing_tables(params)
    sharing = env.config.compute_sharing

    def play(state, action):
        info = env.evaluate_slot(state, action, params, next_hop)
        workload, price, discount = env.slot_inputs(state, params)
        valid = state.time < env.config.episode_length
        slot = dict(action=action, profit=jnp.where(valid, info["profit"], 0.0), workload=workload, price=price,
                    discount=discount, valid=valid,
                    backlog=state.backlog if sharing else jnp.zeros_like(params.power))
        next_state = state.replace(time=state.time + 1)
        if sharing:
            next_state = next_state.replace(backlog=info["backlog"])
        return next_state, slot

    def greedy_slot(state, _):
        return play(state, cpn_greedy(None, env, state, params))

    state, first = play(state, jnp.asarray(action, jnp.int32))
    _, rest = jax.lax.scan(greedy_slot, state, None, length=horizon - 1)
    return jax.tree.map(lambda now, later: jnp.concatenate([now[None], later]), first, rest)


def cpn_clairvoyant_mpc(key: jax.Array, env: GreenCPN, state: CPNState, params: CPNParams, horizon: int = 3,
                        sweeps: int = 2) -> jax.Array:
    """Horizon-H clairvoyant MPC of shared compute (``"mpc"``): this slot's destinations, priced
    with the queues they leave to the next ``horizon - 1`` slots.

    Coordinate ascent as :func:`cpn_coordinate_ascent` (from Greedy, ``sweeps`` rounds over the
    users, each set to its best node with the others fixed) on the objective "profit of this
    slot plus the profits of the next ``horizon - 1`` slots played by Greedy from the backlog
    this choice leaves" (:func:`greedy_lookahead`). The foresight is exact: the env's slots are
    deterministic given the state (the workload noise, prices and hydro are series of the
    instance), so the look-ahead plays the very numbers ``step`` will; slots past the episode's
    end count 0. It applies the first slot's destinations and replans the next slot (receding
    horizon). A heuristic reference for what foresight is worth, not a bound or an optimum:
    the later slots are Greedy's, not optimised, and coordinate ascent stops at a local
    optimum; its objective is at least the all-Greedy plan's (the ascent starts there and only
    improves). ``N U sweeps`` plans of ``horizon`` slots are scored per decision. It reads the
    state, not the observation, so it sees the current workloads also with
    ``observe_current_workload=False``. The look-ahead prices the backlog by what it costs
    Greedy, not the replanning MPC, and on the default instance it ends below the myopic
    :func:`cpn_coordinate_ascent` (docs/model.md, "Coupled dynamics").

    With ``CPNConfig.compute_sharing`` off the slots are independent (no state but the clock),
    so the later slots' profits do not depend on this choice: the MPC is then exactly
    :func:`cpn_coordinate_ascent` with the same ``sweeps`` (it calls it, a branch on the static
    config). With ``horizon=1`` it maximises this slot's profit alone, the same ascent.

    Args:
        key: unused (deterministic).
        horizon: static ``H >= 1`` slots of foresight, the current one included.
        sweeps: static rounds of coordinate ascent over the users, ``>= 1``.

    Returns:
        ``(U,)`` int32 destinations of the current slot.

    Raises:
        ValueError: ``horizon`` or ``sweeps`` is not an int ``>= 1``.
    """
    _require_count("horizon", horizon)
    _require_count("sweeps", sweeps)
    if not env.config.compute_sharing:
        return cpn_coordinate_ascent(key, env, state, params, sweeps)
    num_nodes = env.config.num_nodes
    candidates = jnp.arange(num_nodes, dtype=jnp.int32)
    _, next_hop = routing_tables(params)  # once per slot, not once per trial

    def planned_profit(action):
        return jnp.sum(greedy_lookahead(env, state, action, params, horizon, next_hop)["profit"])

    return _coordinate_ascent(planned_profit, cpn_greedy(None, env, state, params), candidates, sweeps)


CPN_POLICIES = {"random": cpn_random_routing, "random-shortest": cpn_random, "greedy": cpn_greedy,
                "coord-ascent": cpn_coordinate_ascent, "mpc": cpn_clairvoyant_mpc}
"""The baselines by name: ``"random"`` is the paper's (random destinations and routes), ``"random-shortest"``
the earlier one (random destinations, shortest paths); ``"mpc"`` is the horizon-3 clairvoyant MPC
(coordinate ascent with sharing off)."""


def rollout_cpn(policy, env: GreenCPN, params: CPNParams, key: jax.Array, num_envs: int) -> dict:
    """Runs ``num_envs`` parallel episodes of ``policy`` (one ``lax.scan`` over the episode).

    A policy returning destinations steps the env; one returning a :class:`Schedule` is scored
    by :func:`evaluate_decision` on its routes and advances the slot as ``step`` does (the next
    slot, and with ``CPNConfig.compute_sharing`` the node queues it leaves; no episode ends
    before the scan's last step, so no reset is needed).

    Returns:
        Dict of ``(T, num_envs)`` arrays: ``profit``, ``mean_delay``, ``miss_rate``, and
        ``bound``, the conflict-free upper bound on any decision's profit in the same slot
        (:func:`agents.stper.bounds.conflict_free_bound`; it depends on the slot, not the policy).
    """
    from agents.stper.bounds import conflict_free_bound  # bounds scores decisions with this module
    key_reset, key_run = jax.random.split(key)
    _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key_reset, num_envs), params)

    def one_step(state, key):
        key_act, key_step = jax.random.split(key)
        keys_act = jax.random.split(key_act, num_envs)
        decision = jax.vmap(policy, in_axes=(0, None, 0, None))(keys_act, env, state, params)
        bound = jax.vmap(conflict_free_bound, in_axes=(None, 0, None))(env, state, params)
        if isinstance(decision, Schedule):
            info = jax.vmap(evaluate_decision, in_axes=(None, 0, 0, None))(env, state, decision, params)
            state, reward = state.replace(time=state.time + 1), info["profit"]
            if env.config.compute_sharing:  # the queues carry over, as in step_env
                state = state.replace(backlog=info["backlog"])
        else:
            _, state, reward, _, _, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(key_step, num_envs), state, decision, params
            )
        metrics = dict(
            profit=reward,
            mean_delay=info["delay"].mean(-1),
            miss_rate=info["deadline_miss"].mean(-1),
            bound=bound,
        )
        return state, metrics

    _, metrics = jax.lax.scan(one_step, state, jax.random.split(key_run, env.config.episode_length))
    return metrics
