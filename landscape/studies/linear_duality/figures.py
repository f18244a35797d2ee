"""Figures of the Linear duality study: pure functions ``Result -> go.Figure``."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from landscape.engine.plotting import (
    LOG_AXIS,
    NEUTRAL,
    colour_axis,
    float32,
    frame_slider,
    line_trace,
    surface_beside_contours,
)
from landscape.studies.linear_duality.linear_duality import Result

GAP_FLOOR = 1e-17  # relative gaps of exactly 0 are drawn here on the log axis
PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692")


def relative_gap(primal: np.ndarray, dual: np.ndarray) -> np.ndarray:
    """``|P - D| / max(|D|, 1)``, floored at `GAP_FLOOR` so that it can sit on a log axis."""
    gap = np.abs(np.asarray(primal) - np.asarray(dual)) / np.maximum(np.abs(dual), 1.0)
    return np.maximum(gap, GAP_FLOOR)


def gamma_sweep(result: Result) -> go.Figure:
    """Primal at the recovered weights and dual optimum against gamma, and the measured gap.

    A marker (dotted line and points) sits at the selected gamma; the figure's own slider moves
    it along the sweep in the browser (Plotly frames, one per swept gamma: no round trip).
    """
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        row_heights=[0.55, 0.45],
        subplot_titles=(
            "Primal P(W<sub>rec</sub>) and dual D(Λ*)",
            "Measured relative duality gap |P − D| / max(|D|, 1)",
        ),
    )
    g = float32(result.gammas)
    gap = relative_gap(result.sweep_primal, result.sweep_dual)
    primal = line_trace(g, result.sweep_primal, "primal P(W<sub>rec</sub>)", PALETTE[0], width=4)
    fig.add_trace(primal, row=1, col=1)
    dual = line_trace(g, result.sweep_dual, "dual D(Λ*)", PALETTE[1], dash="dash")
    fig.add_trace(dual, row=1, col=1)
    gaps = line_trace(g, gap, "relative gap", PALETTE[2], mode="lines+markers", marker_size=5)
    fig.add_trace(gaps, row=2, col=1)
    fig.update_yaxes(LOG_AXIS, row=2, col=1)
    for row in (1, 2):
        fig.add_vrect(
            x0=0, x1=result.sigma_min, fillcolor="green", opacity=0.08, line_width=0, row=row, col=1
        )
    _add_gamma_marker_frames(fig, result, gap)
    fig.add_annotation(
        x=result.sigma_min,
        y=1,
        yref="paper",
        xanchor="left",
        showarrow=False,
        text=" theorem's range: γ ≤ σ<sub>min</sub>(Ỹ) (shaded)",
        font={"color": "#2ca02c"},
    )
    fig.update_xaxes(title_text="γ", row=2, col=1)
    fig.update_xaxes(range=[0.0, float(g.max())])
    fig.update_layout(height=640, legend={"orientation": "h", "y": 1.08}, margin={"t": 60, "b": 40})
    return fig


def _add_gamma_marker_frames(fig: go.Figure, result: Result, gap: np.ndarray) -> None:
    """The marker at the selected gamma (traces 3-6), one Plotly frame per swept gamma that
    moves it, and the figure's own slider over those frames."""
    values = np.concatenate([result.sweep_primal, result.sweep_dual])
    top = (float(values.min()), float(values.max()))
    bottom = (float(gap.min()), float(gap.max()))
    selected = int(np.argmin(np.abs(result.gammas - result.gamma)))
    marker = _gamma_marker(result, gap, selected, top, bottom)
    for row, trace in zip((1, 1, 2, 2), marker, strict=True):
        fig.add_trace(trace, row=row, col=1)
    marker_traces = list(range(3, 3 + 4))
    fig.frames = [
        {
            "name": str(k),
            "data": _gamma_marker(result, gap, k, top, bottom),
            "traces": marker_traces,
        }
        for k in range(len(result.gammas))
    ]
    ratio = result.gammas / (result.sigma_min if result.sigma_min > 0 else 1.0)
    names = [str(k) for k in range(len(ratio))]
    labels = [f"γ/σ<sub>min</sub> = {r:.2f}" for r in ratio]
    slider = frame_slider(
        names, labels, active=selected, prefix="marker at ", pad_top=40, redraw=False
    )
    fig.update_layout(sliders=[slider])


def _gamma_marker(
    result: Result,
    gap: np.ndarray,
    k: int,
    top: tuple[float, float],
    bottom: tuple[float, float],
) -> list[dict]:
    """The marker at the k-th swept gamma, as plain trace dicts (frames are built from many of
    them; go.Scatter objects would cost a validation each): a dotted line in each panel and a
    point on the primal and on the gap curve."""
    x = float(result.gammas[k])
    line = {"color": NEUTRAL, "dash": "dot", "width": 1}
    point = {"size": 11, "color": NEUTRAL, "symbol": "circle-open"}
    label = (
        f"γ = {x:.3g}: P = {result.sweep_primal[k]:.6g}, D = {result.sweep_dual[k]:.6g}, "
        f"relative gap {gap[k]:.1e}"
    )
    common = {"type": "scatter", "showlegend": False}
    return [
        {**common, "x": [x, x], "y": list(top), "mode": "lines", "line": line, "hoverinfo": "skip"},
        {
            **common,
            "x": [x],
            "y": [float(result.sweep_primal[k])],
            "mode": "markers",
            "marker": point,
            "text": [label],
            "hovertemplate": "%{text}<extra></extra>",
        },
        {
            **common,
            "x": [x, x],
            "y": list(bottom),
            "mode": "lines",
            "line": line,
            "hoverinfo": "skip",
        },
        {
            **common,
            "x": [x],
            "y": [float(gap[k])],
            "mode": "markers",
            "marker": point,
            "text": [label],
            "hovertemplate": "%{text}<extra></extra>",
        },
    ]


def singular_values(result: Result) -> go.Figure:
    """Singular values of Ytil, of Ytil - L* and of the recovered network (map and output)."""
    fig = go.Figure()
    series = [
        ("σ(Ỹ)", result.singular_targets),
        ("σ(Ỹ − Λ*)", result.singular_residual),
        (
            "σ(X W<sub>1</sub><sup>T</sup> ⋯ W<sub>H</sub><sup>T</sup>): output",
            result.singular_output,
        ),
        ("σ(W<sub>H</sub> ⋯ W<sub>1</sub>): end-to-end map", result.singular_end_to_end),
    ]
    for index, (name, values) in enumerate(series):
        fig.add_bar(
            x=np.arange(1, len(values) + 1),
            y=float32(values),
            name=name,
            marker_color=PALETTE[index],
        )
    fig.add_hline(y=result.gamma, line={"dash": "dot"}, annotation_text=f"γ = {result.gamma:.3g}")
    fig.update_layout(
        barmode="group",
        xaxis_title="index j",
        yaxis_title="singular value",
        height=380,
        legend={"orientation": "h", "y": 1.15},
        margin={"t": 40, "b": 40},
    )
    return fig


def gradient_descent(result: Result) -> go.Figure:
    """Primal objective minus the dual optimum along gradient descent, per scale and seed."""
    fig = go.Figure()
    scales = sorted(set(result.gd_scales.tolist()))
    floor = 1e-16 * max(abs(result.dual), 1.0)
    for curve, scale, seed, diverged in zip(
        result.gd_objective, result.gd_scales, result.gd_seeds, result.gd_diverged, strict=True
    ):
        excess = np.maximum(curve - result.dual, floor)
        label = f"scale {scale:g}, seed {seed}" + (" (diverged)" if diverged else "")
        fig.add_scatter(
            y=float32(excess),
            mode="lines",
            name=label,
            line={"color": PALETTE[scales.index(scale) % len(PALETTE)]},
        )
    fig.update_layout(
        xaxis_title="iteration",
        yaxis={**LOG_AXIS, "title": "P(W<sub>k</sub>) − D*"},
        height=380,
        margin={"t": 30, "b": 40},
    )
    return fig


def douglas_rachford(result: Result) -> go.Figure:
    """Douglas-Rachford: distance of the dual value to D* and the splitting residual."""
    k = np.arange(1, len(result.dr_values) + 1)
    floor = 1e-16 * max(abs(result.dual), 1.0)
    fig = go.Figure()
    fig.add_scatter(
        x=k,
        y=float32(np.maximum(np.abs(result.dr_values - result.dual), floor)),
        name="|D(Λ<sub>k</sub>) − D*|",
        mode="lines+markers",
        marker={"size": 4},
    )
    fig.add_scatter(
        x=k,
        y=float32(np.maximum(result.dr_residuals, floor)),
        name="‖x<sub>k</sub> − y<sub>k</sub>‖<sub>F</sub>",
        mode="lines",
    )
    fig.add_scatter(
        x=k,
        y=float32(np.maximum(result.dr_infeasibility, floor)),
        name="(‖x<sub>k</sub>‖<sub>2</sub> − γ)<sub>+</sub>",
        mode="lines",
        line={"dash": "dot"},
    )
    fig.update_layout(
        xaxis_title="iteration",
        yaxis=LOG_AXIS,
        height=380,
        legend={"orientation": "h", "y": 1.15},
        margin={"t": 40, "b": 40},
    )
    return fig


def primal_slice(result: Result) -> go.Figure:
    """The primal on the plane through the recovered optimum: 3-D surface beside a contour."""
    a, b, Z = (
        float32(result.slice_alphas),
        float32(result.slice_betas),
        float32(result.slice_values),
    )
    # Plotly draws z[row][col] at (x[col], y[row]): rows follow betas, so pass Z transposed.
    fig = surface_beside_contours(
        a,
        b,
        Z.T,
        ("P(W* + a D<sub>1</sub> + b D<sub>2</sub>)", "contour"),
        hovertemplate="a %{x:.3g}<br>b %{y:.3g}<br>P %{z:.4g}<extra></extra>",
    )
    fig.add_scatter(
        x=[0.0],
        y=[0.0],
        mode="markers",
        marker={"symbol": "x", "size": 10, "color": "red"},
        name="recovered optimum",
        row=1,
        col=2,
    )
    fig.update_layout(
        height=460,
        margin={"t": 40, "b": 20},
        showlegend=False,
        coloraxis=colour_axis("P"),
        scene={"xaxis_title": "a", "yaxis_title": "b", "zaxis_title": "P"},
    )
    fig.update_xaxes(title_text="a (direction 1)", row=1, col=2)
    fig.update_yaxes(title_text="b (direction 2)", row=1, col=2)
    return fig
