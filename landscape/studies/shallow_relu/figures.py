"""Figures of the Shallow ReLU page: pure functions from a study Result to a Plotly figure."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from landscape.engine.plotting import LOG_AXIS, NEUTRAL, SHARED, colour_axis, float32
from landscape.studies.shallow_relu import single_neuron, two_layer

COLOURS = {"vanilla": "#d62728", "relaxed": "#1f77b4", "convex": "#1f77b4", "trained": "#ff7f0e"}
BAND = (10, 90)  # percentiles of the shaded band


def _fill(colour: str) -> str:
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},0.18)"


def neuron_curves(result: single_neuron.Result) -> go.Figure:
    """Seed Fig. 3: training, test and recovery error per iteration, median and 10-90% band."""
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=("training error (MSE)", "test error (MSE)", "recovery ‖w − w*‖ / ‖w*‖"),
    )
    x = float32(result.iterations)
    for method, label in (("vanilla", "GD on L"), ("relaxed", "GD on L<sub>r</sub> (relaxed)")):
        for col, metric in enumerate(("train", "test", "recovery"), start=1):
            values = getattr(result, f"{method}_{metric}")
            with np.errstate(all="ignore"):
                low, mid, high = np.nanpercentile(values, (BAND[0], 50, BAND[1]), axis=0)
            colour = COLOURS[method]
            band = _band(x, low, high, colour, method)
            median = go.Scatter(
                x=x,
                y=float32(mid),
                mode="lines",
                name=label,
                line={"color": colour},
                legendgroup=method,
                showlegend=col == 1,
            )
            for trace in (*band, median):
                fig.add_trace(trace, row=1, col=col)
    fig.update_yaxes(LOG_AXIS)
    fig.update_xaxes(title_text="iteration")
    fig.update_layout(height=380, margin={"t": 40, "b": 40}, legend={"orientation": "h", "y": -0.2})
    return fig


def _band(
    x: np.ndarray, low: np.ndarray, high: np.ndarray, colour: str, group: str
) -> tuple[go.Scatter, go.Scatter]:
    """A shaded band between ``low`` and ``high`` (two invisible lines, the second filled to the
    first), in the legend group ``group``."""
    edges = {"mode": "lines", "line": {"width": 0}, "showlegend": False, "hoverinfo": "skip"}
    top = go.Scatter(x=x, y=float32(high), legendgroup=group, **edges)
    bottom = go.Scatter(
        x=x, y=float32(low), fill="tonexty", fillcolor=_fill(colour), legendgroup=group, **edges
    )
    return top, bottom


def _log_levels(values: np.ndarray) -> np.ndarray:
    """``log10(v - min v + 1e-4 (max v - min v))``: contours that resolve the valley floor."""
    low, high = float(np.min(values)), float(np.max(values))
    return np.log10(values - low + 1e-4 * max(high - low, 1e-300))


class _Panel(NamedTuple):
    values: np.ndarray
    colours: str
    hover_name: str
    levels: dict[str, Any]  # Plotly's contour levels, or {} for its own
    label_colour: str  # of the markers' labels "0" and "w*"


def _levels_above_rounding(gap: np.ndarray, count: int = 25) -> dict[str, Any]:
    """Contour levels ``max(gap) k / count``, k = 1..count, for a gap that is >= 0 in exact
    arithmetic: where it is 0 the subtraction leaves rounding of either sign, which all falls in
    the lowest band instead of being outlined as specks."""
    top = float(np.max(gap))
    if not top > 0:
        return {}
    step = top / count
    return {"autocontour": False, "contours": {"start": step, "end": top, "size": step}}


def neuron_slices(result: single_neuron.Result) -> go.Figure:
    """``L``, ``L_r`` (log contours) and ``L_r - L = 2 y^T relu(-Xw)`` on the plane through 0,
    ``w*`` and a random direction orthogonal to ``w*``."""
    fig = make_subplots(
        rows=1,
        cols=3,
        horizontal_spacing=0.07,
        subplot_titles=(
            "L (non-convex), log scale",
            "L<sub>r</sub> (convex), log scale",
            "L<sub>r</sub> − L = 2 y<sup>T</sup> relu(−Xw)",
        ),
    )
    gap = result.slice_relaxed - result.slice_loss
    panels = (
        _Panel(_log_levels(result.slice_loss), "Viridis", "log10 level", {}, "white"),
        _Panel(_log_levels(result.slice_relaxed), "Viridis", "log10 level", {}, "white"),
        _Panel(gap, "YlOrRd", "L<sub>r</sub> − L", _levels_above_rounding(gap), "black"),
    )
    for col, (values, scale, name, levels, label) in enumerate(panels, start=1):
        fig.add_trace(
            go.Contour(
                x=float32(result.slice_alphas),
                y=float32(result.slice_betas),
                z=float32(values.T),
                ncontours=25,
                **levels,
                colorscale=scale,
                showscale=False,
                hovertemplate="α %{x:.2f}<br>γ %{y:.2f}<br>" + name + " %{z:.4g}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=[1.0, 0.0],
                y=[0.0, 0.0],
                mode="markers+text",
                text=["w*", "0"],
                textposition="top center",
                textfont={"color": label},
                marker={"color": "white", "size": 9, "line": {"color": "black", "width": 1}},
                showlegend=False,
                hoverinfo="skip",
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(title_text="α (w = α w* + γ u)")
    fig.update_yaxes(title_text="γ (u random, ⟂ w*)", col=1)
    fig.update_layout(height=380, margin={"t": 40, "b": 40})
    return fig


def neuron_line(result: single_neuron.Result) -> go.Figure:
    """Both losses along the line through 0 and ``w*`` (the slice at γ = 0), log scale."""
    middle = int(np.argmin(np.abs(result.slice_betas)))
    fig = go.Figure()
    for values, label, colour in (
        (result.slice_loss, "L", COLOURS["vanilla"]),
        (result.slice_relaxed, "L<sub>r</sub>", COLOURS["relaxed"]),
    ):
        fig.add_trace(
            go.Scatter(
                x=float32(result.slice_alphas),
                y=float32(values[:, middle]),
                mode="lines",
                name=label,
                line={"color": colour},
            )
        )
    fig.add_vline(x=1.0, line_dash="dot", annotation_text="w*")
    fig.update_layout(
        height=380,
        margin={"t": 30, "b": 40},
        xaxis_title="α: w = α w*",
        yaxis={**LOG_AXIS, "title": "loss"},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def optimality_gap(result: two_layer.Result) -> go.Figure:
    """Final objective of every trained network against its width; the convex optimum; m*."""
    fig = go.Figure()
    widths = np.repeat(result.widths, result.final_objectives.shape[1])
    jitter = np.tile(np.linspace(-0.06, 0.06, result.final_objectives.shape[1]), len(result.widths))
    fig.add_trace(
        go.Scatter(
            x=float32(widths * np.exp(jitter)),
            y=float32(result.final_objectives.ravel()),
            mode="markers",
            name="trained (each restart)",
            marker={"color": COLOURS["trained"], "size": 8, "opacity": 0.8},
            hovertemplate="width %{x:.0f}<br>objective %{y:.6g}<extra></extra>",
        )
    )
    span = [0.8, 1.25 * float(result.widths.max())]
    fig.add_trace(
        go.Scatter(
            x=float32(span),
            y=float32([result.convex_objective] * 2),
            mode="lines",
            name="convex optimum (global)",
            line={"color": COLOURS["convex"]},
        )
    )
    finite = result.final_objectives[np.isfinite(result.final_objectives)]
    top = float(finite.max()) if finite.size else 10.0 * result.convex_objective
    fig.add_trace(
        go.Scatter(
            x=float32([result.critical_width] * 2),
            y=float32([result.convex_objective, max(top, result.convex_objective)]),
            mode="lines",
            name=f"critical width m* = {result.critical_width}",
            line={"color": NEUTRAL, "dash": "dot"},
        )
    )
    fig.update_xaxes(LOG_AXIS, title_text="width m")
    fig.update_yaxes(LOG_AXIS, title_text="weight-decay objective")
    fig.update_layout(
        height=380, margin={"t": 30, "b": 40}, legend={"orientation": "h", "y": -0.25}
    )
    return fig


def training_curves(result: two_layer.Result) -> go.Figure:
    """Objective during training (best restart per width) against the convex optimum."""
    fig = go.Figure()
    for index, width in enumerate(result.widths):
        runs = result.histories[index]
        finals = np.where(np.isnan(runs[:, -1]), np.inf, runs[:, -1])
        best = int(np.argmin(finals))
        fig.add_trace(
            go.Scatter(
                x=float32(result.history_steps),
                y=float32(runs[best]),
                mode="lines",
                name=f"m = {width}",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=float32(result.history_steps[[0, -1]]),
            y=float32([result.convex_objective] * 2),
            mode="lines",
            name="convex optimum",
            line={"color": NEUTRAL, "dash": "dash"},
        )
    )
    fig.update_yaxes(LOG_AXIS, title_text="objective")
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=340, margin={"t": 30, "b": 40})
    return fig


def fits(result: two_layer.Result) -> go.Figure:
    """The convex solution and the best trained network side by side: curve or decision map."""
    titles = (
        f"convex solution (m* = {result.critical_width})",
        f"best trained network (m = {result.best_width})",
    )
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles, horizontal_spacing=0.08)
    outputs = (result.convex_output, result.trained_output)
    curves = result.points.shape[1] == 1
    for col, output in enumerate(outputs, start=1):
        if curves:
            traces = _curve_fit(result, output, COLOURS["convex" if col == 1 else "trained"])
        else:
            traces = _decision_map(result, output)
        for trace in traces:
            fig.add_trace(trace, row=1, col=col)
    if curves:
        fig.update_xaxes(title_text="x")
        fig.update_yaxes(title_text="f(x)", col=1)
    else:
        # one colour axis for both maps, symmetric about the decision boundary f = 0
        limit = max(float(np.max(np.abs(output))) for output in outputs) or 1.0
        fig.update_layout(coloraxis=colour_axis("f(x)", "RdBu", cmin=-limit, cmax=limit))
        fig.update_xaxes(title_text="x<sub>1</sub>")
        fig.update_yaxes(title_text="x<sub>2</sub>", col=1)
    fig.update_layout(height=420, margin={"t": 40, "b": 30})
    return fig


def _curve_fit(result: two_layer.Result, output: np.ndarray, colour: str) -> list[go.Scatter]:
    """1-D data: the network's output as a curve over the data points."""
    curve = go.Scatter(
        x=float32(result.grid_x),
        y=float32(output),
        mode="lines",
        line={"color": colour},
        showlegend=False,
    )
    points = go.Scatter(
        x=float32(result.points[:, 0]),
        y=float32(result.targets),
        mode="markers",
        marker={"color": NEUTRAL, "size": 6},
        showlegend=False,
    )
    return [curve, points]


def _decision_map(result: two_layer.Result, output: np.ndarray) -> list[go.BaseTraceType]:
    """2-D data: the output as a heat map (on the figure's colour axis), its zero level as the
    decision boundary, and the points of each class."""
    x, y, z = float32(result.grid_x), float32(result.grid_y), float32(output.T)
    traces: list[go.BaseTraceType] = [
        go.Heatmap(
            x=x,
            y=y,
            z=z,
            coloraxis=SHARED,
            hovertemplate="f = %{z:.3g}<extra></extra>",
        ),
        go.Contour(
            x=x,
            y=y,
            z=z,
            contours={"start": 0, "end": 0, "size": 1, "coloring": "none"},
            line={"color": "black", "width": 2},
            showscale=False,
            showlegend=False,
            hoverinfo="skip",
        ),
    ]
    for label, colour in ((1.0, "#08306b"), (-1.0, "#67000d")):
        chosen = result.targets == label
        marker = {"color": colour, "size": 7, "line": {"color": "white", "width": 1}}
        traces.append(
            go.Scatter(
                x=float32(result.points[chosen, 0]),
                y=float32(result.points[chosen, 1]),
                mode="markers",
                marker=marker,
                showlegend=False,
            )
        )
    return traces
