"""Host-side (NumPy) loaders for hourly exogenous series stored as CSV files.

Everything here runs on the host and returns NumPy arrays; the environments receive the
result through :func:`series_for_env` (float32, normalised) and never read files themselves.

Conventions shared by every loader:

* Timestamps are returned as ``datetime64[h]`` in UTC, one per hour, strictly increasing by
  exactly one hour. Sub-hourly data (e.g. 15-minute MTUs) is rejected, not resampled.
* Values are float64. A *gap* is a missing value (an empty cell or one of the markers ``-``,
  ``n/e``, ``N/A``, ``NA``, ``nan``, case-insensitive) or a missing hour in the timestamp
  column. Any other text that does not parse as a finite number is always an error.
* ``fill=None`` (default): a gap raises ``ValueError`` naming the file, the column and the
  line (or timestamp). ``fill="interpolate"``: missing hours are inserted and every gap is
  filled by linear interpolation in time between the nearest valid values; gaps at the very
  start or end take the nearest valid value. ``fill="ffill"``: gaps take the last valid
  value before them; a gap in the first row cannot be forward-filled and raises.
* Duplicate timestamps, timestamps out of order and timestamps not on a whole hour always
  raise ``ValueError``.
* Files are read as UTF-8 (a byte-order mark is allowed) unless ``encoding=`` names another
  codec; bytes that do not decode raise ``ValueError`` naming the file, the line, the byte and
  the encoding (a SMARD export re-saved by a spreadsheet is often ``encoding="cp1252"`` or
  ``"latin-1"``: its ``Originalauflösungen`` headers carry an ``ö``).
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import datetime as dt
import io
import re
from pathlib import Path
from typing import Callable, Sequence
from zoneinfo import ZoneInfo

import numpy as np

FILL_OPTIONS = (None, "interpolate", "ffill")
"""Allowed values of the ``fill`` argument of every loader."""

MISSING_MARKERS = frozenset({"", "-", "n/e", "n/a", "na", "nan"})
"""Cell contents (lower-cased, stripped) that count as a missing value (a gap)."""

DEFAULT_ENCODING = "utf-8-sig"
"""Text encoding of every loader unless ``encoding=`` says otherwise (UTF-8, optional BOM)."""

BERLIN = "Europe/Berlin"
"""IANA zone of the CET/CEST local times used by ENTSO-E (DE-LU) and SMARD exports."""

ENTSOE_TIME_COLUMN = "MTU (CET/CEST)"
ENTSOE_PRICE_COLUMNS = ("Day-ahead Price [EUR/MWh]", "Day-ahead Price (EUR/MWh)")
SMARD_HYDRO_COLUMN = "Wasserkraft [MWh] Originalauflösungen"

_UTC = dt.timezone.utc
_ENTSOE_LOCAL = r"(\d{2}\.\d{2}\.\d{4} \d{2}:\d{2})(?:\s*\((CET|CEST)\))?"
_ENTSOE_MTU = re.compile(rf"^\s*{_ENTSOE_LOCAL}\s*-\s*{_ENTSOE_LOCAL}\s*$")
_EXPLICIT_OFFSET_HOURS = {"CET": 1, "CEST": 2}


@dataclasses.dataclass(frozen=True)
class HourlySeries:
    """Hourly series read from one file.

    Attributes:
        timestamps: ``(T,)`` ``datetime64[h]``, UTC start of each hour, strictly increasing
            by one hour.
        values: column name -> ``(T,)`` float64 values, in the file's units.
        source: path of the file the series was read from.
    """

    timestamps: np.ndarray
    values: dict[str, np.ndarray]
    source: str

    def column(self, name: str) -> np.ndarray:
        """Returns the ``(T,)`` float64 values of column ``name``; ``KeyError`` lists the columns."""
        if name not in self.values:
            raise KeyError(f"{self.source}: no column {name!r} loaded; loaded columns: {sorted(self.values)}")
        return self.values[name]

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])


# ----------------------------------------------------------------------------- reading


def _check_fill(fill: str | None) -> None:
    if fill not in FILL_OPTIONS:
        raise ValueError(f"unknown fill={fill!r}; allowed: {list(FILL_OPTIONS)}")


def _decode(path: Path, encoding: str) -> str:
    """The file's text; a decoding failure is a ``ValueError`` naming the file, line and byte."""
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(f"{path}: encoding={encoding!r} is invalid: not a codec Python knows "
                         "(e.g. 'utf-8', 'cp1252', 'latin-1')") from None
    raw = path.read_bytes()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path}: line {line}, byte {error.start}: {raw[error.start:error.start + 1]!r} is not valid {encoding} "
            f"({error.reason}); the file is in another encoding: pass encoding='cp1252' or encoding='latin-1' "
            "(spreadsheet exports of SMARD/ENTSO-E data often are)") from None


def _read_table(path: Path, delimiter: str, encoding: str = DEFAULT_ENCODING) -> tuple[list[str], list[list[str]], list[int]]:
    """Reads a delimited text file; returns header, data rows and their 1-based line numbers."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    text = _decode(path, encoding)
    with io.StringIO(text, newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: file is empty (no header line)")
        header = [name.strip() for name in header]
        rows, lines = [], []
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise ValueError(
                    f"{path}: line {reader.line_num} has {len(row)} fields, the header has {len(header)}"
                )
            rows.append(row)
            lines.append(reader.line_num)
    if not rows:
        raise ValueError(f"{path}: no data rows")
    return header, rows, lines


def _column_index(path: Path, header: list[str], name: str) -> int:
    if name not in header:
        raise ValueError(f"{path}: column {name!r} not found; columns in the file: {header}")
    return header.index(name)


def _parse_values(
    path: Path, name: str, cells: Sequence[str], lines: Sequence[int], decimal: str
) -> np.ndarray:
    """Parses one column to float64; missing markers become NaN, other bad text raises."""
    values = np.empty(len(cells), np.float64)
    for position, (cell, line) in enumerate(zip(cells, lines)):
        text = cell.strip()
        if text.lower() in MISSING_MARKERS:
            values[position] = np.nan
            continue
        if decimal != ".":
            # German style: "1.234,5" -> "1234.5" (the dot is the thousands separator).
            text = text.replace(".", "").replace(decimal, ".")
        try:
            number = float(text)
        except ValueError:
            number = np.nan
        if not np.isfinite(number):
            raise ValueError(f"{path}: column {name!r}, line {line}: cannot parse {cell!r} as a number")
        values[position] = number
    return values


def _to_utc_hour(path: Path, column: str, line: int, instant: dt.datetime) -> np.datetime64:
    if instant.minute or instant.second or instant.microsecond:
        raise ValueError(
            f"{path}: column {column!r}, line {line}: timestamp {instant.isoformat()} is not on a whole "
            "hour; only hourly series are supported"
        )
    return np.datetime64(instant.astimezone(_UTC).replace(tzinfo=None), "h")


def _localize(
    path: Path, column: str, line: int, wall: dt.datetime, zone: ZoneInfo, seen: set[dt.datetime]
) -> dt.datetime:
    """Attaches ``zone`` to a naive wall-clock time, resolving the DST change by row order.

    A wall time that does not exist (spring forward) raises; the repeated hour of the autumn
    change is taken as summer time on its first occurrence and winter time on the second.
    """
    fold = 1 if wall in seen else 0
    seen.add(wall)
    aware = wall.replace(tzinfo=zone, fold=fold)
    round_trip = aware.astimezone(_UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip != wall:
        raise ValueError(
            f"{path}: column {column!r}, line {line}: local time {wall:%Y-%m-%d %H:%M} does not exist "
            f"in {zone.key} (daylight-saving change)"
        )
    return aware


def _parse_timestamp(text: str, timestamp_format: str | None) -> dt.datetime:
    if timestamp_format is None:
        return dt.datetime.fromisoformat(text)
    return dt.datetime.strptime(text, timestamp_format)


# ----------------------------------------------------------------------------- assembling


def _fill_gaps(path: Path, name: str, values: np.ndarray, fill: str) -> np.ndarray:
    missing = np.isnan(values)
    if not missing.any():
        return values
    if missing.all():
        raise ValueError(f"{path}: column {name!r} has no valid value to fill from")
    positions = np.arange(values.shape[0])
    if fill == "interpolate":
        return np.interp(positions, positions[~missing], values[~missing])
    if missing[0]:
        raise ValueError(f"{path}: column {name!r}: fill='ffill' cannot fill a gap in the first row")
    last_valid = np.maximum.accumulate(np.where(missing, 0, positions))
    return values[last_valid]


def _assemble(
    path: Path,
    timestamp_column: str,
    timestamps: np.ndarray,
    lines: np.ndarray,
    columns: dict[str, np.ndarray],
    fill: str | None,
) -> HourlySeries:
    """Checks the hourly grid, reports or fills gaps, returns the series."""
    steps = np.diff(timestamps).astype(np.int64)
    for bad, reason in ((steps == 0, "duplicate timestamp"), (steps < 0, "timestamps out of order")):
        if bad.any():
            first = int(np.argmax(bad))
            raise ValueError(
                f"{path}: column {timestamp_column!r}: {reason} at line {lines[first + 1]} "
                f"({timestamps[first + 1]}Z after {timestamps[first]}Z at line {lines[first]})"
            )
    if (steps > 1).any():
        first = int(np.argmax(steps > 1))
        if fill is None:
            raise ValueError(
                f"{path}: column {timestamp_column!r}: gap in time, {steps[first] - 1} missing hour(s) "
                f"between {timestamps[first]}Z (line {lines[first]}) and {timestamps[first + 1]}Z "
                f"(line {lines[first + 1]}); pass fill='interpolate' or fill='ffill' to fill gaps"
            )
        full = np.arange(timestamps[0], timestamps[-1] + np.timedelta64(1, "h"), dtype="datetime64[h]")
        slots = (timestamps - timestamps[0]).astype(np.int64)
        for name, values in columns.items():
            widened = np.full(full.shape[0], np.nan)
            widened[slots] = values
            columns[name] = widened
        timestamps = full
    if fill is None:
        for name, values in columns.items():
            missing = np.flatnonzero(np.isnan(values))
            if missing.size:
                first = int(missing[0])
                raise ValueError(
                    f"{path}: column {name!r} has {missing.size} missing value(s), first at line "
                    f"{lines[first]} ({timestamps[first]}Z); pass fill='interpolate' or fill='ffill' "
                    "to fill gaps"
                )
    else:
        columns = {name: _fill_gaps(path, name, values, fill) for name, values in columns.items()}
    return HourlySeries(timestamps=timestamps, values=columns, source=str(path))


def _load(
    path: str | Path,
    columns: Sequence[str],
    *,
    timestamp_column: str,
    delimiter: str,
    decimal: str,
    fill: str | None,
    to_utc: Callable[[Path, str, int, str], np.datetime64],
    encoding: str = DEFAULT_ENCODING,
) -> HourlySeries:
    _check_fill(fill)
    path = Path(path)
    if isinstance(columns, str):
        columns = [columns]
    header, rows, lines = _read_table(path, delimiter, encoding)
    time_index = _column_index(path, header, timestamp_column)
    value_indices = {name: _column_index(path, header, name) for name in columns}
    timestamps = np.array(
        [to_utc(path, timestamp_column, line, row[time_index].strip()) for row, line in zip(rows, lines)],
        dtype="datetime64[h]",
    )
    values = {
        name: _parse_values(path, name, [row[index] for row in rows], lines, decimal)
        for name, index in value_indices.items()
    }
    return _assemble(path, timestamp_column, timestamps, np.asarray(lines), values, fill)


# ----------------------------------------------------------------------------- public loaders


def load_hourly_csv(
    path: str | Path,
    columns: Sequence[str],
    *,
    timestamp_column: str = "timestamp_utc",
    delimiter: str = ",",
    decimal: str = ".",
    timestamp_format: str | None = None,
    timezone: str | None = None,
    fill: str | None = None,
    encoding: str = DEFAULT_ENCODING,
) -> HourlySeries:
    """Reads an hourly CSV: one timestamp column plus the named value columns.

    Args:
        path: CSV file with a header line.
        columns: names of the value columns to read (a single name is accepted too).
        timestamp_column: name of the column holding the start of each hour.
        delimiter: field separator.
        decimal: decimal mark of the values; with ``","`` a ``.`` is read as a thousands
            separator (``"1.234,5"`` -> 1234.5).
        timestamp_format: ``datetime.strptime`` format of the timestamps; ``None`` reads
            ISO 8601 (``2025-01-01T00:00:00Z``, ``2025-01-01 00:00+01:00``, ...).
        timezone: IANA zone for timestamps without an offset (e.g. ``"Europe/Berlin"``);
            ``None`` reads them as UTC. Timestamps carrying an offset are converted to UTC
            whatever this says. Local times are resolved as described in ``_localize``.
        fill: ``None`` (gaps raise), ``"interpolate"`` or ``"ffill"`` (see module docstring).
        encoding: text encoding of the file (default UTF-8 with optional BOM).

    Returns:
        ``HourlySeries`` with UTC ``datetime64[h]`` timestamps and float64 values.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: missing column, gap (with ``fill=None``), duplicate or out-of-order
            timestamp, non-hourly timestamp, unparsable value, unknown ``fill``. The message
            names the file and the column.
    """
    zone = ZoneInfo(timezone) if timezone is not None else None
    seen: set[dt.datetime] = set()

    def to_utc(file: Path, column: str, line: int, text: str) -> np.datetime64:
        try:
            instant = _parse_timestamp(text, timestamp_format)
        except ValueError:
            expected = timestamp_format or "ISO 8601"
            raise ValueError(f"{file}: column {column!r}, line {line}: cannot parse timestamp {text!r} ({expected})") from None
        if instant.tzinfo is None:
            instant = _localize(file, column, line, instant, zone, seen) if zone else instant.replace(tzinfo=_UTC)
        return _to_utc_hour(file, column, line, instant)

    return _load(
        path, columns, timestamp_column=timestamp_column, delimiter=delimiter, decimal=decimal, fill=fill,
        to_utc=to_utc, encoding=encoding,
    )


def load_entsoe_day_ahead(path: str | Path, fill: str | None = None, *, column: str | None = None,
                          encoding: str = DEFAULT_ENCODING) -> HourlySeries:
    """Reads an ENTSO-E Transparency Platform day-ahead price CSV export (hourly MTU).

    Accepted format (comma-separated, quoted fields, ``.`` decimal mark)::

        "MTU (CET/CEST)","Day-ahead Price [EUR/MWh]","Currency","BZN|DE-LU"
        "01.01.2025 00:00 - 01.01.2025 01:00","2.16","EUR",""

    The MTU start (``DD.MM.YYYY HH:MM`` local CET/CEST time, Europe/Berlin rules) gives the
    hour; the end is only checked for format. On the autumn DST day the repeated hour
    ``02:00 - 03:00`` is read as CEST on its first occurrence and CET on its second, unless
    the export marks it with a ``(CET)`` / ``(CEST)`` suffix, which then decides. On the spring
    day the export simply has 23 rows. The price column is ``column`` or, when ``None``, the
    first of ``Day-ahead Price [EUR/MWh]`` / ``Day-ahead Price (EUR/MWh)`` present. Missing
    prices (``""``, ``n/e``, ``-``) are gaps, handled by ``fill`` as in ``load_hourly_csv``.
    The loaded series is keyed ``"price_eur_mwh"`` (EUR/MWh).

    Args:
        path: CSV export.
        fill: ``None``, ``"interpolate"`` or ``"ffill"``.
        column: name of the price column, if not one of the two standard names.
        encoding: text encoding of the file (default UTF-8 with optional BOM).

    Returns:
        ``HourlySeries`` with the single column ``"price_eur_mwh"``.
    """
    _check_fill(fill)
    path = Path(path)
    header, _, _ = _read_table(path, ",", encoding)
    if column is None:
        present = [name for name in ENTSOE_PRICE_COLUMNS if name in header]
        if not present:
            raise ValueError(f"{path}: no day-ahead price column {list(ENTSOE_PRICE_COLUMNS)}; columns in the file: {header}")
        column = present[0]
    zone = ZoneInfo(BERLIN)
    seen: set[dt.datetime] = set()

    def to_utc(file: Path, time_column: str, line: int, text: str) -> np.datetime64:
        match = _ENTSOE_MTU.match(text)
        if match is None:
            raise ValueError(
                f"{file}: column {time_column!r}, line {line}: cannot parse MTU {text!r} "
                "(expected 'DD.MM.YYYY HH:MM - DD.MM.YYYY HH:MM')"
            )
        wall = dt.datetime.strptime(match.group(1), "%d.%m.%Y %H:%M")
        dt.datetime.strptime(match.group(3), "%d.%m.%Y %H:%M")
        if match.group(2):
            offset = dt.timezone(dt.timedelta(hours=_EXPLICIT_OFFSET_HOURS[match.group(2)]))
            seen.add(wall)
            return _to_utc_hour(file, time_column, line, wall.replace(tzinfo=offset))
        return _to_utc_hour(file, time_column, line, _localize(file, time_column, line, wall, zone, seen))

    series = _load(
        path, [column], timestamp_column=ENTSOE_TIME_COLUMN, delimiter=",", decimal=".", fill=fill, to_utc=to_utc,
        encoding=encoding,
    )
    return dataclasses.replace(series, values={"price_eur_mwh": series.values[column]})


def load_smard_generation(
    path: str | Path, column: str = SMARD_HYDRO_COLUMN, fill: str | None = None, *, encoding: str = DEFAULT_ENCODING
) -> HourlySeries:
    """Reads a SMARD.de generation export (hourly resolution) and returns one column.

    Accepted format (semicolon-separated, German numbers: ``.`` thousands, ``,`` decimal)::

        Datum von;Datum bis;Biomasse [MWh] Originalauflösungen;Wasserkraft [MWh] Originalauflösungen;...
        01.01.2025 00:00;01.01.2025 01:00;4.321,25;1.451,00;...

    ``Datum von`` (``DD.MM.YYYY HH:MM``, local Europe/Berlin time) is the start of the hour;
    the repeated hour of the autumn DST change is CEST on its first occurrence and CET on its
    second. Older exports with ``Datum;Anfang;Ende`` (date and start time in separate columns)
    are accepted too. ``-`` marks a missing value (a gap, handled by ``fill``). Values keep the
    file's unit (MWh per hour, i.e. average MW) and the column's own name.

    Args:
        path: CSV export.
        column: name of the generation column (default: hydropower).
        fill: ``None``, ``"interpolate"`` or ``"ffill"``.
        encoding: text encoding of the file (default UTF-8 with optional BOM; a file re-saved by
            a spreadsheet may need ``"cp1252"``: the error says so).

    Returns:
        ``HourlySeries`` with the single column ``column``.
    """
    _check_fill(fill)
    path = Path(path)
    header, rows, lines = _read_table(path, ";", encoding)
    zone = ZoneInfo(BERLIN)
    seen: set[dt.datetime] = set()
    if "Datum von" in header:
        time_column, time_index, extra_index = "Datum von", header.index("Datum von"), None
    elif "Datum" in header and "Anfang" in header:
        time_column, time_index, extra_index = "Datum", header.index("Datum"), header.index("Anfang")
    else:
        raise ValueError(f"{path}: column 'Datum von' not found; columns in the file: {header}")
    value_index = _column_index(path, header, column)

    timestamps = []
    for row, line in zip(rows, lines):
        text = row[time_index].strip() + ("" if extra_index is None else " " + row[extra_index].strip())
        try:
            wall = dt.datetime.strptime(text, "%d.%m.%Y %H:%M")
        except ValueError:
            raise ValueError(
                f"{path}: column {time_column!r}, line {line}: cannot parse timestamp {text!r} "
                "(expected 'DD.MM.YYYY HH:MM')"
            ) from None
        timestamps.append(_to_utc_hour(path, time_column, line, _localize(path, time_column, line, wall, zone, seen)))
    values = {column: _parse_values(path, column, [row[value_index] for row in rows], lines, ",")}
    return _assemble(
        path, time_column, np.array(timestamps, dtype="datetime64[h]"), np.asarray(lines), values, fill
    )


def series_for_env(price: np.ndarray, hydro: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalises a real price and hydro series for the environment.

    Args:
        price: ``(T,)`` electricity price in any currency unit (e.g. EUR/MWh); may be negative.
        hydro: ``(T,)`` hydro generation in any power unit (e.g. MW), non-negative.

    Returns:
        ``(price_norm, hydro_norm)``, each ``(T,)`` float32: the price divided by its mean
        over the given period (dimensionless, 1.0 = mean of the loaded period) and hydro
        divided by its maximum (dimensionless share in [0, 1]).

    Raises:
        ValueError: not 1-D, non-finite value (naming the series and index), mean price not
            positive, hydro maximum not positive, or a negative hydro value.
    """
    checked = {}
    for name, series in (("price", price), ("hydro", hydro)):
        series = np.asarray(series, np.float64)
        if series.ndim != 1 or series.shape[0] == 0:
            raise ValueError(f"series_for_env: {name} must be a non-empty 1-D array, got shape {series.shape}")
        bad = np.flatnonzero(~np.isfinite(series))
        if bad.size:
            raise ValueError(
                f"series_for_env: {name} has {bad.size} non-finite value(s), first at index {bad[0]} "
                f"({series[bad[0]]}); load it with fill='interpolate' or fill='ffill'"
            )
        checked[name] = series
    price_mean = checked["price"].mean()
    if price_mean <= 0:
        raise ValueError(f"series_for_env: price mean is {price_mean}, it must be positive to normalise by it")
    hydro_max = checked["hydro"].max()
    if hydro_max <= 0:
        raise ValueError(f"series_for_env: hydro maximum is {hydro_max}, it must be positive to normalise by it")
    negative = np.flatnonzero(checked["hydro"] < 0)
    if negative.size:
        raise ValueError(f"series_for_env: hydro is negative at index {negative[0]} ({checked['hydro'][negative[0]]})")
    return (checked["price"] / price_mean).astype(np.float32), (checked["hydro"] / hydro_max).astype(np.float32)
