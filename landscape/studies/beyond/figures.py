"""Figures of the beyond study: pure functions ``Result -> go.Figure`` (float32 arrays)."""

from __future__ import annotations

import warnings

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from landscape.engine.plotting import LOG_AXIS, NEUTRAL, SHARED, colour_axis
from landscape.studies.beyond import budget, exact, gram_depth, skips

PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692")


def _f32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def _rgba(colour: str, alpha: float) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _band(fig: go.Figure, x, low, high, colour: str, row: int = 1, col: int = 1) -> None:
    """A filled band between ``low`` and ``high`` (NaNs dropped)."""
    x, low, high = (np.asarray(v, dtype=np.float64) for v in (x, low, high))
    keep = np.isfinite(low) & np.isfinite(high)
    if not keep.any():
        return
    fig.add_trace(
        go.Scatter(
            x=_f32(np.r_[x[keep], x[keep][::-1]]),
            y=_f32(np.r_[high[keep], low[keep][::-1]]),
            mode="lines",  # no markers at the outline's corners (Plotly's default below 20)
            fill="toself",
            fillcolor=_rgba(colour, 0.2),
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
        ),
        row=row,
        col=col,
    )


def lambda_vs_depth(result: gram_depth.Result) -> go.Figure:
    """``lambda_min(K^(H))`` against depth, log scale, with each architecture's fitted decay."""
    fig = go.Figure()
    H = result.depths.astype(np.float64)
    for i, name in enumerate(result.architectures.split("|")):
        colour = PALETTE[i % len(PALETTE)]
        values = result.lambda_min[i]
        law = "exponential" if result.fit_exponential[i] else "power law"
        fig.add_trace(
            go.Scatter(
                x=_f32(H),
                y=_f32(values),
                mode="markers+lines",
                name=f"{name} ({law}, slope {result.fit_slope[i]:.3g})",
                line={"color": colour},
            )
        )
        keep = np.isfinite(values) & (values > 0) & (H >= 2)
        if keep.sum() >= 2:
            x = H[keep] if result.fit_exponential[i] else np.log(H[keep])
            slope = result.fit_slope[i]
            intercept = float(np.mean(np.log(values[keep]) - slope * x))
            fig.add_trace(
                go.Scatter(
                    x=_f32(H[keep]),
                    y=_f32(np.exp(intercept + slope * x)),
                    mode="lines",
                    line={"color": colour, "dash": "dot"},
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
    fig.update_layout(
        xaxis_title="depth H",
        yaxis={**LOG_AXIS, "title": "λ<sub>min</sub>(K<sup>(H)</sup>)"},
        height=450,
        legend={"font": {"size": 11}},
    )
    return fig


def width_vs_depth(result: gram_depth.Result) -> go.Figure:
    """The polynomial part ``n^4 / lambda_min^4`` of the theorem's width against depth."""
    fig = go.Figure()
    for i, name in enumerate(result.architectures.split("|")):
        fig.add_trace(
            go.Scatter(
                x=_f32(result.depths),
                y=_f32(np.log10(result.width_poly[i])),
                mode="lines+markers",
                name=str(name),
                line={"color": PALETTE[i % len(PALETTE)]},
            )
        )
    fig.update_layout(
        xaxis_title="depth H",
        yaxis_title="log<sub>10</sub>(n<sup>4</sup> / λ<sub>min</sub><sup>4</sup>)",
        height=400,
    )
    return fig


def skips_measures(result: skips.Result) -> go.Figure:
    """Non-PSD fraction, convexity defect, Hessian ratio and optimality gap against k (I = 2^k)."""
    panels = (
        ("non-PSD fraction of the plane", result.non_psd),
        ("largest convexity defect", result.defect),
        ("|λ<sub>min</sub> / λ<sub>max</sub>|", result.ratio),
        ("gap to the best restart<br>(relative)", result.gap),
    )
    fig = make_subplots(rows=1, cols=4, subplot_titles=[p[0] for p in panels])
    x = result.blocks.astype(np.float64)
    for col, (_, values) in enumerate(panels, start=1):
        for f, name in enumerate(("ResNet, k blocks", "multi-branch, I = 2<sup>k</sup>")):
            colour = PALETTE[f]
            fig.add_trace(
                go.Scatter(
                    x=_f32(x),
                    y=_f32(values[f].mean(axis=1)),
                    mode="lines+markers",
                    name=name,
                    line={"color": colour},
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
            _band(fig, x, values[f].min(axis=1), values[f].max(axis=1), colour, 1, col)
        fig.update_xaxes(
            title_text="k (I = 2<sup>k</sup>)", tickvals=list(result.blocks), row=1, col=col
        )
    fig.update_layout(height=380, legend={"orientation": "h", "y": -0.25}, margin={"t": 70})
    return fig


def skips_sweep(result: skips.Result) -> go.Figure:
    """Gap to the best restart and non-PSD fraction per (digit pair, width): mean and standard
    deviation over the restarts (pooled over k), ResNet beside the matched branches."""
    C, W = result.sweep_gap.shape[:2]
    labels = [f"{a} vs {b}, w = {w}" for a, b in result.sweep_pairs for w in result.sweep_widths]
    panels = (
        ("gap to the best restart (relative)", result.sweep_gap),
        ("non-PSD fraction of the plane", result.sweep_non_psd),
    )
    fig = make_subplots(rows=1, cols=2, subplot_titles=[p[0] for p in panels])
    for col, (_, values) in enumerate(panels, start=1):
        pooled = values.reshape(C * W, 2, -1)
        for f, name in enumerate(("ResNet, k blocks", "multi-branch, I = 2<sup>k</sup>")):
            fig.add_trace(
                go.Scatter(
                    x=labels,
                    y=_f32(pooled[:, f].mean(axis=1)),
                    error_y={"type": "data", "array": _f32(pooled[:, f].std(axis=1))},
                    mode="markers",
                    marker={"color": PALETTE[f], "size": 9},
                    name=name,
                    showlegend=col == 1,
                    offsetgroup=str(f),
                ),
                row=1,
                col=col,
            )
    fig.update_layout(height=380, scattermode="group", legend={"orientation": "h", "y": -0.35})
    return fig


def skips_surfaces(result: skips.Result) -> go.Figure:
    """The first restart's plane for each (family, k), as contours on one colour axis (one
    scale and range for every panel, so that their colours compare)."""
    K = len(result.blocks)
    titles = [f"ResNet, k = {k}" for k in result.blocks]
    titles += [f"branches, I = {i}" for i in result.branches]
    fig = make_subplots(rows=2, cols=K, subplot_titles=titles)
    for f in range(2):
        for k in range(K):
            fig.add_trace(
                go.Contour(
                    x=_f32(result.alphas),
                    y=_f32(result.alphas),
                    z=_f32(np.log10(np.maximum(result.surfaces[f, k].T, 1e-12))),
                    coloraxis=SHARED,
                    ncontours=20,
                ),
                row=f + 1,
                col=k + 1,
            )
    fig.update_layout(height=520, coloraxis=colour_axis("log10 loss"))
    return fig


def exact_vs_trained(result: exact.Result) -> go.Figure:
    """Every trained network's objective relative to the convex optimum, per problem."""
    fig = go.Figure()
    for i, name in enumerate(result.problems.split("|")):
        relative = (result.trained[i] - result.optimum[i]) / abs(result.optimum[i])
        fig.add_trace(
            go.Box(
                y=_f32(relative),
                name=str(name),
                boxpoints="all",
                jitter=0.4,
                marker={"color": PALETTE[i]},
            )
        )
    fig.add_hline(y=0.0, line_dash="dash", annotation_text="convex optimum")
    fig.update_layout(
        yaxis_title="(trained - convex optimum) / |convex optimum|",
        height=420,
        showlegend=False,
    )
    return fig


def budget_curves(result: budget.Result, target_loss: float | None = None) -> go.Figure:
    """Training loss and test score against the parameter count, mean and min-max over seeds."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss (MSE)", result.score_name))
    for f, name in enumerate(result.families.split("|")):
        colour = PALETTE[f % len(PALETTE)]
        P = result.parameters[f].astype(np.float64)
        for col, values in ((1, result.train_loss[f]), (2, result.test_score[f])):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # budgets no size fits: NaN
                mean = np.nanmean(values, axis=1)
            fig.add_trace(
                go.Scatter(
                    x=_f32(P),
                    y=_f32(mean),
                    mode="lines+markers",
                    name=str(name),
                    line={"color": colour},
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
            _band(fig, P, values.min(axis=1), values.max(axis=1), colour, 1, col)
    if result.convex_parameters.size:
        for col, values in ((1, result.convex_train_loss), (2, result.convex_test_score)):
            fig.add_trace(
                go.Scatter(
                    x=_f32(result.convex_parameters),
                    y=_f32(values),
                    mode="markers",
                    marker={"symbol": "star", "size": 14, "color": NEUTRAL},
                    name="convex-program network",
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
    if target_loss is not None:
        fig.add_hline(y=target_loss, line_dash="dot", row=1, col=1)
    fig.update_xaxes(LOG_AXIS, title_text="parameters P")
    fig.update_yaxes(LOG_AXIS, row=1, col=1)
    fig.update_layout(height=430, legend={"orientation": "h", "y": -0.25})
    return fig
