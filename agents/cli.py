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
