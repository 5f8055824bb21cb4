"""Tests of jaxcpn.data: seeded generators, CSV loaders, normalisation for the environment."""

from __future__ import annotations

from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcpn.data import (
    FILL_OPTIONS,
    default_series,
    generate_hydro,
    generate_price,
    load_entsoe_day_ahead,
    load_hourly_csv,
    load_smard_generation,
    series_for_env,
)
from jaxcpn.data import calibration
from jaxcpn.data.generators import seasonal_level, simulate_ar1

REAL_CSV = Path(__file__).parents[1].parent / "shared/data/de_2025_hourly.csv"
HOURS_PER_YEAR = 8760
jitted_default_series = jax.jit(default_series, static_argnums=1)


# ----------------------------------------------------------------------------- generators


@pytest.fixture(scope="module")
def year_of_series():
    """Four independent generated years, ``(4, 8760)`` price and hydro."""
    keys = jax.random.split(jax.random.key(0), 4)
    generate = jax.jit(jax.vmap(default_series, in_axes=(0, None, None)), static_argnums=1)
    price, hydro = generate(keys, HOURS_PER_YEAR, 0)
    return np.asarray(price), np.asarray(hydro)


def test_generators_shapes_dtypes_and_ranges():
    price, hydro = jitted_default_series(jax.random.key(1), 48, 5)
    chex.assert_shape([price, hydro], (48,))
    assert price.dtype == jnp.float32 and hydro.dtype == jnp.float32
    chex.assert_tree_all_finite((price, hydro))
    assert float(hydro.min()) >= 0.0 and float(hydro.max()) <= 1.0


def test_generators_deterministic_per_key_and_different_across_keys():
    first_price, first_hydro = jitted_default_series(jax.random.key(3), 48)
    again_price, again_hydro = jitted_default_series(jax.random.key(3), 48)
    other_price, other_hydro = jitted_default_series(jax.random.key(4), 48)
    np.testing.assert_array_equal(first_price, again_price)
    np.testing.assert_array_equal(first_hydro, again_hydro)
    assert not np.allclose(first_price, other_price)
    assert not np.allclose(first_hydro, other_hydro)


def test_traced_start_hour_compiles_once_and_shifts_the_profile():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def generate(key, start_hour):
        return generate_price(key, 48, start_hour), generate_hydro(key, 48, start_hour)

    key = jax.random.key(6)
    start = 30 * 24 + 3
    shifted_price, shifted_hydro = generate(key, jnp.asarray(start, jnp.int32))
    unshifted_price, unshifted_hydro = generate(key, jnp.asarray(0, jnp.int32))
    assert not np.allclose(shifted_price, unshifted_price)
    assert not np.allclose(shifted_hydro, unshifted_hydro)
    # Same key -> same residual path, so the shifted series is the profile at the new hours.
    residual = simulate_ar1(
        key, 48, calibration.PRICE_RESIDUAL_AR_COEFFICIENT, calibration.PRICE_RESIDUAL_INNOVATION_STD
    )
    hours = start + np.arange(48)
    profile = np.asarray(calibration.PRICE_WEEKLY_PROFILE)[hours % 168]
    level = np.asarray(seasonal_level(jnp.asarray(hours), calibration.PRICE_MONTHLY_ANCHOR))
    np.testing.assert_allclose(shifted_price, profile * level + residual, rtol=1e-5, atol=1e-5)


def test_seasonal_level_reproduces_monthly_means():
    hours = jnp.arange(HOURS_PER_YEAR)
    level = np.asarray(seasonal_level(hours, calibration.PRICE_MONTHLY_ANCHOR))
    month_of_hour = np.repeat(np.arange(12), np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]) * 24)
    monthly = np.array([level[month_of_hour == m].mean() for m in range(12)])
    # The calibration matched monthly means on the real (2025, DST-shifted) calendar.
    np.testing.assert_allclose(monthly, calibration.PRICE_MONTHLY_LEVEL, atol=0.02)
    assert abs(level[0] - level[-1]) < 0.01, "the seasonal level must be periodic over the year"


def test_ar1_is_stationary():
    simulate = jax.jit(jax.vmap(lambda key: simulate_ar1(key, 32, 0.9, 0.2)))
    paths = np.asarray(simulate(jax.random.split(jax.random.key(7), 3000)))
    expected_std = 0.2 / np.sqrt(1 - 0.81)
    np.testing.assert_allclose(np.std(paths[:, 0]), expected_std, rtol=0.06)
    np.testing.assert_allclose(np.std(paths[:, -1]), expected_std, rtol=0.06)
    lag_correlation = np.corrcoef(paths[:, 10], paths[:, 11])[0, 1]
    np.testing.assert_allclose(lag_correlation, 0.9, atol=0.025)


def test_price_statistics_match_calibration(year_of_series):
    price, _ = year_of_series
    assert abs(price.mean() - 1.0) < 0.05
    assert abs(price.std(axis=1).mean() - calibration.PRICE_STD) < 0.1
    # A Gaussian residual puts fewer hours below zero than the real fat-tailed series (6.5%).
    assert 0.01 < (price < 0).mean() < 2 * calibration.PRICE_NEGATIVE_SHARE
    weekday_evening, sunday_noon = price[:, 19::168].mean(), price[:, 6 * 24 + 13 :: 168].mean()
    assert weekday_evening > 1.3 and sunday_noon < 0.5


def test_hydro_statistics_match_calibration(year_of_series):
    _, hydro = year_of_series
    assert abs(hydro.mean() - calibration.HYDRO_MEAN) < 0.03
    assert abs(hydro.std(axis=1).mean() - calibration.HYDRO_STD) < 0.03
    assert hydro.min() >= 0.0 and hydro.max() <= 1.0
    daily = hydro.reshape(4, -1, 24).mean(axis=(0, 1))
    assert int(np.argmax(daily)) in (18, 19, 20) and int(np.argmin(daily)) in (1, 2, 3, 4)


# ----------------------------------------------------------------------------- generic loader


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def iso_csv(tmp_path: Path, rows: list[str], header: str = "timestamp_utc,price,hydro") -> Path:
    return write(tmp_path / "series.csv", "\n".join([header, *rows]) + "\n")


def test_load_hourly_csv_reads_columns(tmp_path):
    path = iso_csv(
        tmp_path,
        ["2025-01-01T00:00:00Z,10.5,100", "2025-01-01T01:00:00Z,-2.0,110", "2025-01-01T02:00:00Z,3,120"],
    )
    series = load_hourly_csv(path, ["price", "hydro"])
    np.testing.assert_array_equal(
        series.timestamps, np.array(["2025-01-01T00", "2025-01-01T01", "2025-01-01T02"], "datetime64[h]")
    )
    np.testing.assert_array_equal(series.column("price"), [10.5, -2.0, 3.0])
    assert series.column("hydro").dtype == np.float64 and len(series) == 3
    assert series.source == str(path)
    with pytest.raises(KeyError, match="'demand'"):
        series.column("demand")


def test_load_hourly_csv_offsets_and_local_timezone(tmp_path):
    path = iso_csv(tmp_path, ["2025-06-01 02:00+02:00,1,1", "2025-06-01 03:00+02:00,2,2"])
    assert str(load_hourly_csv(path, ["price"]).timestamps[0]) == "2025-06-01T00"
    local = iso_csv(tmp_path, ["01/06/2025 02:00,1,1", "01/06/2025 03:00,2,2"])
    series = load_hourly_csv(local, ["price"], timestamp_format="%d/%m/%Y %H:%M", timezone="Europe/Berlin")
    assert str(series.timestamps[0]) == "2025-06-01T00"


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        load_hourly_csv(tmp_path / "nothing.csv", ["price"])


def test_missing_column_raises_listing_columns(tmp_path):
    path = iso_csv(tmp_path, ["2025-01-01T00:00:00Z,1,1"])
    with pytest.raises(ValueError, match=r"series\.csv.*'demand' not found.*'price'"):
        load_hourly_csv(path, ["demand"])
    with pytest.raises(ValueError, match=r"series\.csv.*'time' not found"):
        load_hourly_csv(path, ["price"], timestamp_column="time")


def test_value_gap_raises_naming_file_column_line(tmp_path):
    path = iso_csv(tmp_path, ["2025-01-01T00:00:00Z,1,1", "2025-01-01T01:00:00Z,,2", "2025-01-01T02:00:00Z,3,3"])
    with pytest.raises(ValueError, match=r"series\.csv.*'price'.*1 missing.*line 3 \(2025-01-01T01Z\)"):
        load_hourly_csv(path, ["price", "hydro"])
    np.testing.assert_array_equal(load_hourly_csv(path, ["hydro"]).column("hydro"), [1, 2, 3])


def test_unparsable_value_raises_even_with_fill(tmp_path):
    path = iso_csv(tmp_path, ["2025-01-01T00:00:00Z,1,1", "2025-01-01T01:00:00Z,abc,2"])
    with pytest.raises(ValueError, match=r"series\.csv.*'price', line 3.*'abc'"):
        load_hourly_csv(path, ["price"], fill="interpolate")


def test_time_gap_raises_and_fill_inserts_hours(tmp_path):
    path = iso_csv(tmp_path, ["2025-01-01T00:00:00Z,0,5", "2025-01-01T03:00:00Z,6,8"])
    with pytest.raises(ValueError, match=r"series\.csv.*'timestamp_utc'.*gap in time.*2 missing hour"):
        load_hourly_csv(path, ["price"])
    series = load_hourly_csv(path, ["price", "hydro"], fill="interpolate")
    assert len(series) == 4
    np.testing.assert_allclose(series.column("price"), [0, 2, 4, 6])
    np.testing.assert_allclose(load_hourly_csv(path, ["hydro"], fill="ffill").column("hydro"), [5, 5, 5, 8])


def test_duplicate_and_unordered_timestamps_raise(tmp_path):
    path = iso_csv(tmp_path, ["2025-01-01T00:00:00Z,1,1", "2025-01-01T00:00:00Z,2,2"])
    with pytest.raises(ValueError, match=r"series\.csv.*'timestamp_utc'.*duplicate timestamp at line 3"):
        load_hourly_csv(path, ["price"], fill="interpolate")
    path = iso_csv(tmp_path, ["2025-01-01T01:00:00Z,1,1", "2025-01-01T00:00:00Z,2,2"])
    with pytest.raises(ValueError, match=r"series\.csv.*out of order"):
        load_hourly_csv(path, ["price"])


def test_sub_hourly_timestamps_raise(tmp_path):
    path = iso_csv(tmp_path, ["2025-01-01T00:00:00Z,1,1", "2025-01-01T00:15:00Z,2,2"])
    with pytest.raises(ValueError, match=r"series\.csv.*'timestamp_utc', line 3.*not on a whole hour"):
        load_hourly_csv(path, ["price"])


def test_unknown_fill_raises_listing_options(tmp_path):
    path = iso_csv(tmp_path, ["2025-01-01T00:00:00Z,1,1"])
    with pytest.raises(ValueError, match=r"unknown fill='mean'.*interpolate.*ffill"):
        load_hourly_csv(path, ["price"], fill="mean")
    for loader in (load_entsoe_day_ahead, load_smard_generation):
        with pytest.raises(ValueError, match="unknown fill"):
            loader(path, fill="zero")
    assert FILL_OPTIONS == (None, "interpolate", "ffill")


def test_fill_options_fill_correctly(tmp_path):
    rows = [f"2025-01-01T0{hour}:00:00Z,{value},1" for hour, value in enumerate(["", "2", "", "", "8", ""])]
    path = iso_csv(tmp_path, rows)
    interpolated = load_hourly_csv(path, ["price"], fill="interpolate").column("price")
    np.testing.assert_allclose(interpolated, [2, 2, 4, 6, 8, 8])  # edges take the nearest value
    with pytest.raises(ValueError, match=r"series\.csv.*'price'.*ffill.*first row"):
        load_hourly_csv(path, ["price"], fill="ffill")
    path = iso_csv(tmp_path, rows[1:])
    np.testing.assert_allclose(load_hourly_csv(path, ["price"], fill="ffill").column("price"), [2, 2, 2, 8, 8])


# ----------------------------------------------------------------------------- ENTSO-E preset


def entsoe_rows(day: str, hours: list[tuple[str, str]], price_start: float = 0.0) -> list[str]:
    return [
        f'"{day} {start} - {day} {end}","{price_start + index:.2f}","EUR",""'
        for index, (start, end) in enumerate(hours)
    ]


ENTSOE_HEADER = '"MTU (CET/CEST)","Day-ahead Price [EUR/MWh]","Currency","BZN|DE-LU"'


def test_entsoe_winter_and_dst_days(tmp_path):
    autumn = [("00:00", "01:00"), ("01:00", "02:00"), ("02:00", "03:00"), ("02:00", "03:00"), ("03:00", "04:00")]
    spring = [("00:00", "01:00"), ("01:00", "03:00"), ("03:00", "04:00")]
    lines = [ENTSOE_HEADER, *entsoe_rows("01.01.2025", [("00:00", "01:00"), ("01:00", "02:00")])]
    path = write(tmp_path / "autumn.csv", "\n".join([ENTSOE_HEADER, *entsoe_rows("26.10.2025", autumn)]) + "\n")
    series = load_entsoe_day_ahead(path)
    expected = ["2025-10-25T22", "2025-10-25T23", "2025-10-26T00", "2025-10-26T01", "2025-10-26T02"]
    np.testing.assert_array_equal(series.timestamps, np.array(expected, "datetime64[h]"))
    np.testing.assert_allclose(series.column("price_eur_mwh"), [0, 1, 2, 3, 4])

    path = write(tmp_path / "spring.csv", "\n".join([ENTSOE_HEADER, *entsoe_rows("30.03.2025", spring)]) + "\n")
    expected = ["2025-03-29T23", "2025-03-30T00", "2025-03-30T01"]
    np.testing.assert_array_equal(load_entsoe_day_ahead(path).timestamps, np.array(expected, "datetime64[h]"))

    path = write(tmp_path / "winter.csv", "\n".join(lines) + "\n")
    assert str(load_entsoe_day_ahead(path).timestamps[0]) == "2024-12-31T23"


def test_entsoe_explicit_suffix_and_gap(tmp_path):
    rows = [
        '"26.10.2025 02:00 (CEST) - 26.10.2025 03:00 (CEST)","5.0","EUR",""',
        '"26.10.2025 02:00 (CET) - 26.10.2025 03:00 (CET)","n/e","EUR",""',
        '"26.10.2025 03:00 - 26.10.2025 04:00","7.0","EUR",""',
    ]
    path = write(tmp_path / "suffix.csv", "\n".join([ENTSOE_HEADER, *rows]) + "\n")
    with pytest.raises(ValueError, match=r"suffix\.csv.*'Day-ahead Price \[EUR/MWh\]'.*1 missing"):
        load_entsoe_day_ahead(path)
    series = load_entsoe_day_ahead(path, fill="interpolate")
    np.testing.assert_array_equal(
        series.timestamps, np.array(["2025-10-26T00", "2025-10-26T01", "2025-10-26T02"], "datetime64[h]")
    )
    np.testing.assert_allclose(series.column("price_eur_mwh"), [5, 6, 7])


def test_entsoe_errors(tmp_path):
    path = write(tmp_path / "noprice.csv", '"MTU (CET/CEST)","Price"\n"01.01.2025 00:00 - 01.01.2025 01:00","1"\n')
    with pytest.raises(ValueError, match=r"noprice\.csv.*Day-ahead Price.*columns in the file"):
        load_entsoe_day_ahead(path)
    rows = entsoe_rows("01.01.2025", [("00:00", "01:00"), ("00:00", "01:00")])
    path = write(tmp_path / "dup.csv", "\n".join([ENTSOE_HEADER, *rows]) + "\n")
    with pytest.raises(ValueError, match=r"dup\.csv.*'MTU \(CET/CEST\)'.*duplicate"):
        load_entsoe_day_ahead(path)
    rows = entsoe_rows("30.03.2025", [("02:00", "03:00")])
    path = write(tmp_path / "nonexistent.csv", "\n".join([ENTSOE_HEADER, *rows]) + "\n")
    with pytest.raises(ValueError, match=r"nonexistent\.csv.*'MTU \(CET/CEST\)'.*does not exist"):
        load_entsoe_day_ahead(path)
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        load_entsoe_day_ahead(tmp_path / "absent.csv")


# ----------------------------------------------------------------------------- SMARD preset

SMARD_HEADER = (
    "Datum von;Datum bis;Biomasse [MWh] Originalauflösungen;Wasserkraft [MWh] Originalauflösungen;"
    "Photovoltaik [MWh] Originalauflösungen"
)


def test_smard_german_numbers_dst_and_gap(tmp_path):
    rows = [
        "26.10.2025 01:00;26.10.2025 02:00;4.321,25;1.451,50;0",
        "26.10.2025 02:00;26.10.2025 03:00;4.300,00;1.402,00;0",
        "26.10.2025 02:00;26.10.2025 03:00;4.300,00;-;0",
        "26.10.2025 03:00;26.10.2025 04:00;4.300,00;1.398,00;0",
    ]
    path = write(tmp_path / "smard.csv", "\n".join([SMARD_HEADER, *rows]) + "\n", encoding="utf-8-sig")
    with pytest.raises(ValueError, match=r"smard\.csv.*'Wasserkraft \[MWh\] Originalauflösungen'.*line 4"):
        load_smard_generation(path)
    series = load_smard_generation(path, fill="interpolate")
    np.testing.assert_array_equal(
        series.timestamps,
        np.array(["2025-10-25T23", "2025-10-26T00", "2025-10-26T01", "2025-10-26T02"], "datetime64[h]"),
    )
    np.testing.assert_allclose(series.column("Wasserkraft [MWh] Originalauflösungen"), [1451.5, 1402, 1400, 1398])
    biomass = load_smard_generation(path, column="Biomasse [MWh] Originalauflösungen")
    np.testing.assert_allclose(biomass.column("Biomasse [MWh] Originalauflösungen"), [4321.25, 4300, 4300, 4300])


def test_smard_errors(tmp_path):
    path = write(tmp_path / "smard.csv", SMARD_HEADER + "\n01.01.2025 00:00;01.01.2025 01:00;1;2;3\n")
    with pytest.raises(ValueError, match=r"smard\.csv.*'Wind \[MWh\]' not found.*Wasserkraft"):
        load_smard_generation(path, column="Wind [MWh]")
    rows = ["01.01.2025 00:00;01.01.2025 01:00;1;2;3", "01.01.2025 02:00;01.01.2025 03:00;1;2;3"]
    path = write(tmp_path / "gap.csv", "\n".join([SMARD_HEADER, *rows]) + "\n")
    with pytest.raises(ValueError, match=r"gap\.csv.*'Datum von'.*gap in time"):
        load_smard_generation(path)
    np.testing.assert_allclose(
        load_smard_generation(path, fill="ffill").column("Wasserkraft [MWh] Originalauflösungen"), [2, 2, 2]
    )


# ----------------------------------------------------------------------------- normalisation


def test_series_for_env_normalises():
    price_norm, hydro_norm = series_for_env(np.array([50.0, 150.0, -20.0, 20.0]), np.array([0.0, 500.0, 1000.0, 250.0]))
    assert price_norm.dtype == np.float32 and hydro_norm.dtype == np.float32
    np.testing.assert_allclose(price_norm, [1.0, 3.0, -0.4, 0.4], rtol=1e-6)
    np.testing.assert_allclose(hydro_norm, [0.0, 0.5, 1.0, 0.25])


@pytest.mark.parametrize(
    ("price", "hydro", "message"),
    [
        ([1.0, np.nan, 2.0], [1.0, 1.0, 1.0], r"price.*index 1"),
        ([1.0, 1.0, 2.0], [1.0, 1.0, np.inf], r"hydro.*index 2"),
        ([-1.0, -2.0, 1.0], [1.0, 1.0, 1.0], r"price mean.*positive"),
        ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], r"hydro maximum.*positive"),
        ([1.0, 1.0, 1.0], [1.0, -1.0, 1.0], r"hydro is negative at index 1"),
    ],
)
def test_series_for_env_errors(price, hydro, message):
    with pytest.raises(ValueError, match=message):
        series_for_env(np.array(price), np.array(hydro))


# ----------------------------------------------------------------------------- real file


@pytest.mark.skipif(not REAL_CSV.is_file(), reason=f"{REAL_CSV} not available")
def test_real_de_2025_file():
    with pytest.raises(ValueError, match=r"de_2025_hourly\.csv.*'hydro_generation_mw'.*5 missing"):
        load_hourly_csv(REAL_CSV, ["price_DE_LU_eur_mwh", "hydro_generation_mw"])
    series = load_hourly_csv(REAL_CSV, ["price_DE_LU_eur_mwh", "hydro_generation_mw"], fill="interpolate")
    assert len(series) == HOURS_PER_YEAR
    assert str(series.timestamps[0]) == "2024-12-31T23"
    assert np.isfinite(series.column("hydro_generation_mw")).all()
    price_norm, hydro_norm = series_for_env(series.column("price_DE_LU_eur_mwh"), series.column("hydro_generation_mw"))
    np.testing.assert_allclose(price_norm.mean(), 1.0, rtol=1e-4)
    np.testing.assert_allclose(price_norm.std(), calibration.PRICE_STD, atol=1e-3)
    np.testing.assert_allclose(hydro_norm.mean(), calibration.HYDRO_MEAN, atol=1e-3)
    np.testing.assert_allclose(series.column("price_DE_LU_eur_mwh").mean(), calibration.PRICE_ANNUAL_MEAN_EUR_MWH, rtol=1e-5)
