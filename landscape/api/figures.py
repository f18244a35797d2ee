"""The dashboard's own figures, drawn from the front door's results.

A result of `landscape.api` holds the same numbers as a study's ``Result`` under other names;
each function here hands them to the figure the dashboard draws (the Lab's surface, lines,
curvature map and spectral density; the Width study's Gram heat map). Builders that take a
study's ``Result`` get one from `study_result`: the fields the figure reads, every other field
empty. Imported by a result's ``figure()`` only, so that ``import landscape`` loads no study.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import plotly.graph_objects as go

from landscape.engine.curvature import STATE_CODES
from landscape.studies.lab import figures as lab_figures
from landscape.studies.lab.lab import Result as LabResult
from landscape.studies.width import figures as width_figures
from landscape.studies.width.width import Result as WidthResult

if TYPE_CHECKING:
    from landscape.api.curvature import (
        CurvatureEvidence,
        CurvatureMap,
        HessianTrace,
        SpectralDensity,
    )
    from landscape.api.kernels import Kernel
    from landscape.api.surfaces import Line, Surface

R = TypeVar("R")
_EMPTY: dict[str, Any] = {"float": float("nan"), "int": 0, "bool": False, "str": ""}


def study_result(result_cls: type[R], **values: Any) -> R:
    """An instance of a study's ``Result`` dataclass holding ``values``; every other field
    without a default is empty (a (0,) array, NaN, 0, False or "")."""
    assert dataclasses.is_dataclass(result_cls)
    filled = dict(values)
    for f in dataclasses.fields(result_cls):
        has_default = f.default is not dataclasses.MISSING
        if f.name in filled or has_default or f.default_factory is not dataclasses.MISSING:
            continue
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        filled[f.name] = np.zeros(0) if "ndarray" in kind else _EMPTY[kind]
    return result_cls(**filled)


def surface(result: Surface, log_scale: bool = False) -> go.Figure:
    """The Lab's surface beside its contour map, the trajectory drawn on both."""
    return lab_figures.surface_and_contour(
        result.alphas,
        result.betas,
        result.loss,
        log_scale=log_scale,
        path=result.path,
        path_loss=result.path_loss,
        z_title="loss",
    )


def line(result: Line) -> go.Figure:
    """The Lab's interpolation figure for an interpolation, its slice figure otherwise."""
    if result.metadata["call"] == "interpolation":
        lab = study_result(LabResult, interpolation_ts=result.ts, interpolation=result.loss)
        return lab_figures.lab_interpolation(lab)
    return lab_figures.lines(
        result.ts,
        [("along d (random direction)", result.loss, None)],
        title="1-D slice through the model",
        x_title="step t along the direction",
    )


def curvature_map(result: CurvatureMap) -> go.Figure:
    """The Lab's map of ``|lambda_min / lambda_max|`` with each point's evidence marked."""
    lab = study_result(
        LabResult,
        curvature_alphas=result.alphas,
        curvature_betas=result.betas,
        curvature_ratio=result.ratio,
        lambda_min=result.lambda_min,
        lambda_max=result.lambda_max,
        curvature_state=result.state.astype(np.float64),
        curvature_rayleigh=result.rayleigh,
        curvature_bound=result.bound,
        curvature_iterations=result.iterations.astype(np.float64),
    )
    return lab_figures.lab_curvature(lab)


def evidence_text(result: CurvatureEvidence) -> str:
    """The Lab's sentence on the centre's curvature evidence, for this result."""
    return lab_figures.centre_state_text(_evidence_lab(result))


def evidence(result: CurvatureEvidence) -> go.Figure:
    """The Lab's curvature map at the one point evaluated (the ratio ``|lambda_min /
    lambda_max|`` and the evidence's marker), titled with the Lab's sentence on it."""
    one = np.zeros(1)
    lab = study_result(
        LabResult,
        curvature_alphas=one,
        curvature_betas=one,
        curvature_ratio=np.array([[abs(result.lambda_min) / max(abs(result.lambda_max), 1e-300)]]),
        lambda_min=np.array([[result.lambda_min]]),
        lambda_max=np.array([[result.lambda_max]]),
        curvature_state=np.array([[float(STATE_CODES[result.state])]]),
        curvature_rayleigh=np.array([[result.rayleigh]]),
        curvature_bound=np.array([[result.bound]]),
        curvature_iterations=np.array([[float(result.iterations)]]),
    )
    fig = lab_figures.lab_curvature(lab)
    fig.update_layout(title=evidence_text(result))
    return fig


def _evidence_lab(result: CurvatureEvidence) -> LabResult:
    return study_result(
        LabResult,
        centre_state=STATE_CODES[result.state],
        centre_exact=result.exact,
        centre_lambda_min=result.lambda_min,
        centre_lambda_max=result.lambda_max,
        centre_rayleigh=result.rayleigh,
        centre_residual=result.residual,
        centre_bound=result.bound,
        centre_iterations=result.iterations,
        n_parameters=int(result.metadata["inputs"]["model"]["parameters"]),
    )


def spectrum(result: SpectralDensity) -> go.Figure:
    """The Lab's eigenvalue density figure (SLQ; the exact eigenvalues' histogram if any)."""
    lab = study_result(
        LabResult,
        density_grid=result.grid,
        density=result.density,
        exact_eigenvalues=result.exact_eigenvalues,
        negative_mass=result.negative_mass,
        negative_mass_error=result.negative_mass_error,
        negative_threshold=result.threshold,
    )
    return lab_figures.lab_density(lab)


def trace(result: HessianTrace) -> go.Figure:
    """The Lab's line figure: the running estimate of the trace over the random probes, with
    its standard error as a band."""
    return lab_figures.lines(
        result.running_products,
        [(f"{result.method} estimate of tr A", result.running_estimate, result.running_error)],
        title=f"Trace estimate: {result.estimate:.6g} +/- {result.error:.2g}",
        x_title="operator products",
        y_title="estimate of tr A",
    )


def kernel(result: Kernel) -> go.Figure:
    """The Width study's Gram heat map of the kernel, samples sorted by their targets."""
    width = study_result(WidthResult, gram=result.matrix, targets=result.targets)
    fig = width_figures.gram_heatmap(width)
    fig.update_layout(title=f"{result.metadata['arguments'].get('kind', 'ntk')} kernel")
    return fig
