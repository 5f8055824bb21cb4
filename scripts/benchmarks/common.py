"""Timing helpers shared by the benchmark sections."""

from __future__ import annotations

import resource
import statistics
import time
from typing import Callable

import jax


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time (s) of ``fn()`` over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        jax.block_until_ready(fn())
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
