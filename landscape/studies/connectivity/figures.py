"""Figures of the Connectivity study: pure functions ``Result -> go.Figure`` (float32 arrays)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from landscape.engine.plotting import float32, line_trace
from landscape.studies.connectivity.connectivity import Result
from landscape.studies.connectivity.sweeps import SweepResult

COLORS = {"line": "#ef553b", "aligned": "#636efa", "curve": "#00cc96"}
ALIGNMENT_COLORS = {"none": "#ef553b", "weights": "#636efa", "activations": "#ab63fa"}
ALIGNMENT_NAMES = {
    "none": "no alignment",
    "weights": "weight matching",
    "activations": "activation matching",
}
MARGIN = {"l": 50, "r": 20, "t": 60, "b": 45}


def _paths_of(result: Result, alignment: str) -> list[tuple[str, str, str]]:
    """``(label, key prefix, colour)`` of the paths a result holds."""
    shown = [("line", "line", COLORS["line"])]
    if alignment != "none":
        shown.append((f"line after {ALIGNMENT_NAMES[alignment]}", "aligned", COLORS["aligned"]))
    if result.curve_train_loss.size:
        shown.append(("Bezier curve", "curve", COLORS["curve"]))
    return shown


def paths(result: Result, alignment: str) -> go.Figure:
    """Train and test loss (and accuracy, for classification) along the line, the aligned line
    and the curve, against ``t``; the chord of the line's end points dotted."""
    columns = 2 if result.classification else 1
    titles = ["loss along the path", "accuracy along the path"][:columns]
    fig = make_subplots(rows=1, cols=columns, subplot_titles=titles)
    for key in ("line", "aligned") if alignment != "none" else ("line",):
        fig.add_trace(_pair_band(result.ts, getattr(result, f"pair_{key}_train_loss"), key), 1, 1)
    for label, key, color in _paths_of(result, alignment):
        for part, dash in (("train", None), ("test", "dash")):
            loss = getattr(result, f"{key}_{part}_loss")
            fig.add_trace(line_trace(result.ts, loss, f"{label}, {part}", color, dash=dash), 1, 1)
            accuracy = getattr(result, f"{key}_{part}_accuracy", np.zeros(0))
            if columns == 2 and accuracy.size:
                trace = line_trace(result.ts, accuracy, f"{label}, {part}", color, dash=dash)
                trace.showlegend = False
                fig.add_trace(trace, 1, 2)
    ends = result.line_train_loss[[0, -1]]
    fig.add_trace(line_trace([0, 1], ends, "chord (train)", "#888888", dash="dot", width=1), 1, 1)
    fig.update_xaxes(title="t (0: network A, 1: network B)")
    fig.update_yaxes(title="loss", row=1, col=1)
    if columns == 2:
        fig.update_yaxes(title="accuracy", row=1, col=2)
    fig.update_layout(height=420, margin=MARGIN, legend={"orientation": "h", "y": -0.2})
    return fig


def _pair_band(ts: np.ndarray, losses: np.ndarray, key: str) -> go.Scatter:
    """The band from the smallest to the largest training loss over seed pairs at each ``t``."""
    band = np.concatenate([losses.max(axis=0), losses.min(axis=0)[::-1]])
    return go.Scatter(
        x=np.concatenate([ts, ts[::-1]]), y=float32(band), fill="toself", opacity=0.2,
        line={"width": 0}, fillcolor=COLORS[key], hoverinfo="skip",
        name=f"{'line' if key == 'line' else 'aligned line'}, train: all seed pairs",
    )  # fmt: skip


def barriers(result: Result) -> go.Figure:
    """The barrier of every seed pair, by alignment (train loss; the test loss's hollow)."""
    fig = go.Figure()
    for how, name in ALIGNMENT_NAMES.items():
        train = getattr(result, f"barrier_{how}")
        test = getattr(result, f"test_barrier_{how}")
        color = ALIGNMENT_COLORS[how]
        fig.add_trace(
            go.Box(y=float32(train), name=name, marker_color=color, boxpoints="all", pointpos=0)
        )
        fig.add_trace(
            go.Scatter(
                x=[name] * len(test),
                y=float32(test),
                mode="markers",
                showlegend=False,
                marker={"symbol": "circle-open", "color": color, "size": 9},
                name=f"{name}, test",
            )  # fmt: skip
        )
    fig.update_layout(
        title=f"Barrier of each of the {len(result.barrier_none)} seed pairs",
        height=400, margin=MARGIN, showlegend=False,
    )  # fmt: skip
    fig.update_yaxes(title="barrier B (filled: train loss, hollow: test loss)", rangemode="tozero")
    return fig


def plane(result: Result, alignment: str) -> go.Figure:
    """The train loss on the plane through the two minima (``B`` after ``alignment``) and the
    curve's bend, with the line and the curve drawn on it (Garipov et al.'s first figure)."""
    anchors = result.plane_anchors
    fig = go.Figure(
        go.Contour(
            x=float32(result.plane_xs),
            y=float32(result.plane_ys),
            z=float32(np.log10(np.maximum(result.plane_loss.T, 1e-12))),
            coloraxis="coloraxis",
            contours={"coloring": "heatmap"},
            name="log10 loss",
        )  # fmt: skip
    )
    label = "line" if alignment == "none" else f"line after {ALIGNMENT_NAMES[alignment]}"
    fig.add_trace(line_trace(anchors[:2, 0], anchors[:2, 1], label, COLORS["line"], width=3))
    curve = result.curve_xy
    fig.add_trace(line_trace(curve[:, 0], curve[:, 1], "Bezier curve", COLORS["curve"], width=3))
    fig.add_trace(
        go.Scatter(
            x=float32(anchors[:, 0]),
            y=float32(anchors[:, 1]),
            mode="markers+text",
            text=["A", "B", "bend"],
            textposition="top center",
            name="points",
            marker={"size": 10, "color": "white", "line": {"color": "black", "width": 1}},
        )  # fmt: skip
    )
    fig.update_layout(
        title="Train loss on the plane through A, B and the bend",
        coloraxis={"colorscale": "Viridis", "colorbar": {"title": "log<sub>10</sub> loss"}},
        height=480, margin=MARGIN, legend={"orientation": "h", "y": -0.15},
    )  # fmt: skip
    fig.update_xaxes(title="along B - A")
    fig.update_yaxes(title="towards the bend", scaleanchor="x")
    return fig


def sweep(result: SweepResult, axis: str) -> go.Figure:
    """Mean barrier (train loss) against ``axis`` (width m or branches I) with a band of one
    standard deviation over seed pairs, per alignment; log-scaled x in powers of two."""
    fig = go.Figure()
    x = result.values.astype(np.float64)
    for how, name in ALIGNMENT_NAMES.items():
        table = getattr(result, f"barrier_{how}")
        mean, spread = table.mean(axis=1), table.std(axis=1, ddof=1) if table.shape[1] > 1 else 0
        color = ALIGNMENT_COLORS[how]
        band = np.concatenate([mean + spread, (mean - spread)[::-1]])
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([x, x[::-1]]),
                y=float32(band),
                fill="toself",
                opacity=0.2,
                line={"width": 0},
                fillcolor=color,
                showlegend=False,
                hoverinfo="skip",
            )  # fmt: skip
        )
        fig.add_trace(line_trace(x, mean, name, color, mode="lines+markers"))
    fig.update_xaxes(title=axis, type="log", tickvals=x, ticktext=[f"{v:g}" for v in x])
    fig.update_yaxes(title="barrier B (train loss)")
    fig.update_layout(height=420, margin=MARGIN, legend={"orientation": "h", "y": -0.2})
    return fig
