"""ui.export.cached_figure: a figure of a result already shown is built once, per options."""

from __future__ import annotations

import plotly.graph_objects as go

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


def test_the_cache_is_bounded_and_keeps_its_arguments_alive() -> None:
    def make(result: _Result) -> go.Figure:
        return go.Figure()

    results = [_Result(float(i)) for i in range(export.MAX_FIGURES + 5)]
    for result in results:
        export.cached_figure(make, result)
    mine = [k for k in export._figures if k[:2] == (make.__module__, make.__qualname__)]
    assert len(mine) <= export.MAX_FIGURES
    for args, _ in export._figures.values():
        assert args  # the result is held, so its id cannot be reused while cached
