"""Checks behind every ``Config.validate``: each raises ``ValueError`` naming the field, the value
and the allowed range, in one wording across the project."""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import numpy as np


def check_number(name: str, value: float, low: float, high: float) -> float:
    """``value`` as a float; ``ValueError("name must be in [low, high], got value")`` unless it
    is a finite real number (not a bool) with ``low <= value <= high``."""
    if isinstance(value, bool) or not isinstance(value, Real | np.integer | np.floating):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {_shown(value)}")
    try:
        number = float(value)
    except (OverflowError, TypeError, ValueError):
        number = math.inf
    if not math.isfinite(number) or not low <= number <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {_shown(value)}")
    return number


def check_integer(name: str, value: int, low: int, high: int | None = None) -> int:
    """``value`` as an int; ``ValueError`` naming the field unless it is an integer (a Python or
    NumPy int, not a bool and not a float such as ``3.0``: a float width or batch size reaches
    code that loops on it) in ``[low, high]`` (or ``>= low`` when ``high`` is None)."""
    allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
    whole = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
    if not whole or value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer {allowed}, got {_shown(value)}")
    return int(value)


def check_integers(name: str, values: Sequence[int], low: int, high: int, most: int) -> tuple:
    """``values`` as a tuple of 1 to ``most`` distinct integers in ``[low, high]``."""
    message = f"{name} must hold 1 to {most} distinct integers in [{low}, {high}]"
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
        raise ValueError(f"{message}, got {_shown(values)}")
    values = tuple(values)
    ok = 1 <= len(values) <= most
    ok = ok and all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) and low <= v <= high
        for v in values
    )
    if not ok or len(set(values)) != len(values):
        raise ValueError(f"{message}, got {_shown(values)}")
    return tuple(int(v) for v in values)


#: Multiply-adds a run may be estimated to need: about an hour on one CPU core. A configuration
#: over it is refused by its ``validate`` (saying which fields to lower) instead of running for
#: hours; every page's slider ranges stay below it at their defaults.
COST_LIMIT = 1e14


def check_numbers(name: str, values: Sequence[float], low: float, high: float, most: int) -> tuple:
    """``values`` as a tuple of 1 to ``most`` finite numbers in ``[low, high]``."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
        raise ValueError(
            f"{name} must hold 1 to {most} numbers in [{low}, {high}], got {_shown(values)}"
        )
    values = tuple(values)
    if not 1 <= len(values) <= most:
        raise ValueError(
            f"{name} must hold 1 to {most} numbers in [{low}, {high}], got {len(values)}"
        )
    return tuple(check_number(name, v, low, high) for v in values)


def check_cost(name: str, cost: float, limit: float, unit: str, advice: str) -> None:
    """``ValueError`` when a configuration's estimated ``cost`` (in ``unit``: operations, bytes)
    exceeds ``limit``: the run would take hours or more memory than the machine has. ``name``
    says which fields make the cost, ``advice`` which to lower."""
    if not math.isfinite(cost) or cost > limit:
        raise ValueError(
            f"{name} would cost about {cost:.2g} {unit}, over the limit of {limit:.2g}: {advice}"
        )


def _shown(value: object) -> str:
    """``repr(value)`` cut to 60 characters (a 400-digit integer is not repeated in full)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def check_choice(name: str, value: str, allowed: Sequence[str]) -> str:
    """``value``; ``ValueError("name must be one of (...), got 'value'")`` unless allowed."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {_shown(value)}")
    return value
