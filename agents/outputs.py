"""Result files of every job, written one way for both systems: tidy CSV rows and PNG figures.

A table is a list of rows (``dict`` of column -> value, the same columns in every row); floats
are written with 6 significant digits. Figures go through :func:`pyplot` (the non-interactive
Agg backend, so jobs run without a display) and :func:`save_figure`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], written: list[Path] | None = None) -> Path:
    """Writes ``rows`` (one ``dict`` per row, the first row's keys as header) to ``path``.

    Args:
        path: CSV file; its folder is created if missing.
        rows: non-empty sequence of rows with the same keys.
        written: if given, ``path`` is appended to it (a job's list of output files).

    Returns:
        ``path``.

    Raises:
        ValueError: ``rows`` is empty or a row has other columns than the first.
    """
    import csv

    if not rows:
        raise ValueError(f"write_csv({path}): rows is empty, there is nothing to write")
    header = list(rows[0])
    for i, row in enumerate(rows):
        if list(row) != header:
            raise ValueError(f"write_csv({path}): row {i} has columns {list(row)}, expected {header}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, (float, np.floating)) else v for k, v in row.items()})
    return _record(path, written)


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV written by :func:`write_csv` (values as strings)."""
    import csv

    with Path(path).open() as f:
        return list(csv.DictReader(f))


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, title: str | None = None, written: list[Path] | None = None,
                dpi: int = 120) -> Path:
    """Titles (optionally), lays out, writes and closes ``fig``; returns ``path``."""
    if title is not None:
        fig.suptitle(title, fontsize=9 if len(title) > 90 else None)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return _record(path, written)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing sliding-window mean (the first points average what is there)."""
    values = np.asarray(values, np.float64)
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    index = np.arange(1, len(values) + 1)
    start = np.maximum(index - window, 0)
    return (cumulative[index] - cumulative[start]) / (index - start)


def convergence_point(x: np.ndarray, curve: np.ndarray, fraction: float = 0.95, tail: float = 0.1
                      ) -> tuple[float, float, float | None]:
    """``(first, final, x_reached)`` of a smoothed learning curve.

    ``final`` is the mean of the last ``tail`` share of the points (at least one), ``first`` the
    first point, and ``x_reached`` the first ``x`` where the curve has covered ``fraction`` of the
    rise from ``first`` to ``final``; ``None`` when the curve does not rise (``final <= first``).
    A curve that reaches that level and then falls back still counts as reached there: it is a
    reading of the curve, not a test that it has settled.
    """
    x, curve = np.asarray(x), np.asarray(curve, np.float64)
    if x.shape != curve.shape or curve.ndim != 1 or curve.size == 0:
        raise ValueError(f"x {x.shape} and curve {curve.shape} must be the same non-empty 1-D shape")
    if not 0.0 < fraction <= 1.0 or not 0.0 < tail <= 1.0:
        raise ValueError(f"fraction={fraction} and tail={tail} must be in (0, 1]")
    first = float(curve[0])
    final = float(curve[-max(1, round(tail * curve.size)):].mean())
    if final <= first:
        return first, final, None
    reached = np.flatnonzero(curve >= first + fraction * (final - first))
    return first, final, float(x[reached[0]])


def mean_band(ax, x, values: np.ndarray, label: str, band: str = "std", **style) -> None:
    """Plots the mean over axis 0 of ``values`` ``(S, X)`` with a band (``std`` or ``minmax``)."""
    values = np.asarray(values, np.float64)
    mean = np.nanmean(values, 0)
    low, high = ((mean - np.nanstd(values, 0), mean + np.nanstd(values, 0)) if band == "std"
                 else (np.nanmin(values, 0), np.nanmax(values, 0)))
    line, = ax.plot(x, mean, label=label, **style)
    ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2)


def _record(path: Path, written: list[Path] | None) -> Path:
    if written is not None:
        written.append(path)
    print(f"wrote {path}", flush=True)
    return path
