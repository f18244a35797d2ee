"""ui.charts: the chart component's plotly.js and the JSON it sends (the drawing itself is
checked in the real browser: tests/test_browser.py)."""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io
import plotly.offline

from ui import charts


def test_plotly_js_is_the_installed_plotly_packages_own() -> None:
    """The component loads the plotly.min.js of the installed plotly package (the release its
    figures are written for), from the folder Streamlit serves under the declared name."""
    assert charts.PLOTLY_JS.is_file()
    banner = charts.PLOTLY_JS.read_text(encoding="utf-8")[:200]
    assert f"plotly.js v{plotly.offline.get_plotlyjs_version()}" in banner
    assert charts._plotly_files.path == str(charts.PLOTLY_JS.parent)
    url = f"component/{charts._plotly_files.name}/plotly.min.js"
    assert charts.frontend_js().splitlines()[0] == f"const PLOTLY_URL = {url!r};"
    assert "export default function" in charts.frontend_js()


def test_a_specified_figure_sends_the_json_it_was_made_with() -> None:
    """A cached figure's JSON is made once: every chart drawn from it sends those same bytes,
    which are what plotly.io would write for the figure; other figures are serialised each time."""
    figure = go.Figure(go.Scatter(x=[0.0, 1.0], y=[2.0, 3.0], name="line"))
    kept = charts.Specified(figure)
    expected = plotly.io.to_json(figure, validate=False).encode()
    assert charts.figure_json(kept) == expected
    assert charts.figure_json(kept) is charts.figure_json(kept)
    assert charts.figure_json(figure) == expected
    assert kept.to_dict()["data"][0]["name"] == "line"


def test_figures_built_beside_streamlit_take_plotlys_own_colours() -> None:
    """Importing Streamlit makes its placeholder template Plotly's default (colours #000001..,
    #000011.. that only st.plotly_chart's frontend replaces): a contour with no scale of its own
    drew black. ui.charts puts Plotly's template back."""
    import streamlit.elements.lib.streamlit_plotly_theme as streamlit_theme

    assert plotly.io.templates.default == "plotly"
    spec = charts.figure_json(go.Figure(go.Contour(z=[[0.0, 1.0], [1.0, 2.0]])))
    assert streamlit_theme.SEQUENTIAL_0.encode() not in spec
    assert streamlit_theme.CATEGORY_0.encode() not in spec
    assert b"#0d0887" in spec  # Plotly's own sequential scale (plasma) begins here


def test_a_charts_box_has_its_figures_height_before_plotly_js_draws_it() -> None:
    """The element's height goes with it from the server (the page does not jump when plotly.js
    arrives): the figure's layout height, or plotly.js's default; a cached figure keeps it."""
    tall = go.Figure(go.Scatter(y=[1.0, 2.0]), layout={"height": 520})
    assert charts.figure_height(tall) == 520
    assert charts.figure_height(charts.Specified(tall)) == 520
    assert charts.figure_height(go.Figure()) == charts.DEFAULT_HEIGHT == 450
    assert "DEFAULT_HEIGHT = 450" in charts.frontend_js()
