"""Plotly figure builders: pure functions Result -> go.Figure, one module per study; here what
two or more studies' figures use."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from numpy.typing import ArrayLike


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
