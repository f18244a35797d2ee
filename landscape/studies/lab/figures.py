"""Figures of loss surfaces: a 3-D surface beside its contour map, heat maps, 1-D slices with bands.

The builders take arrays (reusable by every study); the ``lab_*`` functions take the Landscape
Lab's ``Result``. Surfaces follow ``Z[i, j] = L(theta + alphas[i] d1 + betas[j] d2)``: alpha on the
horizontal axis, beta on the vertical one.

Every public builder is `serialised` (Plotly's figure construction is not thread-safe, and each
session's script runs in a thread of its own: see `landscape.engine.plotting`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from landscape.engine.plotting import (
    LOG_AXIS,
    colour_axis,
    float32,
    serialised,
    surface_beside_contours,
)
from landscape.studies.lab.lab import Result

COLORSCALE = "Viridis"
LINE_COLORS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa")
_HOVER = "α %{x:.3g}<br>β %{y:.3g}<br>%{z:.4g}<extra></extra>"


def _shown(Z: np.ndarray, log_scale: bool) -> np.ndarray:
    return np.log10(np.maximum(Z, 1e-12)) if log_scale else Z


@serialised
def surface_and_contour(
    alphas: np.ndarray,
    betas: np.ndarray,
    Z: np.ndarray,
    *,
    log_scale: bool = False,
    path: np.ndarray | None = None,
    path_loss: np.ndarray | None = None,
    points: np.ndarray | None = None,
    point_loss: np.ndarray | None = None,
    point_labels: Sequence[str] = (),
    z_title: str = "loss",
) -> go.Figure:
    """One ``go.Surface`` and the matching contour map; optional path (T, 2) and points (k, 2).

    ``path_loss`` / ``point_loss`` give the height of the path and points on the 3-D panel.
    """
    shown = float32(_shown(Z, log_scale)).T  # plotly indexes z[y][x]
    title = f"log10 {z_title}" if log_scale else z_title
    fig = surface_beside_contours(
        alphas, betas, shown, ("surface", "contours"), hovertemplate=_HOVER
    )
    if path is not None and len(path):
        _add_path(fig, path, path_loss, log_scale)
    if points is not None and len(points):
        labels = list(point_labels) or [f"model {k}" for k in range(len(points))]
        _add_points(fig, points, point_loss, labels, log_scale)
    fig.update_layout(
        coloraxis=colour_axis(title, COLORSCALE),
        scene={"xaxis_title": "α", "yaxis_title": "β", "zaxis_title": title},
        height=520,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.05},
    )
    fig.update_xaxes(title_text="α", row=1, col=2)
    fig.update_yaxes(title_text="β", row=1, col=2)
    return fig


def _add_path(
    fig: go.Figure, path: np.ndarray, path_loss: np.ndarray | None, log_scale: bool
) -> None:
    """The trajectory (T, 2) on the contour map, and at heights ``path_loss`` on the surface."""
    x, y = float32(path[:, 0]), float32(path[:, 1])
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="lines+markers",
            line={"color": "white", "width": 2},
            marker={"size": 4, "color": "white"},
            name="training trajectory (projected)",
        ),
        row=1,
        col=2,
    )
    if path_loss is None or len(path_loss) != len(path):
        return
    fig.add_trace(
        go.Scatter3d(
            x=x,
            y=y,
            z=float32(_shown(path_loss, log_scale)),
            mode="lines+markers",
            line={"color": "red", "width": 5},
            marker={"size": 2, "color": "red"},
            name="trajectory on the surface",
        ),
        row=1,
        col=1,
    )


def _add_points(
    fig: go.Figure,
    points: np.ndarray,
    point_loss: np.ndarray | None,
    labels: list[str],
    log_scale: bool,
) -> None:
    """Labelled models (k, 2) on the contour map, and at heights ``point_loss`` on the surface."""
    x, y = float32(points[:, 0]), float32(points[:, 1])
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="markers+text",
            text=labels,
            textposition="top center",
            marker={"symbol": "x", "size": 11, "color": "white"},
            textfont={"color": "white"},
            name="trained models",
        ),
        row=1,
        col=2,
    )
    if point_loss is None or len(point_loss) != len(points):
        return
    fig.add_trace(
        go.Scatter3d(
            x=x,
            y=y,
            z=float32(_shown(point_loss, log_scale)),
            mode="markers",
            marker={"size": 5, "color": "red", "symbol": "x"},
            name="models on the surface",
        ),
        row=1,
        col=1,
    )


@serialised
def heatmap(
    alphas: np.ndarray,
    betas: np.ndarray,
    values: np.ndarray,
    *,
    title: str,
    colorbar_title: str,
    colorscale: str = COLORSCALE,
    zmin: float | None = None,
    zmax: float | None = None,
    hover: dict[str, np.ndarray] | None = None,
) -> go.Figure:
    """A heat map of ``values[i, j]`` over (alphas[i], betas[j]); ``hover`` adds named arrays."""
    hover = hover or {}
    custom = np.stack([float32(v).T for v in hover.values()], axis=-1) if hover else None
    extra = "".join(f"<br>{name} %{{customdata[{k}]:.4g}}" for k, name in enumerate(hover))
    fig = go.Figure(
        go.Heatmap(
            x=float32(alphas),
            y=float32(betas),
            z=float32(values).T,
            customdata=custom,
            colorscale=colorscale,
            zmin=zmin,
            zmax=zmax,
            colorbar={"title": colorbar_title},
            hovertemplate="α %{x:.3g}<br>β %{y:.3g}<br>%{z:.4g}" + extra + "<extra></extra>",
        )
    )
    fig.update_layout(title=title, xaxis_title="α", yaxis_title="β", height=420)
    return fig


@serialised
def lines(
    x: np.ndarray,
    curves: Sequence[tuple[str, np.ndarray, np.ndarray | None]],
    *,
    title: str,
    x_title: str,
    y_title: str = "loss",
    log_y: bool = False,
) -> go.Figure:
    """Curves ``(name, y, std or None)`` over ``x``; a std draws a shaded ``y +/- std`` band."""
    fig = go.Figure()
    for k, (name, y, std) in enumerate(curves):
        color = LINE_COLORS[k % len(LINE_COLORS)]
        if std is not None and np.any(std > 0):
            fig.add_trace(
                go.Scatter(
                    x=np.concatenate([float32(x), float32(x)[::-1]]),
                    y=np.concatenate([float32(y + std), float32(y - std)[::-1]]),
                    mode="lines",
                    fill="toself",
                    fillcolor=color,
                    opacity=0.2,
                    line={"width": 0},
                    hoverinfo="skip",
                    name=f"{name} +/- std",
                    showlegend=True,
                )
            )
        fig.add_trace(
            go.Scatter(x=float32(x), y=float32(y), mode="lines", name=name, line={"color": color})
        )
    fig.update_layout(
        title=title,
        xaxis_title=x_title,
        yaxis_title=y_title,
        height=380,
        legend={"orientation": "h", "y": -0.25},
    )
    if log_y:
        fig.update_yaxes(LOG_AXIS)
    return fig


@serialised
def lab_surface(result: Result, log_scale: bool = False) -> go.Figure:
    """The Lab's surface with the PCA trajectory or the three models marked."""
    return surface_and_contour(
        result.alphas,
        result.betas,
        result.surface,
        log_scale=log_scale,
        path=result.trajectory,
        path_loss=result.trajectory_loss,
        points=result.model_points,
        point_loss=result.model_losses,
        point_labels=("w0", "w1", "w2")[: len(result.model_points)],
        z_title="training loss",
    )


@serialised
def lab_slices(result: Result) -> go.Figure:
    """1-D slices through the centre along d1 and d2 (with the sub-sample band if any)."""
    return lines(
        result.slice_ts,
        [
            ("along d<sub>1</sub> (β = 0)", result.slice_d1, result.slice_d1_std),
            ("along d<sub>2</sub> (α = 0)", result.slice_d2, result.slice_d2_std),
        ],
        title="1-D slices through the centre",
        x_title="step t along the direction",
    )


@serialised
def lab_interpolation(result: Result) -> go.Figure:
    """Loss on the line from the initial to the trained weights (t = 0 and t = 1)."""
    fig = lines(
        result.interpolation_ts,
        [("L((1 − t) θ<sub>0</sub> + t θ<sub>trained</sub>)", result.interpolation, None)],
        title="Linear interpolation from initialisation to the trained weights",
        x_title="t",
    )
    for t, label in ((0.0, "initial"), (1.0, "trained")):
        fig.add_vline(x=t, line_dash="dot", annotation_text=label)
    return fig


STATE_NAMES = {-1: "negative curvature found", 0: "none found", 1: "convex here (exact)"}
STATE_MARKERS = {-1: ("x", "#d62728"), 0: ("circle-open", "#7f7f7f"), 1: ("circle", "#2ca02c")}


def centre_state_text(result: Result) -> str:
    """The centre's curvature evidence in one sentence (numbers from the Result only)."""
    if result.centre_state == -1 and result.centre_exact:
        return (
            f"Not convex here: the exact lambda_min is {result.centre_lambda_min:.3g} "
            f"(lambda_max {result.centre_lambda_max:.3g}; dense Hessian of "
            f"{result.n_parameters:,} parameters)."
        )
    if result.centre_state == 1:
        return (
            f"Convex here: the exact lambda_min is {result.centre_lambda_min:.3g} >= 0 up to "
            f"rounding (lambda_max {result.centre_lambda_max:.3g})."
        )
    if result.centre_state == -1:
        return (
            f"Negative curvature found: a Ritz vector v has v^T H v = "
            f"{result.centre_rayleigh:.3g} < 0 (float64), after {result.centre_iterations} "
            f"Lanczos steps; an eigenvalue lies within {result.centre_residual:.2g} of it."
        )
    bound = (
        f"with probability >= 99% lambda_min >= {result.centre_bound:.3g}"
        if np.isfinite(result.centre_bound)
        else "too few steps for a probabilistic bound"
    )
    return (
        f"None found: after {result.centre_iterations} Lanczos steps the smallest Ritz value is "
        f"{result.centre_lambda_min:.3g}, which does not prove convexity; {bound} "
        "(Kuczynski-Wozniakowski)."
    )


@serialised
def lab_curvature(result: Result) -> go.Figure:
    """The map of ``|lambda_min / lambda_max|`` with each point's evidence as a marker."""
    top = float(max(1.0, np.nanmax(result.curvature_ratio))) if result.curvature_ratio.size else 1
    hover = {"lambda_min": result.lambda_min, "lambda_max": result.lambda_max}
    fig = heatmap(
        result.curvature_alphas,
        result.curvature_betas,
        result.curvature_ratio,
        title="Curvature: |λ<sub>min</sub> / λ<sub>max</sub>| of the Hessian, and what is proven",
        colorbar_title="|min/max|",
        colorscale="Blues",
        zmin=0.0,
        zmax=top,
        hover=hover,
    )
    if result.curvature_state.shape != result.curvature_ratio.shape:
        return fig  # a run file saved before the evidence existed
    A, B = np.meshgrid(result.curvature_alphas, result.curvature_betas, indexing="ij")
    for code, name in STATE_NAMES.items():
        mask = result.curvature_state == code
        if not mask.any():
            continue
        symbol, color = STATE_MARKERS[code]
        custom = np.stack(
            [
                result.curvature_rayleigh[mask],
                result.curvature_bound[mask],
                result.curvature_iterations[mask],
            ],
            axis=-1,
        )
        fig.add_trace(
            go.Scatter(
                x=float32(A[mask]),
                y=float32(B[mask]),
                mode="markers",
                marker={"symbol": symbol, "color": color, "size": 11, "line": {"width": 2}},
                name=name,
                customdata=float32(custom),
                hovertemplate=(
                    f"{name}<br>v^T H v %{{customdata[0]:.3g}}<br>"
                    "bound (p >= 0.99) %{customdata[1]:.3g}<br>steps %{customdata[2]:.0f}"
                    "<extra></extra>"
                ),
            )
        )
    fig.update_layout(legend={"orientation": "h", "y": -0.2})
    return fig


@serialised
def lab_density(result: Result) -> go.Figure:
    """The Hessian's eigenvalue density at the centre (SLQ, Gaussian broadening), with the exact
    eigenvalues' histogram when the model was small enough for the dense Hessian."""
    fig = go.Figure()
    if len(result.exact_eigenvalues):
        fig.add_trace(
            go.Histogram(
                x=float32(result.exact_eigenvalues),
                histnorm="probability density",
                nbinsx=80,
                name="exact eigenvalues",
                marker={"color": "#bbbbbb"},
                opacity=0.7,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=float32(result.density_grid),
            y=float32(result.density),
            mode="lines",
            name="SLQ density",
            line={"color": LINE_COLORS[0]},
        )
    )
    fig.add_vline(x=0.0, line={"dash": "dot", "color": "#d62728"})
    fig.update_layout(
        title=(
            "Hessian eigenvalue density at the centre: share below "
            f"-{result.negative_threshold:.2g}: {result.negative_mass:.3g} "
            f"+/- {result.negative_mass_error:.2g}"
        ),
        xaxis_title="eigenvalue",
        yaxis_title="density",
        height=380,
        legend={"orientation": "h", "y": -0.25},
    )
    fig.update_yaxes(LOG_AXIS)
    return fig


@serialised
def lab_training_density(result: Result) -> go.Figure:
    """The negative mass of the Hessian's spectrum (SLQ) at checkpoints along training."""
    fig = go.Figure(
        go.Scatter(
            x=float32(result.training_epochs),
            y=float32(result.training_negative_mass),
            customdata=float32(result.training_negative_threshold),
            hovertemplate="epoch %{x}<br>share below -%{customdata:.2g}: %{y:.3g}<extra></extra>",
            error_y={"type": "data", "array": float32(result.training_negative_mass_error)},
            mode="lines+markers",
            name="negative mass",
            line={"color": LINE_COLORS[1]},
        )
    )
    fig.update_layout(
        title="Spectrum below zero along training<br><sub>SLQ share, +/- standard error</sub>",
        xaxis_title="epoch",
        yaxis_title="negative mass",
        height=380,
    )
    return fig


@serialised
def lab_training(result: Result) -> go.Figure:
    """Training loss per epoch."""
    epochs = np.arange(1, len(result.loss_history) + 1)
    return lines(
        epochs,
        [("training loss", result.loss_history, None)],
        title="Training (full-batch Adam)",
        x_title="epoch",
        log_y=True,
    )
