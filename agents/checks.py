"""Field checks of the agents' config dataclasses, one error style: field, value, what is allowed.

Used in the ``__post_init__`` of ``DDQNConfig``, ``DDPGConfig`` and ``PPOConfig``, so a bad
hyperparameter is refused when the config is built (on the command line: before any work).
"""

from __future__ import annotations

import math
from typing import Callable


def require_int(owner: str, name: str, value, low: int | None) -> None:
    """``<owner>.<name>`` must be an int (not a bool) ``>= low`` (any int when ``low`` is None)."""
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        rule = "an int" if low is None else f"an int >= {low}"
        raise ValueError(f"{owner}.{name}={value!r} is invalid: must be {rule}")


def require_real(owner: str, name: str, value, rule: Callable[[float], bool], allowed: str) -> None:
    """``<owner>.<name>`` must be a finite real number satisfying ``rule`` (described by ``allowed``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not rule(value):
        raise ValueError(f"{owner}.{name}={value!r} is invalid: must be a finite number {allowed}")


def positive(value: float) -> bool:
    return value > 0


def non_negative(value: float) -> bool:
    return value >= 0


def unit_interval(value: float) -> bool:
    return 0.0 <= value <= 1.0
