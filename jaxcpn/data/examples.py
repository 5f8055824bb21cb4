"""Example export files in the real formats (ENTSO-E day-ahead prices, SMARD generation).

The values are drawn from the calibrated seeded generators (:func:`jaxcpn.data.default_series`,
rescaled to EUR/MWh and MW with the calibration's annual mean price and maximum hydro output),
so they are *synthetic*, labelled as such in the file names; the layout is the exports' own
(local CET/CEST times with the DST days' 23 and 25 rows, quoting, German number format), so
the loaders, the command lines and the README's snippets can be run on a fresh machine
without downloading anything. Real exports are read the same way.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import jax
import numpy as np

from jaxcpn.data import calibration
from jaxcpn.data.generators import default_series
from jaxcpn.data.loaders import SMARD_HYDRO_COLUMN

BERLIN = ZoneInfo("Europe/Berlin")
ENTSOE_FILE = "entsoe_day_ahead_synthetic.csv"
SMARD_FILE = "smard_generation_synthetic.csv"


def _german(value: float) -> str:
    """``1451.0`` -> ``"1.451,00"`` (SMARD's number format)."""
    return f"{value:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")


def write_example_exports(folder: str | Path, start: str = "2025-03-24", days: int = 14, seed: int = 0,
                          overwrite: bool = False) -> tuple[Path, Path]:
    """Writes a synthetic ENTSO-E price export and a SMARD generation export of ``days`` days.

    Args:
        folder: output folder (created if missing).
        start: first local day (``YYYY-MM-DD``, Europe/Berlin). The default range covers the
            spring DST change (a 23-hour day).
        days: number of days (>= 2, so the env's window and episode fit).
        seed: seed of the generators.
        overwrite: replace existing files (otherwise an existing file is an error).

    Returns:
        ``(entsoe_path, smard_path)``.
    """
    if not isinstance(days, int) or days < 2:
        raise ValueError(f"write_example_exports: days={days!r} is invalid: must be an int >= 2")
    folder = Path(folder)
    paths = folder / ENTSOE_FILE, folder / SMARD_FILE
    for path in paths:
        if path.exists() and not overwrite:
            raise FileExistsError(f"write_example_exports: {path} exists (pass overwrite=True to replace it)")
    first = dt.datetime.fromisoformat(start).replace(tzinfo=BERLIN).astimezone(dt.timezone.utc)
    last = (dt.datetime.fromisoformat(start) + dt.timedelta(days=days)).replace(tzinfo=BERLIN).astimezone(dt.timezone.utc)
    hours = int((last - first).total_seconds() // 3600)
    start_of_year = dt.datetime(first.year, 1, 1, tzinfo=dt.timezone.utc)
    hour_of_year = int((first - start_of_year).total_seconds() // 3600)
    price, hydro = (np.asarray(s, np.float64) for s in default_series(jax.random.PRNGKey(seed), hours, hour_of_year))
    price *= calibration.PRICE_ANNUAL_MEAN_EUR_MWH
    hydro *= calibration.HYDRO_ANNUAL_MAX_MW
    folder.mkdir(parents=True, exist_ok=True)
    entsoe = ['"MTU (CET/CEST)","Day-ahead Price [EUR/MWh]","Currency","BZN|DE-LU"']
    smard = [f"Datum von;Datum bis;Biomasse [MWh] Originalauflösungen;{SMARD_HYDRO_COLUMN}"]
    for h in range(hours):
        begin = (first + dt.timedelta(hours=h)).astimezone(BERLIN)
        end = (first + dt.timedelta(hours=h + 1)).astimezone(BERLIN)
        fmt = "%d.%m.%Y %H:%M"
        entsoe.append(f'"{begin:{fmt}} - {end:{fmt}}","{price[h]:.2f}","EUR",""')
        smard.append(f"{begin:{fmt}};{end:{fmt}};{_german(4321.0)};{_german(hydro[h])}")
    paths[0].write_text("\n".join(entsoe) + "\n", encoding="utf-8")
    paths[1].write_text("\n".join(smard) + "\n", encoding="utf-8")
    return paths
