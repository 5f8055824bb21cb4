"""Benchmark sections of scripts/bench.py: each module has ``run(quick) -> dict`` and ``markdown(results) -> str``."""
