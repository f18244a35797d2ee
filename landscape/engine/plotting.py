"""Plotly figure builders: pure functions Result -> go.Figure, one module per study; here what
two or more studies' figures use.

Building a figure is not thread-safe in Plotly, and Streamlit runs every session's script in a
thread of its own: Plotly's validator cache fills one shared parameter dict in place while it
makes a validator (``ValidatorCache.get_validator`` sets ``plotly_name`` on the JSON's dict, so
two threads making ``xaxis`` and ``xaxis2`` at once can each get the other's name), and
``InfoArrayValidator`` renames its shared item validators while it checks a value (a domain, a
range). `serialised` builders hold `FIGURE_LOCK`, one process-wide lock: building is pure
Python, which holds the GIL anyway, so the lock costs no parallelism.

Plotly also looks up pandas and PIL.Image in ``sys.modules`` without importing them
(``get_module(name, should_load=False)``) and tests ``isinstance(v, pd.Series)`` on every array
it validates or serialises. A first ``import pandas`` in another thread (a study reading data in
the run queue) leaves a partially initialised module there for a moment, and a figure built or
drawn in that moment fails (``AttributeError: partially initialized module 'pandas' has no
attribute 'Series'``): so this module, which every figure module imports, imports both in full
before any figure exists.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import numpy as np
import pandas  # noqa: F401 - loaded in full before any figure: see the module's docstring
import plotly.graph_objects as go
from numpy.typing import ArrayLike
from plotly.subplots import make_subplots

try:
    import PIL.Image  # noqa: F401 - idem (plotly.io's JSON encoder looks for PIL.Image.Image)
except ImportError:  # pragma: no cover - Pillow comes with Streamlit
    pass

#: A log axis labelled in powers of ten (10⁻⁶), never in Plotly's SI prefixes ("1µ", "10n",
#: "1p"), which no reader of a loss curve expects: ``fig.update_yaxes(LOG_AXIS, ...)`` or
#: ``yaxis={**LOG_AXIS, "title": ...}``.
LOG_AXIS: dict[str, Any] = {"type": "log", "exponentformat": "power", "showexponent": "all"}

#: Reference lines and markers drawn on the page's own background: a grey that reads on the light
#: and on the dark theme (black vanished on the dark one).
NEUTRAL = "#8c8c8c"

#: The one colour axis that every trace of a figure showing the same quantity refers to
#: (``coloraxis=SHARED``): one colour scale, one range, one colour bar.
SHARED = "coloraxis"

P = ParamSpec("P")
R = TypeVar("R")

#: Held while a figure is built (re-entrant: a builder may call another).
FIGURE_LOCK = threading.RLock()


def serialised(build: Callable[P, R]) -> Callable[P, R]:
    """``build`` run under `FIGURE_LOCK`: one figure is built at a time in this process."""

    @functools.wraps(build)
    def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        with FIGURE_LOCK:
            return build(*args, **kwargs)

    return locked


def float32(a: ArrayLike) -> np.ndarray:
    """``a`` as float32, the precision every figure sends to the browser (half the JSON)."""
    return np.asarray(a, dtype=np.float32)


def line_trace(
    x: ArrayLike,
    y: ArrayLike,
    name: str,
    color: str | None = None,
    *,
    dash: str | None = None,
    width: float | None = None,
    mode: str = "lines",
    marker_size: float | None = None,
    showlegend: bool | None = None,
) -> go.Scatter:
    """One curve of a figure: ``go.Scatter`` of ``(x, float32(y))``, its line styled by
    ``color``, ``dash`` and ``width`` (unset ones left to Plotly); add it with
    ``fig.add_trace(trace, row=..., col=...)``."""
    style = {"color": color, "dash": dash, "width": width}
    return go.Scatter(
        x=x,
        y=float32(y),
        name=name,
        mode=mode,
        line={key: value for key, value in style.items() if value is not None},
        marker=None if marker_size is None else {"size": marker_size},
        showlegend=showlegend,
    )


def frame_slider(
    frames: Sequence[str],
    labels: Sequence[str],
    *,
    active: int,
    prefix: str,
    pad_top: int,
    redraw: bool,
) -> dict[str, Any]:
    """A layout slider whose step ``k`` shows the figure's Plotly frame ``frames[k]`` (labelled
    ``labels[k]``) in the browser, at once and with no round trip to the server; ``redraw`` is
    needed for heat maps and contours, not for scatter traces."""
    animate = {"mode": "immediate", "frame": {"duration": 0, "redraw": redraw}}
    return {
        "active": active,
        "currentvalue": {"prefix": prefix},
        "pad": {"t": pad_top},
        "steps": [
            {"label": label, "method": "animate", "args": [[name], animate]}
            for name, label in zip(frames, labels, strict=True)
        ],
    }


def colour_axis(title: str, colorscale: str = "Viridis", **bounds: float) -> dict[str, Any]:
    """``layout.coloraxis``: the colour scale and the one colour bar (titled ``title``) of every
    trace with ``coloraxis=SHARED``; ``bounds`` may fix ``cmin``, ``cmax`` or ``cmid``."""
    return {"colorscale": colorscale, "colorbar": {"title": {"text": title}}, **bounds}


def surface_beside_contours(
    x: ArrayLike, y: ArrayLike, z: ArrayLike, titles: tuple[str, str], *, hovertemplate: str
) -> go.Figure:
    """Two panels of one colour axis (`SHARED`): the 3-D surface ``z[j][i]`` over
    ``(x[i], y[j])`` (left) and its contour map (right); the caller sets ``layout.coloraxis``
    (`colour_axis`).

    plotly.js links a contour and a surface to one colour axis only when the contour is
    coloured like a heat map (``contours.coloring="heatmap"``): with its default filled bands it
    drops the link of both traces (warning "incompatible colorscales"), and each takes a colour
    scale of its own."""
    fig = make_subplots(
        rows=1,
        cols=2,
        specs=[[{"type": "scene"}, {"type": "xy"}]],
        column_widths=[0.55, 0.45],
        subplot_titles=titles,
    )
    projected = {"z": {"show": True, "usecolormap": True, "project": {"z": True}}}
    x, y, z = float32(x), float32(y), float32(z)
    common = {"x": x, "y": y, "z": z, "coloraxis": SHARED, "hovertemplate": hovertemplate}
    fig.add_trace(go.Surface(contours=projected, **common), row=1, col=1)
    contour = go.Contour(ncontours=30, contours={"coloring": "heatmap"}, **common)
    fig.add_trace(contour, row=1, col=2)
    return fig
