"""Seeded instance generator and host-side validation of the green CPN.

The generator is the single source of instances: random ones for training, fixed seeds for tests,
and the same instance handed to a host solver (routing MILP) or the NumPy reference.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxcpn.cpn.types import CPNConfig, CPNParams

# Defaults of the paper (V-A) and of this project's modelling choices (docs/model.md).
DEFAULTS = dict(
    power_range=(1.0, 10.0),  # TFLOPS, paper V-A
    bandwidth_range=(10.0, 50.0),  # Mb/s, paper V-A
    switch_delay_range=(0.01, 0.05),  # s, choice
    packet_size=5.0,  # Mb, paper V-A
    deadline=2.0,  # s, paper V-A
    unit_price=0.5,  # paper V-A
    eta=2.0,  # paper V-A
    usage_price=0.2,  # paper V-A
    kappa=0.03,  # choice, calibrated (docs/model.md)
    green_fraction=0.3,  # choice
    hydro_share_range=(0.5, 0.9),  # choice
    workload_base_range=(1.5, 2.5),  # TFLOP, choice
    workload_amplitude_range=(0.2, 0.6),  # relative, choice
    workload_noise_fraction=0.15,  # noise std / base, choice
    workload_floor=0.1,  # TFLOP, choice
    waxman_alpha=0.4,
    waxman_beta=0.4,
)


def random_topology(key: jax.Array, num_nodes: int, alpha: float = 0.4, beta: float = 0.4) -> jax.Array:
    """Random connected undirected graph: a random spanning tree plus Waxman edges.

    Nodes are placed uniformly in the unit square; a random recursive tree guarantees
    connectivity, and every other pair is linked with probability
    ``beta * exp(-d / (alpha * sqrt(2)))`` (Waxman).

    Returns:
        ``(N, N)`` bool adjacency, symmetric, no self loops.
    """
    key_pos, key_perm, key_parent, key_wax = jax.random.split(key, 4)
    pos = jax.random.uniform(key_pos, (num_nodes, 2))
    perm = jax.random.permutation(key_perm, num_nodes)
    # Node perm[k] (k >= 1) attaches to a uniformly chosen earlier node perm[j], j < k.
    ks = jnp.arange(1, num_nodes)
    parent_rank = jnp.floor(jax.random.uniform(key_parent, (num_nodes - 1,)) * ks).astype(jnp.int32)
    adjacency = jnp.zeros((num_nodes, num_nodes), bool)
    adjacency = adjacency.at[perm[ks], perm[parent_rank]].set(True)
    dist = jnp.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
    prob = beta * jnp.exp(-dist / (alpha * math.sqrt(2.0)))
    waxman = jax.random.uniform(key_wax, (num_nodes, num_nodes)) < prob
    adjacency = adjacency | jnp.triu(waxman, 1)
    adjacency = adjacency | adjacency.T
    return adjacency & ~jnp.eye(num_nodes, dtype=bool)


def generate_instance(
    key: jax.Array,
    config: CPNConfig,
    *,
    price_series: np.ndarray | jax.Array | None = None,
    hydro_series: np.ndarray | jax.Array | None = None,
    series_start_hour: int = 0,
    series_hours: int = 8760,
    **overrides,
) -> CPNParams:
    """Draws a random instance (jittable when both series are given or generated).

    Args:
        key: PRNG key.
        config: static config.
        price_series: ``(H,)`` normalised price (see ``jaxcpn.data.series_for_env``);
            generated from the calibrated model when ``None``.
        hydro_series: ``(H,)`` hydro generation / max in [0, 1]; generated when ``None``.
        series_start_hour: hour of week (0 = Monday 00:00) of the series' first entry.
        series_hours: length of generated series (hours).
        **overrides: any scalar default of ``DEFAULTS`` (e.g. ``kappa=1e-4``).

    Returns:
        ``CPNParams``.
    """
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"generate_instance: unknown override(s) {sorted(unknown)}; allowed: {sorted(DEFAULTS)}")
    d = {**DEFAULTS, **overrides}
    n, u = config.num_nodes, config.num_users
    keys = jax.random.split(key, 12)
    f32 = jnp.float32

    def uniform(k, shape, rng):
        return jax.random.uniform(k, shape, f32, rng[0], rng[1])

    adjacency = random_topology(keys[0], n, d["waxman_alpha"], d["waxman_beta"])
    bw = uniform(keys[1], (n, n), d["bandwidth_range"])
    bw = jnp.triu(bw, 1)
    bw = jnp.where(adjacency, bw + bw.T, 0.0).astype(f32)
    num_green = max(1, int(round(d["green_fraction"] * n))) if d["green_fraction"] > 0 else 0
    green = jnp.zeros(n, bool).at[jax.random.permutation(keys[2], n)[:num_green]].set(True)
    hydro_share = jnp.where(green, uniform(keys[3], (n,), d["hydro_share_range"]), 0.0)

    if price_series is None or hydro_series is None:
        from jaxcpn.data import default_series

        gen_price, gen_hydro = default_series(keys[4], series_hours, series_start_hour)
        price_series = gen_price if price_series is None else price_series
        hydro_series = gen_hydro if hydro_series is None else hydro_series

    workload_base = uniform(keys[8], (u,), d["workload_base_range"])
    return CPNParams(
        adjacency=adjacency,
        bandwidth=bw,
        switch_delay=uniform(keys[5], (n,), d["switch_delay_range"]),
        power=uniform(keys[6], (n,), d["power_range"]),
        green=green,
        hydro_share=hydro_share.astype(f32),
        user_node=(jnp.arange(u) % n).astype(jnp.int32),
        access_bandwidth=uniform(keys[7], (u,), d["bandwidth_range"]),
        packet_size=jnp.full((u,), d["packet_size"], f32),
        deadline=jnp.full((u,), d["deadline"], f32),
        workload_base=workload_base,
        workload_amplitude=uniform(keys[9], (u,), d["workload_amplitude_range"]),
        workload_phase=uniform(keys[10], (u,), (0.0, 2.0 * math.pi)),
        workload_noise=jnp.asarray(d["workload_noise_fraction"], f32) * workload_base,
        workload_floor=jnp.asarray(d["workload_floor"], f32),
        workload_shock=jax.random.normal(keys[11], (jnp.shape(price_series)[0], u), f32),
        price_series=jnp.asarray(price_series, f32),
        hydro_series=jnp.asarray(hydro_series, f32),
        series_start_hour=jnp.asarray(series_start_hour, jnp.int32),
        unit_price=jnp.asarray(d["unit_price"], f32),
        eta=jnp.asarray(d["eta"], f32),
        usage_price=jnp.asarray(d["usage_price"], f32),
        kappa=jnp.asarray(d["kappa"], f32),
        late_revenue_fraction=jnp.asarray(0.0, f32),
    )


def _fail(field, value, allowed):
    raise ValueError(f"CPNParams.{field}: {value} is invalid; allowed: {allowed}")


def _is_connected(adjacency: np.ndarray) -> bool:
    n = adjacency.shape[0]
    seen = np.zeros(n, bool)
    seen[0] = True
    frontier = [0]
    while frontier:
        i = frontier.pop()
        for j in np.flatnonzero(adjacency[i] & ~seen):
            seen[j] = True
            frontier.append(j)
    return bool(seen.all())


def validate_params(params: CPNParams, config: CPNConfig) -> CPNParams:
    """Checks a concrete (unbatched) instance on the host; raises ``ValueError`` naming the field.

    Returns:
        ``params`` unchanged, so it can wrap construction: ``validate_params(make(...), config)``.
    """
    p = jax.tree.map(np.asarray, params)
    n, u = config.num_nodes, config.num_users
    shapes = dict(
        adjacency=(n, n), bandwidth=(n, n), switch_delay=(n,), power=(n,), green=(n,), hydro_share=(n,),
        user_node=(u,), access_bandwidth=(u,), packet_size=(u,), deadline=(u,), workload_base=(u,),
        workload_amplitude=(u,), workload_phase=(u,), workload_noise=(u,),
    )
    for field, shape in shapes.items():
        if getattr(p, field).shape != shape:
            _fail(field, f"shape {getattr(p, field).shape}", f"shape {shape} for {config}")
    if p.workload_shock.shape != (p.price_series.shape[0], u):
        _fail("workload_shock", f"shape {p.workload_shock.shape}", f"(len(price_series), num_users) = {(p.price_series.shape[0], u)}")
    for field in ("price_series", "hydro_series", "workload_shock"):
        arr = getattr(p, field)
        if field != "workload_shock" and arr.ndim != 1:
            _fail(field, f"shape {arr.shape}", "a 1-D hourly series")
        bad = np.argwhere(~np.isfinite(arr))
        if bad.size:
            index = tuple(int(i) for i in bad[0])
            _fail(field, f"non-finite value {arr[index]} at index {index}", "finite numbers (no NaN/inf)")
    need = config.window + config.episode_length + 1
    if p.price_series.shape[0] < need or p.hydro_series.shape[0] < need:
        _fail("price_series/hydro_series", f"length {min(p.price_series.shape[0], p.hydro_series.shape[0])}",
              f">= window + episode_length + 1 = {need} hours (CPNConfig.window={config.window})")
    if p.price_series.shape != p.hydro_series.shape:
        _fail("hydro_series", f"length {p.hydro_series.shape[0]}", f"same length as price_series ({p.price_series.shape[0]})")
    if (p.hydro_series < 0).any() or (p.hydro_series > 1).any():
        _fail("hydro_series", f"range [{p.hydro_series.min()}, {p.hydro_series.max()}]", "values in [0, 1] (generation / max)")
    adj = p.adjacency.astype(bool)
    if (adj != adj.T).any() or np.diag(adj).any():
        _fail("adjacency", "asymmetric or with self loops", "symmetric, zero diagonal")
    if n > 1 and not _is_connected(adj):
        _fail("adjacency", "a disconnected graph", "a connected graph")
    if not np.isfinite(p.bandwidth).all() or (p.bandwidth[adj] <= 0).any():
        _fail("bandwidth", f"min over links {p.bandwidth[adj].min() if adj.any() else 'n/a'}", "> 0 Mb/s on every link")
    positive = dict(power="TFLOPS", access_bandwidth="Mb/s (a user without access link is disconnected)",
                    packet_size="Mb", deadline="s")
    for field, unit in positive.items():
        arr = getattr(p, field)
        if not np.isfinite(arr).all() or (arr <= 0).any():
            _fail(field, f"min {arr.min()}", f"finite and > 0 {unit}")
    nonneg = ("switch_delay", "workload_base", "workload_amplitude", "workload_noise", "workload_floor",
              "unit_price", "eta", "usage_price", "kappa")
    for field in nonneg:
        arr = np.asarray(getattr(p, field))
        if not np.isfinite(arr).all() or (arr < 0).any():
            _fail(field, f"min {arr.min()}", "finite and >= 0")
    if p.workload_floor <= 0:
        _fail("workload_floor", float(p.workload_floor), "> 0 TFLOP (delays divide by the workload's compute time)")
    for field in ("hydro_share", "late_revenue_fraction"):
        arr = np.asarray(getattr(p, field))
        if (arr < 0).any() or (arr > 1).any():
            _fail(field, f"range [{arr.min()}, {arr.max()}]", "[0, 1]")
    if (p.hydro_share[~p.green.astype(bool)] != 0).any():
        _fail("hydro_share", "non-zero on a non-green node", "0 where green is False")
    if (p.user_node < 0).any() or (p.user_node >= n).any():
        _fail("user_node", f"range [{p.user_node.min()}, {p.user_node.max()}]", f"node indices in [0, {n - 1}]")
    return params
