"""Figures of the Branches study (seed Figure 2): pure functions of the two studies' Results."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from landscape.engine.plotting import LOG_AXIS, float32, frame_slider
from landscape.studies.branches import branch_gap, branches

PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3")
MEASURES = (
    ("non_psd", "slice Hessian not PSD (fraction)"),
    ("defect", "largest convexity defect<br>/ loss range"),
    ("hessian_ratio", "|λ<sub>min</sub> / λ<sub>max</sub>| at the centre"),
    ("negative_mass", "Hessian spectrum<br>below zero (SLQ)"),
)
MODEL_NAMES = ("w0", "w1", "w2")


def _row_label(depth: int) -> str:
    return f"{depth} hidden layer" + ("s" if depth > 1 else "")


def _loss_colours(surfaces: np.ndarray) -> dict:
    """One Viridis colour axis from the smallest to the largest loss of ``surfaces``."""
    return {
        "colorscale": "Viridis",
        "cmin": float(surfaces.min()),
        "cmax": float(surfaces.max()),
        "colorbar": {"title": {"text": "loss"}},
    }


def surface_grid(result: branches.Result, style: str = "heatmap") -> go.Figure:
    """Small multiples of the first seed's surfaces: a row per depth, a column per I, one colour
    scale shared by all panels.

    ``style`` is ``"heatmap"`` or ``"contour"``. Trained models off the centre (the three-model
    plane) are marked with white crosses.
    """
    if style not in ("heatmap", "contour"):
        raise ValueError(f"style must be 'heatmap' or 'contour', got {style!r}")
    R, K = len(result.depths), len(result.branch_counts)
    titles = [
        f"{_row_label(d)}, I = {i}" if c == 0 else f"I = {i}"
        for d in result.depths
        for c, i in enumerate(result.branch_counts)
    ]
    fig = make_subplots(
        rows=R, cols=K, subplot_titles=titles, horizontal_spacing=0.02, vertical_spacing=0.1
    )
    first = result.surfaces[:, :, 0]
    trace = go.Heatmap if style == "heatmap" else go.Contour
    for r in range(R):
        for c in range(K):
            fig.add_trace(
                trace(
                    x=float32(result.betas),
                    y=float32(result.alphas),
                    z=float32(first[r, c]),
                    coloraxis="coloraxis",
                    hovertemplate="α %{y:.2f}<br>β %{x:.2f}<br>loss %{z:.4g}<extra></extra>",
                ),
                row=r + 1,
                col=c + 1,
            )
            points = result.model_coordinates[r, c, 0]
            if len(points) > 1:
                fig.add_scatter(
                    x=float32(points[:, 1]),
                    y=float32(points[:, 0]),
                    mode="markers+text",
                    text=list(MODEL_NAMES[: len(points)]),
                    textposition="top center",
                    marker={"symbol": "x", "color": "white", "size": 8},
                    textfont={"color": "white"},
                    showlegend=False,
                    row=r + 1,
                    col=c + 1,
                )
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(
        coloraxis=_loss_colours(first),
        height=230 * R + 60,
        margin={"t": 50, "b": 20, "l": 20, "r": 20},
    )
    return fig


def surface_by_branches(result: branches.Result, style: str = "heatmap") -> go.Figure:
    """The Figure-2 grid as one column per depth that the figure's own slider moves across I.

    Plotly frames, one per I of the result, each holding the first seed's surface of every
    depth: dragging the slider redraws in the browser with no round trip to the server. One
    colour scale for all frames, so the surfaces compare across I.
    """
    if style not in ("heatmap", "contour"):
        raise ValueError(f"style must be 'heatmap' or 'contour', got {style!r}")
    R = len(result.depths)
    first = result.surfaces[:, :, 0]
    counts = [int(i) for i in result.branch_counts]
    fig = make_subplots(
        rows=1,
        cols=R,
        subplot_titles=[_row_label(int(d)) for d in result.depths],
        horizontal_spacing=0.06,
    )
    kind = style

    def panels(k: int) -> list[dict]:
        return [
            {
                "type": kind,
                "x": float32(result.betas).tolist(),
                "y": float32(result.alphas).tolist(),
                "z": float32(first[r, k]).tolist(),
                "coloraxis": "coloraxis",
                "hovertemplate": f"I = {counts[k]}<br>α %{{y:.2f}}<br>β %{{x:.2f}}"
                "<br>loss %{z:.4g}<extra></extra>",
            }
            for r in range(R)
        ]

    start = 0
    for r, trace in enumerate(panels(start)):
        fig.add_trace(trace, row=1, col=r + 1)
    fig.frames = [
        {"name": f"I = {i}", "data": panels(k), "traces": list(range(R))}
        for k, i in enumerate(counts)
    ]
    names = [f"I = {i}" for i in counts]
    slider = frame_slider(names, names, active=start, prefix="branches ", pad_top=30, redraw=True)
    fig.update_layout(
        sliders=[slider],
        coloraxis=_loss_colours(first),
        height=420,
        margin={"t": 50, "b": 20, "l": 20, "r": 20},
    )
    fig.update_xaxes(title_text="β (d<sub>2</sub>)")
    fig.update_yaxes(title_text="α (d<sub>1</sub>)")
    return fig


def surface_3d(result: branches.Result, depth: int, branch_count: int) -> go.Figure:
    """The first seed's surface for one depth and one I, as a 3-D surface."""
    r = _index("depth", result.depths, depth)
    k = _index("branch_count", result.branch_counts, branch_count)
    fig = go.Figure(
        go.Surface(
            x=float32(result.betas),
            y=float32(result.alphas),
            z=float32(result.surfaces[r, k, 0]),
            colorscale="Viridis",
            colorbar={"title": {"text": "loss"}},
        )
    )
    fig.update_layout(
        title=f"{_row_label(depth)}, I = {branch_count}",
        scene={"xaxis_title": "β (d2)", "yaxis_title": "α (d1)", "zaxis_title": "loss"},
        height=480,
        margin={"t": 40, "b": 10, "l": 10, "r": 10},
    )
    return fig


def measures_vs_branches(result: branches.Result) -> go.Figure:
    """The non-convexity measures against I, a line per depth: mean over seeds, band from the
    smallest to the largest seed. A run file saved before a measure existed leaves it out."""
    shown = [(f, t) for f, t in MEASURES if np.size(getattr(result, f))]
    fig = make_subplots(
        rows=1,
        cols=len(shown),
        subplot_titles=[title for _, title in shown],
        horizontal_spacing=0.06,
    )
    x = float32(result.branch_counts)
    for r, depth in enumerate(result.depths):
        colour, label = PALETTE[r % len(PALETTE)], _row_label(int(depth))
        for c, (field, _) in enumerate(shown, start=1):
            values = np.asarray(getattr(result, field)[r], dtype=np.float64)
            values = np.where(np.isfinite(values), values, np.nan)
            low, high = np.nanmin(values, axis=1), np.nanmax(values, axis=1)
            fig.add_scatter(
                x=np.concatenate([x, x[::-1]]),
                y=float32(np.concatenate([high, low[::-1]])),
                mode="lines",  # no markers at the outline's corners (Plotly's default below 20)
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
                y=float32(np.nanmean(values, axis=1)),
                mode="lines+markers",
                name=label,
                legendgroup=label,
                showlegend=c == 1,
                line={"color": colour},
                row=1,
                col=c,
            )
    fig.update_xaxes(LOG_AXIS, tickvals=result.branch_counts.tolist(), title_text="branches I")
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(height=380, legend={"orientation": "h", "y": -0.25}, margin={"t": 70})
    return fig


def gap_vs_branches(result: branch_gap.Result) -> go.Figure:
    """Measured gap ``P_I - D`` against I, the ``C / I`` reference and the critical width.

    Gaps at or below the solver's certified tolerance are drawn on the tolerance line.
    """
    floor = max(result.tolerance, 1e-12)
    x = float32(result.branch_counts)
    shown = np.maximum(result.gap, floor)
    fig = go.Figure()
    fig.add_scatter(
        x=x,
        y=float32(shown),
        mode="lines+markers",
        name="measured gap P<sub>I</sub> − D (P<sub>I</sub>: best restart, an upper bound)",
        line={"color": PALETTE[0]},
        customdata=float32(result.gap),
        hovertemplate="I = %{x}<br>gap %{customdata:.3g}<extra></extra>",
    )
    if result.reference_constant > 0:
        grid = np.geomspace(result.branch_counts.min(), result.branch_counts.max(), 50)
        fig.add_scatter(
            x=float32(grid),
            y=float32(result.reference_constant / grid),
            mode="lines",
            name=f"C / I, C = max<sub>I</sub> I·gap<sub>I</sub> = {result.reference_constant:.3g}",
            line={"dash": "dash", "color": PALETTE[1]},
        )
    # reference lines as traces: shapes on log axes would need log10 coordinates
    ends = float32([result.branch_counts.min(), result.branch_counts.max()])
    fig.add_scatter(
        x=ends,
        y=float32([floor, floor]),
        mode="lines",
        name="solver tolerance",
        line={"color": "grey", "dash": "dot"},
    )
    top = max(float(shown.max()), result.reference_constant, floor) * 2
    fig.add_scatter(
        x=float32([result.critical_width] * 2),
        y=float32([floor / 2, top]),
        mode="lines",
        name=f"m̂ = {result.critical_width} (critical width m* ≤ m̂)",
        line={"color": PALETTE[2]},
    )
    fig.update_xaxes(LOG_AXIS, tickvals=result.branch_counts.tolist(), title_text="branches I")
    fig.update_yaxes(LOG_AXIS, title_text="P<sub>I</sub> − D")
    fig.update_layout(height=400, legend={"orientation": "h", "y": -0.3}, margin={"t": 30})
    return fig


def _index(name: str, values: np.ndarray, value: int) -> int:
    matches = np.flatnonzero(np.asarray(values) == value)
    if matches.size == 0:
        raise ValueError(f"{name} must be one of {np.asarray(values).tolist()}, got {value}")
    return int(matches[0])
