"""Rows of sliders shared by the pages: one `Slider` per widget, drawn in columns, each bound to
its URL query parameter (the widget key, which never changes: old links keep working)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st


@dataclass(frozen=True)
class Slider:
    """A ``st.slider`` (``low``, ``high``, ``value``, optional ``step``) or, with ``options``, a
    ``st.select_slider``; drawn in column ``column`` of its row (default: its position)."""

    label: str
    key: str
    help: str
    value: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    options: Sequence[Any] | None = None
    format_func: Callable[[Any], str] | None = None
    column: int | None = None


def slider_ui(container: Any, spec: Slider) -> Any:
    """Draw one `Slider` in ``container`` (a column, ``st``, ...) and return its value."""
    extra: dict[str, Any] = {} if spec.format_func is None else {"format_func": spec.format_func}
    if spec.options is not None:
        return container.select_slider(
            spec.label,
            list(spec.options),
            value=spec.value,
            key=spec.key,
            bind="query-params",
            help=spec.help,
            **extra,
        )
    bounds = [spec.low, spec.high, spec.value] + ([] if spec.step is None else [spec.step])
    return container.slider(
        spec.label, *bounds, key=spec.key, bind="query-params", help=spec.help, **extra
    )


def sliders_ui(specs: Sequence[Slider], columns: int | Sequence[Any] | None = None) -> list[Any]:
    """Draw ``specs`` in a row of ``columns`` (a count, default one each, or columns already
    drawn that other widgets share); their values, in order."""
    if columns is None or isinstance(columns, int):
        cols: Sequence[Any] = st.columns(columns or len(specs))
    else:
        cols = columns
    return [
        slider_ui(cols[i if spec.column is None else spec.column], spec)
        for i, spec in enumerate(specs)
    ]
