"""The ``message`` of a Beyond result: which numbers are not finite, and why."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

DIVERGED = "a training diverged (its objective overflowed): lower lr"


def not_finite(
    result: Any, reasons: dict[str, str] | None = None, labels: dict[str, str] | None = None
) -> str:
    """One sentence per float field of ``result`` that holds NaN or inf: the field's reason in
    ``reasons`` (NaN by design, e.g. a family that cannot fit a budget) or `DIVERGED`; the field
    named by its label in ``labels`` (typeset mathematics, shown on the page) or its name.
    Empty when every number is finite."""
    reasons, labels = reasons or {}, labels or {}
    notes = []
    for item in dataclasses.fields(result):
        value = getattr(result, item.name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            bad = not np.isfinite(value).all()
        elif isinstance(value, float):
            bad = not np.isfinite(value)
        else:
            continue
        if bad:
            label = labels.get(item.name, item.name)
            notes.append(f"{label} holds NaN or inf: {reasons.get(item.name, DIVERGED)}.")
    return " ".join(notes)
