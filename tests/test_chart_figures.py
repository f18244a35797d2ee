"""Every figure of every page, as the page sends it: colour scales meant to be shared are one
colour axis, and log axes are labelled in powers of ten (never Plotly's SI prefixes: "100µ").

What plotly.js then draws from these figures is checked in the real browser:
tests/test_browser_charts.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from landscape.engine.plotting import LOG_AXIS, SHARED, colour_axis, surface_beside_contours
from tests.drawn_charts import drawn_charts
from tests.test_app_pages import assert_clean, open_page
from ui.catalogue import STUDIES

#: Trace types coloured by a colour scale of their own unless they name a colour axis.
COLOUR_SCALED = {"heatmap", "contour", "surface", "histogram2d", "histogram2dcontour"}


def colour_scaled(trace: dict[str, Any]) -> bool:
    """Whether the trace paints with a colour scale (a contour with ``coloring="none"`` draws
    lines only)."""
    if trace.get("type") not in COLOUR_SCALED:
        return False
    return trace.get("contours", {}).get("coloring") != "none"


def unshared_colour_bars(figure: dict[str, Any]) -> list[int]:
    """Indices of the traces that draw a colour bar of their own beside other colour-scaled
    traces: each such bar speaks for its trace alone, while the figure shows several."""
    scaled = [(k, t) for k, t in enumerate(figure["data"]) if colour_scaled(t)]
    if len(scaled) < 2:
        return []
    return [k for k, t in scaled if "coloraxis" not in t and t.get("showscale", True) is not False]


def log_axes(layout: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every axis of the layout (2-D and 3-D scenes') whose type is log, by name."""
    axes = {name: axis for name, axis in layout.items() if name[1:5] == "axis"}
    for name, scene in layout.items():
        if name.startswith("scene"):
            axes.update({f"{name}.{k}": a for k, a in scene.items() if k[1:5] == "axis"})
    return {name: axis for name, axis in axes.items() if axis.get("type") == "log"}


def test_the_checks_see_the_defects_they_look_for() -> None:
    """The Lab's contour map before the fix: a surface with a colour bar of its own beside a
    contour; an axis on a log scale in Plotly's default labels."""
    before = {
        "data": [
            {"type": "surface", "z": [[0, 1], [1, 2]], "colorscale": "Viridis"},
            {"type": "contour", "z": [[0, 1], [1, 2]]},
        ],
        "layout": {"yaxis": {"type": "log"}},
    }
    assert unshared_colour_bars(before) == [0, 1]
    assert list(log_axes(before["layout"])) == ["yaxis"]
    lines_only = {"type": "contour", "contours": {"coloring": "none"}}
    assert unshared_colour_bars({"data": [before["data"][0], lines_only]}) == []


def test_surface_beside_contours_links_both_traces_to_one_colour_axis() -> None:
    """plotly.js links a contour and a surface to one colour axis only when the contour is
    coloured like a heat map (otherwise it drops both links, and each takes its own scale)."""
    a = np.linspace(-1.0, 1.0, 5)
    fig = surface_beside_contours(a, a, np.add.outer(a, a), ("s", "c"), hovertemplate="%{z}")
    fig.update_layout(coloraxis=colour_axis("loss"))
    surface, contour = fig.data
    assert surface.coloraxis == contour.coloraxis == SHARED
    assert contour.contours.coloring == "heatmap"
    assert fig.layout.coloraxis.colorbar.title.text == "loss"
    assert LOG_AXIS["exponentformat"] == "power"


@pytest.mark.parametrize("entry", STUDIES, ids=[e.url_path for e in STUDIES])
def test_every_figure_shares_its_colour_scale_and_labels_log_axes_in_powers(entry) -> None:
    at = open_page(entry.path)
    assert_clean(at)
    charts = drawn_charts(at)
    assert charts, f"{entry.title} shows no chart"
    for chart in charts:
        figure = chart.figure
        assert not unshared_colour_bars(figure), f"{chart.key}: a colour bar of one trace"
        layout = figure["layout"]
        for trace in figure["data"]:
            if "coloraxis" in trace:
                assert "colorscale" in layout[trace["coloraxis"]], chart.key
                assert "colorscale" not in trace, f"{chart.key}: a scale beside its colour axis"
        for name, axis in log_axes(layout).items():
            assert axis.get("exponentformat") == "power", f"{chart.key}: {name} in SI prefixes"
