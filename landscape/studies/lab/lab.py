"""The Landscape Lab: train a model, then draw its loss surface, slices and curvature.

A built-in ``MultiBranchNet`` (seed eq. 16) or MLP, or an uploaded ONNX model, is trained
full-batch with Adam on digits, iris, moons or an uploaded table. The plane of the surface is
spanned by two random directions (filter-, layer- or un-normalised; Li et al. 2018), the top two
principal directions of the training trajectory, three trained models (Zhang et al. 2019), or
the two sharpest directions (the Hessian's top two eigenvectors at the trained weights).

Curvature comes with its evidence (`landscape.engine.curvature.curvature_evidence`): negative
curvature found (a vector proves it), none found (with a probabilistic bound), or, for a model
of at most ``EXACT_LIMIT`` parameters, convex here or not from the exact eigenvalues. The
Hessian's eigenvalue density (stochastic Lanczos quadrature) is drawn at the centre and its
negative mass along training.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from landscape.engine import curvature, datasets
from landscape.engine.curvature import (
    CurvatureMap,
    curvature_map,
    hutchinson_trace,
    slice_hessian,
    slice_hessian_fd,
)
from landscape.engine.device import Device, limited_threads, resolve_device
from landscape.engine.directions import (
    NORMALIZATIONS,
    ONE_DIM_CHOICES,
    Normalization,
    OneDim,
    Params,
    cosine,
    parameters_of,
    pca_directions,
    random_directions,
    three_model_plane,
)
from landscape.engine.nets import ACTIVATIONS, Activation, MultiBranchNet, mlp
from landscape.engine.problem import LossFn, Problem
from landscape.engine.progress import Progress, silent
from landscape.engine.surface import (
    interpolate,
    path_taken,
    surface_2d,
    surface_2d_band,
    surface_points,
)
from landscape.engine.validation import (
    COST_LIMIT,
    check_choice,
    check_cost,
    check_integer,
    check_number,
)
from landscape.files import presets, surface_files, uploads
from landscape.server import seeding, study_parts

Model = Literal["multibranch", "mlp", "upload"]
MODELS: tuple[Model, ...] = get_args(Model)
Dataset = Literal["digits", "iris", "moons", "upload"]
DATASETS: tuple[Dataset, ...] = get_args(Dataset)
Directions = Literal["random", "pca", "three_models", "sharpest"]
DIRECTIONS: tuple[Directions, ...] = get_args(Directions)
SLICE_POINTS = 61
INTERPOLATION_TS = np.linspace(-0.5, 1.5, 41)
BAND_REPEATS = 5
MOONS_SAMPLES = 400
MAX_CHECKPOINTS = 60
EXACT_LIMIT = 2000  # dense Hessian at the centre up to this many parameters
CENTRE_BUDGET = curvature.DEFAULT_BUDGET  # Lanczos steps at most for the centre's evidence
# The map stops each point once both extreme Ritz residuals are <= 1e-3 max|theta| (lambda_min
# to about 1% on the default preset in ~20 steps; 1e-4 there needs the whole budget, 7x the
# time); the centre uses curvature.DEFAULT_TOLERANCE = 1e-4.
MAP_TOLERANCE = 1e-3
MAX_LANCZOS = 200
TRACE_PRODUCTS = 30  # for Hutchinson and for Hutch++
DENSITY_PROBES, DENSITY_ITERATIONS = 6, 30  # SLQ at the centre
TRAINING_POINTS, TRAINING_PROBES, TRAINING_ITERATIONS = 5, 3, 15  # SLQ along training

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Config:
    """Every knob of the Lab; the defaults render in a few seconds on a 2-core CPU."""

    model: Model = "multibranch"
    branches: int = 16
    width: int = 8
    depth: int = 1
    hidden: int = 32  # MLP: two hidden layers of this width (three Linear layers)
    activation: Activation = "relu"
    dataset: Dataset = "digits"
    model_upload: str = ""  # SHA-256 of an uploaded ONNX file (engine.uploads.store)
    data_upload: str = ""  # SHA-256 of an uploaded CSV or NPZ file
    data_name: str = ""  # the uploaded data file's name (its suffix gives the format)
    epochs: int = 60
    lr: float = 0.01
    directions: Directions = "random"
    normalization: Normalization = "filter"
    one_dim: OneDim = "zero"
    span: float = 1.0
    resolution: int = 31
    sample_size: int = 0  # 0: all samples; else 1-D slices show mean +/- std over sub-samples
    curvature_resolution: int = 5  # 0 switches the curvature map off
    lanczos_iterations: int = 60  # the Lanczos budget per map point (stops early on residuals)
    seed: int = 0
    device: Device = "auto"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field outside its allowed range."""
        check_choice("model", self.model, MODELS)
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("directions", self.directions, DIRECTIONS)
        check_choice("normalization", self.normalization, NORMALIZATIONS)
        check_choice("one_dim", self.one_dim, ONE_DIM_CHOICES)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_integer("branches", self.branches, 1, 256)
        check_integer("width", self.width, 1, 512)
        check_integer("depth", self.depth, 1, 4)
        check_integer("hidden", self.hidden, 1, 1024)
        check_integer("epochs", self.epochs, 0, 5000)
        check_number("lr", self.lr, 1e-6, 1.0)
        check_number("span", self.span, 0.01, 10.0)
        check_integer("resolution", self.resolution, 5, 101)
        check_integer("sample_size", self.sample_size, 0, uploads.MAX_ROWS)
        if self.curvature_resolution != 0:
            check_integer("curvature_resolution", self.curvature_resolution, 2, 15)
        check_integer("lanczos_iterations", self.lanczos_iterations, 2, MAX_LANCZOS)
        check_integer("seed", self.seed, 0, 2**31 - 1)
        if self.model == "multibranch":
            parameters = self.branches * (
                64 * self.width + (self.depth - 1) * self.width**2 + 10 * self.width
            )
        else:
            parameters = 64 * self.hidden + self.hidden**2 + 10 * self.hidden
        samples = self.sample_size or 1797
        check_cost(
            "training and the surface (samples x parameters x (epochs + resolution^2))",
            samples
            * parameters
            * (
                6.0 * self.epochs
                + 2.0 * self.resolution**2
                + 4.0 * self.lanczos_iterations * self.curvature_resolution**2
            ),
            COST_LIMIT,
            "multiply-adds",
            "lower epochs, resolution, the curvature grid or the model's size",
        )
        if self.model == "upload" and not _DIGEST.match(self.model_upload):
            raise ValueError("model_upload must name an uploaded ONNX file: upload one")
        if self.dataset == "upload" and not (
            _DIGEST.match(self.data_upload) and self.data_name.lower().endswith((".csv", ".npz"))
        ):
            raise ValueError("data_upload must name an uploaded .csv or .npz file: upload one")
        if self.directions == "pca" and self.epochs < 3:
            raise ValueError(f"epochs must be >= 3 for PCA directions, got {self.epochs}")
        if self.directions == "three_models" and self.model == "upload":
            raise ValueError("directions='three_models' needs a built-in model (three seeds)")


# The Result is flat (one NumPy array or scalar per field: one NPZ array, one JSON entry, and run
# files of every release load by field name), and its fields come in five groups, one per step of
# `run`. Each group is a dataclass of its own; `Result` inherits their fields, in the order
# surface, plane, slices, curvature, training. A run that diverged has the training group only
# (`_diverged` fills the others with empty arrays and NaN).


@dataclass
class Surface:
    """The loss surface on the plane ``theta + a d1 + b d2`` (group of `Result`)."""

    alphas: np.ndarray  # (R,)
    betas: np.ndarray  # (R,)
    surface: np.ndarray  # (R, R), Z[i, j] = L(theta + alphas[i] d1 + betas[j] d2)
    surface_method: str  # the engine path: fast, loop, or vmap and the layers it hoists
    surface_seconds: float
    center_loss: float


@dataclass
class Plane:
    """The plane's directions and the points marked on it (group of `Result`)."""

    direction_cosine: float
    trajectory: np.ndarray  # (T, 2) checkpoints projected on the PCA plane; (0, 2) otherwise
    trajectory_loss: np.ndarray  # (T,) the loss at those projected points
    explained_variance: np.ndarray  # (2,) PCA ratios; zeros otherwise
    model_points: np.ndarray  # (3, 2) the three models in their plane; (0, 2) otherwise
    model_losses: np.ndarray  # (3,) their losses; (0,) otherwise


@dataclass
class Slices:
    """1-D slices through the centre and the interpolation from the initial model (group)."""

    slice_ts: np.ndarray  # (S,)
    slice_d1: np.ndarray  # (S,) L(theta + t d1)
    slice_d2: np.ndarray  # (S,) L(theta + t d2)
    slice_d1_std: np.ndarray  # (S,) spread over sub-samples; zeros on the full data
    slice_d2_std: np.ndarray  # (S,)
    interpolation_ts: np.ndarray  # (M,)
    interpolation: np.ndarray  # (M,) L((1 - t) theta_init + t theta_trained)


@dataclass
class Curvature:
    """Hessian eigenvalues on a coarse grid, the slice Hessian and the trace (group)."""

    curvature_alphas: np.ndarray  # (C,)
    curvature_betas: np.ndarray  # (C,)
    lambda_min: np.ndarray  # (C, C)
    lambda_max: np.ndarray  # (C, C)
    curvature_ratio: np.ndarray  # (C, C) |lambda_min / lambda_max|
    slice_hessian: np.ndarray  # (2, 2) [d_i^T H d_j] at the centre, by Hessian-vector products
    slice_hessian_fd: np.ndarray  # (2, 2) the same by central differences of the surface
    slice_eigenvalues: np.ndarray  # (2,) of slice_hessian, ascending
    slice_fd_eigenvalues: np.ndarray  # (2,) of slice_hessian_fd, ascending
    hessian_trace: float  # Hutchinson at the centre
    hessian_trace_error: float


@dataclass
class Training:
    """The trained model and its data (group of `Result`)."""

    loss_history: np.ndarray  # (E,) training loss per epoch
    train_accuracy: float  # nan for regression
    n_parameters: int
    n_samples: int
    task: str
    model_name: str


def _empty(*shape: int) -> np.ndarray:
    return np.zeros(shape)


@dataclass
class Evidence:
    """What the curvature proves, the spectrum and the traces (group of `Result`).

    Added after run files were first saved: every field has a default (empty arrays, NaN), so
    older run files load. States: -1 negative curvature found, 0 none found, 1 convex here.
    """

    curvature_state: np.ndarray = field(default_factory=lambda: _empty(0, 0))  # (C, C)
    curvature_rayleigh: np.ndarray = field(default_factory=lambda: _empty(0, 0))  # (C, C)
    curvature_bound: np.ndarray = field(default_factory=lambda: _empty(0, 0))  # (C, C), p 0.99
    curvature_iterations: np.ndarray = field(default_factory=lambda: _empty(0, 0))  # (C, C)
    centre_state: int = 0
    centre_exact: bool = False  # from the dense Hessian's eigenvalues
    centre_lambda_min: float = float("nan")  # smallest Ritz value, or exact eigenvalue
    centre_lambda_max: float = float("nan")
    centre_rayleigh: float = float("nan")  # v^T H v of the smallest Ritz vector, in float64
    centre_residual: float = float("nan")  # ||H v - rho v||: an eigenvalue lies that close
    centre_bound: float = float("nan")  # lambda_min >= bound with probability >= 0.99
    centre_iterations: int = 0
    sharpest: np.ndarray = field(default_factory=lambda: _empty(0))  # (2,) top eigenvalues
    exact_eigenvalues: np.ndarray = field(default_factory=lambda: _empty(0))  # (P,) if small
    density_grid: np.ndarray = field(default_factory=lambda: _empty(0))  # (G,)
    density: np.ndarray = field(default_factory=lambda: _empty(0))  # (G,) SLQ at the centre
    negative_mass: float = float("nan")  # SLQ share of the spectrum below 0
    negative_mass_error: float = float("nan")  # its standard error over probes
    negative_threshold: float = float("nan")  # the mass counts eigenvalues below -threshold
    training_epochs: np.ndarray = field(default_factory=lambda: _empty(0))  # (T,)
    training_negative_mass: np.ndarray = field(default_factory=lambda: _empty(0))  # (T,)
    training_negative_mass_error: np.ndarray = field(default_factory=lambda: _empty(0))  # (T,)
    training_negative_threshold: np.ndarray = field(default_factory=lambda: _empty(0))  # (T,)
    hutchpp_trace: float = float("nan")  # Hutch++ with as many products as Hutchinson
    hutchpp_trace_error: float = float("nan")
    exact_trace: float = float("nan")  # of the dense Hessian, when P <= EXACT_LIMIT


@dataclass
class Result(Evidence, Training, Curvature, Slices, Plane, Surface):
    """Surface, slices, interpolation and curvature of one trained model (NumPy only).

    The fields are those of `Surface`, `Plane`, `Slices`, `Curvature`, `Training` and
    `Evidence`, in that order, then ``diverged`` and ``message``.
    """

    diverged: bool = False
    message: str = ""

    @classmethod
    def of(
        cls,
        surface: Surface,
        plane: Plane,
        slices: Slices,
        curvature: Curvature,
        training: Training,
        evidence: Evidence,
    ) -> Result:
        """The result of a run that went through: the union of its groups' fields."""
        groups = (surface, plane, slices, curvature, training, evidence)
        values = {name: v for group in groups for name, v in _values(group).items()}
        return cls(**values, diverged=False, message="")


#: What a run file may hold for each Result field (landscape.files.results.check_result):
#: kind f/i/b/s, ! finite, dimensions named alike agree; a Config field's name is its value.
RESULT_SHAPES: dict[str, str] = {
    "alphas": "f![R?]",
    "betas": "f![R?]",
    "surface": "f[R?,R?]",
    "surface_method": "s",
    "surface_seconds": "f",
    "center_loss": "f",
    "direction_cosine": "f",
    "trajectory": "f[T?,2]",
    "trajectory_loss": "f[T?]",
    "explained_variance": "f[E?]",
    "model_points": "f[P?,2]",
    "model_losses": "f[P?]",
    "slice_ts": "f![L?]",
    "slice_d1": "f[L?]",
    "slice_d2": "f[L?]",
    "slice_d1_std": "f[L?]",
    "slice_d2_std": "f[L?]",
    "interpolation_ts": "f![Q?]",
    "interpolation": "f[Q?]",
    "curvature_alphas": "f![C?]",
    "curvature_betas": "f![C?]",
    "lambda_min": "f[C?,C?]",
    "lambda_max": "f[C?,C?]",
    "curvature_ratio": "f[C?,C?]",
    "slice_hessian": "f[2,2]",
    "slice_hessian_fd": "f[2,2]",
    "slice_eigenvalues": "f[2]",
    "slice_fd_eigenvalues": "f[2]",
    "hessian_trace": "f",
    "hessian_trace_error": "f",
    "loss_history": "f[H?]",
    "train_accuracy": "f",
    "n_parameters": "i",
    "n_samples": "i",
    "task": "s",
    "model_name": "s",
    "diverged": "b",
    "message": "s",
    "curvature_state": "f[C?,C?]|f[0,0]",  # -1, 0, 1 (an empty default is float)
    "curvature_rayleigh": "f[C?,C?]|f[0,0]",
    "curvature_bound": "f[C?,C?]|f[0,0]",
    "curvature_iterations": "f[C?,C?]|f[0,0]",
    "centre_state": "i",
    "centre_exact": "b",
    "centre_lambda_min": "f",
    "centre_lambda_max": "f",
    "centre_rayleigh": "f",
    "centre_residual": "f",
    "centre_bound": "f",
    "centre_iterations": "i",
    "sharpest": "f[K?]",
    "exact_eigenvalues": "f[PE?]",
    "density_grid": "f![G?]",
    "density": "f[G?]",
    "negative_mass": "f",
    "negative_mass_error": "f",
    "negative_threshold": "f",
    "training_epochs": "f![TE?]",
    "training_negative_mass": "f[TE?]",
    "training_negative_mass_error": "f[TE?]",
    "training_negative_threshold": "f[TE?]",
    "hutchpp_trace": "f",
    "hutchpp_trace_error": "f",
    "exact_trace": "f",
}

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


class _Diverged(Exception):
    """Training met a non-finite loss; `_run` turns it into a `Result` with ``diverged=True``."""

    def __init__(self, message: str, model: nn.Module, history: np.ndarray) -> None:
        super().__init__(message)
        self.message, self.model, self.history = message, model, history


@dataclass
class _Data:
    """The data as arrays (``X`` (n, ...), ``y`` (n,) labels or (n, k) targets) and tensors."""

    X: np.ndarray
    y: np.ndarray
    task: str  # "classification" or "regression"
    X_t: torch.Tensor  # float32 on the device
    y_t: torch.Tensor  # labels, or float32 targets
    loss_fn: LossFn  # cross-entropy or mean squared error
    outputs: int  # the model's output width: classes, or targets per sample


@dataclass
class _Trained:
    """The trained models (three for the three-model plane) and the first one's history."""

    models: list[nn.Module]
    history: np.ndarray  # (E,) loss per epoch of models[0]
    trajectory: list[Params]  # checkpoints of models[0], initial to final
    start: Params  # models[0] before training
    restored: bool = False  # read from the presets' stored training (`_restored`), not trained


# The parts of runs kept between runs (`landscape.server.study_parts`), by table: the trainings
# (data, trained models); and, each with whether it came from a stored preset (`_kept`), the
# curvature and evidence, the centre's evidence without the map, the slice Hessian with the
# trace, the slices.
TRAINED, CURVATURES, CENTRES, HESSIANS, SLICES = (
    f"lab.{table}" for table in ("trained", "curvatures", "centres", "hessians", "slices")
)
_TRAINING_LOCK = threading.Lock()
_TRAINING: dict[Config, threading.Lock] = {}  # one training per key at a time


@dataclass
class _Frame:
    """The plane ``center + a d1 + b d2`` and the grid over ``[-extent, extent]^2``."""

    center: Params
    d1: Params
    d2: Params
    extent: float
    grid: np.ndarray  # (R,)
    trajectory: np.ndarray  # (T, 2) PCA coordinates of the checkpoints; (0, 2) otherwise
    explained_variance: np.ndarray  # (2,)
    model_points: np.ndarray  # (3, 2) the three models' coordinates; (0, 2) otherwise


def training_key(config: Config) -> Config:
    """``config`` with every field that the data and the training do not read set to its
    default: configurations with equal keys share one training (`_trained`)."""
    default = Config()
    return replace(
        config,
        normalization=default.normalization,
        one_dim=default.one_dim,
        span=default.span,
        resolution=default.resolution,
        sample_size=default.sample_size,
        curvature_resolution=default.curvature_resolution,
        lanczos_iterations=default.lanczos_iterations,
        directions=config.directions if config.directions == "three_models" else "random",
    )


def _trained(config: Config, report: Progress) -> tuple[_Data, _Trained]:
    """The data and the trained models of ``config`` (`_shared_training`), the models this
    caller's own copies: ``torch.func.functional_call`` (the surface, the curvature) swaps a
    module's parameters in place while it evaluates, and forward hooks are the module's, so two
    runs evaluating one module object at once would read each other's weights. The server runs
    runs of one training at once (several ranges or resolutions, `serving.RunQueue`'s slots);
    sharing the models gave surfaces off by up to 34 in loss and functorch errors."""
    data, trained = _shared_training(config, report)
    return data, replace(trained, models=[copy.deepcopy(m) for m in trained.models])


def _shared_training(config: Config, report: Progress) -> tuple[_Data, _Trained]:
    """The data and the trained models of ``config``, from a cache when this training was seen
    before: moving the range, the resolution or the curvature controls reuses it. The cached
    models are never evaluated, only copied (`_trained`). One training per key at a time: a
    second caller waits for the first one's models (`prepare` may have started it). A diverged
    training raises `_Diverged` and is not kept. The training of a key that a stored preset has
    is restored from it (`_restored`), not trained again."""
    key = training_key(config)
    with _TRAINING_LOCK:
        found = _kept_training(key)
        flight = _TRAINING.setdefault(key, threading.Lock())
    if found is not None:
        return found
    try:
        with flight:
            found = _kept_training(key)
            if found is None:
                data = _prepare(config)
                trained = _restored(config, data) or _train_models(config, data, report)
                found = (data, trained)
                study_parts.keep(TRAINED, key, found)
    finally:
        with _TRAINING_LOCK:
            _TRAINING.pop(key, None)
    return found


def _kept_training(key: Config) -> tuple[_Data, _Trained] | None:
    """The training kept under ``key`` (`TRAINED`), unless it was restored from a
    stored preset and this is inside `presets.afresh` (where everything is computed anew)."""
    found = study_parts.kept(TRAINED, key)
    if found is not None and found[1].restored and presets.afresh_active():
        return None
    return found


def trained_ready(config: Config) -> bool:
    """Whether the models of ``config`` are trained (or restored) and kept (`_trained`)."""
    return study_parts.holds(TRAINED, training_key(config))


def prepare(config: Config) -> None:
    """Train ``config``'s models now and keep them (`_shared_training`), so that the runs that
    follow (a new range or resolution) find them; a page calls it in the background while it
    shows a stored preset, which needed no training (the preset's stored training is restored
    at once, `_restored`). A diverged training is left for `run` to report."""
    config.validate()
    with limited_threads(1):
        try:
            _shared_training(config, silent)
        except _Diverged:
            pass


def _defaults(config: Config, *names: str) -> Config:
    """``config`` with the fields ``names`` set to their defaults."""
    default = Config()
    return replace(config, **{name: getattr(default, name) for name in names})


def curvature_key(config: Config) -> Config:
    """``config`` without what the curvature (`_curvature`, `_centre_evidence`) does not read: the
    surface's resolution and the slices' sub-sample."""
    return _defaults(config, "resolution", "sample_size")


def centre_key(config: Config) -> Config:
    """``config`` without what the centre's evidence (`_centre_evidence`) does not read: also
    the plane's range, its random directions' normalisation and the curvature map's grid (the
    centre, the trajectory and the seed fix it)."""
    return _defaults(
        curvature_key(config),
        "span",
        "normalization",
        "one_dim",
        "curvature_resolution",
        "lanczos_iterations",
    )


def curvature_ready(config: Config) -> bool:
    """Whether a run of ``config`` finds its curvature (the map included) already computed, in
    memory or with a stored preset of the same `curvature_key`: it then costs the training (if
    not cached), the surface and the slices only."""
    key = curvature_key(config)
    return study_parts.holds(CURVATURES, key) or _stored_groups(key) is not None


def hessian_key(config: Config) -> Config:
    """``config`` without what the slice's exact 2x2 Hessian and Hutchinson's trace at the
    centre (`_centre_hessian`) do not read: the range (the directions are not scaled by it) and
    the curvature map's grid."""
    return _defaults(curvature_key(config), "span", "curvature_resolution", "lanczos_iterations")


def slices_key(config: Config) -> Config:
    """``config`` without what the slices (`_slices`) do not read: the curvature map's grid,
    and the resolution up to `SLICE_POINTS` (the slices have ``max(SLICE_POINTS, resolution)``
    points)."""
    return replace(
        _defaults(config, "curvature_resolution", "lanczos_iterations"),
        resolution=max(SLICE_POINTS, config.resolution),
    )


def clear_caches() -> None:
    """Forget every kept training, curvature and centre evidence (tests start afresh)."""
    for table in (TRAINED, CURVATURES, CENTRES, HESSIANS, SLICES):
        study_parts.forget(table)


def _stored_groups(key: Config, *groups: type) -> list[Any] | None:
    """The ``groups`` of the stored preset whose configuration is ``key`` (a run with these
    settings already computed them: `landscape.files.presets.stored_part`), or None."""
    stored = presets.stored_part(__name__, key)
    if stored is None or stored.diverged:
        return None
    return [
        group(**{f.name: getattr(stored, f.name) for f in dataclasses.fields(group)})
        for group in groups
    ]


def _kept(
    table: str,
    key: Config,
    compute: Callable[[], Any],
    stored: Callable[[list[Any]], Any],
    *groups: type,
) -> Any:
    """The part kept under ``key`` in ``table`` (`landscape.server.study_parts`); else
    ``stored(groups of the stored preset of key)`` when there is one (`_stored_groups`), else
    ``compute()``; kept with whether it came from a preset: inside `presets.afresh` such a part
    is computed anew."""
    entry = study_parts.kept(table, key)
    if entry is not None and not (entry[1] and presets.afresh_active()):
        return entry[0]
    parts = _stored_groups(key, *groups)
    found = stored(parts) if parts is not None else compute()
    study_parts.keep(table, key, (found, parts is not None))
    return found


def _cached_curvature(
    config: Config, problem: Problem, frame: _Frame, trained: _Trained, report: Progress
) -> tuple[Curvature, Evidence]:
    """`_curvature` and the evidence, kept per `curvature_key` (moving the resolution recomputes
    only the surface and the slices), or taken from the stored preset of that key. Their
    parts that the range does not change are kept too: the centre's evidence per `centre_key`
    and the slice Hessian and trace per `hessian_key`, so moving the range computes only the map
    and the slice's finite differences."""

    def compute() -> tuple[Curvature, Evidence]:
        curvature, cmap = _curvature(config, problem, frame, report)
        centre = _kept(
            CENTRES,
            centre_key(config),
            lambda: _centre_evidence(config, problem, frame, trained, report),
            lambda parts: replace(parts[0], **_map_evidence(None)),
            Evidence,
        )
        return curvature, replace(centre, **_map_evidence(cmap))

    return _kept(
        CURVATURES, curvature_key(config), compute, lambda parts: tuple(parts), Curvature, Evidence
    )


def _cached_slices(config: Config, problem: Problem, frame: _Frame, start: Params) -> Slices:
    """`_slices`, kept per `slices_key` (up to `SLICE_POINTS`, the slices do not depend on the
    resolution) or taken from the stored preset of that key."""
    return _kept(
        SLICES,
        slices_key(config),
        lambda: _slices(config, problem, frame, start),
        lambda parts: parts[0],
        Slices,
    )


def _run(config: Config, report: Progress, threads_at_start: int) -> Result:
    try:
        data, trained = _trained(config, report)
    except _Diverged as error:
        data = _prepare(config)
        return _diverged(config, data, error.message, error.model, error.history)
    model = trained.models[0]
    report(0.4, "Directions")
    problem = Problem(model, data.loss_fn, data.X_t, data.y_t)
    frame = _frame(config, trained, problem)
    report(0.45, "Loss surface")
    surface = _surface(problem, frame, threads_at_start)
    if not np.all(np.isfinite(surface.surface)):
        message = "the surface holds non-finite losses: lower the range"
        return _diverged(config, data, message, model, trained.history)
    plane = _plane(problem, frame)
    report(0.7, "Slices and interpolation")
    slices = _cached_slices(config, problem, frame, trained.start)
    report(0.75, "Curvature")
    curvature, evidence = _cached_curvature(config, problem, frame, trained, report)
    report(1.0, "Done")
    training = Training(
        loss_history=trained.history,
        train_accuracy=_accuracy(model, data.X_t, data.y_t, data.task),
        n_parameters=_size(model),
        n_samples=len(data.y),
        task=data.task,
        model_name=_model_name(config, data.X.shape[1:], data.outputs),
    )
    return Result.of(surface, plane, slices, curvature, training, evidence)


def _prepare(config: Config) -> _Data:
    """The configured data set on the configured device, with its task and loss."""
    device = resolve_device(config.device)
    X, y, task = _data(config)
    X_t = torch.as_tensor(X, dtype=torch.float32, device=device)
    y_t = torch.as_tensor(y, device=device)
    y_t = y_t.float() if task == "regression" else y_t
    loss_fn: LossFn = F.cross_entropy if task == "classification" else F.mse_loss
    outputs = int(y.max()) + 1 if task == "classification" else int(np.prod(y.shape[1:]) or 1)
    return _Data(X, y, task, X_t, y_t, loss_fn, outputs)


def _model_count(config: Config) -> int:
    """How many models are trained: three for the three-model plane (seeds ``seed + k``)."""
    return 3 if config.directions == "three_models" else 1


def _train_models(config: Config, data: _Data, report: Progress) -> _Trained:
    """One model (three for the three-model plane, seeds ``seed + k``), trained; raises
    `_Diverged` when a loss is not finite."""
    models: list[nn.Module] = []
    history, trajectory, start = np.zeros(0), [], {}
    for k in range(_model_count(config)):
        model = _model(config, data.X, data.y, data.task, data.outputs, seed=config.seed + k)
        model = model.to(data.X_t.device)
        initial = parameters_of(model)
        report(0.35 * k / 3, f"Training model {k + 1}")
        losses, checkpoints = _train(model, data.loss_fn, data.X_t, data.y_t, config, report, k)
        if k == 0:
            history, trajectory, start = losses, checkpoints, initial
        if not np.all(np.isfinite(losses)):
            raise _Diverged("training diverged (NaN/inf): lower the learning rate", model, losses)
        models.append(model)
    return _Trained(models, history, trajectory, start)


def training_state(config: Config) -> dict[str, np.ndarray]:
    """``config``'s training (`_trained`) as named arrays, which `landscape.precompute` stores
    once per `training_key` of the presets and `_restored` reads back instead of training:

    - ``model/<name>`` (K, *shape): entry ``<name>`` of the K models' state dicts (float32);
    - ``trajectory/<name>`` (T, *shape): parameter ``<name>`` at the T checkpoints of models[0]
      (`_train`: initial, every ``epochs // MAX_CHECKPOINTS`` epochs, final);
    - ``history`` (E,): the loss per epoch of models[0] (float64).

    The start is not stored: training starts from the model that `_model` builds from the seed.
    """
    with limited_threads(1):
        _, trained = _shared_training(config, silent)
    state = {"history": trained.history}
    for name in trained.models[0].state_dict():
        state[f"model/{name}"] = np.stack(
            [m.state_dict()[name].detach().cpu().numpy() for m in trained.models]
        )
    for name in trained.start:
        state[f"trajectory/{name}"] = np.stack([c[name].cpu().numpy() for c in trained.trajectory])
    return state


def _restored(config: Config, data: _Data) -> _Trained | None:
    """The training of ``config`` read back from the presets (`training_state`,
    `presets.stored_training` of its `training_key`) onto the data's device: the models built
    by `_model` from their seeds (models[0] so is the start), then their stored weights loaded.
    None when no preset stores this key, inside `presets.afresh`, or when the stored arrays do
    not fit these models (a file from another model, cut short): `_trained` then trains."""
    state = presets.stored_training(__name__, training_key(config))
    if state is None:
        return None
    device = data.X_t.device
    models: list[nn.Module] = []
    start: Params = {}
    try:
        for k in range(_model_count(config)):
            model = _model(config, data.X, data.y, data.task, data.outputs, seed=config.seed + k)
            model = model.to(device)
            if k == 0:
                start = parameters_of(model)
            weights = {n: state[f"model/{n}"][k] for n in model.state_dict()}
            model.load_state_dict({n: torch.as_tensor(w) for n, w in weights.items()})
            models.append(model.eval())
        trajectory = _checkpoints(state, start)
        history = state["history"]
    except (KeyError, IndexError, RuntimeError, ValueError):
        return None
    if history.shape != (config.epochs,):
        return None
    return _Trained(models, history, trajectory, start, restored=True)


def _checkpoints(state: dict[str, np.ndarray], start: Params) -> list[Params]:
    """The checkpoints ``trajectory/<name>`` (T, *shape) of a stored training as T parameter
    sets like ``start`` (names, shapes, device); ValueError when they do not fit it."""
    stacks = {name: state[f"trajectory/{name}"] for name in start}
    counts = {len(stack) for stack in stacks.values()}
    if len(counts) != 1 or any(s.shape[1:] != start[n].shape for n, s in stacks.items()):
        raise ValueError("the stored checkpoints do not fit the model")
    return [
        {n: torch.tensor(s[t], device=start[n].device) for n, s in stacks.items()}
        for t in range(counts.pop())
    ]


def _frame(config: Config, trained: _Trained, problem: Problem) -> _Frame:
    """The plane of the configured kind, and its extent: ``span`` times 1 (random directions),
    1.2 times the farthest checkpoint (PCA), 1.3 times the farthest model (three models), or
    `_sharpest_radius` (the two sharpest directions, unit eigenvectors of the Hessian)."""
    model = trained.models[0]
    no_points = np.zeros((0, 2))
    if config.directions == "random":
        d1 = random_directions(model, 2 * config.seed, config.normalization, config.one_dim)
        d2 = random_directions(model, 2 * config.seed + 1, config.normalization, config.one_dim)
        center, radius = parameters_of(model), 1.0
        pca_coords, explained, plane_points = no_points, np.zeros(2), no_points
    elif config.directions == "pca":
        pca = pca_directions(trained.trajectory)
        center, d1, d2 = trained.trajectory[-1], pca.d1, pca.d2
        pca_coords, explained, plane_points = (
            pca.coordinates,
            pca.explained_variance_ratio,
            no_points,
        )
        radius = 1.2 * float(np.abs(pca_coords).max())
    elif config.directions == "three_models":
        plane = three_model_plane(trained.models)
        center, d1, d2 = plane.center, plane.d1, plane.d2
        pca_coords, explained, plane_points = no_points, np.zeros(2), plane.coordinates
        radius = 1.3 * float(np.abs(plane_points).max())
    else:
        center = parameters_of(model)
        pairs = curvature.top_eigenpairs(problem, center, k=2, seed=config.seed)
        d1, d2 = pairs.vectors
        pca_coords, explained, plane_points = no_points, np.zeros(2), no_points
        radius = _sharpest_radius(problem, center, d1, float(pairs.values[0]))
    extent = config.span * max(radius, 1e-6)
    grid = np.linspace(-extent, extent, config.resolution)
    return _Frame(center, d1, d2, extent, grid, pca_coords, explained, plane_points)


def _surface(problem: Problem, frame: _Frame, threads: int) -> Surface:
    """The surface on the frame's grid, timed, computed with ``threads`` threads."""
    started = time.perf_counter()
    with _threads(threads):
        Z = surface_2d(problem, frame.d1, frame.d2, frame.grid, frame.grid, center=frame.center)
    seconds = time.perf_counter() - started
    return Surface(
        alphas=frame.grid,
        betas=frame.grid,
        surface=Z,
        surface_method=path_taken(problem, center=frame.center),
        surface_seconds=seconds,
        center_loss=float(_on_plane(problem, frame, np.zeros((1, 2)))[0]),
    )


def _sharpest_radius(problem: Problem, center: Params, d1: Params, top: float) -> float:
    """Half-width of the plane along the sharpest directions (unit vectors): where the quadratic
    model ``L0 + top r^2 / 2`` has risen by ``max(L0, 1e-3)`` (the loss about doubles along d1),
    at most the norm of the weights."""
    loss = float(surface_points(problem, d1, d1, np.zeros((1, 2)), center=center)[0])
    weights = max(float(torch.cat([t.reshape(-1) for t in center.values()]).double().norm()), 1e-3)
    if top <= 0:
        return weights
    return float(min(np.sqrt(2 * max(loss, 1e-3) / top), weights))


def _on_plane(problem: Problem, frame: _Frame, coords: np.ndarray) -> np.ndarray:
    """Losses at the plane coordinates ``coords`` (P, 2), shape (P,)."""
    if len(coords) == 0:
        return np.zeros(0)
    return surface_points(problem, frame.d1, frame.d2, coords, center=frame.center)


def _plane(problem: Problem, frame: _Frame) -> Plane:
    """The directions' cosine, and the checkpoints or models on the plane with their losses."""
    return Plane(
        direction_cosine=cosine(frame.d1, frame.d2),
        trajectory=frame.trajectory,
        trajectory_loss=_on_plane(problem, frame, frame.trajectory),
        explained_variance=frame.explained_variance,
        model_points=frame.model_points,
        model_losses=_on_plane(problem, frame, frame.model_points),
    )


def _slices(config: Config, problem: Problem, frame: _Frame, start: Params) -> Slices:
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


def _curvature(
    config: Config, problem: Problem, frame: _Frame, report: Progress
) -> tuple[Curvature, CurvatureMap | None]:
    """The slice Hessian (exact and by differences), Hutchinson's trace with 30 probes, and the
    curvature evidence on a ``curvature_resolution``-square grid (none when it is 0): Lanczos
    with the residual rule at `MAP_TOLERANCE` and a budget of ``lanczos_iterations`` steps."""
    center, d1, d2 = frame.center, frame.d1, frame.d2
    H2, trace, trace_error = _kept(
        HESSIANS,
        hessian_key(config),
        lambda: _centre_hessian(config, problem, frame),
        lambda parts: (
            parts[0].slice_hessian,
            parts[0].hessian_trace,
            parts[0].hessian_trace_error,
        ),
        Curvature,
    )
    H2_fd = _slice_hessian_by_differences(problem, d1, d2, center, frame.extent)
    c = config.curvature_resolution
    coarse = np.linspace(-frame.extent, frame.extent, c) if c else np.zeros(0)
    if c:
        cmap = curvature_map(
            problem,
            d1,
            d2,
            coarse,
            coarse,
            center=center,
            iterations=min(config.lanczos_iterations, _size(problem.model)),
            seed=config.seed,
            progress=lambda f, s: report(0.85 + 0.15 * f, s),
            tolerance=MAP_TOLERANCE,
        )
        lo, hi, ratio = cmap.lambda_min, cmap.lambda_max, cmap.ratio
    else:
        cmap = None
        lo = hi = ratio = np.zeros((0, 0))
    group = Curvature(
        curvature_alphas=coarse,
        curvature_betas=coarse,
        lambda_min=lo,
        lambda_max=hi,
        curvature_ratio=ratio,
        slice_hessian=H2,
        slice_hessian_fd=H2_fd,
        slice_eigenvalues=np.linalg.eigvalsh(H2),
        slice_fd_eigenvalues=np.linalg.eigvalsh(H2_fd),
        hessian_trace=trace,
        hessian_trace_error=trace_error,
    )
    return group, cmap


def _hessian_of(group: Curvature) -> tuple[np.ndarray, float, float]:
    return group.slice_hessian, group.hessian_trace, group.hessian_trace_error


def _centre_hessian(
    config: Config, problem: Problem, frame: _Frame
) -> tuple[np.ndarray, float, float]:
    """The slice's exact 2x2 Hessian at the centre, and Hutchinson's trace there with
    `TRACE_PRODUCTS` probes and its standard error."""
    H2 = slice_hessian(problem, frame.d1, frame.d2, frame.center)
    trace, error = hutchinson_trace(problem, frame.center, samples=TRACE_PRODUCTS, seed=config.seed)
    return H2, float(trace), float(error)


def _map_evidence(cmap: CurvatureMap | None) -> dict[str, np.ndarray]:
    """The `Evidence` fields that come from the curvature map: its states, Rayleigh quotients,
    bounds and Lanczos steps per point (empty without a map)."""
    return {
        "curvature_state": cmap.state if cmap else np.zeros((0, 0), dtype=np.int64),
        "curvature_rayleigh": cmap.rayleigh if cmap else np.zeros((0, 0)),
        "curvature_bound": cmap.bound if cmap else np.zeros((0, 0)),
        "curvature_iterations": (cmap.iterations.astype(np.float64) if cmap else np.zeros((0, 0))),
    }


def _centre_evidence(
    config: Config,
    problem: Problem,
    frame: _Frame,
    trained: _Trained,
    report: Progress,
) -> Evidence:
    """The centre's evidence (`_centre_curvature`), Hutch++, the SLQ density at the centre and
    its negative mass along training; the map's fields empty (`_map_evidence`)."""
    center = frame.center
    report(0.76, "Curvature at the centre")
    centre = _centre_curvature(problem, center, config.seed)
    plus = curvature.trace(
        problem, center, method="hutch++", products=TRACE_PRODUCTS, seed=config.seed
    )
    report(0.78, "Spectral density")
    spectrum = curvature.density(
        problem,
        center,
        iterations=min(DENSITY_ITERATIONS, _size(problem.model)),
        probes=DENSITY_PROBES,
        seed=config.seed,
    )
    epochs, masses, errors, thresholds = _density_along_training(
        problem,
        trained.trajectory,
        config,
        lambda f: report(0.8 + 0.05 * f, "Density along training"),
    )
    sharpest = np.zeros(0)
    if config.directions == "sharpest":
        sharpest = np.array(
            [curvature.slice_hessian(problem, frame.d1, frame.d2, center)[i, i] for i in range(2)]
        )
    return Evidence(
        **_map_evidence(None),
        centre_state=int(centre["state"]),
        centre_exact=bool(centre["exact"]),
        centre_lambda_min=float(centre["lambda_min"]),
        centre_lambda_max=float(centre["lambda_max"]),
        centre_rayleigh=float(centre["rayleigh"]),
        centre_residual=float(centre["residual"]),
        centre_bound=float(centre["bound"]),
        centre_iterations=int(centre["iterations"]),
        sharpest=sharpest,
        exact_eigenvalues=centre["eigenvalues"],
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
        exact_trace=float(centre["trace"]),
    )


def _centre_curvature(problem: Problem, center: Params, seed: int) -> dict:
    """The evidence at the centre (`curvature.curvature_evidence`): exact eigenvalues (and the
    trace, their sum) up to ``EXACT_LIMIT`` parameters, else Lanczos with the residual rule and
    at most ``CENTRE_BUDGET`` steps."""
    e = curvature.curvature_evidence(
        problem, center, max_iterations=CENTRE_BUDGET, seed=seed, exact_limit=EXACT_LIMIT
    )
    eigenvalues = e.eigenvalues if e.eigenvalues is not None else np.zeros(0)
    return {
        "n": _size(problem.model),
        "state": e.code,
        "exact": e.exact,
        "lambda_min": e.lambda_min,
        "lambda_max": e.lambda_max,
        "rayleigh": e.rayleigh,
        "residual": e.residual_min,
        "bound": e.bound,
        "epsilon": e.epsilon,
        "iterations": e.iterations,
        "eigenvalues": eigenvalues,
        "trace": float(eigenvalues.sum()) if e.exact else float("nan"),
    }


def _density_along_training(
    problem: Problem,
    trajectory: list[Params],
    config: Config,
    report: Callable[[float], None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SLQ negative mass, its standard error and its resolution threshold at
    ``TRAINING_POINTS`` checkpoints spread evenly over training, from the initial weights to
    the trained ones; and their epochs, each (T,)."""
    every = max(1, config.epochs // MAX_CHECKPOINTS)
    epochs = [0] + [
        e + 1 for e in range(config.epochs) if (e + 1) % every == 0 or e + 1 == config.epochs
    ]
    epochs = epochs[: len(trajectory)]
    picks = np.unique(np.linspace(0, len(trajectory) - 1, TRAINING_POINTS).round().astype(int))
    n = sum(p.numel() for p in problem.model.parameters())
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


def _size(model: nn.Module) -> int:
    """The number of parameters."""
    return sum(p.numel() for p in model.parameters())


@contextmanager
def _threads(count: int) -> Iterator[None]:
    """Inside `run`'s one-thread block, give one step (the surface) ``count`` threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _slice_hessian_by_differences(
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


def _data(config: Config) -> tuple[np.ndarray, np.ndarray, str]:
    if config.dataset == "digits":
        X, y = datasets.digits()
    elif config.dataset == "iris":
        X, y = datasets.iris()
    elif config.dataset == "moons":
        X, y = datasets.two_dimensional("moons", MOONS_SAMPLES, 0.2, config.seed)
    else:
        X, y = uploads.load_table(uploads.fetch(config.data_upload), config.data_name)
    if config.sample_size > len(y):
        raise ValueError(
            f"sample_size must be in [0, {len(y)}] for this data, got {config.sample_size}"
        )
    task = uploads.task_of(y)
    if task == "regression" and y.ndim == 1:
        y = y[:, None]  # one output per sample: (n, 1), as the model returns it
    return X, y, task


def _model(
    config: Config, X: np.ndarray, y: np.ndarray, task: str, outputs: int, seed: int
) -> nn.Module:
    if config.model == "upload":
        model = uploads.load_model(uploads.fetch(config.model_upload)).float()
        uploads.check_model(model, X, y, task)
        return model
    if X.ndim != 2:
        raise ValueError(f"built-in models need flat features (n, d), got X of shape {X.shape}")
    with seeding.seeded(seed):
        if config.model == "multibranch":
            built: nn.Module = MultiBranchNet(
                X.shape[1], outputs, config.branches, config.width, config.depth, config.activation
            )
        else:
            built = mlp(X.shape[1], outputs, [config.hidden, config.hidden], config.activation)
    return built


def _model_name(config: Config, shape: tuple[int, ...], outputs: int) -> str:
    if config.model == "upload":
        return "uploaded ONNX model"
    if config.model == "multibranch":
        return (
            f"MultiBranchNet({shape[0]}, {outputs}, branches={config.branches}, "
            f"width={config.width}, depth={config.depth}, {config.activation})"
        )
    return f"MLP {shape[0]}-{config.hidden}-{config.hidden}-{outputs} ({config.activation})"


def _train(
    model: nn.Module,
    loss_fn: Callable,
    X: torch.Tensor,
    y: torch.Tensor,
    config: Config,
    report: Progress,
    k: int,
) -> tuple[np.ndarray, list[Params]]:
    """Full-batch Adam (`_adam_step`); returns the loss per epoch and checkpoints (initial, ...,
    final)."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    every = max(1, config.epochs // MAX_CHECKPOINTS)
    checkpoints = [parameters_of(model)]
    losses = np.empty(config.epochs)
    for epoch in range(config.epochs):
        for p in params:
            p.grad = None
        loss = loss_fn(model(X), y)
        loss.backward()
        _adam_step(params, moments, epoch + 1, config.lr)
        losses[epoch] = loss.item()
        if not np.isfinite(losses[epoch]):
            return losses[: epoch + 1], checkpoints
        if (epoch + 1) % every == 0 or epoch + 1 == config.epochs:
            checkpoints.append(parameters_of(model))
        if epoch % 10 == 0:
            report(
                0.35 * (k + (epoch + 1) / config.epochs) / 3,
                f"Training model {k + 1}: epoch {epoch + 1} of {config.epochs}",
            )
    model.eval()
    return losses, checkpoints


ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults


@torch.no_grad()
def _adam_step(
    params: Sequence[torch.Tensor],
    moments: Sequence[tuple[torch.Tensor, torch.Tensor]],
    t: int,
    lr: float,
) -> None:
    """Step ``t`` (1, 2, ...) of Adam with torch's defaults, operation for operation as
    ``torch.optim.Adam`` on the CPU (so the trained weights are the same), without building
    an optimiser, whose first construction imports torch._dynamo (about 2 s)::

        m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
        w <- w - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """
    (beta1, beta2), step = ADAM_BETAS, float(t)
    for p, (mean, square) in zip(params, moments, strict=True):
        if p.grad is None:
            continue
        mean.lerp_(p.grad, 1 - beta1)
        square.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
        denom = (square.sqrt() / (1 - beta2**step) ** 0.5).add_(ADAM_EPS)
        p.addcdiv_(mean, denom, value=-(lr / (1 - beta1**step)))


def _slice(
    config: Config, problem: Problem, d: Params, ts: np.ndarray, center: Params
) -> tuple[np.ndarray, np.ndarray]:
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


def _accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, task: str) -> float:
    if task != "classification":
        return float("nan")
    with torch.no_grad():
        return float((model(X).argmax(1) == y).double().mean())


def _diverged(
    config: Config, data: _Data, message: str, model: nn.Module, history: np.ndarray
) -> Result:
    """The result of a run that met a non-finite loss: its training group (``history``, the
    loss per epoch up to the failure) and ``message``; every other group empty (`_EMPTY`)."""
    training = Training(
        loss_history=np.where(np.isfinite(history), history, np.nan),
        train_accuracy=float("nan"),
        n_parameters=_size(model),
        n_samples=len(data.y),
        task=data.task,
        model_name=config.model,
    )
    empty = {
        f.name: _EMPTY[str(f.type)]()
        for group in (Surface, Plane, Slices, Curvature)
        for f in dataclasses.fields(group)
    }
    return Result(**empty, **_values(training), diverged=True, message=message)


# The value of a field in a group that was not computed, by the field's type.
_EMPTY: dict[str, Callable[[], Any]] = {
    "np.ndarray": lambda: np.zeros(0),
    "float": lambda: float("nan"),
    "int": int,
    "str": str,
}


def _values(group: Surface | Plane | Slices | Curvature | Training | Evidence) -> dict[str, Any]:
    """The group's fields by name (not copied)."""
    return {f.name: getattr(group, f.name) for f in dataclasses.fields(group)}


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
    i = int(np.argmin(np.abs(opened.alphas)))
    j = int(np.argmin(np.abs(opened.betas)))
    empty, square = np.zeros(0), np.zeros((0, 0))
    ratio = opened.curvature_ratio
    has_curvature = ratio.size > 0
    task = {"cross_entropy": "classification", "mse": "regression"}.get(str(meta.get("loss")), "")
    path = str(meta.get("engine_path", "")) + (f", {meta['backend']}" if "backend" in meta else "")
    result = Result(
        alphas=opened.alphas,
        betas=opened.betas,
        surface=opened.loss,
        surface_method=path or "computed elsewhere",
        surface_seconds=float(meta.get("surface_seconds", float("nan"))),
        center_loss=float(opened.loss[i, j]),
        direction_cosine=float("nan"),
        trajectory=np.zeros((0, 2)),
        trajectory_loss=empty,
        explained_variance=np.zeros(2),
        model_points=np.zeros((0, 2)),
        model_losses=empty,
        slice_ts=opened.slice_ts,
        slice_d1=opened.slice_d1,
        slice_d2=opened.slice_d2,
        slice_d1_std=np.zeros_like(opened.slice_d1),
        slice_d2_std=np.zeros_like(opened.slice_d2),
        interpolation_ts=empty,
        interpolation=empty,
        curvature_alphas=opened.curvature_alphas,
        curvature_betas=opened.curvature_betas,
        lambda_min=opened.lambda_min if has_curvature else square,
        lambda_max=opened.lambda_max if has_curvature else square,
        curvature_ratio=ratio if has_curvature else square,
        slice_hessian=np.full((2, 2), np.nan),
        slice_hessian_fd=np.full((2, 2), np.nan),
        slice_eigenvalues=np.full(2, np.nan),
        slice_fd_eigenvalues=np.full(2, np.nan),
        hessian_trace=float("nan"),
        hessian_trace_error=float("nan"),
        loss_history=empty,
        train_accuracy=float("nan"),
        n_parameters=int(meta.get("n_parameters", 0)),
        n_samples=int(meta.get("n_samples", 0)),
        task=task,
        model_name=str(meta.get("model_file", "a computed surface")),
        diverged=False,
        message="",
    )
    return result, meta
