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
    slot_duration=1.0,  # s, service window of a slot with CPNConfig.compute_sharing (docs/model.md), choice
)

# What each override of ``generate_instance`` may be: (low bound, inclusive?, high bound, unit).
RANGE_RULES = dict(
    power_range=(0.0, False, None, "TFLOPS"),
    bandwidth_range=(0.0, False, None, "Mb/s"),
    switch_delay_range=(0.0, True, None, "s"),
    hydro_share_range=(0.0, True, 1.0, "share"),
    workload_base_range=(0.0, True, None, "TFLOP"),
    workload_amplitude_range=(0.0, True, None, "relative"),
)
SCALAR_RULES = dict(
    packet_size=(0.0, False, None, "Mb"),
    deadline=(0.0, False, None, "s"),
    unit_price=(0.0, True, None, "per TFLOP"),
    eta=(0.0, True, None, "s"),
    usage_price=(0.0, True, None, "per TFLOP/TFLOPS"),
    kappa=(0.0, True, None, "energy coefficient"),
    green_fraction=(0.0, True, 1.0, "share of nodes"),
    workload_noise_fraction=(0.0, True, None, "noise std / base"),
    workload_floor=(0.0, False, None, "TFLOP"),
    waxman_alpha=(0.0, False, None, "Waxman distance scale"),
    waxman_beta=(0.0, True, 1.0, "Waxman link probability"),
    slot_duration=(0.0, False, None, "s"),
)

MAX_INSTANCE_BYTES = 4 * 2**30
"""Default ceiling (4 GiB) on :func:`instance_bytes`; ``generate_instance(max_bytes=...)`` moves it."""


def instance_bytes(num_nodes: int, num_users: int, series_hours: int) -> int:
    """Estimated peak memory (bytes) of :func:`generate_instance` for these sizes.

    About 32 bytes per node pair (the ``(N, N)`` float32 temporaries of ``random_topology`` and
    the bandwidth matrix: positions' differences, distances, Waxman draws, link bandwidths) plus
    8 bytes per user-hour (``workload_shock``, ``(H, U)`` float32, and its normal draw), plus
    the ``(H,)`` series. The environment's step needs more: ``(U, N, N)`` int32 next-hop tables.
    """
    return 32 * num_nodes * num_nodes + 8 * series_hours * num_users + 64 * series_hours + 64 * (num_nodes + num_users)


def _is_traced(value) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(value))


def _is_real(value) -> bool:
    """A finite real number: Python, NumPy or a 0-d array, never a bool or a string."""
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        dtype = np.dtype(value.dtype)
        if value.shape != () or dtype == np.bool_ or not (np.issubdtype(dtype, np.integer)
                                                          or np.issubdtype(dtype, np.floating)):
            return False
        value = value.item()
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(value))


def _rule_text(low, inclusive, high, unit) -> str:
    if high is not None:
        return f"in [{low:g}, {high:g}] ({unit})"
    return f"{'>=' if inclusive else '>'} {low:g} ({unit})"


def _within(value, low, inclusive, high) -> bool:
    return (value >= low if inclusive else value > low) and (high is None or value <= high)


def _bad(name, value, allowed):
    raise ValueError(f"generate_instance: {name}={value!r} is invalid: must be {allowed}")


def _bad_array(name, description, allowed):
    raise ValueError(f"generate_instance: {name} {description} is invalid: must be {allowed}")


def _check_overrides(values: dict) -> None:
    """Checks concrete overrides of ``DEFAULTS`` (traced ones pass: they cannot be read on the host)."""
    for name, value in values.items():
        if _is_traced(value):
            continue
        if name in RANGE_RULES:
            low, inclusive, high, unit = RANGE_RULES[name]
            allowed = f"a (low, high) pair of finite numbers, low <= high, both {_rule_text(low, inclusive, high, unit)}"
            if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_real(v) for v in value)):
                _bad(name, value, allowed)
            if not (value[0] <= value[1] and _within(value[0], low, inclusive, high)
                    and _within(value[1], low, inclusive, high)):
                _bad(name, value, allowed)
        else:
            low, inclusive, high, unit = SCALAR_RULES[name]
            if not (_is_real(value) and _within(value, low, inclusive, high)):
                _bad(name, value, f"finite and {_rule_text(low, inclusive, high, unit)}")


def _check_series(name: str, series, unit_interval: bool):
    """Shape always (static), values when concrete: 1-D, non-empty, finite (the length against the
    config is ``validate_params``'s check)."""
    shape = np.shape(series)
    if len(shape) != 1 or shape[0] == 0:
        _bad_array(name, f"of shape {shape}", "a non-empty 1-D hourly series")
    if _is_traced(series):
        return
    array = np.asarray(series)
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        _bad_array(name, f"of dtype {array.dtype}", "a float series")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        _bad_array(name, f"with {bad.size} non-finite value(s), first {array[bad[0]]} at index {int(bad[0])},",
                   "finite numbers (load real data with fill='interpolate' or 'ffill')")
    if unit_interval and ((array < 0).any() or (array > 1).any()):
        _bad_array(name, f"with values in [{array.min()}, {array.max()}]", "values in [0, 1] (generation / max)")


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


def _check_arguments(config, price_series, hydro_series, series_start_hour, series_hours, max_bytes, overrides):
    """The checks of ``generate_instance``'s arguments (see its docstring)."""
    if not isinstance(config, CPNConfig):
        _bad("config", config, "a CPNConfig")
    _check_overrides(overrides)
    n, u = config.num_nodes, config.num_users
    for name, value in (("series_start_hour", series_start_hour), ("series_hours", series_hours)):
        if not _is_traced(value) and (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))):
            _bad(name, value, "an int")
    if not _is_traced(series_start_hour) and series_start_hour < 0:
        _bad("series_start_hour", series_start_hour, "an int >= 0 (hour of week of the series' first entry)")
    if series_hours < 1:
        _bad("series_hours", series_hours, "an int >= 1 (hours)")
    for name, series in (("price_series", price_series), ("hydro_series", hydro_series)):
        if series is not None:
            _check_series(name, series, unit_interval=name == "hydro_series")
            if (price_series is None or hydro_series is None) and np.shape(series)[0] != series_hours:
                _bad_array(name, f"of shape {np.shape(series)}",
                           f"series_hours={series_hours} long: the other series is generated with that length "
                           "(or pass both series)")
    if price_series is not None and hydro_series is not None and np.shape(price_series) != np.shape(hydro_series):
        _bad_array("hydro_series", f"of shape {np.shape(hydro_series)}", f"the shape of price_series {np.shape(price_series)}")
    hours = np.shape(price_series)[0] if price_series is not None else (
        np.shape(hydro_series)[0] if hydro_series is not None else series_hours)
    if isinstance(max_bytes, (bool, np.bool_)) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 1:
        _bad("max_bytes", max_bytes, "an int >= 1 (bytes)")
    estimate = instance_bytes(n, u, int(hours))
    if estimate > max_bytes:
        raise ValueError(
            f"generate_instance: num_nodes={n}, num_users={u}, series of {int(hours)} hours is too large: "
            f"needs about {estimate / 2**30:.1f} GiB (32 B x num_nodes^2 + 8 B x hours x num_users), over "
            f"max_bytes={max_bytes / 2**30:.1f} GiB; use fewer nodes/users or pass a larger max_bytes")


def generate_instance(
    key: jax.Array,
    config: CPNConfig,
    *,
    price_series: np.ndarray | jax.Array | None = None,
    hydro_series: np.ndarray | jax.Array | None = None,
    series_start_hour: int = 0,
    series_hours: int = 8760,
    max_bytes: int = MAX_INSTANCE_BYTES,
    **overrides,
) -> CPNParams:
    """Draws a random instance (jittable when both series are given or generated).

    Every argument a user hands in is checked first (concrete values; traced ones only for
    shape): overrides against ``RANGE_RULES`` / ``SCALAR_RULES``, the series for shape, length,
    finiteness (hydro in [0, 1]), and the sizes against ``max_bytes`` (:func:`instance_bytes`),
    so a huge config is refused at once with its memory estimate instead of exhausting memory.

    Args:
        key: PRNG key.
        config: static config.
        price_series: ``(H,)`` normalised price (see ``jaxcpn.data.series_for_env``);
            generated from the calibrated model when ``None``.
        hydro_series: ``(H,)`` hydro generation / max in [0, 1]; generated when ``None``.
        series_start_hour: hour of week (0 = Monday 00:00) of the series' first entry.
        series_hours: length of generated series (hours).
        max_bytes: ceiling on the estimated peak memory of the draw (default 4 GiB).
        **overrides: any default of ``DEFAULTS`` (e.g. ``kappa=1e-4``, ``power_range=(1, 20)``).

    Returns:
        ``CPNParams``.

    Raises:
        ValueError: naming the argument, its value and what is allowed.
    """
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"generate_instance: unknown override(s) {sorted(unknown)}; allowed: {sorted(DEFAULTS)}")
    _check_arguments(config, price_series, hydro_series, series_start_hour, series_hours, max_bytes, overrides)
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
        slot_duration=jnp.asarray(d["slot_duration"], f32),  # a constant: no key, the other draws stay
    )


BOOL_LEAVES = ("adjacency", "green")
INT_LEAVES = ("user_node", "series_start_hour")
"""Leaves of ``CPNParams`` that are not float (``validate_params`` checks every leaf's dtype kind)."""


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

    With ``config.max_hops`` below ``num_nodes - 1`` it also checks that every route the env
    takes (each user's delay-shortest path to every node) has at most ``max_hops`` hops, since a
    longer one would be cut short (wrong delays).

    Returns:
        ``params`` unchanged, so it can wrap construction: ``validate_params(make(...), config)``.
    """
    traced = [name for name in CPNParams.__dataclass_fields__ if _is_traced(getattr(params, name))]
    if traced:
        _fail(traced[0], "a traced array", "concrete arrays (validate_params runs on the host, before jit)")
    p = jax.tree.map(np.asarray, params)
    n, u = config.num_nodes, config.num_users
    for field in CPNParams.__dataclass_fields__:
        dtype = getattr(p, field).dtype
        if field in BOOL_LEAVES:
            ok, allowed = dtype == np.bool_, "a bool array"
        elif field in INT_LEAVES:
            ok, allowed = np.issubdtype(dtype, np.integer) and dtype != np.bool_, "an integer dtype (int32), not bool or float"
        else:
            ok, allowed = np.issubdtype(dtype, np.floating), "a float dtype (float32), not bool or int"
        if not ok:
            _fail(field, f"dtype {dtype}", allowed)
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
    # The final observation looks one slot past the episode; a hidden current workload one slot back.
    need = config.window + config.episode_length + 1 + (not config.observe_current_workload)
    if p.price_series.shape[0] < need or p.hydro_series.shape[0] < need:
        _fail("price_series/hydro_series", f"length {min(p.price_series.shape[0], p.hydro_series.shape[0])}",
              f">= window + episode_length + 1{' + 1 (observe_current_workload=False)' if not config.observe_current_workload else ''} = {need} hours (CPNConfig.window={config.window})")
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
    if p.slot_duration.shape != () or not np.isfinite(p.slot_duration) or p.slot_duration <= 0:
        _fail("slot_duration", p.slot_duration, "a finite scalar > 0 s (the service window of a slot)")
    for field in ("hydro_share", "late_revenue_fraction"):
        arr = np.asarray(getattr(p, field))
        if (arr < 0).any() or (arr > 1).any():
            _fail(field, f"range [{arr.min()}, {arr.max()}]", "[0, 1]")
    if (p.hydro_share[~p.green.astype(bool)] != 0).any():
        _fail("hydro_share", "non-zero on a non-green node", "0 where green is False")
    if (p.user_node < 0).any() or (p.user_node >= n).any():
        _fail("user_node", f"range [{p.user_node.min()}, {p.user_node.max()}]", f"node indices in [0, {n - 1}]")
    if config.hops < n - 1:
        _check_route_lengths(params, config)
    return params


def _check_route_lengths(params: CPNParams, config: CPNConfig) -> None:
    """Every route the env can take fits ``config.hops`` (a longer one would be cut short: wrong delays).

    The routes are the env's own: each user's delay-shortest paths for its packet size (the same
    ``model.hop_delays`` / ``model.shortest_paths`` tables), from its access node to every node.
    """
    from jaxcpn.cpn import model

    n = config.num_nodes
    user_node, packet_size = np.asarray(params.user_node), np.asarray(params.packet_size)
    destinations = np.arange(n)
    longest = (0, 0, 0, 0)  # (hops, user, destination, source)
    for size in np.unique(packet_size):
        hop = model.hop_delays(jnp.float32(size), params.bandwidth, params.switch_delay, params.adjacency)
        next_hop = np.asarray(model.shortest_paths(hop)[1])
        for user in np.flatnonzero(packet_size == size):
            node, hops = np.full(n, user_node[user]), np.zeros(n, np.int64)
            for _ in range(n - 1):
                moving = node != destinations
                hops += moving
                node = np.where(moving, next_hop[node, destinations], node)
            worst = int(np.argmax(hops))
            longest = max(longest, (int(hops[worst]), int(user), worst, int(user_node[user])))
    hops, user, destination, source = longest
    if hops > config.hops:
        raise ValueError(
            f"CPNConfig.max_hops={config.max_hops} is invalid for this instance: the route of user {user} "
            f"(packet_size={float(packet_size[user]):g} Mb) from node {source} to node {destination} has {hops} "
            f"hops; allowed: max_hops >= {hops}, the longest route (or None: num_nodes - 1, always enough)")
