"""Pure delay and profit maths of the green CPN (STPer, section III), as broadcasting jnp functions.

Units (see docs/model.md): workload in TFLOP, computing power in TFLOPS, packet size in Mb,
bandwidth in Mb/s, delays in seconds, prices dimensionless (normalised electricity price).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


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
    safe_bw = jnp.where(hop_mask, bandwidths, 1.0)
    per_hop = jnp.asarray(packet_size)[..., None] / safe_bw + switch_delays
    return jnp.sum(jnp.where(hop_mask, per_hop, 0.0), axis=-1)


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


def fifo_dispatch(routes, hop_mask, packet_size, access_delay, bandwidth, switch_delay):
    """Times every task's traffic with per-link FIFO in the fixed priority order of the users.

    Tasks leave their user at time 0 over a dedicated access link (``access_delay``), then
    follow their route hop by hop: a node forwards after its switching delay, and a link
    (undirected, one transmission at a time) serves tasks in priority order (user index), so a
    task waits until every higher-priority task that uses the link has finished on it. The
    waiting is the traffic dispatching offset ``t_off`` of eq. (2).

    Args:
        routes: ``(U, H + 1)`` int32 node sequences (padded with the destination).
        hop_mask: ``(U, H)`` bool, hops in use.
        packet_size: ``(U,)`` Mb.
        access_delay: ``(U,)`` s, transmission time on the access link.
        bandwidth: ``(N, N)`` Mb/s.
        switch_delay: ``(N,)`` s.

    Returns:
        ``(arrival, offset)``: ``(U,)`` arrival time at the destination (s) and ``(U,)`` total
        waiting ``t_off`` (s).
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
