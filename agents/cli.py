"""Command-line helper shared by the training scripts: tyro parsing with named presets."""

from __future__ import annotations

from typing import Mapping, TypeVar

import tyro

T = TypeVar("T")


def parse_with_presets(config_type: type[T], presets: Mapping[str, T], argv: list[str], description: str,
                       default_preset: str = "quick") -> T:
    """Parses ``argv`` with tyro, taking the defaults from the preset named by ``--preset``.

    Raises:
        ValueError: ``--preset`` names no preset (the message lists the allowed ones).
    """
    preset = default_preset
    for i, arg in enumerate(argv):
        if arg == "--preset" and i + 1 < len(argv):
            preset = argv[i + 1]
        elif arg.startswith("--preset="):
            preset = arg.split("=", 1)[1]
    if preset not in presets:
        raise ValueError(f"--preset={preset!r} is invalid: allowed presets are {sorted(presets)}")
    return tyro.cli(config_type, default=presets[preset], args=argv, description=description)


def seed_keys(seed: int, num: int):
    """``(num, 2)`` keys of a run's seeds: seed ``i`` uses ``fold_in(PRNGKey(seed), i)``.

    Every script follows this convention, so seed ``i`` of one script's run is seed ``i`` of
    another's (e.g. a scan's run equals the training run of the same config and seed).
    """
    import jax
    import jax.numpy as jnp

    return jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(seed), i))(jnp.arange(num))
