"""ui.export.cached_figure: a figure of a result already shown is built once, per options."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import plotly.graph_objects as go

from landscape.engine import serving
from ui import export


class _Result:
    """Stands for a study Result: unhashable, passed around by identity."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, value: float) -> None:
        self.value = value


def test_a_figure_is_built_once_per_result_and_options() -> None:
    calls: list[tuple[float, str]] = []

    def make(result: _Result, style: str) -> go.Figure:
        calls.append((result.value, style))
        return go.Figure(go.Scatter(y=[result.value]))

    first, second = _Result(1.0), _Result(1.0)
    a = export.cached_figure(make, first, "heatmap")
    assert export.cached_figure(make, first, "heatmap") is a
    assert export.cached_figure(make, first, "contour") is not a
    assert export.cached_figure(make, second, "heatmap") is not a  # equal, but another result
    assert calls == [(1.0, "heatmap"), (1.0, "contour"), (1.0, "heatmap")]


def test_the_cache_is_bounded_in_bytes_and_keeps_its_arguments_alive(monkeypatch) -> None:
    """Each figure holds 80 kB of float64 values; the ceiling holds three of them, never more."""
    points = 10_000
    one = export._figure_nbytes(((), go.Figure(go.Scatter(y=np.zeros(points)))))
    small = serving.ByteLRU(int(3.5 * one), sizer=export._figure_nbytes, name="Figures")
    monkeypatch.setattr(export, "_figures", small)
    calls: list[int] = []

    def make(result: _Result) -> go.Figure:
        calls.append(id(result))
        return go.Figure(go.Scatter(y=np.full(points, result.value)))

    results = [_Result(float(i)) for i in range(6)]
    alive = [weakref.ref(r) for r in results]
    built = [export.cached_figure(make, result) for result in results]
    assert one > 8 * points
    assert small.nbytes <= small.max_bytes and small.stats().evictions == 3
    assert export.cached_figure(make, results[-1]) is built[-1]  # recent: kept
    assert len(calls) == 6
    export.cached_figure(make, results[0])  # the oldest was evicted: built again
    assert len(calls) == 7
    del results, built
    assert alive[-1]() is not None  # the cache holds the result: its id is not reused
    export.clear_figures()
    gc.collect()
    assert alive[-1]() is None
