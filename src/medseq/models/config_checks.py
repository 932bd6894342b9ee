"""Field checks shared by every model config (:mod:`medseq.models.config_base`).

Each check names the config class, the field, the bound or choices and the value given, so a
typo in a TOML ``[model]`` table fails before any data is read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def check_int(owner: str, name: str, value: Any, low: int) -> None:
    """``value`` is an int (not a bool) ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}.{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{owner}.{name} must be >= {low}, got {value!r}")


def check_choice(owner: str, name: str, value: Any, choices: Iterable[str]) -> None:
    """``value`` is a str among ``choices``."""
    choices = tuple(choices)
    if not isinstance(value, str):
        raise TypeError(f"{owner}.{name} must be a str, got {type(value).__name__} {value!r}")
    if value not in choices:
        raise ValueError(f"{owner}.{name} must be one of {choices}, got {value!r}")


def check_bool(owner: str, name: str, value: Any) -> None:
    """``value`` is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"{owner}.{name} must be a bool, got {type(value).__name__} {value!r}")


def check_dropout(owner: str, value: Any, name: str = "dropout") -> float:
    """``value`` is a probability in ``[0, 1)``; returned as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}.{name} must be a float, got {type(value).__name__} {value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}.{name} must be in [0, 1), got {value!r}")
    return float(value)
