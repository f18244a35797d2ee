"""The Lab's curvature: the Hessian's extreme eigenvalues on a coarse grid of the plane, the
slice Hessian, the traces, and what they prove at the centre.

Curvature comes with its evidence (`landscape.engine.curvature.curvature_evidence`): negative
curvature found (a vector proves it), none found (with a probabilistic bound), or, for a model
of at most `EXACT_LIMIT` parameters, convex here or not from the exact eigenvalues. The
Hessian's eigenvalue density (stochastic Lanczos quadrature) is drawn at the centre and its
negative mass along training.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from landscape.engine import curvature
from landscape.engine.curvature import (
    CurvatureMap,
    curvature_map,
    hutchinson_trace,
    slice_hessian,
    slice_hessian_fd,
)
from landscape.engine.directions import Params
from landscape.engine.problem import Problem
from landscape.engine.progress import Progress
from landscape.engine.surface import surface_2d
from landscape.studies.lab.config import Config
from landscape.studies.lab.plane import Frame
from landscape.studies.lab.results import Curvature, Evidence
from landscape.studies.lab.reuse import CENTRE, CURVATURE, HESSIAN
from landscape.studies.lab.training import MAX_CHECKPOINTS, Trained, size

EXACT_LIMIT = 2000  # dense Hessian at the centre up to this many parameters
CENTRE_BUDGET = curvature.DEFAULT_BUDGET  # Lanczos steps at most for the centre's evidence
# The map stops each point once both extreme Ritz residuals are <= MAP_TOLERANCE max|theta|:
# lambda_min to about 1% on the default preset in about 20 steps, where the centre's tighter
# curvature.DEFAULT_TOLERANCE would take the whole budget at every point of the map.
MAP_TOLERANCE = 1e-3
TRACE_PRODUCTS = 30  # for Hutchinson and for Hutch++
DENSITY_PROBES, DENSITY_ITERATIONS = 6, 30  # SLQ at the centre
TRAINING_POINTS, TRAINING_PROBES, TRAINING_ITERATIONS = 5, 3, 15  # SLQ along training


def kept_curvature(
    config: Config, problem: Problem, frame: Frame, trained: Trained, report: Progress
) -> tuple[Curvature, Evidence]:
    """`curvature_group` and the evidence, kept per `reuse.CURVATURE` key (moving the
    resolution recomputes only the surface and the slices), or taken from the stored preset of
    that key. Their parts that the range does not change are kept too: the centre's evidence
    (`reuse.CENTRE`) and the slice Hessian with the trace (`reuse.HESSIAN`), so moving the
    range computes only the map and the slice's finite differences."""

    def compute() -> tuple[Curvature, Evidence]:
        group, cmap = curvature_group(config, problem, frame, report)
        centre = CENTRE.get(
            config,
            lambda: centre_evidence(config, problem, frame, trained, report),
            lambda stored: replace(stored.group(Evidence), **map_evidence(None)),
        )
        return group, replace(centre, **map_evidence(cmap))

    return CURVATURE.get(
        config, compute, lambda stored: (stored.group(Curvature), stored.group(Evidence))
    )


def curvature_group(
    config: Config, problem: Problem, frame: Frame, report: Progress
) -> tuple[Curvature, CurvatureMap | None]:
    """The slice Hessian (exact and by differences), Hutchinson's trace, and the curvature
    evidence on a ``curvature_resolution``-square grid (none when it is 0): Lanczos with the
    residual rule at `MAP_TOLERANCE` and a budget of ``lanczos_iterations`` steps."""
    H2, trace, trace_error = HESSIAN.get(
        config,
        lambda: centre_hessian(config, problem, frame),
        lambda s: (s.slice_hessian, s.hessian_trace, s.hessian_trace_error),
    )
    H2_fd = slice_hessian_by_differences(problem, frame.d1, frame.d2, frame.center, frame.extent)
    c = config.curvature_resolution
    coarse = np.linspace(-frame.extent, frame.extent, c) if c else np.zeros(0)
    cmap = _map(config, problem, frame, coarse, report) if c else None
    empty = np.zeros((0, 0))
    group = Curvature(
        curvature_alphas=coarse,
        curvature_betas=coarse,
        lambda_min=cmap.lambda_min if cmap else empty,
        lambda_max=cmap.lambda_max if cmap else empty,
        curvature_ratio=cmap.ratio if cmap else empty,
        slice_hessian=H2,
        slice_hessian_fd=H2_fd,
        slice_eigenvalues=np.linalg.eigvalsh(H2),
        slice_fd_eigenvalues=np.linalg.eigvalsh(H2_fd),
        hessian_trace=trace,
        hessian_trace_error=trace_error,
    )
    return group, cmap


def _map(
    config: Config, problem: Problem, frame: Frame, coarse: np.ndarray, report: Progress
) -> CurvatureMap:
    """The curvature evidence at the points ``coarse x coarse`` of the plane."""
    return curvature_map(
        problem,
        frame.d1,
        frame.d2,
        coarse,
        coarse,
        center=frame.center,
        iterations=min(config.lanczos_iterations, size(problem.model)),
        seed=config.seed,
        progress=lambda f, s: report(0.85 + 0.15 * f, s),
        tolerance=MAP_TOLERANCE,
    )


def centre_hessian(
    config: Config, problem: Problem, frame: Frame
) -> tuple[np.ndarray, float, float]:
    """The slice's exact 2x2 Hessian at the centre, and Hutchinson's trace there with
    `TRACE_PRODUCTS` probes and its standard error."""
    H2 = slice_hessian(problem, frame.d1, frame.d2, frame.center)
    trace, error = hutchinson_trace(problem, frame.center, samples=TRACE_PRODUCTS, seed=config.seed)
    return H2, float(trace), float(error)


def map_evidence(cmap: CurvatureMap | None) -> dict[str, Any]:
    """The `Evidence` fields that come from the curvature map: its states, Rayleigh quotients,
    bounds and Lanczos steps per point (empty without a map)."""
    return {
        "curvature_state": cmap.state if cmap else np.zeros((0, 0), dtype=np.int64),
        "curvature_rayleigh": cmap.rayleigh if cmap else np.zeros((0, 0)),
        "curvature_bound": cmap.bound if cmap else np.zeros((0, 0)),
        "curvature_iterations": (cmap.iterations.astype(np.float64) if cmap else np.zeros((0, 0))),
    }


def centre_evidence(
    config: Config, problem: Problem, frame: Frame, trained: Trained, report: Progress
) -> Evidence:
    """The centre's evidence (`centre_curvature`), Hutch++, the SLQ density at the centre and
    its negative mass along training; the map's fields empty (`map_evidence`)."""
    center = frame.center
    report(0.76, "Curvature at the centre")
    centre = centre_curvature(problem, center, config.seed)
    plus = curvature.trace(
        problem, center, method="hutch++", products=TRACE_PRODUCTS, seed=config.seed
    )
    report(0.78, "Spectral density")
    spectrum = curvature.density(
        problem,
        center,
        iterations=min(DENSITY_ITERATIONS, size(problem.model)),
        probes=DENSITY_PROBES,
        seed=config.seed,
    )
    epochs, masses, errors, thresholds = density_along_training(
        problem,
        trained.trajectory,
        config,
        lambda f: report(0.8 + 0.05 * f, "Density along training"),
    )
    sharpest = np.zeros(0)
    if config.directions == "sharpest":
        sharpest = np.diag(curvature.slice_hessian(problem, frame.d1, frame.d2, center)).copy()
    return Evidence(
        **map_evidence(None),
        **centre,
        sharpest=sharpest,
        density_grid=spectrum.grid,
        density=spectrum.density,
        negative_mass=spectrum.negative_mass,
        negative_mass_error=spectrum.negative_mass_error,
        negative_threshold=spectrum.threshold,
        training_epochs=epochs,
        training_negative_mass=masses,
        training_negative_mass_error=errors,
        training_negative_threshold=thresholds,
        hutchpp_trace=plus.estimate,
        hutchpp_trace_error=plus.error,
    )


def centre_curvature(problem: Problem, center: Params, seed: int) -> dict[str, Any]:
    """The `Evidence` fields of the evidence at the centre (`curvature.curvature_evidence`):
    exact eigenvalues (and the trace, their sum) up to `EXACT_LIMIT` parameters, else Lanczos
    with the residual rule and at most `CENTRE_BUDGET` steps."""
    e = curvature.curvature_evidence(
        problem, center, max_iterations=CENTRE_BUDGET, seed=seed, exact_limit=EXACT_LIMIT
    )
    eigenvalues = e.eigenvalues if e.eigenvalues is not None else np.zeros(0)
    return {
        "centre_state": int(e.code),
        "centre_exact": bool(e.exact),
        "centre_lambda_min": float(e.lambda_min),
        "centre_lambda_max": float(e.lambda_max),
        "centre_rayleigh": float(e.rayleigh),
        "centre_residual": float(e.residual_min),
        "centre_bound": float(e.bound),
        "centre_iterations": int(e.iterations),
        "exact_eigenvalues": eigenvalues,
        "exact_trace": float(eigenvalues.sum()) if e.exact else float("nan"),
    }


def density_along_training(
    problem: Problem,
    trajectory: list[Params],
    config: Config,
    report: Callable[[float], None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SLQ negative mass, its standard error and its resolution threshold at
    `TRAINING_POINTS` checkpoints spread evenly over training, from the initial weights to
    the trained ones; and their epochs, each (T,)."""
    every = max(1, config.epochs // MAX_CHECKPOINTS)
    epochs = [0] + [
        e + 1 for e in range(config.epochs) if (e + 1) % every == 0 or e + 1 == config.epochs
    ]
    epochs = epochs[: len(trajectory)]
    picks = np.unique(np.linspace(0, len(trajectory) - 1, TRAINING_POINTS).round().astype(int))
    n = size(problem.model)
    masses, errors, thresholds = (np.empty(len(picks)) for _ in range(3))
    for k, index in enumerate(picks):
        spectrum = curvature.density(
            problem,
            trajectory[index],
            iterations=min(TRAINING_ITERATIONS, n),
            probes=TRAINING_PROBES,
            seed=config.seed + 1,
        )
        masses[k], errors[k] = spectrum.negative_mass, spectrum.negative_mass_error
        thresholds[k] = spectrum.threshold
        report((k + 1) / len(picks))
    return np.array(epochs, dtype=np.float64)[picks], masses, errors, thresholds


def slice_hessian_by_differences(
    problem: Problem, d1: Params, d2: Params, center: Params, extent: float
) -> np.ndarray:
    """The slice's 2x2 Hessian at the centre by central differences with step 1% of the range,
    in float64 (second differences of a float32 surface would be mostly rounding): the problem
    on a float64 copy of the model takes float64 data, and the surface the points in float64."""
    problem64 = Problem(
        copy.deepcopy(problem.model).double(), problem.loss_fn, problem.X, problem.y
    )
    h = 1e-2 * extent
    small = np.array([-h, 0.0, h])
    Z = surface_2d(problem64, d1, d2, small, small, center=center)
    return slice_hessian_fd(Z, small, small)[0, 0]
