"""Figures of the Branches study (seed Figure 2): pure functions of ``Sweep`` / ``GapSweep``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from landscape.branch_gap import GapSweep
from landscape.branches import Sweep

PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3")
MEASURES = (
    ("non_psd", "slice Hessian not PSD (fraction)"),
    ("defect", "largest convexity defect / loss range"),
    ("hessian_ratio", "|lambda_min / lambda_max| at the centre"),
)
MODEL_NAMES = ("w0", "w1", "w2")


def _f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def surface_grid(rows: Sequence[tuple[str, Sweep]], style: str = "heatmap") -> go.Figure:
    """Small multiples: one row per (label, sweep), one column per I, one shared colour scale.

    ``style`` is ``"heatmap"`` or ``"contour"``. Trained models off the centre (the three-model
    plane) are marked with white crosses.
    """
    if style not in ("heatmap", "contour"):
        raise ValueError(f"style must be 'heatmap' or 'contour', got {style!r}")
    columns = max(len(sweep.branches) for _, sweep in rows)
    titles = [
        f"{label}, I = {i}" if c == 0 else f"I = {i}"
        for label, sweep in rows
        for c, i in enumerate(sweep.branches)
    ]
    fig = make_subplots(
        rows=len(rows),
        cols=columns,
        subplot_titles=titles,
        horizontal_spacing=0.02,
        vertical_spacing=0.12 if len(rows) > 1 else 0.0,
    )
    low = min(float(sweep.surfaces.min()) for _, sweep in rows)
    high = max(float(sweep.surfaces.max()) for _, sweep in rows)
    trace = go.Heatmap if style == "heatmap" else go.Contour
    for r, (_, sweep) in enumerate(rows, start=1):
        for c in range(len(sweep.branches)):
            fig.add_trace(
                trace(
                    x=_f32(sweep.betas),
                    y=_f32(sweep.alphas),
                    z=_f32(sweep.surfaces[c]),
                    coloraxis="coloraxis",
                    hovertemplate="alpha %{y:.2f}<br>beta %{x:.2f}<br>loss %{z:.4g}<extra></extra>",
                ),
                row=r,
                col=c + 1,
            )
            points = sweep.model_coordinates[c]
            if len(points) > 1:
                fig.add_scatter(
                    x=_f32(points[:, 1]),
                    y=_f32(points[:, 0]),
                    mode="markers+text",
                    text=list(MODEL_NAMES[: len(points)]),
                    textposition="top center",
                    marker={"symbol": "x", "color": "white", "size": 8},
                    textfont={"color": "white"},
                    showlegend=False,
                    row=r,
                    col=c + 1,
                )
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, scaleanchor=None)
    fig.update_layout(
        coloraxis={
            "colorscale": "Viridis",
            "cmin": low,
            "cmax": high,
            "colorbar": {"title": {"text": "loss"}},
        },
        height=230 * len(rows) + 60,
        margin={"t": 50, "b": 20, "l": 20, "r": 20},
    )
    return fig


def surface_3d(sweep: Sweep, branches: int) -> go.Figure:
    """The first seed's surface for ``branches`` as a 3-D surface."""
    matches = np.flatnonzero(sweep.branches == branches)
    if matches.size == 0:
        raise ValueError(f"branches must be one of {sweep.branches.tolist()}, got {branches}")
    k = int(matches[0])
    fig = go.Figure(
        go.Surface(
            x=_f32(sweep.betas),
            y=_f32(sweep.alphas),
            z=_f32(sweep.surfaces[k]),
            colorscale="Viridis",
            colorbar={"title": {"text": "loss"}},
        )
    )
    fig.update_layout(
        title=f"I = {branches}",
        scene={"xaxis_title": "beta (d2)", "yaxis_title": "alpha (d1)", "zaxis_title": "loss"},
        height=480,
        margin={"t": 40, "b": 10, "l": 10, "r": 10},
    )
    return fig


def measures_vs_branches(rows: Sequence[tuple[str, Sweep]]) -> go.Figure:
    """The three non-convexity measures against I: mean over seeds, band from min to max."""
    fig = make_subplots(
        rows=1, cols=3, subplot_titles=[title for _, title in MEASURES], horizontal_spacing=0.07
    )
    for r, (label, sweep) in enumerate(rows):
        colour = PALETTE[r % len(PALETTE)]
        x = _f32(sweep.branches)
        for c, (field, _) in enumerate(MEASURES, start=1):
            values = np.asarray(getattr(sweep, field), dtype=np.float64)
            values = np.where(np.isfinite(values), values, np.nan)
            low, high = np.nanmin(values, axis=1), np.nanmax(values, axis=1)
            fig.add_scatter(
                x=np.concatenate([x, x[::-1]]),
                y=_f32(np.concatenate([high, low[::-1]])),
                fill="toself",
                fillcolor=colour,
                opacity=0.2,
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                row=1,
                col=c,
            )
            fig.add_scatter(
                x=x,
                y=_f32(np.nanmean(values, axis=1)),
                mode="lines+markers",
                name=label,
                legendgroup=label,
                showlegend=c == 1,
                line={"color": colour},
                row=1,
                col=c,
            )
    fig.update_xaxes(type="log", tickvals=list(rows[0][1].branches), title_text="branches I")
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(
        height=360, legend={"orientation": "h", "y": -0.25}, margin={"t": 50, "b": 40}
    )
    return fig


def gap_vs_branches(sweep: GapSweep) -> go.Figure:
    """Measured gap ``P_I - D`` against I, the ``C / I`` reference and the critical width."""
    floor = max(sweep.tolerance, 1e-12)
    x = _f32(sweep.branches)
    shown = np.maximum(sweep.gap, floor)
    fig = go.Figure()
    fig.add_scatter(
        x=x,
        y=_f32(shown),
        mode="lines+markers",
        name="measured gap P_I - D (P_I: best restart, an upper bound)",
        line={"color": PALETTE[0]},
        customdata=_f32(sweep.gap),
        hovertemplate="I = %{x}<br>gap %{customdata:.3g}<extra></extra>",
    )
    if sweep.reference_constant > 0:
        grid = np.geomspace(sweep.branches.min(), sweep.branches.max(), 50)
        fig.add_scatter(
            x=_f32(grid),
            y=_f32(sweep.reference_constant / grid),
            mode="lines",
            name=f"C / I, C = max_I I gap_I = {sweep.reference_constant:.3g}",
            line={"dash": "dash", "color": PALETTE[1]},
        )
    # reference lines as traces: shapes on log axes would need log10 coordinates
    ends = _f32([sweep.branches.min(), sweep.branches.max()])
    fig.add_scatter(
        x=ends,
        y=_f32([floor, floor]),
        mode="lines",
        name="solver tolerance",
        line={"color": "grey", "dash": "dot"},
    )
    top = max(float(shown.max()), sweep.reference_constant, floor) * 2
    fig.add_scatter(
        x=_f32([sweep.critical_width] * 2),
        y=_f32([floor / 2, top]),
        mode="lines",
        name=f"m-hat = {sweep.critical_width} (critical width m* <= m-hat)",
        line={"color": PALETTE[2]},
    )
    fig.update_xaxes(type="log", tickvals=list(sweep.branches), title_text="branches I")
    fig.update_yaxes(type="log", exponentformat="power", title_text="P_I - D")
    fig.update_layout(
        height=400, legend={"orientation": "h", "y": -0.25}, margin={"t": 30, "b": 40}
    )
    return fig
