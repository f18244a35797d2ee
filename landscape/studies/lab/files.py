"""The Lab's exports and the surface files it opens: the surface as NPZ or CSV, and a surface
file (``convexify surface``, or the Lab's own NPZ download) read back as a `Result`."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from landscape.files import surface_files
from landscape.studies.lab.results import (
    Curvature,
    Evidence,
    Plane,
    Result,
    Slices,
    Surface,
    Training,
)


def surface_npz(result: Result) -> bytes:
    """The surface as an NPZ archive: ``alphas`` (R,), ``betas`` (R,), ``loss`` (R, R)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, alphas=result.alphas, betas=result.betas, loss=result.surface)
    return buffer.getvalue()


def surface_csv(result: Result) -> str:
    """The surface as CSV, one grid point per row: ``alpha,beta,loss``."""
    A, B = np.meshgrid(result.alphas, result.betas, indexing="ij")
    rows = np.column_stack([A.ravel(), B.ravel(), result.surface.ravel()])
    lines = ["alpha,beta,loss", *(",".join(f"{v:.10g}" for v in row) for row in rows)]
    return "\n".join(lines) + "\n"


def open_surface_file(data: bytes) -> tuple[Result, dict]:
    """A surface file (`landscape.files.surface_files`: written by ``convexify surface`` or the
    Lab's own "Surface (NPZ)" download) as a ``Result`` the Lab's figures draw, and the file's
    metadata (model and data digests, directions, seed, command; empty for a Lab download).

    The Result holds the surface, and the slices and curvature map when the file has them;
    training, trajectory, interpolation and the slice Hessian stay empty (NaN). Raises
    ``ValueError`` for a file that does not validate (size, members, shapes, finiteness).
    """
    opened = surface_files.load_surface(data)
    meta = opened.metadata
    empty = np.zeros(0)
    plane = Plane(
        direction_cosine=float("nan"),
        trajectory=np.zeros((0, 2)),
        trajectory_loss=empty,
        explained_variance=np.zeros(2),
        model_points=np.zeros((0, 2)),
        model_losses=empty,
    )
    slices = Slices(
        slice_ts=opened.slice_ts,
        slice_d1=opened.slice_d1,
        slice_d2=opened.slice_d2,
        slice_d1_std=np.zeros_like(opened.slice_d1),
        slice_d2_std=np.zeros_like(opened.slice_d2),
        interpolation_ts=empty,
        interpolation=empty,
    )
    groups = (_surface(opened), plane, slices, _curvature(opened), _training(meta), Evidence())
    return Result.of(*groups), meta


def _surface(opened: Any) -> Surface:
    """The file's surface, its engine path and timing, and the loss at the grid's centre."""
    meta = opened.metadata
    i = int(np.argmin(np.abs(opened.alphas)))
    j = int(np.argmin(np.abs(opened.betas)))
    path = str(meta.get("engine_path", "")) + (f", {meta['backend']}" if "backend" in meta else "")
    return Surface(
        alphas=opened.alphas,
        betas=opened.betas,
        surface=opened.loss,
        surface_method=path or "computed elsewhere",
        surface_seconds=float(meta.get("surface_seconds", float("nan"))),
        center_loss=float(opened.loss[i, j]),
    )


def _curvature(opened: Any) -> Curvature:
    """The file's curvature map (empty (0, 0) maps when it has none); no slice Hessian."""
    square = np.zeros((0, 0))
    has_curvature = opened.curvature_ratio.size > 0
    return Curvature(
        curvature_alphas=opened.curvature_alphas,
        curvature_betas=opened.curvature_betas,
        lambda_min=opened.lambda_min if has_curvature else square,
        lambda_max=opened.lambda_max if has_curvature else square,
        curvature_ratio=opened.curvature_ratio if has_curvature else square,
        slice_hessian=np.full((2, 2), np.nan),
        slice_hessian_fd=np.full((2, 2), np.nan),
        slice_eigenvalues=np.full(2, np.nan),
        slice_fd_eigenvalues=np.full(2, np.nan),
        hessian_trace=float("nan"),
        hessian_trace_error=float("nan"),
    )


def _training(meta: dict) -> Training:
    """What the file's metadata says of the model and its data; no training history."""
    task = {"cross_entropy": "classification", "mse": "regression"}.get(str(meta.get("loss")), "")
    return Training(
        loss_history=np.zeros(0),
        train_accuracy=float("nan"),
        n_parameters=int(meta.get("n_parameters", 0)),
        n_samples=int(meta.get("n_samples", 0)),
        task=task,
        model_name=str(meta.get("model_file", "a computed surface")),
    )
