"""Field checks of the agents' config dataclasses, one error style: field, value, what is allowed.

``require_int`` / ``require_real`` name the field as ``Owner.field`` (the library configs:
``DDQNConfig``, ``DDPGConfig``, ``PPOConfig``); ``require_positive`` / ``require_nonempty`` name
it as its command-line flag (the jobs' configs). Used in ``__post_init__``, so a bad value is
refused when the config is built (on the command line: before any work).
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


def require_episode_budget(owner: str, num_episodes: int, num_envs: int, buffer_size: int,
                           learning_starts: int) -> None:
    """The cross-field rules of an off-policy trainer's budget (episodes run ``num_envs`` at a time)."""
    if num_episodes % num_envs:
        raise ValueError(f"{owner}.num_episodes={num_episodes} is invalid: must be a multiple of "
                         f"num_envs={num_envs} (episodes run num_envs at a time)")
    if learning_starts > buffer_size:
        raise ValueError(f"{owner}.learning_starts={learning_starts} is invalid: must be <= "
                         f"buffer_size={buffer_size} (a fuller buffer never comes: learning would never start)")


def positive(value: float) -> bool:
    return value > 0


def non_negative(value: float) -> bool:
    return value >= 0


def unit_interval(value: float) -> bool:
    return 0.0 <= value <= 1.0


def flag(name: str) -> str:
    """The command-line flag of a config field: ``num_seeds`` -> ``--num-seeds``."""
    return "--" + name.replace("_", "-")


def require_positive(config, *names: str, allow_none: bool = False) -> None:
    """Raises ``ValueError`` naming the flag, the value and the rule for a field below 1."""
    for name in names:
        value = getattr(config, name)
        if value is None and allow_none:
            continue
        if value is None or value < 1:
            raise ValueError(f"{flag(name)}={value!r} is invalid: must be an integer >= 1")


def require_nonempty(config, *names: str) -> None:
    """Raises ``ValueError`` naming the flag for an empty sequence field."""
    for name in names:
        if not getattr(config, name):
            raise ValueError(f"{flag(name)} is empty: give at least one value")
