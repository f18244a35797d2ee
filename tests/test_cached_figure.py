"""ui.export.cached_figure: a figure of a result already shown is built once, per options."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from landscape.engine import byte_lru
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


@pytest.mark.slow
def test_the_cache_is_bounded_in_bytes_and_keeps_its_arguments_alive(monkeypatch) -> None:
    """Each figure holds 80 kB of float64 values (and their encoding for the browser); the
    ceiling holds three such figures, never more."""
    points = 10_000
    sample = export.Specified(go.Figure(go.Scatter(y=np.zeros(points))))  # as cached
    one = export._figure_nbytes(((), sample))
    small = byte_lru.ByteLRU(int(3.5 * one), sizer=export._figure_nbytes, name="Figures")
    monkeypatch.setattr(export, "_figures", small)
    calls: list[int] = []

    def make(result: _Result) -> go.Figure:
        calls.append(id(result))
        return go.Figure(go.Scatter(y=np.full(points, result.value)))

    results = [_Result(float(i)) for i in range(6)]
    alive = [weakref.ref(r) for r in results]
    built = [export.cached_figure(make, result) for result in results]
    assert one > 8 * points * 4 / 3  # the values, encoded as base64 for the browser
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


@pytest.mark.slow
def test_a_cached_figure_reaches_the_browser_as_it_was_serialised(monkeypatch) -> None:
    """The chart gets the JSON made when the figure was cached: the same specification as from
    the figure itself, and on a rerun no figure is serialised again."""
    import plotly.io
    from plotly.basedatatypes import BaseFigure
    from streamlit.testing.v1 import AppTest

    from tests.drawn_charts import drawn_charts

    export.clear_figures()
    made: list[str] = []
    to_dict = BaseFigure.to_dict

    def counted(self: BaseFigure) -> dict:
        made.append(type(self).__name__)
        return to_dict(self)

    monkeypatch.setattr(BaseFigure, "to_dict", counted)
    at = AppTest.from_function(_page).run()
    assert not at.exception, at.exception
    (chart,) = drawn_charts(at)
    expected = plotly.io.to_json(spiral("spiral"), validate=False)
    assert chart.key == "chart_spiral" and chart.spec == expected
    made.clear()
    at.run()
    assert not at.exception, at.exception
    assert drawn_charts(at)[0].spec == expected
    assert made == []  # the cached JSON was sent; no figure made a dict
    export.clear_figures()


#: In a fresh interpreter (no test harness recording warnings meanwhile): the bytes that 40
#: cached figures keep alive, traced by tracemalloc (NumPy's arrays included) as what is freed
#: when they are dropped, and the bytes the cache counts for them. What Plotly allocates once per
#: process (validators; one 72 kB block when it first builds a figure's JSON) is not freed, and
#: neither is the interpreter's table of `object`'s subclasses, which Plotly's class-per-call
#: `_Chomper` makes grow (on Python 3.13 it went 74 -> 147 -> 74 kB across windows of 20
#: figures: a window's growth of the traced memory is not what its figures hold).
HELD_AND_COUNTED = textwrap.dedent(
    """
    import gc, tracemalloc
    from tests.test_cached_figure import spiral
    from ui import export

    export.cached_figure(spiral, "warm-up")
    export.clear_figures()
    gc.collect()
    tracemalloc.start()
    kept = [export.cached_figure(spiral, f"spiral {i}") for i in range(40)]
    gc.collect()
    assert len(kept) == len(export._figures) == 40
    counted, alive = export._figures.nbytes, tracemalloc.get_traced_memory()[0]
    del kept
    export.clear_figures()
    gc.collect()
    print(alive - tracemalloc.get_traced_memory()[0], counted)
    """
)


@pytest.mark.slow
def test_the_cache_counts_what_its_figures_really_hold() -> None:
    """The ceiling is honest: what cached figures keep alive is not more than the bytes the cache
    counts for them, its keys and its own bookkeeping included (a kept Figure's validated
    property trees were not counted: 1.8 times the count for 25 Linear duality figures; before
    `byte_lru.ENTRY_OVERHEAD`, the keys and links were 2-3% over the count)."""
    out = subprocess.run(
        [sys.executable, "-c", HELD_AND_COUNTED],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    held, counted = map(int, out.split())
    assert 0 < held <= counted, (held, counted)


def test_a_cached_figure_exports_what_its_figure_would() -> None:
    """The HTML and PNG exports read the kept JSON: the same figure as the one it came from."""
    import json

    import plotly.io

    export.clear_figures()
    kept = export.cached_figure(spiral, "spiral")
    assert not hasattr(kept, "_data")  # no validated Figure behind it
    html = kept.to_html(include_plotlyjs=False, full_html=False)
    fresh = spiral("spiral")
    assert json.loads(plotly.io.to_json(kept)) == json.loads(plotly.io.to_json(fresh))
    assert "heat map" in html and '"type":"heatmap"' in html
    export.clear_figures()
