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
    """Each figure holds 80 kB of float64 values (and their encoding for the browser); the
    ceiling holds three such figures, never more."""
    points = 10_000
    sample = go.Figure(go.Scatter(y=np.zeros(points)))
    setattr(sample, export.SPEC, sample.to_dict())  # as cached: with its dict for the browser
    one = export._figure_nbytes(((), sample))
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


def spiral(label: str) -> go.Figure:
    """A figure with arrays and a subplot grid, built from a value (cached by value)."""
    from plotly.subplots import make_subplots

    t = np.linspace(0.0, 6.0, 200)
    fig = make_subplots(rows=1, cols=2, subplot_titles=(label, "heat map"))
    fig.add_trace(go.Scatter(x=t * np.cos(t), y=t * np.sin(t), name=label), row=1, col=1)
    fig.add_trace(go.Heatmap(z=np.outer(np.sin(t[:20]), np.cos(t[:20]))), row=1, col=2)
    return fig


def _page() -> None:
    from tests.test_cached_figure import spiral
    from ui import export

    export.show_figure(export.cached_figure(spiral, "spiral"), "spiral")


def test_a_cached_figure_reaches_the_browser_without_a_new_dict(monkeypatch) -> None:
    """st.plotly_chart gets the dict made when the figure was cached: the same specification
    as from the figure itself, and on a rerun no figure makes its dict again."""
    import plotly.io
    from plotly.basedatatypes import BaseFigure
    from streamlit.testing.v1 import AppTest

    export.clear_figures()
    made: list[str] = []
    to_dict = BaseFigure.to_dict

    def counted(self: BaseFigure) -> dict:
        made.append(type(self).__name__)
        return to_dict(self)

    monkeypatch.setattr(BaseFigure, "to_dict", counted)
    at = AppTest.from_function(_page).run()
    assert not at.exception, at.exception
    (chart,) = at.get("plotly_chart")
    expected = plotly.io.to_json(spiral("spiral").to_dict(), validate=False)
    assert chart.proto.spec == expected
    made.clear()
    at.run()
    assert not at.exception, at.exception
    assert at.get("plotly_chart")[0].proto.spec == expected
    assert made == []  # the cached dict was sent; no Figure made one
    export.clear_figures()
