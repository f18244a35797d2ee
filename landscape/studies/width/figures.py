"""Figures of the Width study: pure functions ``Result -> go.Figure`` (float32 arrays)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from landscape.engine.gram import ARCHITECTURES
from landscape.engine.plotting import LOG_AXIS, NEUTRAL, line_trace
from landscape.studies.width import depth_sweep, width_sweep
from landscape.studies.width.width import Result

PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692")
ARCHITECTURE_NAMES = {"fc": "fully connected", "resnet": "ResNet"}
LOG_FLOOR = 1e-30  # values below are drawn here on log axes (float32 underflows near 1e-38)


def _f32(a: np.ndarray) -> np.ndarray:
    return np.maximum(np.asarray(a, dtype=np.float64), LOG_FLOOR).astype(np.float32)


def gram_heatmap(result: Result) -> go.Figure:
    """``K^(H)`` as a heat map, samples ordered by their target ``y``."""
    order = np.argsort(result.targets, kind="stable")
    fig = go.Figure(
        go.Heatmap(
            z=np.asarray(result.gram[np.ix_(order, order)], dtype=np.float32),
            colorscale="Viridis",
            colorbar={"title": "K<sub>ij</sub>"},
        )
    )
    fig.update_layout(
        title="K<sup>(H)</sup>, samples sorted by target",
        height=420,
        margin={"l": 40, "r": 20, "t": 50, "b": 40},
    )
    fig.update_xaxes(title="sample j", showticklabels=False)
    fig.update_yaxes(title="sample i", showticklabels=False, autorange="reversed")
    return fig


def gram_spectrum(result: Result) -> go.Figure:
    """Eigenvalues of ``K^(H)`` in decreasing order on a log axis, ``lambda_min`` marked."""
    values = np.sort(result.eigenvalues)[::-1]
    rank = np.arange(1, len(values) + 1)
    fig = go.Figure(line_trace(rank, _f32(values), "eigenvalues", PALETTE[0], mode="lines+markers"))
    level = max(result.lambda_min, LOG_FLOOR)
    fig.add_hline(y=level, line_dash="dot", line_color=PALETTE[1])
    # its label placed by hand: on a log axis an annotation's y is log10 of the value (add_hline's
    # own annotation_text sat at 10^lambda_min); at the left, where the decreasing curve is high
    fig.add_annotation(
        x=0,
        xref="x domain",
        xanchor="left",
        y=float(np.log10(level)),
        yanchor="bottom",
        text=f"λ<sub>min</sub> = {result.lambda_min:.3g}",
        showarrow=False,
    )
    fig.update_layout(
        title="Spectrum of K<sup>(H)</sup>",
        height=420,
        showlegend=False,
        margin={"l": 40, "r": 20, "t": 50, "b": 40},
    )
    fig.update_xaxes(title="index (largest first)")
    fig.update_yaxes(LOG_AXIS, title="eigenvalue")
    return fig


def convergence(result: Result) -> go.Figure:
    """Training loss ``L(k)`` against the bound ``L(0) (1 - eta lambda_min / 2)^k`` (eq. 15)."""
    fig = go.Figure()
    steps = np.arange(len(result.loss))
    fig.add_trace(line_trace(steps, _f32(result.loss), "loss L(k)", PALETTE[0], width=3))
    bound = "bound L(0)(1 − ηλ<sub>min</sub>/2)<sup>k</sup>"
    fig.add_trace(line_trace(steps, _f32(result.bound), bound, PALETTE[1], dash="dash"))
    title = "Loss against the theorem's bound"
    if result.diverged:
        title += " (diverged: stopped)"
    fig.update_layout(
        title=title,
        height=420,
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 40, "r": 20, "t": 50, "b": 40},
    )
    fig.update_xaxes(title="iteration k")
    fig.update_yaxes(LOG_AXIS, title="loss")
    return fig


def dynamics(result: Result) -> go.Figure:
    """Weight movement, Gram drift and ``lambda_min`` of the Gram matrices along the run."""
    fig = make_subplots(
        rows=1,
        cols=3,
        horizontal_spacing=0.08,
        subplot_titles=(
            "max<sub>h</sub> ‖W(k) − W(0)‖<sub>F</sub> / √m",
            "‖G<sup>(H)</sup>(k) − G<sup>(H)</sup>(0)‖<sub>2</sub> / λ<sub>min</sub>",
            "λ<sub>min</sub> along the run",
        ),
    )
    steps = np.arange(len(result.loss))
    curves = (
        (1, result.weight_movement, "movement", PALETTE[0]),
        (2, result.gram_drift, "drift", PALETTE[2]),
        (3, result.lambda_min_last, "λ<sub>min</sub>(G<sup>(H)</sup>(k))", PALETTE[3]),
        (3, result.lambda_min_full, "λ<sub>min</sub>(G(k)), all layers", PALETTE[4]),
    )
    for col, values, name, color in curves:
        fig.add_trace(line_trace(steps, _f32(values), name, color), row=1, col=col)
    ends = [0, max(len(steps) - 1, 1)]
    for level, label in (
        (result.lambda_min, "λ<sub>min</sub>(K<sup>(H)</sup>)"),
        (result.lambda_min / 2, "λ<sub>min</sub>(K<sup>(H)</sup>) / 2"),
    ):
        level_line = line_trace(ends, _f32(np.array([level, level])), label, PALETTE[1], dash="dot")
        fig.add_trace(level_line, row=1, col=3)
    fig.update_yaxes(LOG_AXIS, row=1, col=3)
    fig.update_xaxes(title="iteration k")
    fig.update_layout(
        height=360,
        legend={"orientation": "h", "y": -0.3},
        margin={"l": 40, "r": 20, "t": 50, "b": 40},
    )
    return fig


def width_scaling(sweep: width_sweep.Result) -> go.Figure:
    """Weight movement, Gram drift and init deviation against m, log-log, with fitted slopes."""
    fig = go.Figure()
    m = sweep.widths.astype(np.float64)
    series = (
        ("weight movement", sweep.weight_movement, sweep.movement_slope, sweep.movement_intercept),
        (
            "Gram drift max<sub>k</sub> ‖G(k) − G(0)‖ / λ<sub>min</sub>",
            sweep.gram_drift,
            sweep.drift_slope,
            sweep.drift_intercept,
        ),
        (
            "init deviation ‖G(0) − K‖ / λ<sub>min</sub>",
            sweep.init_deviation,
            sweep.deviation_slope,
            sweep.deviation_intercept,
        ),
    )
    for index, (name, values, slope, intercept) in enumerate(series):
        color = PALETTE[index]
        fig.add_scatter(
            x=m,
            y=_f32(values),
            mode="markers",
            marker={"size": 9, "color": color},
            name=f"{name}: slope {slope:.2f}",
        )
        if np.isfinite(slope):
            fit = _f32(np.exp(intercept) * m**slope)
            fig.add_trace(line_trace(m, fit, f"{name}: fit", color, showlegend=False))
    movement = sweep.weight_movement[np.isfinite(sweep.weight_movement)]
    if movement.size:
        reference = movement[0] * np.sqrt(m[np.isfinite(sweep.weight_movement)][0] / m)
        theory = line_trace(m, _f32(reference), "theory: slope -1/2", "gray", dash="dash")
        fig.add_trace(theory)
    fig.update_layout(
        title="Against width m (log-log)",
        height=440,
        legend={"orientation": "h", "y": -0.25},
        margin={"l": 40, "r": 20, "t": 50, "b": 40},
    )
    fig.update_xaxes(LOG_AXIS, title="width m")
    fig.update_yaxes(LOG_AXIS)
    return fig


def width_curves(sweep: width_sweep.Result) -> go.Figure:
    """One loss curve per width, and the bound (from the mean initial loss)."""
    fig = go.Figure()
    steps = np.arange(sweep.loss.shape[1])
    for index, m in enumerate(sweep.widths):
        keep = np.isfinite(sweep.loss[index])
        label = f"m = {m}" + (" (diverged)" if sweep.diverged[index] else "")
        color = PALETTE[index % len(PALETTE)]
        fig.add_trace(line_trace(steps[keep], _f32(sweep.loss[index][keep]), label, color))
    fig.add_trace(line_trace(steps, _f32(sweep.bound), "bound", NEUTRAL, dash="dash"))
    fig.update_layout(
        title="Convergence per width", height=440, margin={"l": 40, "r": 20, "t": 50, "b": 40}
    )
    fig.update_xaxes(title="iteration k")
    fig.update_yaxes(LOG_AXIS, title="loss")
    return fig


def depth_lambda(sweep: depth_sweep.Result) -> go.Figure:
    """``lambda_min(K^(H))`` against depth H, fully connected against ResNet."""
    fig = go.Figure()
    for index, architecture in enumerate(ARCHITECTURES):
        name = ARCHITECTURE_NAMES[architecture]
        values = _f32(sweep.lambda_min[index])
        fig.add_trace(line_trace(sweep.depths, values, name, PALETTE[index], mode="lines+markers"))
    fig.update_layout(
        title="λ<sub>min</sub>(K<sup>(H)</sup>) against depth",
        height=400,
        margin={"l": 40, "r": 20, "t": 50, "b": 40},
    )
    fig.update_xaxes(title="depth H")
    fig.update_yaxes(LOG_AXIS, title="λ<sub>min</sub>")
    return fig


def depth_widths(sweep: depth_sweep.Result) -> go.Figure:
    """The width each architecture needs against depth: concentration (fitted) and training."""
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.12,
        subplot_titles=(
            "width for ‖G<sup>(H)</sup>(0) − K<sup>(H)</sup>‖ ≤ λ<sub>min</sub> / 4 (fit)",
            f"smallest width reaching L ≤ {sweep.target:g} L(0)",
        ),
    )
    for index, architecture in enumerate(ARCHITECTURES):
        name, color = ARCHITECTURE_NAMES[architecture], PALETTE[index]
        for col, values in ((1, sweep.width_needed[index]), (2, sweep.width_to_target[index])):
            trace = line_trace(
                sweep.depths,
                _f32(values),
                name,
                color,
                mode="lines+markers",
                showlegend=False if col == 2 else None,
            )
            fig.add_trace(trace, row=1, col=col)
    fig.update_xaxes(title="depth H")
    fig.update_yaxes(LOG_AXIS)
    fig.update_layout(
        height=400,
        legend={"orientation": "h", "y": -0.25},
        margin={"l": 40, "r": 20, "t": 50, "b": 40},
    )
    return fig
