"""Plain NumPy reference of the green CPN: one episode, loop by loop, straight from the equations.

It shares no code with the JAX environment (only the params container it reads). It is the
oracle of the differential tests and the baseline of the throughput benchmark. float64.

By default the exogenous series of an episode (workload, per-node demand, hydro discount, price
for its slots and the look-back window) are computed once per episode, so a step costs what
the equations of the step cost: the fair NumPy baseline. ``cache_windows=False`` rebuilds every
window entry in Python at every step, as the first version of this reference did (about 6x
slower; the benchmark reports it, labelled as such, next to the cached one).

The options beyond the paper (docs/model.md, "Coupled dynamics") are here too: the node queues
of ``CPNConfig.compute_sharing`` (:func:`node_queues`, ``self.backlog``) and the observation
of ``observe_current_workload=False``.
"""

from __future__ import annotations

import math

import numpy as np

from jaxcpn.cpn.types import CPNConfig, CPNParams


def floyd_warshall(hop_delay: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All-pairs shortest paths with next-hop table (``-1`` where unreachable)."""
    n = hop_delay.shape[0]
    dist = hop_delay.copy()
    nxt = np.full((n, n), -1, dtype=np.int64)
    for i in range(n):
        dist[i, i] = 0.0
        for j in range(n):
            if np.isfinite(dist[i, j]):
                nxt[i, j] = j
    for k in range(n):
        for i in range(n):
            for j in range(n):
                if dist[i, k] + dist[k, j] < dist[i, j]:
                    dist[i, j] = dist[i, k] + dist[k, j]
                    nxt[i, j] = nxt[i, k]
    return dist, nxt


def fifo_offsets(routes, packet_size, access_delay, bandwidth, switch_delay) -> list[float]:
    """Waiting ``t_off`` of each task when every link serves tasks in order of arrival (FIFO).

    A plain event loop: the pending event of a task is the time its next hop reaches its link;
    the earliest one (ties: lowest user index) is served at ``max(arrival, link free)``. Links
    are undirected and carry one transmission at a time, without preemption.

    Args:
        routes: per task, its node list (one node: no hops).
        packet_size, access_delay: ``(U,)`` Mb and s; bandwidth: ``(N, N)`` Mb/s; switch_delay: ``(N,)`` s.
    """
    pending = {u: (access_delay[u] + switch_delay[nodes[0]], 0) for u, nodes in enumerate(routes) if len(nodes) > 1}
    link_free = {}  # undirected link -> time it is free again
    waited = [0.0] * len(routes)
    while pending:
        u = min(pending, key=lambda v: (pending[v][0], v))
        ready, hop = pending.pop(u)
        i, j = routes[u][hop], routes[u][hop + 1]
        link = (min(i, j), max(i, j))
        begin = max(ready, link_free.get(link, 0.0))
        end = begin + packet_size[u] / bandwidth[i, j]
        link_free[link] = end
        waited[u] += begin - ready
        if hop + 2 < len(routes[u]):
            pending[u] = (end + switch_delay[j], hop + 1)
    return waited


def priority_offsets(routes, packet_size, access_delay, bandwidth, switch_delay) -> list[float]:
    """Waiting ``t_off`` of each task under the fixed user-index priority (``link_conflicts="priority"``).

    Task ``u`` reserves every link of its route after tasks ``0 .. u-1`` have reserved theirs.
    Arguments as :func:`fifo_offsets`.
    """
    link_free = {}
    waited = [0.0] * len(routes)
    for u, nodes in enumerate(routes):
        clock = access_delay[u]
        for i, j in zip(nodes[:-1], nodes[1:]):
            ready = clock + switch_delay[i]
            link = (min(i, j), max(i, j))
            begin = max(ready, link_free.get(link, 0.0))
            waited[u] += begin - ready
            clock = begin + packet_size[u] / bandwidth[i, j]
            link_free[link] = clock
    return waited


def node_queues(arrival, destination, workload, power, backlog, slot_duration):
    """FIFO queues at the nodes with shared compute, one task at a time per node (plain loops).

    Each node first serves its ``backlog`` (TFLOP, from earlier slots), then the tasks in order of
    arrival (ties: lowest user index), at rate ``power[n]``. The served work is measured as the
    busy time inside the window ``[0, slot_duration)``; the left-over work as what each task (and
    the backlog) still needs when the window closes.

    Returns:
        ``(wait (U,) s, next_backlog (N,) TFLOP, served (N,) TFLOP)``.
    """
    num_nodes = len(power)
    free = [backlog[n] / power[n] for n in range(num_nodes)]
    busy = [[(0.0, free[n])] for n in range(num_nodes)]  # service intervals per node
    left = [max(0.0, backlog[n] - power[n] * slot_duration) for n in range(num_nodes)]
    wait = [0.0] * len(arrival)
    for u in sorted(range(len(arrival)), key=lambda v: (arrival[v], v)):
        n = destination[u]
        begin = max(arrival[u], free[n])
        end = begin + workload[u] / power[n]
        wait[u], free[n] = begin - arrival[u], end
        busy[n].append((begin, end))
        left[n] += power[n] * (end - max(begin, slot_duration)) if end > slot_duration else 0.0
    served = [power[n] * sum(max(0.0, min(end, slot_duration) - begin) for begin, end in busy[n] if begin < slot_duration)
              for n in range(num_nodes)]
    return np.array(wait), np.array(left), np.array(served)


class CPNReference:
    """One green-CPN episode in NumPy (no automatic reset).

    Args:
        params: an unbatched ``CPNParams`` (converted to float64 NumPy).
        config: the static config.
        cache_windows: compute the episode's series once per episode (default) instead of
            rebuilding every window at every step; both give the same numbers.
    """

    def __init__(self, params: CPNParams, config: CPNConfig, cache_windows: bool = True):
        self.config = config
        self.cache_windows = cache_windows
        self._cache = None  # (first index, workload (S, U), demand (S, N), discount (S, N), price (S,))
        self.p = {name: np.asarray(getattr(params, name), dtype=np.float64) for name in params.__dataclass_fields__}
        self.p["adjacency"] = np.asarray(params.adjacency, bool)
        self.p["green"] = np.asarray(params.green, bool)
        self.p["user_node"] = np.asarray(params.user_node, np.int64)
        self.p["series_start_hour"] = int(params.series_start_hour)
        # Routing depends only on the instance: one Floyd-Warshall per distinct packet size.
        n = config.num_nodes
        self.next_hop = {}
        for size in np.unique(self.p["packet_size"]):
            hop = np.full((n, n), np.inf)
            for i in range(n):
                for j in range(n):
                    if self.p["adjacency"][i, j]:
                        hop[i, j] = size / self.p["bandwidth"][i, j] + self.p["switch_delay"][i]
            self.next_hop[float(size)] = floyd_warshall(hop)[1]
        self.start = 0
        self.time = 0
        self.backlog = np.zeros(n)  # TFLOP per node queue (compute_sharing)

    # -------------------------------------------------------------- exogenous series
    def workload(self, index: int) -> np.ndarray:
        """``m_u`` at series index ``index``: daily sinusoid + Gaussian shock, floored (TFLOP)."""
        p = self.p
        hour = (p["series_start_hour"] + index) % 24
        out = np.empty(self.config.num_users)
        for u in range(self.config.num_users):
            mean = p["workload_base"][u] * (1.0 + p["workload_amplitude"][u] * math.sin(2 * math.pi * hour / 24 + p["workload_phase"][u]))
            out[u] = max(p["workload_floor"], mean + p["workload_noise"][u] * p["workload_shock"][index, u])
        return out

    def discount(self, index: int) -> np.ndarray:
        """Hydropower discount ``alpha_n = 1 - share_n h(t)``."""
        return 1.0 - self.p["hydro_share"] * self.p["hydro_series"][index]

    def demand(self, load: np.ndarray) -> np.ndarray:
        """Demand per access node of one slot's workloads ``load`` (``(U,)``)."""
        out = np.zeros(self.config.num_nodes)
        for user in range(self.config.num_users):
            out[self.p["user_node"][user]] += load[user]
        return out

    def series(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Workload ``(S, U)``, demand ``(S, N)``, discount ``(S, N)`` and price ``(S,)`` of indices ``first..last``.

        Served from the episode's cache when ``cache_windows`` (built on first use, and again
        when the rows run past it), computed row by row otherwise.
        """
        cfg = self.config
        if self.cache_windows:
            if self._cache is None or first < self._cache[0] or last >= self._cache[0] + len(self._cache[1]):
                # One episode's rows: its look-back window and its slots, the last observation included.
                self._cache = (first, *self._rows(first, max(last, first + cfg.window + cfg.episode_length - 1)))
            begin, *cached = self._cache
            return tuple(rows[first - begin:last - begin + 1] for rows in cached)
        return self._rows(first, last)

    def _rows(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The series rows of indices ``first..last``, one index at a time (see :meth:`series`)."""
        indices = range(first, last + 1)
        load = np.stack([self.workload(i) for i in indices])
        demand = np.stack([self.demand(row) for row in load])
        discount = np.stack([self.discount(i) for i in indices])
        price = np.array([self.p["price_series"][i] for i in indices])
        return load, demand, discount, price

    # -------------------------------------------------------------- episode
    def reset(self, start: int | None = None, rng: np.random.Generator | None = None) -> dict:
        """Starts an episode at series index ``start`` (uniformly drawn when ``None``)."""
        cfg = self.config
        if start is None:
            rng = np.random.default_rng() if rng is None else rng
            first = cfg.window - 1 + (not cfg.observe_current_workload)
            start = int(rng.integers(first, len(self.p["price_series"]) - cfg.episode_length))
        self.start, self.time = int(start), 0
        self.backlog = np.zeros(cfg.num_nodes)
        self._cache = None
        return self.observation()

    def observation(self) -> dict:
        """The observation dict (same fields as ``CPNObservation``)."""
        cfg, p = self.config, self.p
        w = cfg.window
        now = self.start + self.time
        load, demand_window, hydro_window, price_window = self.series(now - (w - 1), now)
        if not cfg.observe_current_workload:  # the workload rows end at the previous slot
            load, demand_window, _, _ = self.series(now - w, now - 1)
        hour = (p["series_start_hour"] + now) % 24
        extra = dict(node_backlog=self.backlog.copy()) if cfg.compute_sharing else {}
        return dict(
            task_workload=load[-1].copy(),
            node_demand=demand_window[-1].copy(),
            price_window=price_window.copy(),
            hydro_window=hydro_window.copy(),
            demand_window=demand_window.copy(),
            node_features=np.stack([p["power"], p["green"].astype(float), p["hydro_share"]], axis=-1),
            time_features=np.array([math.sin(2 * math.pi * hour / 24), math.cos(2 * math.pi * hour / 24), self.time / cfg.episode_length]),
            **extra,
        )

    def route(self, user: int, destination: int) -> list[int]:
        """Node list of the shortest route from the user's access node to ``destination``."""
        nxt = self.next_hop[float(self.p["packet_size"][user])]
        nodes = [int(self.p["user_node"][user])]
        while nodes[-1] != destination:
            nodes.append(int(nxt[nodes[-1], destination]))
        return nodes

    def step(self, action) -> tuple[dict, float, bool, bool, dict]:
        """Schedules the slot's tasks; returns ``(obs, reward, terminated, truncated, info)``."""
        cfg, p = self.config, self.p
        action = [int(a) for a in action]
        for a in action:
            if not 0 <= a < cfg.num_nodes:
                raise ValueError(f"action entry {a} is invalid: must be in [0, {cfg.num_nodes - 1}]")
        now = self.start + self.time
        load, _, discount, price = [rows[0] for rows in self.series(now, now)]
        keys = ("delay", "transmission_delay", "offset", "compute_delay", "revenue", "cost")
        info = {k: np.zeros(cfg.num_users) for k in keys}
        info["deadline_miss"] = np.zeros(cfg.num_users, bool)
        routes = [self.route(u, action[u]) for u in range(cfg.num_users)]
        access = [p["packet_size"][u] / p["access_bandwidth"][u] for u in range(cfg.num_users)]  # dedicated access link
        conflicts = fifo_offsets if cfg.link_conflicts == "arrival" else priority_offsets
        offsets = conflicts(routes, p["packet_size"], access, p["bandwidth"], p["switch_delay"])
        transmission = []
        for u in range(cfg.num_users):
            t_tr = access[u]
            for i, j in zip(routes[u][:-1], routes[u][1:]):
                t_tr += p["packet_size"][u] / p["bandwidth"][i, j] + p["switch_delay"][i]  # eq. (1)
            transmission.append(t_tr)
        queue = np.zeros(cfg.num_users)
        if cfg.compute_sharing:
            arrival = [transmission[u] + offsets[u] for u in range(cfg.num_users)]
            queue, next_backlog, served = node_queues(arrival, action, load, p["power"], self.backlog,
                                                      float(p["slot_duration"]))
            info.update(queue_delay=queue, backlog=next_backlog, served_work=served)
            self.backlog = next_backlog
        for u in range(cfg.num_users):
            dest = action[u]
            t_tr = transmission[u]
            waited = offsets[u]
            f = p["power"][dest]
            t_comp = load[u] / f
            t_sum = t_tr + waited + queue[u] + t_comp  # eq. (2), plus the node queue's wait (compute_sharing)
            revenue = p["unit_price"] * (1 + p["eta"] / t_sum) * load[u]  # eq. (3)
            cost = price * discount[dest] * p["kappa"] * load[u] * f**2 + p["usage_price"] * load[u] / f  # eq. (5)
            miss = t_sum > p["deadline"][u]
            if miss:
                revenue *= p["late_revenue_fraction"]
            for k, v in zip(keys, (t_sum, t_tr, waited, t_comp, revenue, cost)):
                info[k][u] = v
            info["deadline_miss"][u] = miss
        reward = float(np.sum(info["revenue"] - info["cost"]))
        info["profit"] = reward
        self.time += 1
        truncated = self.time >= cfg.episode_length
        return self.observation(), reward, False, truncated, info
