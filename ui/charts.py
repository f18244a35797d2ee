"""Plotly charts that the browser updates in place when their figure changes.

``st.plotly_chart`` hashes the figure into the chart's element id, so a figure that changes (a
slider moved) is a new element: the browser throws the old chart away and builds the new one
with ``Plotly.newPlot``, margins computed twice. `show_chart` draws through a small Streamlit
component (``ui/charts.js``) whose identity is its key alone: the browser keeps the chart and
hands the new figure to ``Plotly.react``, which redraws only what changed. Measured with
`loadtests/browser_cost.py` (the browser's CPU per slider move, all of Chromium's processes):
Linear duality 1.47 -> 0.90 s, Width 0.87 -> 0.68 s, the Lab 1.28 -> 1.02 s.

plotly.js is the ``plotly.min.js`` that the installed plotly package ships (the file plotly.py
writes into offline HTML, so the figures and their drawing come from one release), served by
Streamlit's component file route: nothing is fetched from outside the server. The component
lays Streamlit's Plotly theme (the page's text colour and font) over each figure's template,
as ``st.plotly_chart`` did, and redraws its charts when the page switches theme.

Importing Streamlit makes its own template Plotly's default (``pio.templates.default =
"streamlit"``): a template whose colours are placeholders (``#000001``.. for the colour way,
``#000011``.. for the sequential scale) that only ``st.plotly_chart``'s frontend replaces. Drawn
by plotly.js itself (here, and in the HTML and PNG exports) every colour taken from that template
came out near black: a contour map with no colour scale of its own was a black square, the
curves with no colour of their own black lines. This module puts Plotly's own template back as
the default, so a figure built in the app is the figure built anywhere else.

First paint: the chart's box has its figure's height from the element Streamlit sends (nothing
below it moves when plotly.js arrives), shows "Drawing the chart..." until drawn, and
`preload_plotly` (called once per page by the router, in the sidebar) starts fetching and running
plotly.js while the page's script still runs, before the first chart's element arrives
(measured by ``benchmarks/first_paint.py``; docs/benchmarks/first-paint.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import plotly
import plotly.io
import streamlit as st
import streamlit.components.v1 as components_v1
from plotly.basedatatypes import BaseFigure

plotly.io.templates.default = "plotly"  # not Streamlit's placeholder template: see above

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
FRONTEND = Path(__file__).with_name("charts.js")

# A folder served by Streamlit at component/<name>/: the plotly package's own data folder.
_plotly_files = components_v1.declare_component("plotly_js", path=str(PLOTLY_JS.parent))


def frontend_js() -> str:
    """The component's JavaScript: ``ui/charts.js`` after the URL of plotly.min.js (relative to
    the page, so that a ``server.baseUrlPath`` is kept)."""
    url = f"component/{_plotly_files.name}/{PLOTLY_JS.name}"
    return f"const PLOTLY_URL = {url!r};\n" + FRONTEND.read_text(encoding="utf-8")


COMPONENT = "convexify_chart"
DEFAULT_HEIGHT = 450  # plotly.js's, for a figure that sets none
#: The chart's box before plotly.js has drawn it: a faint frame that says what is coming.
PLACEHOLDER_CSS = """
div.convexify-chart:empty {
  display: flex; align-items: center; justify-content: center;
  border-radius: 0.5rem; background: rgba(128, 128, 128, 0.06);
}
div.convexify-chart:empty::before { content: "Drawing the chart…"; opacity: 0.55; }
"""
_chart = st.components.v2.component(
    COMPONENT, js=frontend_js(), css=PLACEHOLDER_CSS, isolate_styles=False
)


class Specified(BaseFigure):
    """A figure as its JSON only, made once: what `export.cached_figure` keeps and hands out.

    Drawing a chart sends that JSON as it is (`figure_json`); the HTML and PNG exports, which
    ask for ``to_dict()``, get it parsed from the JSON when a download is asked for. The Figure
    itself is not kept: its validated property trees held four times the memory of its dict
    (25 Linear duality figures: 6.4 MiB against 1.6 MiB, measured with tracemalloc), bytes the
    cache's estimate did not see, and serialising it again cost every rerun that showed it."""

    def __init__(self, figure: BaseFigure) -> None:  # no BaseFigure.__init__: no validation
        object.__setattr__(self, "_json", plotly.io.to_json(figure, validate=False).encode())
        object.__setattr__(self, "_height", figure_height(figure))

    def json_bytes(self) -> bytes:
        return self._json

    def height(self) -> int:
        return self._height

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self._json)


def figure_json(fig: BaseFigure) -> bytes:
    """The figure as the JSON plotly.js reads (arrays base64-encoded), as UTF-8 bytes."""
    if isinstance(fig, Specified):
        return fig.json_bytes()
    return plotly.io.to_json(fig, validate=False).encode()


def figure_height(fig: BaseFigure) -> int:
    """The height in pixels that plotly.js gives ``fig``: its layout's, or plotly.js's default."""
    if isinstance(fig, Specified):
        return fig.height()
    height = fig.layout.height
    return DEFAULT_HEIGHT if height is None else int(height)


def show_chart(fig: BaseFigure, key: str) -> Any:
    """Draw ``fig`` at this place of the page, in a box of its height from the start; the next
    run's figure under the same ``key`` updates the same chart."""
    return _chart(key=key, data=figure_json(fig), height=figure_height(fig))


PRELOAD_KEY = "convexify_plotly_preload"


def preload_plotly() -> Any:
    """Start loading plotly.js in the browser now (once per page; an element with no chart, 1 px
    high): the page's charts, which come later in the script, find it loaded or loading."""
    return _chart(key=PRELOAD_KEY, data=None, height=1)
