"""Calibrates the seeded exogenous-series generators on a real hourly CSV.

Reads the price and hydro columns of an hourly UTC CSV (by default the shared 2025 German
file, ``../shared/data/de_2025_hourly.csv`` seen from the repository root), converts the
timestamps to Europe/Berlin local time and prints the statistics that
``jaxcpn/data/calibration.py`` embeds, as Python source. ``--write`` overwrites that module.

Usage (from the repository root)::

    .venv/bin/python scripts/calibrate_data.py --write

Only statistics leave the file: profiles, monthly levels, AR(1) parameters, means and spreads.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import tyro

from jaxcpn.data.generators import HOURS_PER_YEAR, seasonal_level
from jaxcpn.data.loaders import load_hourly_csv

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = REPOSITORY_ROOT.parent / "shared" / "data" / "de_2025_hourly.csv"
MODULE_PATH = REPOSITORY_ROOT / "jaxcpn" / "data" / "calibration.py"
PRICE_COLUMN = "price_DE_LU_eur_mwh"
HYDRO_COLUMN = "hydro_generation_mw"


def local_calendar(timestamps: np.ndarray) -> dict[str, np.ndarray]:
    """Local (Europe/Berlin) calendar features of ``(T,)`` UTC ``datetime64[h]`` timestamps."""
    zone = ZoneInfo("Europe/Berlin")
    local = [
        dt.datetime.fromisoformat(str(stamp)).replace(tzinfo=dt.timezone.utc).astimezone(zone).replace(tzinfo=None)
        for stamp in timestamps
    ]
    return {
        "month": np.array([moment.month - 1 for moment in local]),
        "hour_of_day": np.array([moment.hour for moment in local]),
        "hour_of_week": np.array([moment.weekday() * 24 + moment.hour for moment in local]),
        "hour_of_year": np.array(
            [int((moment - dt.datetime(moment.year, 1, 1)).total_seconds() // 3600) % HOURS_PER_YEAR for moment in local]
        ),
    }


def fit_component(
    series: np.ndarray, profile_index: np.ndarray, profile_size: int, month: np.ndarray, hour_of_year: np.ndarray
) -> dict[str, np.ndarray | float]:
    """Fits ``series = profile[index] * seasonal_level + AR(1)`` by moments and least squares."""
    monthly_level = np.array([series[month == m].mean() for m in range(12)])
    # Anchors of the piecewise-linear level whose monthly means equal ``monthly_level``.
    basis = np.stack([np.asarray(seasonal_level(hour_of_year, np.eye(12)[k]), np.float64) for k in range(12)], axis=1)
    month_average_basis = np.stack([basis[month == m].mean(axis=0) for m in range(12)])
    monthly_anchor = np.linalg.solve(month_average_basis, monthly_level)
    level = basis @ monthly_anchor
    profile = np.array(
        [
            np.sum(series[profile_index == h] * level[profile_index == h]) / np.sum(level[profile_index == h] ** 2)
            for h in range(profile_size)
        ]
    )
    residual = series - profile[profile_index] * level
    centred = residual - residual.mean()
    coefficient = float(np.sum(centred[1:] * centred[:-1]) / np.sum(centred**2))
    innovation_std = float(centred.std() * np.sqrt(1.0 - coefficient**2))
    return {
        "profile": profile,
        "monthly_level": monthly_level,
        "monthly_anchor": monthly_anchor,
        "ar_coefficient": coefficient,
        "innovation_std": innovation_std,
        "residual_std": float(centred.std()),
        "mean": float(series.mean()),
        "std": float(series.std()),
    }


def tuple_source(name: str, values: np.ndarray, per_line: int = 12) -> str:
    numbers = [f"{value:.4f}" for value in values]
    lines = [", ".join(numbers[i : i + per_line]) for i in range(0, len(numbers), per_line)]
    body = "".join(f"    {line},\n" for line in lines)
    return f"{name} = (\n{body})\n"


def module_source(csv_path: Path, price_mean: float, hydro_max: float, price: dict, hydro: dict, extra: dict) -> str:
    header = f'''"""Calibration constants of the exogenous-series generators (generated file).

Statistics of one real year of hourly data, not the data: {csv_path.name}
(2025, DE-LU day-ahead price and German hydropower generation, Bundesnetzagentur | SMARD.de,
CC BY 4.0), timestamps converted from UTC to Europe/Berlin local time; the {extra["hydro_gaps"]}
missing hydro hours were linearly interpolated for the calibration only.

Model (see ``generators.py``): ``series = profile * seasonal_level + AR(1) residual``.

* Price is divided by its annual mean ({price_mean:.2f} EUR/MWh): dimensionless, 1 = mean.
  ``PRICE_WEEKLY_PROFILE[h]``, h = hour of week (0 = Monday 00:00 local), least-squares factor
  on the seasonal level. ``PRICE_MONTHLY_LEVEL``: mean normalised price of each calendar month.
* Hydro is divided by its annual maximum ({hydro_max:.1f} MW): share in [0, 1].
  ``HYDRO_DAILY_PROFILE[h]``, h = local hour of day.
* ``*_MONTHLY_ANCHOR``: values at mid-month of the periodic piecewise-linear seasonal level
  whose monthly means equal ``*_MONTHLY_LEVEL`` (what the generators interpolate).
* ``*_RESIDUAL_AR_COEFFICIENT`` / ``*_RESIDUAL_INNOVATION_STD``: lag-1 autocorrelation of
  the residual and innovation std ``residual_std * sqrt(1 - coefficient^2)``.
* ``PRICE_STD``, ``PRICE_NEGATIVE_SHARE``, ``HYDRO_MEAN``, ``HYDRO_STD``: statistics of the
  normalised real series, used by tests to check generated series loosely.

Regenerate from the repository root with::

    .venv/bin/python scripts/calibrate_data.py --write
"""

'''
    parts = [
        header,
        f"PRICE_ANNUAL_MEAN_EUR_MWH = {price_mean:.4f}\n",
        f"PRICE_STD = {price['std']:.4f}\n",
        f"PRICE_NEGATIVE_SHARE = {extra['negative_share']:.4f}\n",
        tuple_source("PRICE_WEEKLY_PROFILE", price["profile"]),
        tuple_source("PRICE_MONTHLY_LEVEL", price["monthly_level"]),
        tuple_source("PRICE_MONTHLY_ANCHOR", price["monthly_anchor"]),
        f"PRICE_RESIDUAL_AR_COEFFICIENT = {price['ar_coefficient']:.4f}\n",
        f"PRICE_RESIDUAL_INNOVATION_STD = {price['innovation_std']:.4f}\n\n",
        f"HYDRO_ANNUAL_MAX_MW = {hydro_max:.4f}\n",
        f"HYDRO_MEAN = {hydro['mean']:.4f}\n",
        f"HYDRO_STD = {hydro['std']:.4f}\n",
        tuple_source("HYDRO_DAILY_PROFILE", hydro["profile"]),
        tuple_source("HYDRO_MONTHLY_LEVEL", hydro["monthly_level"]),
        tuple_source("HYDRO_MONTHLY_ANCHOR", hydro["monthly_anchor"]),
        f"HYDRO_RESIDUAL_AR_COEFFICIENT = {hydro['ar_coefficient']:.4f}\n",
        f"HYDRO_RESIDUAL_INNOVATION_STD = {hydro['innovation_std']:.4f}\n",
    ]
    return "".join(parts)


@dataclasses.dataclass(frozen=True)
class Args:
    """Calibrate the seeded exogenous-series generators on a real hourly CSV."""

    csv: Path = DEFAULT_CSV
    """Hourly UTC CSV with the price and hydro columns."""
    price_column: str = PRICE_COLUMN
    """Column of the day-ahead price (EUR/MWh)."""
    hydro_column: str = HYDRO_COLUMN
    """Column of the hydropower generation."""
    write: bool = False
    """Overwrite jaxcpn/data/calibration.py with the printed module."""


def main(args: Args) -> None:

    strict_price = load_hourly_csv(args.csv, [args.price_column])
    filled_hydro = load_hourly_csv(args.csv, [args.hydro_column], fill="interpolate")
    with args.csv.open(newline="", encoding="utf-8") as handle:
        hydro_gaps = sum(1 for row in csv.DictReader(handle) if not row[args.hydro_column].strip())
    calendar = local_calendar(strict_price.timestamps)
    price_mean = float(strict_price.column(args.price_column).mean())
    price = strict_price.column(args.price_column) / price_mean
    hydro_max = float(filled_hydro.column(args.hydro_column).max())
    hydro = filled_hydro.column(args.hydro_column) / hydro_max

    price_fit = fit_component(price, calendar["hour_of_week"], 168, calendar["month"], calendar["hour_of_year"])
    hydro_fit = fit_component(hydro, calendar["hour_of_day"], 24, calendar["month"], calendar["hour_of_year"])
    extra = {"negative_share": float(np.mean(price < 0)), "hydro_gaps": hydro_gaps}
    source = module_source(args.csv, price_mean, hydro_max, price_fit, hydro_fit, extra)
    print(source)
    print(
        f"# price: mean {price_mean:.2f} EUR/MWh, normalised std {price_fit['std']:.4f}, "
        f"negative share {extra['negative_share']:.4f}, residual std {price_fit['residual_std']:.4f}, "
        f"AR {price_fit['ar_coefficient']:.4f}; hydro: max {hydro_max:.1f} MW, mean {hydro_fit['mean']:.4f}, "
        f"std {hydro_fit['std']:.4f}, residual std {hydro_fit['residual_std']:.4f}, AR {hydro_fit['ar_coefficient']:.4f}"
    )
    if args.write:
        MODULE_PATH.write_text(source, encoding="utf-8")
        print(f"# wrote {MODULE_PATH}")


if __name__ == "__main__":
    main(tyro.cli(Args))
