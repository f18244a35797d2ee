"""The Landscape Lab: train a model, then draw its loss surface, slices and curvature.

A built-in ``MultiBranchNet`` (seed eq. 16) or MLP, or an uploaded ONNX model, is trained
full-batch with Adam on digits, iris, moons or an uploaded table. The plane of the surface is
spanned by two random directions (filter-, layer- or un-normalised; Li et al. 2018), the top two
principal directions of the training trajectory, or three trained models (Zhang et al. 2019).
"""

from __future__ import annotations

import copy
import io
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from landscape.engine import datasets, uploads
from landscape.engine.curvature import (
    curvature_map,
    hutchinson_trace,
    slice_hessian,
    slice_hessian_fd,
)
from landscape.engine.device import limited_threads, resolve_device
from landscape.engine.directions import (
    NORMALIZATIONS,
    ONE_DIM_CHOICES,
    Params,
    cosine,
    parameters_of,
    pca_directions,
    random_directions,
    three_model_plane,
)
from landscape.engine.nets import ACTIVATIONS, MultiBranchNet, mlp
from landscape.engine.problem import Problem
from landscape.engine.surface import (
    interpolate,
    path_taken,
    surface_2d,
    surface_2d_band,
    surface_points,
)
from landscape.engine.validation import check_choice, check_integer, check_number

MODELS = ("multibranch", "mlp", "upload")
DATASETS = ("digits", "iris", "moons", "upload")
DIRECTIONS = ("random", "pca", "three_models")
SLICE_POINTS = 61
INTERPOLATION_TS = np.linspace(-0.5, 1.5, 41)
BAND_REPEATS = 5
MOONS_SAMPLES = 400
MAX_CHECKPOINTS = 60

Progress = Callable[[float, str], None]
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Config:
    """Every knob of the Lab; the defaults render in a few seconds on a 2-core CPU."""

    model: str = "multibranch"
    branches: int = 16
    width: int = 8
    depth: int = 1
    hidden: int = 32  # MLP: two hidden layers of this width (three Linear layers)
    activation: str = "relu"
    dataset: str = "digits"
    model_upload: str = ""  # SHA-256 of an uploaded ONNX file (engine.uploads.store)
    data_upload: str = ""  # SHA-256 of an uploaded CSV or NPZ file
    data_name: str = ""  # the uploaded data file's name (its suffix gives the format)
    epochs: int = 60
    lr: float = 0.01
    directions: str = "random"
    normalization: str = "filter"
    one_dim: str = "zero"
    span: float = 1.0
    resolution: int = 31
    sample_size: int = 0  # 0: all samples; else 1-D slices show mean +/- std over sub-samples
    curvature_resolution: int = 5  # 0 switches the curvature map off
    lanczos_iterations: int = 10
    seed: int = 0
    device: str = "auto"

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
        check_integer("lanczos_iterations", self.lanczos_iterations, 2, 60)
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


@dataclass
class Result:
    """Surface, slices, interpolation and curvature of one trained model (NumPy only)."""

    alphas: np.ndarray  # (R,)
    betas: np.ndarray  # (R,)
    surface: np.ndarray  # (R, R), Z[i, j] = L(theta + alphas[i] d1 + betas[j] d2)
    surface_method: str  # the engine path: fast, loop, or vmap and the layers it hoists
    surface_seconds: float
    center_loss: float
    direction_cosine: float
    trajectory: np.ndarray  # (T, 2) checkpoints projected on the PCA plane; (0, 2) otherwise
    trajectory_loss: np.ndarray  # (T,) the loss at those projected points
    explained_variance: np.ndarray  # (2,) PCA ratios; zeros otherwise
    model_points: np.ndarray  # (3, 2) the three models in their plane; (0, 2) otherwise
    model_losses: np.ndarray  # (3,) their losses; (0,) otherwise
    slice_ts: np.ndarray  # (S,)
    slice_d1: np.ndarray  # (S,) L(theta + t d1)
    slice_d2: np.ndarray  # (S,) L(theta + t d2)
    slice_d1_std: np.ndarray  # (S,) spread over sub-samples; zeros on the full data
    slice_d2_std: np.ndarray  # (S,)
    interpolation_ts: np.ndarray  # (M,)
    interpolation: np.ndarray  # (M,) L((1 - t) theta_init + t theta_trained)
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
    loss_history: np.ndarray  # (E,) training loss per epoch
    train_accuracy: float  # nan for regression
    n_parameters: int
    n_samples: int
    task: str
    model_name: str
    diverged: bool
    message: str


PRESETS: dict[str, Config] = {
    "default": Config(),
    "pca": Config(directions="pca"),
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
        return _run(config, progress, threads)


def _run(config: Config, progress: Progress | None, threads_at_start: int) -> Result:
    report = progress or (lambda fraction, stage: None)
    device = resolve_device(config.device)
    X, y, task = _data(config)
    X_t = torch.as_tensor(X, dtype=torch.float32, device=device)
    y_t = torch.as_tensor(y, device=device)
    y_t = y_t.float() if task == "regression" else y_t
    loss_fn = F.cross_entropy if task == "classification" else F.mse_loss
    outputs = int(y.max()) + 1 if task == "classification" else int(np.prod(y.shape[1:]) or 1)

    models: list[nn.Module] = []
    history = np.zeros(0)
    trajectory: list[Params] = []
    for k in range(3 if config.directions == "three_models" else 1):
        model = _model(config, X, y, task, outputs, seed=config.seed + k).to(device)
        initial = parameters_of(model)
        report(0.35 * k / 3, f"Training model {k + 1}")
        losses, checkpoints = _train(model, loss_fn, X_t, y_t, config, report, k)
        if k == 0:
            history, trajectory, start = losses, checkpoints, initial
        if not np.all(np.isfinite(losses)):
            return _diverged(
                config,
                task,
                model,
                len(y),
                losses,
                "training diverged (NaN/inf): lower the learning rate",
            )
        models.append(model)
    model = models[0]

    report(0.4, "Directions")
    plane_points = np.zeros((0, 2))
    pca_coords = np.zeros((0, 2))
    explained = np.zeros(2)
    if config.directions == "random":
        center = parameters_of(model)
        d1 = random_directions(model, 2 * config.seed, config.normalization, config.one_dim)
        d2 = random_directions(model, 2 * config.seed + 1, config.normalization, config.one_dim)
        radius = 1.0
    elif config.directions == "pca":
        pca = pca_directions(trajectory)
        center, d1, d2 = trajectory[-1], pca.d1, pca.d2
        pca_coords, explained = pca.coordinates, pca.explained_variance_ratio
        radius = 1.2 * float(np.abs(pca_coords).max())
    else:
        plane = three_model_plane(models)
        center, d1, d2 = plane.center, plane.d1, plane.d2
        plane_points = plane.coordinates
        radius = 1.3 * float(np.abs(plane_points).max())
    extent = config.span * max(radius, 1e-6)
    grid = np.linspace(-extent, extent, config.resolution)

    report(0.45, "Loss surface")
    problem = Problem(model, loss_fn, X_t, y_t)
    started = time.perf_counter()
    with _threads(threads_at_start):
        Z = surface_2d(problem, d1, d2, grid, grid, center=center)
    seconds = time.perf_counter() - started
    method = path_taken(problem, center=center)
    if not np.all(np.isfinite(Z)):
        return _diverged(
            config,
            task,
            model,
            len(y),
            history,
            "the surface holds non-finite losses: lower the range",
        )

    def on_plane(coords: np.ndarray) -> np.ndarray:
        if len(coords) == 0:
            return np.zeros(0)
        return surface_points(problem, d1, d2, coords, center=center)

    trajectory_loss, model_losses = on_plane(pca_coords), on_plane(plane_points)

    report(0.7, "Slices and interpolation")
    ts = np.linspace(-extent, extent, max(SLICE_POINTS, config.resolution))
    slices = [_slice(config, problem, d, ts, center) for d in (d1, d2)]
    final = parameters_of(model)
    moved = any(not torch.equal(start[n], final[n]) for n in final)
    if moved:
        interpolation = interpolate(problem, start, final, INTERPOLATION_TS)
        interpolation_ts = INTERPOLATION_TS
    else:
        interpolation, interpolation_ts = np.zeros(0), np.zeros(0)

    report(0.8, "Curvature")
    H2 = slice_hessian(problem, d1, d2, center)
    H2_fd = _slice_hessian_by_differences(problem, d1, d2, center, extent)
    trace, trace_error = hutchinson_trace(problem, center, samples=30, seed=config.seed)
    c = config.curvature_resolution
    coarse = np.linspace(-extent, extent, c) if c else np.zeros(0)
    if c:
        iterations = min(config.lanczos_iterations, sum(p.numel() for p in model.parameters()))
        cmap = curvature_map(
            problem,
            d1,
            d2,
            coarse,
            coarse,
            center=center,
            iterations=iterations,
            seed=config.seed,
            progress=lambda f, s: report(0.85 + 0.15 * f, s),
        )
        lo, hi, ratio = cmap.lambda_min, cmap.lambda_max, cmap.ratio
    else:
        lo = hi = ratio = np.zeros((0, 0))
    report(1.0, "Done")
    return Result(
        alphas=grid,
        betas=grid,
        surface=Z,
        surface_method=method,
        surface_seconds=seconds,
        center_loss=float(on_plane(np.zeros((1, 2)))[0]),
        direction_cosine=cosine(d1, d2),
        trajectory=pca_coords,
        trajectory_loss=trajectory_loss,
        explained_variance=explained,
        model_points=plane_points,
        model_losses=model_losses,
        slice_ts=ts,
        slice_d1=slices[0][0],
        slice_d2=slices[1][0],
        slice_d1_std=slices[0][1],
        slice_d2_std=slices[1][1],
        interpolation_ts=interpolation_ts,
        interpolation=interpolation,
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
        loss_history=history,
        train_accuracy=_accuracy(model, X_t, y_t, task),
        n_parameters=sum(p.numel() for p in model.parameters()),
        n_samples=len(y),
        task=task,
        model_name=_model_name(config, X.shape[1:], outputs),
        diverged=False,
        message="",
    )


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
    torch.manual_seed(seed)
    if config.model == "upload":
        model = uploads.load_model(uploads.fetch(config.model_upload)).float()
        uploads.check_model(model, X, y, task)
        return model
    if X.ndim != 2:
        raise ValueError(f"built-in models need flat features (n, d), got X of shape {X.shape}")
    if config.model == "multibranch":
        return MultiBranchNet(
            X.shape[1], outputs, config.branches, config.width, config.depth, config.activation
        )
    return mlp(X.shape[1], outputs, [config.hidden, config.hidden], config.activation)


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
    """Full-batch Adam; returns the loss per epoch and checkpoints (initial, ..., final)."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    every = max(1, config.epochs // MAX_CHECKPOINTS)
    checkpoints = [parameters_of(model)]
    losses = np.empty(config.epochs)
    for epoch in range(config.epochs):
        optimizer.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        optimizer.step()
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
    config: Config, task: str, model: nn.Module, n: int, history: np.ndarray, message: str
) -> Result:
    empty, square = np.zeros(0), np.zeros((0, 0))
    return Result(
        alphas=empty,
        betas=empty,
        surface=square,
        surface_method="",
        surface_seconds=0.0,
        center_loss=float("nan"),
        direction_cosine=float("nan"),
        trajectory=np.zeros((0, 2)),
        trajectory_loss=empty,
        explained_variance=np.zeros(2),
        model_points=np.zeros((0, 2)),
        model_losses=empty,
        slice_ts=empty,
        slice_d1=empty,
        slice_d2=empty,
        slice_d1_std=empty,
        slice_d2_std=empty,
        interpolation_ts=empty,
        interpolation=empty,
        curvature_alphas=empty,
        curvature_betas=empty,
        lambda_min=square,
        lambda_max=square,
        curvature_ratio=square,
        slice_hessian=np.full((2, 2), np.nan),
        slice_hessian_fd=np.full((2, 2), np.nan),
        slice_eigenvalues=np.full(2, np.nan),
        slice_fd_eigenvalues=np.full(2, np.nan),
        hessian_trace=float("nan"),
        hessian_trace_error=float("nan"),
        loss_history=np.where(np.isfinite(history), history, np.nan),
        train_accuracy=float("nan"),
        n_parameters=sum(p.numel() for p in model.parameters()),
        n_samples=n,
        task=task,
        model_name=config.model,
        diverged=True,
        message=message,
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
