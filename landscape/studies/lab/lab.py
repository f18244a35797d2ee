"""The Landscape Lab: train a model, then draw its loss surface, slices and curvature.

A built-in ``MultiBranchNet`` (seed eq. 16) or MLP, or an uploaded ONNX model, is trained
full-batch with Adam on digits, iris, moons or an uploaded table (`training`). The loss surface
is drawn on a plane through the trained weights (`plane`: random, PCA, three-model or sharpest
directions), with 1-D slices and the interpolation from the initial weights; the curvature
comes with what it proves (`curvature`). Each part is kept between runs under the settings it
reads (`reuse`), so moving one control recomputes only what that control changes.

This is the study's entry module: presets, run files and the page name the study by it.
"""

from __future__ import annotations

import numpy as np
import torch

from landscape.engine.directions import NORMALIZATIONS, ONE_DIM_CHOICES
from landscape.engine.nets import ACTIVATIONS
from landscape.engine.problem import Problem
from landscape.engine.progress import Progress, silent
from landscape.server.threads import limited_threads
from landscape.studies.lab import curvature, plane, training
from landscape.studies.lab.config import DATASETS, DIRECTIONS, MAX_LANCZOS, MODELS, Config
from landscape.studies.lab.curvature import (
    CENTRE_BUDGET,
    DENSITY_ITERATIONS,
    DENSITY_PROBES,
    EXACT_LIMIT,
    MAP_TOLERANCE,
    TRACE_PRODUCTS,
    TRAINING_ITERATIONS,
    TRAINING_PROBES,
)
from landscape.studies.lab.files import open_surface_file, surface_csv, surface_npz
from landscape.studies.lab.plane import BAND_REPEATS
from landscape.studies.lab.results import (
    RESULT_SHAPES,
    Curvature,
    Evidence,
    Plane,
    Result,
    Slices,
    Surface,
    Training,
)
from landscape.studies.lab.reuse import SLICE_POINTS, clear_caches, curvature_ready
from landscape.studies.lab.training import (
    Data,
    Diverged,
    prepare,
    trained_ready,
    training_key,
    training_state,
)

__all__ = [
    "ACTIVATIONS",
    "BAND_REPEATS",
    "CENTRE_BUDGET",
    "DATASETS",
    "DENSITY_ITERATIONS",
    "DENSITY_PROBES",
    "DIRECTIONS",
    "EXACT_LIMIT",
    "MAP_TOLERANCE",
    "MAX_LANCZOS",
    "MODELS",
    "NORMALIZATIONS",
    "ONE_DIM_CHOICES",
    "PRESETS",
    "RESULT_SHAPES",
    "SLICE_POINTS",
    "TRACE_PRODUCTS",
    "TRAINING_ITERATIONS",
    "TRAINING_PROBES",
    "Config",
    "Curvature",
    "Evidence",
    "Plane",
    "Result",
    "Slices",
    "Surface",
    "Training",
    "clear_caches",
    "curvature_ready",
    "open_surface_file",
    "prepare",
    "run",
    "surface_csv",
    "surface_npz",
    "trained_ready",
    "training_key",
    "training_state",
]

SPAN_LADDER = (0.5, 1.5, 2.0, 2.5, 3.0)  # with the default 1.0: the ranges a lecture uses
RESOLUTION_LADDER = (11, 21, 41, 51, 61, 81, 101)  # with the default 31

PRESETS: dict[str, Config] = {
    "default": Config(),
    "pca": Config(directions="pca"),
    **{f"span_{span:g}": Config(span=span) for span in SPAN_LADDER},
    **{f"resolution_{r}": Config(resolution=r) for r in RESOLUTION_LADDER},
}


def run(config: Config, progress: Progress | None = None) -> Result:
    """Train, then evaluate the surface, slices, interpolation and curvature around the model.

    Training, slices and curvature run with one CPU thread (their operations are small, and on a
    shared 2-core machine a second thread that is not scheduled stalls every parallel region);
    the surface uses every thread the app was given.
    """
    config.validate()
    threads = torch.get_num_threads()
    with limited_threads(1):
        return _run(config, progress or silent, threads)


def _run(config: Config, report: Progress, threads_at_start: int) -> Result:
    """`run`'s steps: training, plane, surface, slices, curvature; a non-finite loss in the
    training or on the surface ends the run with a diverged `Result`."""
    try:
        data, trained = training.trained(config, report)
    except Diverged as error:
        return _diverged(config, training.prepare_data(config), error)
    model = trained.models[0]
    report(0.4, "Directions")
    problem = Problem(model, data.loss_fn, data.X_t, data.y_t)
    frame = plane.frame(config, trained, problem)
    report(0.45, "Loss surface")
    surface = plane.surface(problem, frame, threads_at_start)
    if not np.all(np.isfinite(surface.surface)):
        message = "the surface holds non-finite losses: lower the range"
        return _diverged(config, data, Diverged(message, model, trained.history))
    on_plane = plane.plane(problem, frame)
    report(0.7, "Slices and interpolation")
    slices = plane.kept_slices(config, problem, frame, trained.start)
    report(0.75, "Curvature")
    curvature_group, evidence = curvature.kept_curvature(config, problem, frame, trained, report)
    report(1.0, "Done")
    trained_group = Training(
        loss_history=trained.history,
        train_accuracy=training.accuracy(model, data),
        n_parameters=training.size(model),
        n_samples=len(data.y),
        task=data.task,
        model_name=training.model_name(config, data.X.shape[1:], data.outputs),
    )
    return Result.of(surface, on_plane, slices, curvature_group, trained_group, evidence)


def _diverged(config: Config, data: Data, error: Diverged) -> Result:
    """The result of a run that met a non-finite loss: its training group (the loss per epoch up
    to the failure) and the message; every other group empty."""
    group = Training(
        loss_history=np.where(np.isfinite(error.history), error.history, np.nan),
        train_accuracy=float("nan"),
        n_parameters=training.size(error.model),
        n_samples=len(data.y),
        task=data.task,
        model_name=config.model,
    )
    return Result.diverged_after(group, error.message)
