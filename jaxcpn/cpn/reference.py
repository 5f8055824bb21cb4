"""Plain NumPy reference of the green CPN: one episode, loop by loop, straight from the equations.

It shares no code with the JAX environment (only the params container it reads). It is the
oracle of the differential tests and the baseline of the throughput benchmark. float64.
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


class CPNReference:
    """One green-CPN episode in NumPy (no automatic reset).

    Args:
        params: an unbatched ``CPNParams`` (converted to float64 NumPy).
        config: the static config.
    """

    def __init__(self, params: CPNParams, config: CPNConfig):
        self.config = config
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

    # -------------------------------------------------------------- episode
    def reset(self, start: int | None = None, rng: np.random.Generator | None = None) -> dict:
        """Starts an episode at series index ``start`` (uniformly drawn when ``None``)."""
        cfg = self.config
        if start is None:
            rng = np.random.default_rng() if rng is None else rng
            start = int(rng.integers(cfg.window - 1, len(self.p["price_series"]) - cfg.episode_length))
        self.start, self.time = int(start), 0
        return self.observation()

    def observation(self) -> dict:
        """The observation dict (same fields as ``CPNObservation``)."""
        cfg, p = self.config, self.p
        n, u, w = cfg.num_nodes, cfg.num_users, cfg.window
        now = self.start + self.time
        demand_window = np.zeros((w, n))
        hydro_window = np.zeros((w, n))
        price_window = np.zeros(w)
        for k in range(w):
            index = now - (w - 1) + k
            load = self.workload(index)
            for user in range(u):
                demand_window[k, p["user_node"][user]] += load[user]
            hydro_window[k] = self.discount(index)
            price_window[k] = p["price_series"][index]
        hour = (p["series_start_hour"] + now) % 24
        return dict(
            task_workload=self.workload(now),
            node_demand=demand_window[-1],
            price_window=price_window,
            hydro_window=hydro_window,
            demand_window=demand_window,
            node_features=np.stack([p["power"], p["green"].astype(float), p["hydro_share"]], axis=-1),
            time_features=np.array([math.sin(2 * math.pi * hour / 24), math.cos(2 * math.pi * hour / 24), self.time / cfg.episode_length]),
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
        load = self.workload(now)
        price = p["price_series"][now]
        discount = self.discount(now)
        link_free = {}  # undirected link -> time it becomes free (FIFO in user order)
        keys = ("delay", "transmission_delay", "offset", "compute_delay", "revenue", "cost")
        info = {k: np.zeros(cfg.num_users) for k in keys}
        info["deadline_miss"] = np.zeros(cfg.num_users, bool)
        for u in range(cfg.num_users):
            size = p["packet_size"][u]
            dest = action[u]
            nodes = self.route(u, dest)
            clock = size / p["access_bandwidth"][u]  # dedicated access link
            t_tr = clock
            waited = 0.0
            for i, j in zip(nodes[:-1], nodes[1:]):
                tx = size / p["bandwidth"][i, j]
                t_tr += tx + p["switch_delay"][i]  # eq. (1)
                ready = clock + p["switch_delay"][i]
                link = (min(i, j), max(i, j))
                begin = max(ready, link_free.get(link, 0.0))
                waited += begin - ready
                clock = begin + tx
                link_free[link] = clock
            f = p["power"][dest]
            t_comp = load[u] / f
            t_sum = t_tr + waited + t_comp  # eq. (2)
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
