"""Checks behind every ``Config.validate``: each raises ``ValueError`` naming the field, the value
and the allowed range, in one wording across the project."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real

import numpy as np


def check_number(name: str, value: float, low: float, high: float) -> float:
    """``value`` as a float; ``ValueError("name must be in [low, high], got value")`` unless it
    is a finite real number (not a bool) with ``low <= value <= high``."""
    if isinstance(value, bool) or not isinstance(value, Real | np.number):
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")
    if not np.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return float(value)


def check_integer(name: str, value: int, low: int, high: int | None = None) -> int:
    """``value`` as an int; ``ValueError`` naming the field unless it is an integer (not a bool)
    in ``[low, high]`` (or ``>= low`` when ``high`` is None)."""
    allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
    try:
        whole = not isinstance(value, bool) and int(value) == value
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole or value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    return int(value)


def check_integers(name: str, values: Sequence[int], low: int, high: int, most: int) -> tuple:
    """``values`` as a tuple of 1 to ``most`` distinct integers in ``[low, high]``."""
    values = tuple(values)
    ok = 1 <= len(values) <= most and len(set(values)) == len(values)
    if not ok or any(isinstance(v, bool) or int(v) != v or not low <= v <= high for v in values):
        raise ValueError(
            f"{name} must hold 1 to {most} distinct integers in [{low}, {high}], got {values!r}"
        )
    return tuple(int(v) for v in values)


def check_choice(name: str, value: str, allowed: Sequence[str]) -> str:
    """``value``; ``ValueError("name must be one of (...), got 'value'")`` unless allowed."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value
