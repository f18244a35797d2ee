"""Loss surfaces in one call: a random plane, the PCA plane of a trajectory, lines.

Every call evaluates ``L(theta) = loss(f(theta; X), y)`` on a grid of parameter points with the
engine (`landscape.engine.surface`: many points per pass, the model's own forward), leaves the
model as it was, and returns a frozen result with the numbers (NumPy, read-only), the
``metadata`` that redoes them (`landscape.api.records`) and ``figure()``, the dashboard's own
figure of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from landscape.api.isolation import isolated
from landscape.api.problems import Data, DeviceChoice, Loss, Point, point_of, problem
from landscape.api.records import (
    arguments_of,
    describe_array,
    describe_model,
    describe_parameters,
    metadata,
    progress_bar,
    read_only,
)
from landscape.engine.directions import Params, cosine, pca_directions, random_directions
from landscape.engine.problem import Problem
from landscape.engine.surface import (
    interpolate,
    path_taken,
    surface_1d,
    surface_2d,
    surface_points,
)
from landscape.engine.validation import check_integer, check_number

if TYPE_CHECKING:
    import plotly.graph_objects as go

MAX_RESOLUTION = 1001
PCA_MARGIN = 1.2  # the PCA plane spans 1.2 times the farthest checkpoint (as the Lab's)


@dataclass(frozen=True, eq=False)
class Surface:
    """A loss surface ``loss[i, j] = L(center + alphas[i] d1 + betas[j] d2)``.

    ``alphas`` (A,), ``betas`` (B,), ``loss`` (A, B) float64; ``center_loss`` the loss at
    ``(0, 0)``; ``path`` (T, 2) the checkpoints' coordinates in the plane and ``path_loss``
    (T,) their losses (PCA plane; (0, 2) and (0,) otherwise); ``explained_variance`` (2,) the
    PCA ratios (empty otherwise); ``metadata`` how to compute them again.
    """

    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray
    center_loss: float
    path: np.ndarray
    path_loss: np.ndarray
    explained_variance: np.ndarray
    metadata: dict[str, Any]

    def figure(self, log_scale: bool = False) -> go.Figure:
        """The Lab's 3-D surface beside its contour map, with the trajectory if any."""
        from landscape.api import figures

        return figures.surface(self, log_scale=log_scale)


@dataclass(frozen=True, eq=False)
class Line:
    """A loss along a line: ``loss[i] = L(start + ts[i] (end - start))`` (interpolation) or
    ``L(center + ts[i] d)`` (a random direction). ``ts`` (T,), ``loss`` (T,) float64;
    ``metadata`` how to compute them again."""

    ts: np.ndarray
    loss: np.ndarray
    metadata: dict[str, Any]

    def figure(self) -> go.Figure:
        """The Lab's interpolation figure (t = 0 and 1 marked) or its 1-D slice figure."""
        from landscape.api import figures

        return figures.line(self)


def symmetric_grid(resolution: int, span: float, name: str = "resolution") -> np.ndarray:
    """``linspace(-span, span, resolution)``, both checked (``name``: the count's field)."""
    check_integer(name, resolution, 2, MAX_RESOLUTION)
    extent = check_number("span", span, 1e-9, 1e9)
    return np.linspace(-extent, extent, int(resolution))


def _inputs(built: Problem, model: nn.Module) -> dict[str, Any]:
    return {
        "model": describe_model(model),
        "X": describe_array(built.X),
        "y": describe_array(built.y),
    }


def random_pair(
    built: Problem, seed: int, normalization: str, one_dim: str
) -> tuple[Params, Params]:
    """The Lab's pair of random directions: seeds ``2 seed`` and ``2 seed + 1``."""
    check_integer("seed", seed, 0)
    d1 = random_directions(built.model, 2 * seed, normalization, one_dim)
    d2 = random_directions(built.model, 2 * seed + 1, normalization, one_dim)
    return d1, d2


@isolated
def random_plane(
    model: nn.Module,
    loss: Loss,
    X: Data,
    y: Data,
    *,
    resolution: int = 21,
    span: float = 1.0,
    seed: int = 0,
    normalization: str = "filter",
    one_dim: str = "zero",
    method: str = "auto",
    batch_rows: int | None = None,
    memory_budget: int | None = None,
    device: DeviceChoice = None,
    progress: bool = False,
) -> Surface:
    """The loss on a random plane through the model's parameters (Li et al. 2018).

    ``loss[i, j] = L(theta + a_i d1 + b_j d2)`` on ``a, b = linspace(-span, span, resolution)``,
    with Gaussian directions ``d1, d2`` (seeds ``2 seed``, ``2 seed + 1``) rescaled filter by
    filter to the weights' norms (``normalization``: "filter", "layer", "none"; ``one_dim``:
    biases "zero" or "keep"). ``method``: the engine's path ("auto", "fast", "vmap", "loop").
    """
    parameters = dict(locals())
    built = problem(
        model, loss, X, y, device=device, memory_budget=memory_budget, batch_rows=batch_rows
    )
    grid = symmetric_grid(resolution, span)
    d1, d2 = random_pair(built, seed, normalization, one_dim)
    with progress_bar(progress, "random plane") as report:
        Z = surface_2d(built, d1, d2, grid, grid, method=method, progress=report)
    center = surface_2d(built, d1, d2, [0.0], [0.0], method=method)[0, 0]
    directions = {
        "kind": "random",
        "seeds": [2 * int(seed), 2 * int(seed) + 1],
        "normalization": normalization,
        "one_dim": one_dim,
        "cosine": cosine(d1, d2),
    }
    meta = _plane_metadata("random_plane", parameters, built, grid, directions)
    return _surface(grid, Z, float(center), meta)


@isolated
def pca_plane(
    model: nn.Module,
    loss: Loss,
    X: Data,
    y: Data,
    trajectory: Sequence[Point],
    *,
    resolution: int = 21,
    span: float = 1.0,
    method: str = "auto",
    batch_rows: int | None = None,
    memory_budget: int | None = None,
    device: DeviceChoice = None,
    progress: bool = False,
) -> Surface:
    """The loss on the plane of a training trajectory's top two principal directions.

    ``trajectory``: at least 3 checkpoints (models or state dicts of ``model``'s architecture),
    the last one the plane's centre; ``d1, d2`` the top right singular vectors of the centred
    ``[theta_t - theta_T]_t`` (Li et al. section 7). The grid spans ``span`` times 1.2 times
    the farthest checkpoint; ``path`` (T, 2) holds each checkpoint's projection and
    ``path_loss`` the loss there.
    """
    parameters = dict(locals())
    built = problem(
        model, loss, X, y, device=device, memory_budget=memory_budget, batch_rows=batch_rows
    )
    points = [point_of(p, built.model, f"trajectory[{k}]") for k, p in enumerate(trajectory)]
    pca = pca_directions(points)
    extent = (
        PCA_MARGIN * float(np.abs(pca.coordinates).max()) * check_number("span", span, 1e-9, 1e9)
    )
    grid = symmetric_grid(resolution, max(extent, 1e-9))
    center = points[-1]
    with progress_bar(progress, "PCA plane") as report:
        Z = surface_2d(
            built, pca.d1, pca.d2, grid, grid, center=center, method=method, progress=report
        )
    path_loss = surface_points(built, pca.d1, pca.d2, pca.coordinates, center=center)
    directions = {
        "kind": "pca",
        "explained_variance_ratio": [float(r) for r in pca.explained_variance_ratio],
    }
    meta = _plane_metadata("pca_plane", parameters, built, grid, directions, center)
    meta["inputs"]["trajectory"] = [describe_parameters(p) for p in points]
    return _surface(
        grid,
        Z,
        float(path_loss[-1]),
        meta,
        path=pca.coordinates,
        path_loss=path_loss,
        explained=pca.explained_variance_ratio,
    )


def _plane_metadata(
    call: str,
    parameters: dict[str, Any],
    built: Problem,
    grid: np.ndarray,
    directions: dict[str, Any],
    center: Params | None = None,
) -> dict[str, Any]:
    """The metadata of a surface on ``grid`` x ``grid`` (`landscape.api.records`)."""
    extent = [float(grid[0]), float(grid[-1]), len(grid)]
    return metadata(
        call,
        arguments_of(parameters),
        _inputs(built, parameters["model"]),
        directions=directions,
        grid={"alphas": extent, "betas": extent},
        device=str(built.device),
        path=path_taken(built, center=center),
    )


def _surface(
    grid: np.ndarray,
    Z: np.ndarray,
    center_loss: float,
    meta: dict[str, Any],
    *,
    path: np.ndarray | None = None,
    path_loss: np.ndarray | None = None,
    explained: np.ndarray | None = None,
) -> Surface:
    """A `Surface` on ``grid`` x ``grid``; no path and no explained variance by default."""
    return Surface(
        alphas=read_only(grid),
        betas=read_only(grid),
        loss=read_only(Z),
        center_loss=center_loss,
        path=read_only(np.zeros((0, 2)) if path is None else path),
        path_loss=read_only(np.zeros(0) if path_loss is None else path_loss),
        explained_variance=read_only(np.zeros(0) if explained is None else explained),
        metadata=meta,
    )


@isolated
def interpolation(
    model: nn.Module,
    loss: Loss,
    X: Data,
    y: Data,
    end: Point,
    *,
    start: Point | None = None,
    points: int = 25,
    extend: float = 0.0,
    method: str = "auto",
    batch_rows: int | None = None,
    memory_budget: int | None = None,
    device: DeviceChoice = None,
    progress: bool = False,
) -> Line:
    """The loss on the segment between two models: ``loss[i] = L((1 - t_i) start + t_i end)``.

    ``start`` defaults to ``model``'s parameters; ``start`` and ``end`` are models of the same
    architecture or their state dicts. ``ts = linspace(-extend, 1 + extend, points)``: ``t = 0``
    is ``start``, ``t = 1`` is ``end`` (Goodfellow, Vinyals & Saxe 2015).
    """
    parameters = dict(locals())
    built = problem(
        model, loss, X, y, device=device, memory_budget=memory_budget, batch_rows=batch_rows
    )
    check_integer("points", points, 2, MAX_RESOLUTION)
    margin = check_number("extend", extend, 0.0, 1e3)
    first = point_of(built.model if start is None else start, built.model, "start")
    last = point_of(end, built.model, "end")
    ts = np.linspace(-margin, 1.0 + margin, int(points))
    with progress_bar(progress, "interpolation") as report:
        z = interpolate(built, first, last, ts, method=method, progress=report)
    inputs = {
        **_inputs(built, model),
        "start": describe_parameters(first),
        "end": describe_parameters(last),
    }
    return Line(
        ts=read_only(ts),
        loss=read_only(z),
        metadata=metadata(
            "interpolation",
            arguments_of(parameters),
            inputs,
            directions={"kind": "interpolation"},
            grid={"ts": [float(ts[0]), float(ts[-1]), int(points)]},
            device=str(built.device),
            path=path_taken(built, center=first),
        ),
    )


@isolated
def random_line(
    model: nn.Module,
    loss: Loss,
    X: Data,
    y: Data,
    *,
    points: int = 51,
    span: float = 1.0,
    seed: int = 0,
    normalization: str = "filter",
    one_dim: str = "zero",
    method: str = "auto",
    batch_rows: int | None = None,
    memory_budget: int | None = None,
    device: DeviceChoice = None,
    progress: bool = False,
) -> Line:
    """The loss along one random direction: ``loss[i] = L(theta + t_i d)``,
    ``ts = linspace(-span, span, points)``; ``d`` is `random_plane`'s ``d1`` for the same
    ``seed``, ``normalization`` and ``one_dim``."""
    parameters = dict(locals())
    built = problem(
        model, loss, X, y, device=device, memory_budget=memory_budget, batch_rows=batch_rows
    )
    ts = symmetric_grid(points, span, "points")
    check_integer("seed", seed, 0)
    d = random_directions(built.model, 2 * int(seed), normalization, one_dim)
    with progress_bar(progress, "random line") as report:
        z = surface_1d(built, d, ts, method=method, progress=report)
    return Line(
        ts=read_only(ts),
        loss=read_only(z),
        metadata=metadata(
            "random_line",
            arguments_of(parameters),
            _inputs(built, model),
            directions={
                "kind": "random",
                "seeds": [2 * int(seed)],
                "normalization": normalization,
                "one_dim": one_dim,
            },
            grid={"ts": [-float(span), float(span), int(points)]},
            device=str(built.device),
            path=path_taken(built),
        ),
    )
