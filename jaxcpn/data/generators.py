"""Seeded generators of the exogenous hourly series (pure JAX, jittable).

Both series follow the same model, calibrated on one real year (see ``calibration.py``):

    series(t) = profile[hour of week or day](t) * seasonal_level(t) + residual(t),

with ``residual`` a stationary Gaussian AR(1) process simulated with ``lax.scan``.

Time axis: hour ``t`` counts from Monday 00:00 local time (Europe/Berlin) of a synthetic
365-day year that starts on a Monday, 1 January. The hour of week is ``t mod 168``, the
hour of day ``t mod 24`` and the position in the year ``t mod 8760``; the seasonal level is
a periodic piecewise-linear curve through one anchor per month (placed mid-month) whose
monthly means equal the calibration series' monthly means. ``start_hour`` may be traced;
``num_hours`` fixes shapes and must be static.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxcpn.data import calibration

HOURS_PER_DAY = 24
HOURS_PER_WEEK = 168
HOURS_PER_YEAR = 8760
_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.float64)
MONTH_MIDPOINT_DAYS = tuple(float(x) for x in np.cumsum(_MONTH_DAYS) - _MONTH_DAYS / 2.0)
"""Day of year (0 = 1 January 00:00) of each month's midpoint, where its anchor sits."""


def hour_indices(start_hour: jax.Array | int, num_hours: int) -> jax.Array:
    """Returns ``(num_hours,)`` int32 hours ``start_hour, start_hour + 1, ...`` (0 = Monday 00:00)."""
    return jnp.asarray(start_hour, jnp.int32) + jnp.arange(num_hours, dtype=jnp.int32)


def seasonal_level(hours: jax.Array, monthly_anchor: jax.Array) -> jax.Array:
    """Periodic piecewise-linear seasonal level through one anchor per month.

    Args:
        hours: ``(T,)`` int hours of the synthetic calendar (only ``hours mod 8760`` matters).
        monthly_anchor: ``(12,)`` level at each month's midpoint (dimensionless).

    Returns:
        ``(T,)`` float32 level, linear in ``monthly_anchor``.
    """
    monthly_anchor = jnp.asarray(monthly_anchor, jnp.float32)
    day_of_year = (jnp.mod(hours, HOURS_PER_YEAR).astype(jnp.float32) + 0.5) / HOURS_PER_DAY
    midpoints = jnp.asarray(MONTH_MIDPOINT_DAYS, jnp.float32)
    # Wrap December before January and January after December so the curve is periodic.
    anchor_days = jnp.concatenate([midpoints[-1:] - 365.0, midpoints, midpoints[:1] + 365.0])
    anchor_levels = jnp.concatenate([monthly_anchor[-1:], monthly_anchor, monthly_anchor[:1]])
    return jnp.interp(day_of_year, anchor_days, anchor_levels)


def simulate_ar1(key: jax.Array, num_hours: int, coefficient: float, innovation_std: float) -> jax.Array:
    """Simulates a zero-mean Gaussian AR(1) path started from its stationary distribution.

    ``x[0] ~ N(0, innovation_std^2 / (1 - coefficient^2))``,
    ``x[t] = coefficient * x[t-1] + innovation_std * e[t]``, ``e[t] ~ N(0, 1)``.

    Args:
        key: PRNG key.
        num_hours: path length (static).
        coefficient: AR(1) coefficient in (-1, 1).
        innovation_std: standard deviation of the innovations.

    Returns:
        ``(num_hours,)`` float32 path.
    """
    initial_key, innovation_key = jax.random.split(key)
    coefficient = jnp.asarray(coefficient, jnp.float32)
    innovation_std = jnp.asarray(innovation_std, jnp.float32)
    stationary_std = innovation_std / jnp.sqrt(1.0 - coefficient**2)
    initial = stationary_std * jax.random.normal(initial_key, (), jnp.float32)
    innovations = innovation_std * jax.random.normal(innovation_key, (num_hours,), jnp.float32)

    def step(current: jax.Array, innovation: jax.Array) -> tuple[jax.Array, jax.Array]:
        return coefficient * current + innovation, current

    _, path = jax.lax.scan(step, initial, innovations)
    return path


def generate_price(key: jax.Array, num_hours: int, start_hour: jax.Array | int = 0) -> jax.Array:
    """Generates a normalised hourly electricity price.

    ``price(t) = weekly_profile[t mod 168] * seasonal_level(t) + AR(1) residual``, calibrated
    on the 2025 DE-LU day-ahead price divided by its annual mean (``calibration.PRICE_*``).
    Like real day-ahead prices it can be negative (a few percent of hours).

    Args:
        key: PRNG key.
        num_hours: number of hours (static).
        start_hour: hour of the first entry, 0 = Monday 00:00 of 1 January (may be traced).

    Returns:
        ``(num_hours,)`` float32 price, dimensionless: 1.0 = annual mean of the calibration
        series (the 2025 DE-LU mean, ``calibration.PRICE_ANNUAL_MEAN_EUR_MWH`` EUR/MWh).
    """
    hours = hour_indices(start_hour, num_hours)
    profile = jnp.asarray(calibration.PRICE_WEEKLY_PROFILE, jnp.float32)[jnp.mod(hours, HOURS_PER_WEEK)]
    level = seasonal_level(hours, calibration.PRICE_MONTHLY_ANCHOR)
    residual = simulate_ar1(
        key, num_hours, calibration.PRICE_RESIDUAL_AR_COEFFICIENT, calibration.PRICE_RESIDUAL_INNOVATION_STD
    )
    return (profile * level + residual).astype(jnp.float32)


def generate_hydro(key: jax.Array, num_hours: int, start_hour: jax.Array | int = 0) -> jax.Array:
    """Generates hourly hydropower generation as a share of its annual maximum.

    ``hydro(t) = clip(daily_profile[t mod 24] * seasonal_level(t) + AR(1) residual, 0, 1)``,
    calibrated on 2025 German hydro generation divided by its annual maximum
    (``calibration.HYDRO_*``). The clip is part of the model: the series is a bounded
    physical share (generation cannot be negative nor exceed the maximum it is scaled by);
    with the calibrated numbers it binds in well under 1% of hours.

    Args:
        key: PRNG key.
        num_hours: number of hours (static).
        start_hour: hour of the first entry, 0 = Monday 00:00 of 1 January (may be traced).

    Returns:
        ``(num_hours,)`` float32 in [0, 1], dimensionless (1.0 = annual maximum).
    """
    hours = hour_indices(start_hour, num_hours)
    profile = jnp.asarray(calibration.HYDRO_DAILY_PROFILE, jnp.float32)[jnp.mod(hours, HOURS_PER_DAY)]
    level = seasonal_level(hours, calibration.HYDRO_MONTHLY_ANCHOR)
    residual = simulate_ar1(
        key, num_hours, calibration.HYDRO_RESIDUAL_AR_COEFFICIENT, calibration.HYDRO_RESIDUAL_INNOVATION_STD
    )
    return jnp.clip(profile * level + residual, 0.0, 1.0).astype(jnp.float32)


def default_series(
    key: jax.Array, num_hours: int = HOURS_PER_YEAR, start_hour: jax.Array | int = 0
) -> tuple[jax.Array, jax.Array]:
    """Generates both exogenous series with independent subkeys.

    Args:
        key: PRNG key.
        num_hours: number of hours (static).
        start_hour: hour of the first entry, 0 = Monday 00:00 of 1 January (may be traced).

    Returns:
        ``(price, hydro)``, each ``(num_hours,)`` float32; see ``generate_price`` and
        ``generate_hydro`` for units.
    """
    price_key, hydro_key = jax.random.split(key)
    return generate_price(price_key, num_hours, start_hour), generate_hydro(hydro_key, num_hours, start_hour)
