"""The Lab's plane, the loss surface on it, and the 1-D slices through its centre.

The plane ``center + a d1 + b d2`` is spanned by two random directions (filter-, layer- or
un-normalised; Li et al. 2018), the top two principal directions of the training trajectory,
three trained models (Zhang et al. 2019), or the two sharpest directions (the Hessian's top two
eigenvectors at the trained weights).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from landscape.engine import curvature
from landscape.engine.directions import (
    Params,
    cosine,
    parameters_of,
    pca_directions,
    random_directions,
    three_model_plane,
)
from landscape.engine.problem import Problem
from landscape.engine.surface import (
    interpolate,
    path_taken,
    surface_2d,
    surface_2d_band,
    surface_points,
)
from landscape.server.threads import thread_count
from landscape.studies.lab.config import Config
from landscape.studies.lab.results import Plane, Slices, Surface
from landscape.studies.lab.reuse import SLICE_POINTS, SLICES
from landscape.studies.lab.training import Trained

INTERPOLATION_TS = np.linspace(-0.5, 1.5, 41)
BAND_REPEATS = 5


@dataclass
class Frame:
    """The plane ``center + a d1 + b d2`` and the grid over ``[-extent, extent]^2``."""

    center: Params
    d1: Params
    d2: Params
    extent: float
    grid: np.ndarray  # (R,)
    trajectory: np.ndarray  # (T, 2) PCA coordinates of the checkpoints; (0, 2) otherwise
    explained_variance: np.ndarray  # (2,)
    model_points: np.ndarray  # (3, 2) the three models' coordinates; (0, 2) otherwise


def frame(config: Config, trained: Trained, problem: Problem) -> Frame:
    """The plane of the configured kind, and its extent: ``span`` times 1 (random directions),
    1.2 times the farthest checkpoint (PCA), 1.3 times the farthest model (three models), or
    `sharpest_radius` (the two sharpest directions, unit eigenvectors of the Hessian)."""
    model = trained.models[0]
    none = np.zeros((0, 2))
    if config.directions == "random":
        d1 = random_directions(model, 2 * config.seed, config.normalization, config.one_dim)
        d2 = random_directions(model, 2 * config.seed + 1, config.normalization, config.one_dim)
        center, radius = parameters_of(model), 1.0
        pca_coords, explained, plane_points = none, np.zeros(2), none
    elif config.directions == "pca":
        pca = pca_directions(trained.trajectory)
        center, d1, d2 = trained.trajectory[-1], pca.d1, pca.d2
        pca_coords, explained, plane_points = pca.coordinates, pca.explained_variance_ratio, none
        radius = 1.2 * float(np.abs(pca_coords).max())
    elif config.directions == "three_models":
        plane = three_model_plane(trained.models)
        center, d1, d2 = plane.center, plane.d1, plane.d2
        pca_coords, explained, plane_points = none, np.zeros(2), plane.coordinates
        radius = 1.3 * float(np.abs(plane_points).max())
    else:
        center = parameters_of(model)
        pairs = curvature.top_eigenpairs(problem, center, k=2, seed=config.seed)
        d1, d2 = pairs.vectors
        pca_coords, explained, plane_points = none, np.zeros(2), none
        radius = sharpest_radius(problem, center, d1, float(pairs.values[0]))
    extent = config.span * max(radius, 1e-6)
    grid = np.linspace(-extent, extent, config.resolution)
    return Frame(center, d1, d2, extent, grid, pca_coords, explained, plane_points)


def sharpest_radius(problem: Problem, center: Params, d1: Params, top: float) -> float:
    """Half-width of the plane along the sharpest directions (unit vectors): where the quadratic
    model ``L0 + top r^2 / 2`` has risen by ``max(L0, 1e-3)`` (the loss about doubles along d1),
    at most the norm of the weights."""
    loss = float(surface_points(problem, d1, d1, np.zeros((1, 2)), center=center)[0])
    weights = max(float(torch.cat([t.reshape(-1) for t in center.values()]).double().norm()), 1e-3)
    if top <= 0:
        return weights
    return float(min(np.sqrt(2 * max(loss, 1e-3) / top), weights))


def surface(problem: Problem, frame: Frame, threads: int) -> Surface:
    """The surface on the frame's grid, timed, computed with ``threads`` threads."""
    started = time.perf_counter()
    with thread_count(threads):
        Z = surface_2d(problem, frame.d1, frame.d2, frame.grid, frame.grid, center=frame.center)
    seconds = time.perf_counter() - started
    return Surface(
        alphas=frame.grid,
        betas=frame.grid,
        surface=Z,
        surface_method=path_taken(problem, center=frame.center),
        surface_seconds=seconds,
        center_loss=float(on_plane(problem, frame, np.zeros((1, 2)))[0]),
    )


def on_plane(problem: Problem, frame: Frame, coords: np.ndarray) -> np.ndarray:
    """Losses at the plane coordinates ``coords`` (P, 2), shape (P,)."""
    if len(coords) == 0:
        return np.zeros(0)
    return surface_points(problem, frame.d1, frame.d2, coords, center=frame.center)


def plane(problem: Problem, frame: Frame) -> Plane:
    """The directions' cosine, and the checkpoints or models on the plane with their losses."""
    return Plane(
        direction_cosine=cosine(frame.d1, frame.d2),
        trajectory=frame.trajectory,
        trajectory_loss=on_plane(problem, frame, frame.trajectory),
        explained_variance=frame.explained_variance,
        model_points=frame.model_points,
        model_losses=on_plane(problem, frame, frame.model_points),
    )


def kept_slices(config: Config, problem: Problem, frame: Frame, start: Params) -> Slices:
    """`slices`, kept per `reuse.SLICES` key (up to `SLICE_POINTS`, the slices do not depend on
    the resolution) or taken from the stored preset of that key."""
    return SLICES.get(
        config,
        lambda: slices(config, problem, frame, start),
        lambda stored: stored.group(Slices),
    )


def slices(config: Config, problem: Problem, frame: Frame, start: Params) -> Slices:
    """Slices along d1 and d2 on at least `SLICE_POINTS` points, and the interpolation from
    the initial parameters ``start`` to the trained ones (none when training did not move)."""
    extent = frame.extent
    ts = np.linspace(-extent, extent, max(SLICE_POINTS, config.resolution))
    (line1, std1), (line2, std2) = (
        _slice(config, problem, d, ts, frame.center) for d in (frame.d1, frame.d2)
    )
    final = parameters_of(problem.model)
    if any(not torch.equal(start[n], final[n]) for n in final):
        interpolation = interpolate(problem, start, final, INTERPOLATION_TS)
        interpolation_ts = INTERPOLATION_TS
    else:
        interpolation, interpolation_ts = np.zeros(0), np.zeros(0)
    return Slices(ts, line1, line2, std1, std2, interpolation_ts, interpolation)


def _slice(
    config: Config, problem: Problem, d: Params, ts: np.ndarray, center: Params
) -> tuple[np.ndarray, np.ndarray]:
    """``L(center + t d)`` at ``ts`` (S,) and its spread: with ``sample_size``, the mean and
    standard deviation over `BAND_REPEATS` sub-samples; else the loss on all data and zeros."""
    zero = {name: torch.zeros_like(t) for name, t in d.items()}
    if config.sample_size:
        mean, std = surface_2d_band(
            problem,
            d,
            zero,
            ts,
            [0.0],
            center=center,
            sample_size=config.sample_size,
            repeats=BAND_REPEATS,
            seed=config.seed,
        )
        return mean[:, 0], std[:, 0]
    line = surface_2d(problem, d, zero, ts, [0.0], center=center)[:, 0]
    return line, np.zeros_like(line)
