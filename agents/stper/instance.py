"""The CPN instance of an STPer job from the command line: real series from CSV files, every knob.

``InstanceArgs`` is a flag group of the STPer jobs (``jaxcpn train-stper --price-csv ... --kappa
3e-4``): the price and hydro series (an ENTSO-E day-ahead export, a SMARD generation export or
any hourly CSV, with the loaders' gap filling), and every default of the generator
(:data:`jaxcpn.cpn.generator.DEFAULTS`: powers, bandwidths, packet size, deadline, prices,
``kappa``, green share, workloads). A field left unset keeps the generator's default, so the
default instance stays the papers'. :func:`instance_record` is what a run folder stores about
the data it used: each file's path, size and SHA-256, so a resume can refuse a changed file.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Literal

import jax
import numpy as np

from jaxcpn.cpn import CPNConfig, CPNParams, generate_instance, validate_params
from jaxcpn.cpn.generator import DEFAULTS

Range = tuple[float, float]


@dataclasses.dataclass(frozen=True)
class InstanceArgs:
    """The CPN instance: real series (CSV) and generator settings; unset = the generator's default."""

    price_csv: Path | None = None
    """Day-ahead prices: an ENTSO-E export (--price-format entsoe) or an hourly CSV (hourly)."""
    price_format: Literal["entsoe", "hourly"] = "entsoe"
    """Format of --price-csv (hourly: ISO UTC timestamps in timestamp_utc, the column in --price-column)."""
    price_column: str | None = None
    """Price column (entsoe: default the export's price column; hourly: required)."""
    hydro_csv: Path | None = None
    """Hydropower generation: a SMARD export (--hydro-format smard) or an hourly CSV (hourly)."""
    hydro_format: Literal["smard", "hourly"] = "smard"
    """Format of --hydro-csv."""
    hydro_column: str | None = None
    """Hydro column (smard: default 'Wasserkraft [MWh] Originalauflösungen'; hourly: required)."""
    fill: Literal["none", "interpolate", "ffill"] = "none"
    """Gaps in the series: none (an error naming file and line), interpolate or ffill."""
    power_range: Range | None = None
    """Node computing power f_n ~ U[low, high] (TFLOPS); default (1, 10), paper V-A."""
    bandwidth_range: Range | None = None
    """Link and access bandwidth ~ U[low, high] (Mb/s); default (10, 50), paper V-A."""
    switch_delay_range: Range | None = None
    """Per-node switching delay ~ U[low, high] (s); default (0.01, 0.05)."""
    packet_size: float | None = None
    """Task data size r_u (Mb); default 5, paper V-A."""
    deadline: float | None = None
    """Latency requirement l_u (s); default 2, paper V-A."""
    unit_price: float | None = None
    """Revenue unit price p; default 0.5, paper V-A."""
    eta: float | None = None
    """Delay-reward coefficient eta (s); default 2, paper V-A."""
    usage_price: float | None = None
    """Usage price i_t; default 0.2, paper V-A."""
    kappa: float | None = None
    """Energy coefficient of eq. (5); default 0.03 (calibrated, docs/model.md)."""
    green_fraction: float | None = None
    """Share of green (hydropower) nodes; default 0.3."""
    hydro_share_range: Range | None = None
    """Share of a green node's energy the hydro discount can cover ~ U[low, high]; default (0.5, 0.9)."""
    workload_base_range: Range | None = None
    """Mean task workload ~ U[low, high] (TFLOP); default (1.5, 2.5)."""
    workload_amplitude_range: Range | None = None
    """Relative daily amplitude of the workload ~ U[low, high]; default (0.2, 0.6)."""
    workload_noise_fraction: float | None = None
    """Workload noise std / mean workload; default 0.15."""
    workload_floor: float | None = None
    """Workloads are clipped below at this value (TFLOP); default 0.1."""
    waxman_alpha: float | None = None
    """Waxman topology alpha; default 0.4."""
    waxman_beta: float | None = None
    """Waxman topology beta; default 0.4."""
    slot_duration: float | None = None
    """Service window of a slot (s) when compute is shared (--compute-sharing); default 1."""

    def __post_init__(self):
        if (self.price_csv is None) != (self.hydro_csv is None):
            raise ValueError("--price-csv and --hydro-csv go together: give both (real series) or neither "
                             f"(generated series); got --price-csv={self.price_csv} --hydro-csv={self.hydro_csv}")
        for path, fmt, column, flag in ((self.price_csv, self.price_format, self.price_column, "price"),
                                        (self.hydro_csv, self.hydro_format, self.hydro_column, "hydro")):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"--{flag}-csv={str(path)!r} is invalid: no such file")
            if path is not None and fmt == "hourly" and column is None:
                raise ValueError(f"--{flag}-format hourly needs --{flag}-column (the value column's name)")

    def overrides(self) -> dict:
        """The generator defaults this instance changes (``generate_instance(**overrides)``)."""
        return {name: getattr(self, name) for name in DEFAULTS if getattr(self, name) is not None}


def load_series(args: InstanceArgs) -> tuple[np.ndarray, np.ndarray, int]:
    """The real price and hydro series on their common hours, normalised for the env.

    Returns:
        ``(price, hydro, series_start_hour)``: ``(H,)`` float32 each (price / its mean, hydro /
        its max) and the hour of week (0 = Monday 00:00, Europe/Berlin) of the first hour.
    """
    from zoneinfo import ZoneInfo

    from jaxcpn.data import load_entsoe_day_ahead, load_hourly_csv, load_smard_generation, series_for_env

    fill = None if args.fill == "none" else args.fill
    if args.price_format == "entsoe":
        prices = load_entsoe_day_ahead(args.price_csv, fill, column=args.price_column)
    else:
        prices = load_hourly_csv(args.price_csv, [args.price_column], fill=fill)
    if args.hydro_format == "smard":
        kw = {} if args.hydro_column is None else {"column": args.hydro_column}
        hydros = load_smard_generation(args.hydro_csv, fill=fill, **kw)
    else:
        hydros = load_hourly_csv(args.hydro_csv, [args.hydro_column], fill=fill)
    common, price_index, hydro_index = np.intersect1d(prices.timestamps, hydros.timestamps, return_indices=True)
    if common.size == 0:
        raise ValueError(f"{args.price_csv} ({prices.timestamps[0]} .. {prices.timestamps[-1]}) and {args.hydro_csv} "
                         f"({hydros.timestamps[0]} .. {hydros.timestamps[-1]}) have no hour in common")
    if common.size != common[-1] - common[0] + 1:
        raise ValueError(f"{args.price_csv} and {args.hydro_csv}: their common hours are not one contiguous range")
    price = prices.column(next(iter(prices.values)))[price_index]
    hydro = hydros.column(next(iter(hydros.values)))[hydro_index]
    price, hydro = series_for_env(price, hydro)
    first = common[0].astype("datetime64[s]").astype(object).replace(tzinfo=ZoneInfo("UTC"))
    local = first.astimezone(ZoneInfo("Europe/Berlin"))
    return price, hydro, local.weekday() * 24 + local.hour


def make_instance(args: InstanceArgs, config: CPNConfig, instance_seed: int) -> CPNParams:
    """The validated instance: seed ``instance_seed``, the overrides and (if given) the real series."""
    series = {}
    if args.price_csv is not None:
        price, hydro, start = load_series(args)
        series = dict(price_series=price, hydro_series=hydro, series_start_hour=start)
    params = generate_instance(jax.random.PRNGKey(instance_seed), config, **series, **args.overrides())
    return validate_params(params, config)


def file_record(path: Path) -> dict:
    """``{path, bytes, sha256}`` of a data file."""
    data = Path(path).read_bytes()
    return {"path": str(Path(path).resolve()), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def instance_record(args: InstanceArgs) -> dict:
    """What a run folder records about its instance's data: the series files and the overrides."""
    record = {"series": "generated (jaxcpn.data.default_series)", "overrides": args.overrides()}
    if args.price_csv is not None:
        record["series"] = {"price": file_record(args.price_csv), "hydro": file_record(args.hydro_csv)}
    return record


def check_record(record: dict | None, run_dir: Path) -> None:
    """Refuses to resume a run whose data files changed since it started.

    Raises:
        ValueError: a file's SHA-256 differs from the one the run recorded.
    """
    if not isinstance(record, dict) or not isinstance(record.get("series"), dict):
        return
    for name, saved in record["series"].items():
        now = file_record(saved["path"]) if Path(saved["path"]).exists() else None
        if now is None or now["sha256"] != saved["sha256"]:
            raise ValueError(f"--resume={str(run_dir)!r}: the {name} series {saved['path']} "
                             f"{'is missing' if now is None else 'changed'} since the run started "
                             f"(recorded sha256 {saved['sha256'][:12]}...); restore the file or start a new run")
