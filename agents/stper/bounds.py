"""Per-slot bounds of the green CPN (STPer): an exact optimum and a proven upper bound on the slot profit.

Slots are independent in the paper's model: a slot's profit depends only on its exogenous
numbers (workloads, price, hydro discount) and its own destinations, never on earlier
decisions, so the per-slot optimum summed over an episode is the episode optimum and a per-slot
upper bound summed over an episode bounds any policy's episode profit.

- :func:`conflict_free_bound` (any size, pure JAX): ``sum_u max_n P[u, n]`` with ``P`` the
  conflict-free profit of each task at each destination (``GreenCPN.task_profit_matrix``). A
  proven upper bound (proof in its docstring).
- :func:`exhaustive_slot_optimum` (small instances, pure JAX): the exact optimum over all
  ``N ** U`` destination vectors, each scored with ``GreenCPN.evaluate_slot``.
- :func:`certified_slot_optimum` (any size, host loop over jitted scoring): the exact optimum
  by enumerating only the destination vectors whose conflict-free profit can still beat an
  incumbent (the bound prunes the rest); it reports when the enumeration would be too large.
- :func:`measure_gaps`: every baseline's slot profit against the bound on parallel episodes.

A slot's profit is evaluated by the environment itself, so these functions follow the config's
routing and link-conflict rule (``"shortest"`` routing with ``"arrival"`` or ``"priority"``
conflicts; under ``"milp"`` routing the bound still holds, see :func:`conflict_free_bound`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcpn.cpn import CPNParams, CPNState, GreenCPN, routing_tables

EXHAUSTIVE_LIMIT = 2**22
"""Most destination vectors :func:`exhaustive_slot_optimum` accepts (``N ** U``); 4 M scores take
seconds on a CPU, and the index arithmetic stays well inside int32."""


def conflict_free_bound(env: GreenCPN, state: CPNState, params: CPNParams) -> jax.Array:
    """Upper bound on the current slot's profit over every destination vector: ``sum_u max_n P[u, n]``.

    ``P = env.task_profit_matrix(state, params)`` is the profit ``R_u - E_u`` (eqs. 3, 5) of
    task ``u`` at destination ``n`` when it is alone in the network: shortest route, no waiting
    (``t_off = 0``, eq. 2).

    Proof. Fix any destination vector ``a``. (i) Every task's delay under ``a`` is at least its
    conflict-free delay at ``a_u``: ``t_sum = t_tr + t_off + t_comp`` (eq. 2) where ``t_comp =
    m_u / f_n`` does not depend on other tasks (a node's computing power is not shared in the
    model), ``t_off >= 0`` (waiting for a busy link, FIFO or priority), and ``t_tr`` is eq. (1)
    on the route used, at least the shortest route's: every route is a path from the user's
    node, and the env's routing tables minimise eq. (1)'s per-hop sum ``r / b_e + t_sw_n`` over
    all paths (Floyd-Warshall). This covers the env's shortest paths, a routing policy's own
    next-hop tables (the paper's Random, ``baselines.Schedule``) and ``"milp"`` routing (simple
    paths, with ``t_off = max(t_sum - t_comp - t_tr, 0) >= 0``). With ``CPNConfig.compute_sharing``
    the node queue adds a wait ``t_queue >= 0`` (``model.node_fifo``) and ``t_comp`` is unchanged,
    so ``P`` is taken with the queues empty (``backlog = 0``): the bound then depends only on the
    slot's exogenous inputs, not on the backlog a policy left, and bounds every policy's profit in
    every slot of an episode (``task_profit_matrix`` of the actual state, which waits for the
    backlog, would bound only decisions taken from that state). (ii) A task's paid revenue is non-increasing
    in its delay: ``R = p (1 + eta / t) m`` (eq. 3) with ``p, eta >= 0`` and ``m > 0``
    (``validate_params``), times 1 up to the deadline and ``late_revenue_fraction`` in ``[0, 1]``
    after it, a non-increasing non-negative factor. (iii) The cost ``E_u`` (eq. 5) depends only
    on ``m_u`` and the destination's power, price and discount, not on delays or other tasks.
    So task ``u``'s profit under ``a`` is at most ``P[u, a_u] <= max_n P[u, n]``, and the slot
    profit (eq. 15, a sum over tasks) is at most the sum of the maxima. The bound is attained
    exactly when the per-task best destinations (Greedy) cause no waiting. Equal up to float32
    rounding (about 1e-6 relative) to the true supremum.

    Args:
        env: the environment (its ``task_profit_matrix``).
        state: the slot (``time`` and ``start``).
        params: the instance.

    Returns:
        () float32, profit units.
    """
    if env.config.compute_sharing:  # empty queues: a bound for every trajectory, not only this state's
        state = state.replace(backlog=jnp.zeros_like(state.backlog))
    return jnp.sum(jnp.max(env.task_profit_matrix(state, params), axis=-1))


def destinations_of_index(index: jax.Array, num_nodes: int, num_users: int) -> jax.Array:
    """The destination vector with number ``index`` in base ``N`` (user 0 the lowest digit).

    Args:
        index: () int32 in ``[0, N ** U)``.

    Returns:
        (U,) int32.
    """
    place = jnp.asarray([num_nodes**u for u in range(num_users)], jnp.int32)
    return ((index // place) % num_nodes).astype(jnp.int32)


class SlotOptimum(NamedTuple):
    """An exact per-slot optimum.

    Attributes:
        action: (U,) int32, an optimal destination vector.
        profit: () float32, its slot profit (``evaluate_slot``).
    """

    action: jax.Array
    profit: jax.Array


def exhaustive_slot_optimum(env: GreenCPN, state: CPNState, params: CPNParams, batch_size: int = 4096) -> SlotOptimum:
    """Exact optimum of the current slot by scoring all ``N ** U`` destination vectors (jittable).

    Each vector is scored with ``env.evaluate_slot`` (link conflicts and deadlines included),
    ``batch_size`` at a time (``lax.map``), so memory stays bounded. Ties go to the lowest index.

    Args:
        env: the environment; ``N ** U`` must be at most ``EXHAUSTIVE_LIMIT``.
        state: the slot.
        params: the instance.
        batch_size: vectors scored per vectorised batch.

    Returns:
        :class:`SlotOptimum`.

    Raises:
        ValueError: when ``N ** U`` exceeds ``EXHAUSTIVE_LIMIT`` (use :func:`certified_slot_optimum`).
    """
    num_nodes, num_users = env.config.num_nodes, env.config.num_users
    total = num_nodes**num_users
    if total > EXHAUSTIVE_LIMIT:
        raise ValueError(f"exhaustive search over N ** U = {num_nodes}^{num_users} = {total} destination vectors is "
                         f"too large (limit {EXHAUSTIVE_LIMIT}); use certified_slot_optimum")
    _, next_hop = routing_tables(params)

    def score(index):
        action = destinations_of_index(index, num_nodes, num_users)
        return env.evaluate_slot(state, action, params, next_hop)["profit"]

    profits = jax.lax.map(score, jnp.arange(total, dtype=jnp.int32), batch_size=min(batch_size, total))
    best = jnp.argmax(profits).astype(jnp.int32)
    return SlotOptimum(destinations_of_index(best, num_nodes, num_users), profits[best])


class CertifiedOptimum(NamedTuple):
    """Result of :func:`certified_slot_optimum` (host values).

    Attributes:
        action: (U,) int32 best destination vector found.
        profit: its slot profit.
        bound: :func:`conflict_free_bound` of the slot.
        certified: True when ``profit`` is the exact optimum (every vector that could beat it
            was scored); False when the enumeration was larger than ``max_candidates``, and
            then only ``profit <= optimum <= bound`` is known.
        candidates: vectors scored (or, when not certified, at least how many would have been).
    """

    action: np.ndarray
    profit: float
    bound: float
    certified: bool
    candidates: int


def _within_budget(loss: np.ndarray, budget: float, limit: int) -> np.ndarray | None:
    """All destination vectors with ``sum_u loss[u, a_u] <= budget``; None when more than ``limit``.

    Args:
        loss: (U, N) non-negative, ``max_n P[u, n] - P[u, n]``.

    Returns:
        (C, U) int32, or None.
    """
    order = np.argsort(loss, axis=1, kind="stable")
    sorted_loss = np.take_along_axis(loss, order, axis=1)
    num_users = loss.shape[0]
    # The cheapest completion of users u.. is the sum of their zero minima; a prefix is extended
    # only while its loss fits the budget.
    found: list[list[int]] = []
    prefix: list[int] = []

    def extend(user: int, remaining: float) -> bool:
        if user == num_users:
            found.append(list(prefix))
            return len(found) <= limit
        for rank in range(loss.shape[1]):
            value = sorted_loss[user, rank]
            if value > remaining:
                break
            prefix.append(int(order[user, rank]))
            ok = extend(user + 1, remaining - value)
            prefix.pop()
            if not ok:
                return False
        return True

    if not extend(0, budget):
        return None
    return np.asarray(found, np.int32).reshape(-1, num_users)


def certified_slot_optimum(env: GreenCPN, state: CPNState, params: CPNParams, incumbent: jax.Array | None = None,
                           max_candidates: int = 200_000, batch_size: int = 4096,
                           tolerance: float = 1e-5) -> CertifiedOptimum:
    """Exact optimum of one slot at any size, by bound-pruned enumeration (host loop, jitted scoring).

    A destination vector ``a`` can beat an incumbent of profit ``z`` only if its conflict-free
    profit does, ``sum_u P[u, a_u] > z`` (:func:`conflict_free_bound`'s proof: the true profit is
    at most the conflict-free one), i.e. only if its total loss ``sum_u (max_n P[u, n] -
    P[u, a_u])`` is below ``bound - z``. Every such vector is enumerated (depth-first over users,
    destinations in order of loss) and scored with ``evaluate_slot``; the best of them and the
    incumbent is the exact optimum. When the incumbent already attains the bound (within
    ``tolerance``, relative, for float32 rounding), it is optimal and nothing is enumerated.

    Args:
        env: the environment.
        state: one slot (unbatched).
        params: the instance.
        incumbent: (U,) int32 starting vector; default Greedy (``argmax_n P[u, n]``).
        max_candidates: largest enumeration attempted.
        batch_size: vectors per jitted scoring call (the last batch is padded).
        tolerance: relative slack for float32 rounding in the pruning test.

    Returns:
        :class:`CertifiedOptimum`.
    """
    num_users = env.config.num_users
    matrix = np.asarray(jax.device_get(_profit_matrix(env)(state, params)), np.float64)
    best_each = matrix.max(axis=1)
    bound = float(best_each.sum())
    score = _batch_scorer(env)
    action = np.argmax(matrix, axis=1).astype(np.int32) if incumbent is None else np.asarray(incumbent, np.int32)
    profit = float(score(state, action[None], params)[0])
    slack = tolerance * max(abs(bound), 1.0)
    if profit >= bound - slack:
        return CertifiedOptimum(action, profit, bound, True, 0)
    candidates = _within_budget(best_each[:, None] - matrix, bound - profit + slack, max_candidates)
    if candidates is None:
        return CertifiedOptimum(action, profit, bound, False, max_candidates + 1)
    for first in range(0, len(candidates), batch_size):
        chunk = candidates[first:first + batch_size]
        padded = np.concatenate([chunk, np.repeat(chunk[:1], batch_size - len(chunk), axis=0)])
        profits = np.asarray(score(state, padded, params))[:len(chunk)]
        i = int(np.argmax(profits))
        if profits[i] > profit:
            action, profit = chunk[i].astype(np.int32), float(profits[i])
    assert action.shape == (num_users,)
    return CertifiedOptimum(action, profit, bound, True, len(candidates))


_SCORERS: dict = {}
_MATRICES: dict = {}


def _profit_matrix(env: GreenCPN):
    """Jitted ``task_profit_matrix`` of ``env`` (built once per config)."""
    if env.config not in _MATRICES:
        _MATRICES[env.config] = jax.jit(env.task_profit_matrix)
    return _MATRICES[env.config]


def _batch_scorer(env: GreenCPN):
    """Jitted ``(state, actions (B, U), params) -> profits (B,)`` of ``env`` (built once per config)."""
    if env.config not in _SCORERS:
        def score(state, actions, params):
            _, next_hop = routing_tables(params)
            return jax.vmap(lambda a: env.evaluate_slot(state, a, params, next_hop)["profit"])(actions)

        _SCORERS[env.config] = jax.jit(score)
    return _SCORERS[env.config]


# ----------------------------------------------------------------------------- gaps of the baselines


def slot_profits(env: GreenCPN, params: CPNParams, policies: dict, key: jax.Array, num_envs: int) -> dict:
    """Every policy's profit in every slot of ``num_envs`` episodes, and the slot's bound (jit it outside).

    All policies act on the same slots (the episodes' start hours come from ``key``), and each
    slot is scored from the same state: the policy's earlier decisions do not change a slot.

    Args:
        policies: name -> ``policy(key, env, state, params) -> decision`` (``agents.stper.baselines``:
            destinations or a ``Schedule``, scored by ``baselines.evaluate_decision``).

    Returns:
        dict name -> (T, num_envs) float32 slot profits, plus ``"bound"`` (T, num_envs).
    """
    from agents.stper.baselines import evaluate_decision

    key_reset, key_act = jax.random.split(key)
    _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key_reset, num_envs), params)

    def slot(time, key):
        states = state.replace(time=jnp.full_like(state.time, time))
        keys = jax.random.split(key, num_envs)
        out = {"bound": jax.vmap(conflict_free_bound, (None, 0, None))(env, states, params)}
        for name, policy in policies.items():
            action = jax.vmap(policy, in_axes=(0, None, 0, None))(keys, env, states, params)
            out[name] = jax.vmap(lambda s, a: evaluate_decision(env, s, a, params)["profit"])(states, action)
        return out

    times = jnp.arange(env.config.episode_length, dtype=jnp.int32)
    return jax.lax.map(lambda args: slot(*args), (times, jax.random.split(key_act, env.config.episode_length)))


def gap_table(profits: dict) -> dict:
    """Mean slot profit of each method and its gap to the bound.

    Args:
        profits: the output of :func:`slot_profits` (host or device arrays).

    Returns:
        dict name -> ``{"profit": mean slot profit, "gap": mean (bound - profit), "relative_gap":
        sum (bound - profit) / sum bound, "slots_at_bound": fraction within 1e-5 relative}``.
    """
    bound = np.asarray(profits["bound"], np.float64)
    table = {"bound": {"profit": float(bound.mean()), "gap": 0.0, "relative_gap": 0.0, "slots_at_bound": 1.0}}
    for name, value in profits.items():
        if name == "bound":
            continue
        value = np.asarray(value, np.float64)
        gap = bound - value
        table[name] = {"profit": float(value.mean()), "gap": float(gap.mean()),
                       "relative_gap": float(gap.sum() / bound.sum()),
                       "slots_at_bound": float(np.mean(gap <= 1e-5 * np.maximum(np.abs(bound), 1.0)))}
    return table


def measure_gaps(config=None, seed: int = 0, num_envs: int = 16, kappa: float | None = None,
                 certify: int = 0) -> dict:
    """Gaps of every ``CPN_POLICIES`` baseline (Randoms, Greedy, the coordinate ascent) to the bound; prints a table.

    Args:
        config: ``CPNConfig`` (default: the default instance, N = U = 10).
        seed: instance seed (``generate_instance(PRNGKey(seed))``); episodes use ``seed + 1``.
        num_envs: parallel episodes (each of ``episode_length`` slots).
        kappa: energy coefficient override (default: the calibrated one).
        certify: also run :func:`certified_slot_optimum` on this many slots (episode 0's first
            ones) and report how many it certified.

    Returns:
        :func:`gap_table`'s dict (with ``"certified"`` when ``certify``).
    """
    from agents.stper.baselines import CPN_POLICIES
    from jaxcpn.cpn import CPNConfig, generate_instance, validate_params

    config = CPNConfig() if config is None else config
    overrides = {} if kappa is None else {"kappa": kappa}
    params = validate_params(generate_instance(jax.random.PRNGKey(seed), config, **overrides), config)
    env = GreenCPN(config)
    key = jax.random.PRNGKey(seed + 1)
    profits = jax.device_get(jax.jit(lambda k: slot_profits(env, params, CPN_POLICIES, k, num_envs))(key))
    table = gap_table(profits)
    print(f"green CPN N={config.num_nodes} U={config.num_users} kappa={float(params.kappa):g}: "
          f"{num_envs} x {config.episode_length} slots")
    print(f"{'method':<16} {'profit/slot':>12} {'gap/slot':>10} {'gap %':>8} {'slots at bound':>15}")
    for name, row in table.items():
        print(f"{name:<16} {row['profit']:>12.4f} {row['gap']:>10.4f} {100 * row['relative_gap']:>7.2f}% "
              f"{100 * row['slots_at_bound']:>14.1f}%")
    if certify:
        _, state = env.reset(jax.random.split(jax.random.split(key)[0], num_envs)[0], params)
        results = [certified_slot_optimum(env, state.replace(time=jnp.asarray(t, jnp.int32)), params)
                   for t in range(min(certify, config.episode_length))]
        done = [r for r in results if r.certified]
        table["certified"] = {"slots": len(results), "certified": len(done),
                              "optimum_below_bound": float(np.mean([r.bound - r.profit for r in done])) if done else None}
        print(f"certified optimum: {len(done)} of {len(results)} slots; mean bound - optimum "
              f"{table['certified']['optimum_below_bound']}")
    return table
