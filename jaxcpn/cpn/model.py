"""Pure delay and profit maths of the green CPN (STPer, section III), as broadcasting jnp functions.

Units (see docs/model.md): workload in TFLOP, computing power in TFLOPS, packet size in Mb,
bandwidth in Mb/s, delays in seconds, prices dimensionless (normalised electricity price).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap


def revenue(workload, delay, unit_price, eta):
    """Revenue of a completed task, eq. (3): ``R = p (1 + eta / t_sum) m``.

    Args:
        workload: task workload ``m`` (TFLOP).
        delay: total delay ``t_sum`` (s), > 0.
        unit_price: unit price ``p`` per TFLOP.
        eta: delay-reward coefficient ``eta`` (s).

    Returns:
        Revenue, broadcast over the inputs.
    """
    return unit_price * (1.0 + eta / delay) * workload


def compute_cost(workload, power, price, discount, usage_price, kappa):
    """Computing cost of a task on a node, eq. (5) with the energy coefficient ``kappa``.

    ``E = i_e alpha_n kappa m f_n^2 + i_t m / f_n``.

    Args:
        workload: task workload ``m`` (TFLOP).
        power: node computing power ``f_n`` (TFLOPS).
        price: electricity price ``i_e(t)`` (normalised, dimensionless).
        discount: hydropower discount ``alpha_n(t)`` in [0, 1].
        usage_price: computing power usage price ``i_t``.
        kappa: energy coefficient (DVFS model ``E = kappa * work * f^2``).

    Returns:
        Cost, broadcast over the inputs.
    """
    energy = price * discount * kappa * workload * power**2
    usage = usage_price * workload / power
    return energy + usage


def transmission_delay(packet_size, bandwidths, switch_delays, hop_mask):
    """Transmission delay over a route, eq. (1): ``sum_e r / b_e + sum_n t_sw_n``.

    Args:
        packet_size: packet size ``r`` (Mb), shape ``[...]``.
        bandwidths: bandwidth of each hop's link (Mb/s), shape ``[..., H]``.
        switch_delays: forwarding delay of each hop's sending node (s), shape ``[..., H]``.
        hop_mask: which of the ``H`` padded hops are used, shape ``[..., H]`` bool.

    Returns:
        Transmission delay (s), shape ``[...]``.
    """
    return jnp.sum(hop_transmission_delays(packet_size, bandwidths, switch_delays, hop_mask), axis=-1)


def hop_transmission_delays(packet_size, bandwidths, switch_delays, hop_mask):
    """The terms of eq. (1) hop by hop, ``r / b_e + t_sw_n`` (s), 0 on unused hops; shapes as
    :func:`transmission_delay`, returning ``[..., H]``."""
    safe_bw = jnp.where(hop_mask, bandwidths, 1.0)
    per_hop = jnp.asarray(packet_size)[..., None] / safe_bw + switch_delays
    return jnp.where(hop_mask, per_hop, 0.0)


def hop_delays(packet_size, bandwidth, switch_delay, adjacency):
    """Per-hop delay matrix ``r / b_ij + t_sw_i`` (s), ``inf`` where there is no link.

    Args:
        packet_size: scalar packet size (Mb).
        bandwidth: ``(N, N)`` link bandwidth (Mb/s).
        switch_delay: ``(N,)`` forwarding delay of the sending node (s).
        adjacency: ``(N, N)`` bool.

    Returns:
        ``(N, N)`` float32.
    """
    safe_bw = jnp.where(adjacency, bandwidth, 1.0)
    return jnp.where(adjacency, packet_size / safe_bw + switch_delay[:, None], jnp.inf)


def shortest_paths(hop_delay):
    """All-pairs shortest paths by Floyd-Warshall.

    Args:
        hop_delay: ``(N, N)`` per-hop delay, ``inf`` where no link.

    Returns:
        ``(dist, next_hop)``: ``(N, N)`` float path delays and ``(N, N)`` int32 next node from
        ``i`` towards ``j`` (``j`` itself on the diagonal, ``-1`` when unreachable).
    """
    num_nodes = hop_delay.shape[0]
    eye = jnp.eye(num_nodes, dtype=bool)
    dist = jnp.where(eye, 0.0, hop_delay)
    cols = jnp.broadcast_to(jnp.arange(num_nodes, dtype=jnp.int32), (num_nodes, num_nodes))
    next_hop = jnp.where(jnp.isfinite(dist), cols, -1)

    def relax(k, carry):
        dist, next_hop = carry
        through_k = dist[:, k, None] + dist[None, k, :]
        better = through_k < dist
        return jnp.where(better, through_k, dist), jnp.where(better, next_hop[:, k, None], next_hop)

    return jax.lax.fori_loop(0, num_nodes, relax, (dist, next_hop))


def route(next_hop, source, destination, max_hops):
    """Node sequence of the shortest route from ``source`` to ``destination``.

    Args:
        next_hop: ``(N, N)`` int32 from :func:`shortest_paths`.
        source, destination: int32 scalars.
        max_hops: static maximum number of hops ``H``.

    Returns:
        ``(nodes, hop_mask)``: ``(H + 1,)`` int32 nodes, padded with ``destination`` after
        arrival, and ``(H,)`` bool marking the hops actually used.
    """

    def advance(node, _):
        nxt = next_hop[node, destination]
        return nxt, nxt

    _, rest = jax.lax.scan(advance, source, None, length=max_hops)
    nodes = jnp.concatenate([jnp.asarray(source, jnp.int32)[None], rest.astype(jnp.int32)])
    hop_mask = nodes[:-1] != destination
    return nodes, hop_mask


class _Dispatch(NamedTuple):
    """Carry of :func:`_serve_in_arrival_order`'s event loop (one pending hop-event per task)."""

    ready: jax.Array  # (U,) time the task's next hop reaches its link (s); inf once it has arrived
    key: jax.Array  # (U,) int32 row of the hop table describing that hop
    link_free: jax.Array  # (N * N,) time each undirected link is free again (s), by link id
    waited: jax.Array  # (U,) accumulated waiting t_off (s)
    arrival: jax.Array  # (U,) end of the task's latest transmission (s): its arrival once ready is inf


def _hop_tables(routes, hop_mask, packet_size, access_delay, bandwidth, switch_delay):
    """Per-hop numbers of the padded routes.

    Returns:
        ``(link, tx, first_ready, gap)``: ``(U, H)`` int32 undirected link id ``min * N + max``;
        ``(U, H)`` transmission time ``r / b`` of each hop (s); ``(U,)`` time the first hop
        reaches its link (access link + switching at the access node, s; ``inf`` without hops);
        ``(U, H)`` time from the end of hop ``h`` to hop ``h + 1`` reaching its link (switching at
        the forwarding node, s; ``inf`` after the last used hop).
    """
    num_nodes = bandwidth.shape[0]
    src, dst = routes[:, :-1], routes[:, 1:]
    link = (jnp.minimum(src, dst) * num_nodes + jnp.maximum(src, dst)).astype(jnp.int32)
    tx = packet_size[:, None] / jnp.where(hop_mask, bandwidth[src, dst], 1.0)
    first_ready = jnp.where(hop_mask[:, 0], access_delay + switch_delay[routes[:, 0]], jnp.inf)
    next_used = jnp.concatenate([hop_mask[:, 1:], jnp.zeros_like(hop_mask[:, :1])], axis=1)
    gap = jnp.where(next_used, switch_delay[dst], jnp.inf)
    return link, tx, first_ready, gap


def _serve_in_arrival_order(first_ready, first_key, hop_table, access_delay, num_links):
    """The discrete-event loop of :func:`fifo_dispatch`, over hops described by a table.

    Each task has one pending hop-event, ``(ready, key)``: the time it reaches its link and the
    row of ``hop_table`` that describes the hop, ``(transmission time (s), gap to the next hop
    (s, inf after the last), link id, key of the next hop)`` (ids and keys as float32, exact
    below 2**24). Each step serves the earliest event (``argmin``, so ties go to the lowest
    index) at ``max(ready, link free)``; see :func:`fifo_dispatch` for why that is FIFO at every
    link. The loop stops when every task has arrived: its length is the number of hops used,
    rounded up to a multiple of ``U``.

    Under ``vmap`` (a ``custom_vmap`` rule, :func:`_arrival_order_server`) the batch steps event
    by event together and the loop tests once per ``_BATCH_BLOCK`` events whether any task of
    the batch is still on its way: a test over the whole batch is one scalar, where a plain
    ``vmap`` of the per-instance loop tests per instance and selects the whole carry at every
    test. The loop then runs for the batch's largest number of hops rounded up to a multiple of
    ``_BATCH_BLOCK``, not of ``U``. A step with no pending event is a no-op, so the numbers are
    the per-instance loop's bit for bit (tests/test_fifo.py).

    Args:
        first_ready: ``(U,)`` s, ``inf`` for a task without hops.
        first_key: ``(U,)`` int32 row of each task's first hop.
        hop_table: ``(K, 4)`` float32.
        access_delay: ``(U,)`` s, the arrival of a task without hops.
        num_links: static number of link ids.

    Returns:
        ``(arrival, offset)``, ``(U,)`` each (s).
    """
    return _arrival_order_server(int(num_links))(first_ready, first_key, hop_table, access_delay)


_BATCH_BLOCK = 4
"""Events per test of the batched loop's condition (4096 envs: 1.5 ms per call against 1.6 ms
with 1 and 8, and 3.3 ms for the plain ``vmap``; docs/bench.md)."""


def _serve_init(first_ready, first_key, hop_table, access_delay, num_links: int) -> _Dispatch:
    dtype = hop_table.dtype
    return _Dispatch(
        ready=first_ready.astype(dtype),
        key=first_key.astype(jnp.int32),
        link_free=jnp.zeros((num_links,), dtype),
        waited=jnp.zeros(first_ready.shape, dtype),
        arrival=access_delay.astype(dtype),
    )


def _serve_event(carry: _Dispatch, hop_table, num_links: int) -> _Dispatch:
    """Serves one instance's earliest pending hop-event (a no-op once every task has arrived)."""
    num_tasks = carry.ready.shape[0]
    ready = jnp.min(carry.ready)
    task = jnp.argmin(carry.ready)
    duration, next_gap, this_link, next_key = hop_table[carry.key[task]]
    this_link = this_link.astype(jnp.int32)
    begin = jnp.maximum(ready, carry.link_free[this_link])
    end = begin + duration
    # Once every task has arrived the step is a no-op: its writes go out of range and drop.
    live = jnp.isfinite(ready)
    task = jnp.where(live, task, num_tasks)
    this_link = jnp.where(live, this_link, num_links)
    return _Dispatch(
        ready=carry.ready.at[task].set(end + next_gap, mode="drop"),
        key=carry.key.at[task].set(next_key.astype(jnp.int32), mode="drop"),
        link_free=carry.link_free.at[this_link].set(end, mode="drop"),
        waited=carry.waited.at[task].add(begin - ready, mode="drop"),
        arrival=carry.arrival.at[task].set(end, mode="drop"),
    )


def _serve_per_instance(first_ready, first_key, hop_table, access_delay, num_links: int):
    """One instance's event loop, ``U`` events per test of its condition (the unbatched rule)."""
    num_tasks = first_ready.shape[0]

    def serve_some(carry: _Dispatch) -> _Dispatch:
        return jax.lax.fori_loop(0, num_tasks, lambda _, c: _serve_event(c, hop_table, num_links), carry)

    init = _serve_init(first_ready, first_key, hop_table, access_delay, num_links)
    out = jax.lax.while_loop(lambda carry: jnp.any(jnp.isfinite(carry.ready)), serve_some, init)
    return out.arrival, out.waited


@functools.lru_cache(maxsize=None)
def _arrival_order_server(num_links: int):
    """``(first_ready, first_key, hop_table, access_delay) -> (arrival, offset)`` with its batch rule."""

    @custom_vmap
    def serve(first_ready, first_key, hop_table, access_delay):
        return _serve_per_instance(first_ready, first_key, hop_table, access_delay, num_links)

    @serve.def_vmap
    def serve_batch(axis_size, in_batched, first_ready, first_key, hop_table, access_delay):
        axes = tuple(0 if batched else None for batched in in_batched)
        init = jax.vmap(_serve_init, in_axes=axes + (None,), axis_size=axis_size)(
            first_ready, first_key, hop_table, access_delay, num_links)
        event = jax.vmap(_serve_event, in_axes=(0, axes[2], None))

        def block(carry: _Dispatch) -> _Dispatch:
            return jax.lax.fori_loop(0, _BATCH_BLOCK, lambda _, c: event(c, hop_table, num_links), carry, unroll=True)

        out = jax.lax.while_loop(lambda carry: jnp.any(jnp.isfinite(carry.ready)), block, init)
        return (out.arrival, out.waited), (True, True)

    return serve


def fifo_dispatch(routes, hop_mask, packet_size, access_delay, bandwidth, switch_delay):
    """Times every task's traffic with work-conserving FIFO at each link (order of arrival).

    Tasks leave their user at time 0 over a dedicated access link (``access_delay``), then follow
    their route hop by hop: a node forwards after its switching delay, and a link (undirected,
    one transmission at a time, never preempted) serves tasks in the order they reach it, ties
    by user index. A task waits only while the link is busy with a task that reached it
    earlier; the waiting is the traffic dispatching offset ``t_off`` of eq. (2).

    A discrete-event loop over the ``U * H`` hop-events: each task has one pending event (the
    time its next hop reaches its link), and each step serves the earliest (``argmin``, so ties
    go to the lowest index) at ``max(ready, link free)``. Serving it cannot create an event
    earlier than itself (transmissions take positive time), so the events are served in time
    order, which is the FIFO queue of every link. The loop stops when every task has arrived:
    its length is the number of hops used, rounded up to a multiple of ``U`` (under ``vmap``, the
    largest in the batch rounded up to a multiple of 4), not the padded ``U * H``. :func:`fifo_dispatch_shortest` gives the
    same numbers from the routing table, without padded routes.

    Args:
        routes: ``(U, H + 1)`` int32 node sequences (padded with the destination).
        hop_mask: ``(U, H)`` bool, hops in use (a prefix of each row).
        packet_size: ``(U,)`` Mb.
        access_delay: ``(U,)`` s, transmission time on the access link.
        bandwidth: ``(N, N)`` Mb/s.
        switch_delay: ``(N,)`` s.

    Returns:
        ``(arrival, offset)``: ``(U,)`` arrival time at the destination (s) and ``(U,)`` total
        waiting ``t_off`` (s).
    """
    bandwidth, switch_delay, access_delay, packet_size = map(
        jnp.asarray, (bandwidth, switch_delay, access_delay, packet_size))
    num_tasks, num_hops = hop_mask.shape
    link, tx, first_ready, gap = _hop_tables(routes, hop_mask, packet_size, access_delay, bandwidth, switch_delay)
    # Row u * H + h is hop h of task u; the next hop is the next row.
    key = jnp.arange(num_tasks * num_hops, dtype=jnp.int32).reshape(num_tasks, num_hops)
    hop_table = jnp.stack([tx, gap, link.astype(tx.dtype), (key + 1).astype(tx.dtype)], axis=-1)
    return _serve_in_arrival_order(first_ready, key[:, 0], hop_table.reshape(num_tasks * num_hops, 4),
                                   access_delay, bandwidth.shape[0] ** 2)


def fifo_dispatch_shortest(next_hop, source, destination, packet_size, access_delay, bandwidth, switch_delay):
    """:func:`fifo_dispatch` on the shortest routes of :func:`route`, from the routing table.

    The same numbers as ``fifo_dispatch`` on ``route(next_hop[u], source[u], destination[u], H)``
    with ``H`` long enough, but its hop table depends only on the instance: one row per
    ``(user, node, destination)`` (the hop that user's packet takes from that node), so under
    ``vmap`` over destinations with shared params it is built once per call, and no padded
    ``(U, H)`` route tables are gathered per environment.

    Args:
        next_hop: ``(U, N, N)`` int32 per-user next hops of :func:`shortest_paths`.
        source, destination: ``(U,)`` int32 access node and destination of each task.
        packet_size, access_delay, bandwidth, switch_delay: as :func:`fifo_dispatch`.

    Returns:
        ``(arrival, offset)`` as :func:`fifo_dispatch`.
    """
    bandwidth, switch_delay, access_delay, packet_size = map(
        jnp.asarray, (bandwidth, switch_delay, access_delay, packet_size))
    num_tasks, num_nodes = next_hop.shape[:2]
    user = jnp.arange(num_tasks, dtype=jnp.int32)[:, None, None]
    node = jnp.arange(num_nodes, dtype=jnp.int32)[None, :, None]
    target = jnp.arange(num_nodes, dtype=jnp.int32)[None, None, :]
    # An unreachable next hop (-1, refused by validate_params) is clipped, never wrapped around.
    next_node = jnp.clip(next_hop, 0, num_nodes - 1)
    used = node != target  # a hop leaves `node` only on the way to another node
    tx = packet_size[:, None, None] / jnp.where(used, bandwidth[node, next_node], 1.0)
    gap = jnp.where(next_node != target, switch_delay[next_node], jnp.inf)
    link = jnp.minimum(node, next_node) * num_nodes + jnp.maximum(node, next_node)
    next_key = (user * num_nodes + next_node) * num_nodes + target
    hop_table = jnp.stack(jnp.broadcast_arrays(tx, gap, link.astype(tx.dtype), next_key.astype(tx.dtype)), axis=-1)
    first_ready = jnp.where(source != destination, access_delay + switch_delay[source], jnp.inf)
    first_key = (jnp.arange(num_tasks, dtype=jnp.int32) * num_nodes + source) * num_nodes + destination
    return _serve_in_arrival_order(first_ready, first_key, hop_table.reshape(-1, 4), access_delay, num_nodes**2)


def priority_dispatch(routes, hop_mask, packet_size, access_delay, bandwidth, switch_delay):
    """Times every task's traffic with per-link reservations in the fixed priority order of the users.

    The first rule of this project (``CPNConfig.link_conflicts="priority"``), kept to reproduce
    results computed with it; :func:`fifo_dispatch` is the paper's model. Task ``u`` reserves
    every link of its route after tasks ``0 .. u-1`` have reserved theirs, so it waits for every
    lower-index task that uses the link, even one that reaches the link later: the rule is not
    work-conserving (an idle link can wait for a task that is still on its way).

    Args and returns as :func:`fifo_dispatch`.
    """
    bandwidth, switch_delay, access_delay = map(jnp.asarray, (bandwidth, switch_delay, access_delay))
    num_nodes = bandwidth.shape[0]

    def per_task(link_free, task):
        nodes, mask, size, start_time = task

        def per_hop(carry, hop):
            link_free, ready, waited = carry
            i, j, used = hop
            tx = size / jnp.where(used, bandwidth[i, j], 1.0)
            ready_out = ready + switch_delay[i]
            begin = jnp.maximum(ready_out, link_free[i, j])
            end = begin + tx
            end_or_old = jnp.where(used, end, link_free[i, j])
            link_free = link_free.at[i, j].set(end_or_old).at[j, i].set(end_or_old)
            ready = jnp.where(used, end, ready)
            waited = waited + jnp.where(used, begin - ready_out, 0.0)
            return (link_free, ready, waited), None

        init = (link_free, start_time, jnp.zeros((), start_time.dtype))
        (link_free, arrival, waited), _ = jax.lax.scan(per_hop, init, (nodes[:-1], nodes[1:], mask))
        return link_free, (arrival, waited)

    link_free = jnp.zeros((num_nodes, num_nodes), access_delay.dtype)
    _, (arrival, offset) = jax.lax.scan(per_task, link_free, (routes, hop_mask, packet_size, access_delay))
    return arrival, offset


def node_fifo(arrival, destination, workload, power, backlog, slot_duration):
    """Queueing at the compute nodes with shared compute (``CPNConfig.compute_sharing``).

    Each node is one server of rate ``f_n`` (TFLOPS): it first serves the ``backlog`` left by
    earlier slots (it arrived earlier), then the tasks of this slot one at a time in the order
    they reach it (FIFO, ties by user index), never preempting; a task starts at
    ``max(arrival, node free)``. The node serves during the slot's service window
    ``[0, slot_duration)``; the work not done when it closes is the next slot's backlog, so
    ``backlog + sum of the workloads sent to n = served + next_backlog`` for every node.

    Args:
        arrival: ``(U,)`` time each task reaches its destination, ``t_tr + t_off`` (s).
        destination: ``(U,)`` int32 node of each task.
        workload: ``(U,)`` task workloads ``m_u`` (TFLOP).
        power: ``(N,)`` node computing power ``f_n`` (TFLOPS).
        backlog: ``(N,)`` work waiting at each node at the slot's start (TFLOP).
        slot_duration: scalar service window ``tau`` (s).

    Returns:
        ``(wait, next_backlog, served)``: ``(U,)`` time each task waits at its node before its
        computation starts (s, the queueing delay), ``(N,)`` work left in each queue when the
        window closes (TFLOP; a task that reaches its node after the window carries over whole)
        and ``(N,)`` work served within the window (TFLOP).
    """
    num_tasks, num_nodes = destination.shape[0], power.shape[0]
    rate = power[destination]
    service = workload / rate  # t_comp of eq. (2), the same expression as the env's
    order = jnp.argsort(arrival, stable=True)

    def serve(k, carry):
        free, begin = carry
        task = order[k]
        node = destination[task]
        start = jnp.maximum(arrival[task], free[node])
        return free.at[node].set(start + service[task]), begin.at[task].set(start)

    _, begin = jax.lax.fori_loop(0, num_tasks, serve, (backlog / power, jnp.zeros_like(arrival)), unroll=True)
    end = begin + service
    # Work of each task still to do when the window closes, and done within it.
    remaining = jnp.clip(rate * (end - slot_duration), 0.0, workload)
    done = rate * (jnp.minimum(end, slot_duration) - jnp.minimum(begin, slot_duration))
    capacity = power * slot_duration
    per_node = jnp.zeros((num_nodes,), workload.dtype)
    next_backlog = jnp.maximum(backlog - capacity, 0.0) + per_node.at[destination].add(remaining)
    served = jnp.minimum(backlog, capacity) + per_node.at[destination].add(done)
    return begin - arrival, next_backlog, served
