"""Study 4: loss surfaces of multi-branch networks and their measured non-convexity against I.

Seed section 3.2 and its Figure 2 (Zhang, Shao & Salakhutdinov 2019): networks of I parallel
branches, ``f(x) = (1/I) sum_i f_i(x)`` (seed eq. 16), are trained for every I and every branch
depth; the training loss is drawn on a 2-D slice through the trained weights and its
non-convexity is measured three ways (``landscape.engine.nonconvexity``). Each (depth, I) slice is
cached on its own, so a run over a new list of I only trains the values it has not seen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

import numpy as np
import torch
from torch import nn

from landscape.engine import curvature, directions
from landscape.engine.device import Device, resolve_device
from landscape.engine.nets import MultiBranchNet
from landscape.engine.nonconvexity import hessian_ratio, max_convexity_defect, non_psd_fraction
from landscape.engine.problem import LossFn, Problem
from landscape.engine.progress import Progress, silent
from landscape.engine.surface import surface_2d
from landscape.engine.validation import (
    COST_LIMIT,
    check_choice,
    check_cost,
    check_integer,
    check_integers,
    check_number,
)
from landscape.server import cluster, seeding, study_parts
from landscape.studies.branches import data as branch_data
from landscape.studies.branches import training
from landscape.studies.branches.losses import LOSS_NAMES, LossName, loss_function
from landscape.studies.branches.training import train

Task = Literal["pair", "all"]
TASKS: tuple[Task, ...] = get_args(Task)
Construction = Literal["filter", "three_models"]
CONSTRUCTIONS: tuple[Construction, ...] = get_args(Construction)
OPTIMIZERS = training.OPTIMIZERS
BRANCH_CHOICES = (1, 2, 4, 8, 16, 32)
TWO_D = ("moons", "circles", "spirals")
MODEL_SEED_STRIDE = 10_007  # the three models of a plane use seeds s, s + stride, s + 2 stride
SLICE_FIELDS = (
    "surfaces",
    "centre_loss",
    "model_losses",
    "model_accuracy",
    "model_coordinates",
    "non_psd",
    "defect",
    "lambda_min",
    "lambda_max",
    "hessian_ratio",
    "direction_cosine",
    "curvature_state",
    "negative_mass",
    "negative_mass_error",
    "negative_threshold",
)
DENSITY_PROBES, DENSITY_ITERATIONS = 4, 20  # SLQ at each slice centre


@dataclass(frozen=True)
class Config:
    """The grid of Figure 2 (depths x branch counts) and everything a slice depends on.

    The defaults render in a few seconds on a CPU: digits 3 against 8, I up to 8, 21 x 21.
    """

    branch_counts: tuple[int, ...] = (1, 2, 4, 8)
    depths: tuple[int, ...] = (1,)
    width: int = 4
    dataset: branch_data.DatasetName = "digits"
    task: Task = "pair"
    digit_a: int = 3
    digit_b: int = 8
    n_samples: int = 300  # 0: the whole (filtered) data set
    loss: LossName = "tau_hinge"
    tau: float = 1.0
    optimizer: training.Optimizer = "adam"
    lr: float = 0.01
    epochs: int = 30
    batch_size: int = 64  # 0: full batch
    weight_decay: float = 0.0
    construction: Construction = "filter"
    resolution: int = 21
    radius: float = 1.0
    seeds: int = 2
    hessian_iterations: int = 20
    data_dir: str = ""
    seed: int = 0
    device: Device = "cpu"

    def validate(self) -> None:
        """ValueError naming the field, its value and the allowed range."""
        check_integers("branch_counts", self.branch_counts, 1, 256, 12)
        check_integers("depths", self.depths, 1, 3, 3)
        check_integer("width", self.width, 1, 512)
        check_choice("dataset", self.dataset, branch_data.DATASET_NAMES)
        if self.dataset in ("mnist_full", "cifar10") and not self.data_dir:
            raise ValueError(
                f"data_dir must name a local folder with the files of {self.dataset!r}, got ''"
            )
        check_choice("task", self.task, TASKS)
        check_integer("digit_a", self.digit_a, 0, 9)
        check_integer("digit_b", self.digit_b, 0, 9)
        if self.task == "pair" and self.digit_a == self.digit_b:
            raise ValueError(f"digit_b must differ from digit_a, got both {self.digit_a}")
        check_integer("n_samples", self.n_samples, 0, 100_000)
        if self.n_samples == 1:
            raise ValueError("n_samples must be 0 (all) or an integer in [2, 100000], got 1")
        check_choice("loss", self.loss, LOSS_NAMES)
        if self.loss == "tau_hinge" and self.n_classes != 2:
            raise ValueError("loss 'tau_hinge' needs a binary task: set task='pair' or a 2-D set")
        check_number("tau", self.tau, 1e-3, 100.0)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_number("lr", self.lr, 1e-5, 1.0)
        check_integer("epochs", self.epochs, 1, 1000)
        check_integer("batch_size", self.batch_size, 0, 100_000)
        check_number("weight_decay", self.weight_decay, 0.0, 1.0)
        check_choice("construction", self.construction, CONSTRUCTIONS)
        check_integer("resolution", self.resolution, 5, 101)
        check_number("radius", self.radius, 0.01, 10.0)
        check_integer("seeds", self.seeds, 1, 10)
        check_integer("hessian_iterations", self.hessian_iterations, 2, 200)
        check_integer("seed", self.seed, 0, 2**31 - 1)
        features = {"mnist_full": 784, "cifar10": 3072}.get(self.dataset, 64)
        samples = self.n_samples or {"mnist_full": 60_000, "cifar10": 50_000}.get(
            self.dataset, 1797
        )
        per_branch = sum(
            features * self.width + (depth - 1) * self.width**2 + self.width * 10
            for depth in self.depths
        )
        parameters = sum(self.branch_counts) * per_branch * self.seeds
        check_cost(
            "training and surfaces (branches x seeds x samples x (epochs + resolution^2))",
            samples
            * parameters
            * (6.0 * self.epochs + 2.0 * self.resolution**2 + 4.0 * self.hessian_iterations),
            COST_LIMIT,
            "multiply-adds",
            "lower epochs, resolution, seeds, the width, n_samples or the largest I",
        )
        resolve_device(self.device)

    @property
    def n_classes(self) -> int:
        """Number of labels of the task: 2 for a pair or a 2-D set, 10 otherwise."""
        return 2 if self.task == "pair" or self.dataset in TWO_D else 10

    @property
    def classes(self) -> tuple[int, int] | None:
        """The two labels kept for a pair of an image set; None for all classes or 2-D sets."""
        pair = self.task == "pair" and self.dataset not in TWO_D
        return (self.digit_a, self.digit_b) if pair else None


@dataclass
class Result:
    """Surfaces and non-convexity measures on the grid: R depths x K values of I x S seeds.

    Each seed trains ``k`` models (1 for random directions, 3 for the three-model plane).
    """

    branch_counts: np.ndarray  # (K,)
    depths: np.ndarray  # (R,)
    alphas: np.ndarray  # (A,)
    betas: np.ndarray  # (B,)
    surfaces: np.ndarray  # (R, K, S, A, B) training loss on the slice
    centre_loss: np.ndarray  # (R, K, S) loss at the slice centre, evaluated directly
    model_losses: np.ndarray  # (R, K, S, k) loss of each trained model
    model_accuracy: np.ndarray  # (R, K, S, k) training accuracy of each trained model
    model_coordinates: np.ndarray  # (R, K, S, k, 2) where the trained models sit in the slice
    non_psd: np.ndarray  # (R, K, S) fraction of the slice whose 2x2 Hessian is not PSD
    defect: np.ndarray  # (R, K, S) largest convexity defect along grid lines / loss range
    lambda_min: np.ndarray  # (R, K, S) extreme eigenvalues of the full Hessian at the centre
    lambda_max: np.ndarray  # (R, K, S)
    hessian_ratio: np.ndarray  # (R, K, S) max(0, -lambda_min) / lambda_max
    direction_cosine: np.ndarray  # (R, K, S) cosine between the slice's two directions
    n_parameters: np.ndarray  # (R, K)
    n_samples: int
    n_classes: int
    run_seconds: float  # wall-clock time of this run
    diverged: bool
    message: str
    # Added later, with defaults so that older run files load: (R, K, S) each.
    curvature_state: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))  # -1/0
    negative_mass: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))  # SLQ share
    negative_mass_error: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    negative_threshold: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))


#: What a run file may hold for each Result field (landscape.files.results.check_result):
#: kind f/i/b/s, ! finite, dimensions named alike agree; a Config field's name is its value.
RESULT_SHAPES: dict[str, str] = {
    "branch_counts": "i[branch_counts]",
    "depths": "i[depths]",
    "alphas": "f![resolution]",
    "betas": "f![resolution]",
    "surfaces": "f[depths,branch_counts,seeds,resolution,resolution]",
    "centre_loss": "f[depths,branch_counts,seeds]",
    "model_losses": "f[depths,branch_counts,seeds,M]",
    "model_accuracy": "f[depths,branch_counts,seeds,M]",
    "model_coordinates": "f[depths,branch_counts,seeds,M,2]",
    "non_psd": "f[depths,branch_counts,seeds]",
    "defect": "f[depths,branch_counts,seeds]",
    "lambda_min": "f[depths,branch_counts,seeds]",
    "lambda_max": "f[depths,branch_counts,seeds]",
    "hessian_ratio": "f[depths,branch_counts,seeds]",
    "direction_cosine": "f[depths,branch_counts,seeds]",
    "n_parameters": "i[depths,branch_counts]",
    "n_samples": "i",
    "n_classes": "i",
    "run_seconds": "f",
    "diverged": "b",
    "message": "s",
    "curvature_state": "f[depths,branch_counts,seeds]|f[0,0,0]",  # -1/0/1 (empty default)
    "negative_mass": "f[depths,branch_counts,seeds]|f[0,0,0]",
    "negative_mass_error": "f[depths,branch_counts,seeds]|f[0,0,0]",
    "negative_threshold": "f[depths,branch_counts,seeds]|f[0,0,0]",
}


def load_data(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (n, d) and training targets: ``y`` in {-1, +1} for the tau-hinge, labels otherwise."""
    generated = (config.n_samples or None) if config.dataset in TWO_D else None
    X, y = branch_data.load(
        config.dataset,
        classes=config.classes,
        n_samples=generated,
        seed=config.seed,
        directory=config.data_dir or None,
    )
    if config.n_samples and config.n_samples < len(y):
        X, y = branch_data.stratified_sample(X, y, config.n_samples, config.seed)
    if config.loss == "tau_hinge":
        return X, branch_data.signed_labels(y)
    return X, y


def accuracy(outputs: torch.Tensor, y: torch.Tensor) -> float:
    """Share of correct predictions: ``sign f`` against ``y`` in {-1, +1}, or argmax vs labels."""
    if outputs.shape[1] == 1:
        return float((torch.sign(outputs[:, 0]) == y).double().mean())
    return float((outputs.argmax(1) == y).double().mean())


def run(config: Config, progress: Progress | None = None) -> Result:
    """Train, slice and measure every (depth, I) of the grid over ``config.seeds`` seeds.

    Slices already computed in this process come from a cache and cost nothing, so moving back
    to a seen I is instant. Inside ``engine.cluster.compute_on(address)`` every (depth, I) runs
    as a Ray task.
    """
    config.validate()
    report = progress or silent
    start = time.perf_counter()
    total = len(config.depths) * len(config.branch_counts)
    cells = [
        replace(config, branch_counts=(branches,), depths=(depth,))
        for depth in config.depths
        for branches in config.branch_counts
    ]
    measured = cluster.parallel_map(  # one task per (depth, I) on a Ray cluster
        measure_slice,
        cells,
        progress=lambda k, cell: report(
            k / total,
            f"Training and slicing: depth {cell.depths[0]}, I = {cell.branch_counts[0]}",
        ),
    )
    slices = []
    for cell, one in zip(cells, measured, strict=True):
        if isinstance(one, str):
            (depth,), (branches,) = cell.depths, cell.branch_counts
            return _diverged(config, f"depth {depth}, I = {branches}: {one}", start)
        slices.append(one)
    report(1.0, "Done")
    R, K = len(config.depths), len(config.branch_counts)
    arrays = {
        name: np.stack([s[name] for s in slices]).reshape(R, K, *slices[0][name].shape)
        for name in (*SLICE_FIELDS, "n_parameters")
    }
    grid = slices[0]["alphas"]
    return Result(
        branch_counts=np.array(config.branch_counts),
        depths=np.array(config.depths),
        alphas=grid.copy(),
        betas=grid.copy(),
        **arrays,
        n_samples=int(slices[0]["n_samples"]),
        n_classes=config.n_classes,
        run_seconds=time.perf_counter() - start,
        diverged=False,
        message="",
    )


@study_parts.kept_function("branches.measure_slice")
def measure_slice(config: Config) -> dict[str, np.ndarray] | str:
    """One (depth, I) of the grid (``config`` holds one of each): the arrays of ``Result``
    without its two leading axes, or the reason it diverged. Cached per configuration."""
    data = _tensors(config)
    grid = np.linspace(-config.radius, config.radius, config.resolution)
    fields: dict[str, list] = {name: [] for name in SLICE_FIELDS}
    n_parameters = 0
    for s in range(config.seeds):
        models = _trained_models(config, data, config.seed + s)
        if isinstance(models, str):
            return models
        measured = _measure(config, data, models, config.seed + s, grid)
        if isinstance(measured, str):
            return measured
        for name, value in measured.items():
            fields[name].append(value)
        n_parameters = sum(p.numel() for p in models[0].parameters())
    out = {name: np.asarray(values, dtype=np.float64) for name, values in fields.items()}
    out["n_parameters"] = np.array(n_parameters)
    out["n_samples"] = np.array(data.n)
    out["alphas"] = grid
    return out


@dataclass
class _Tensors:
    """The data on the device, the loss and the output width the loss needs."""

    X: torch.Tensor  # (n, d) float32
    y: torch.Tensor  # (n,) float +/-1 for the tau-hinge loss, class indices otherwise
    loss_fn: LossFn
    out_features: int  # 1 for the tau-hinge loss, else n_classes
    n: int


def _tensors(config: Config) -> _Tensors:
    device = resolve_device(config.device)
    X_np, y_np = load_data(config)
    X = torch.as_tensor(X_np, dtype=torch.float32, device=device)
    y = torch.as_tensor(y_np, device=device)
    y = y.float() if config.loss == "tau_hinge" else y.long()
    out_features = 1 if config.loss == "tau_hinge" else config.n_classes
    return _Tensors(X, y, loss_function(config.loss, config.tau), out_features, len(y_np))


def _trained_models(config: Config, data: _Tensors, seed: int) -> list[nn.Module] | str:
    """The slice's model (three for the three-model plane, seeds ``seed + k * stride``), each
    trained, or the reason training diverged."""
    (branches,), (depth,) = config.branch_counts, config.depths
    batch = config.batch_size if 0 < config.batch_size < data.n else None
    models: list[nn.Module] = []
    for k in range(3 if config.construction == "three_models" else 1):
        with seeding.seeded(seed + k * MODEL_SEED_STRIDE):
            model = MultiBranchNet(
                data.X.shape[1], data.out_features, branches, config.width, depth
            )
        model = model.to(data.X.device)
        history = train(
            model,
            data.X,
            data.y,
            data.loss_fn,
            optimizer=config.optimizer,
            lr=config.lr,
            epochs=config.epochs,
            batch_size=batch,
            weight_decay=config.weight_decay,
            seed=seed + k * MODEL_SEED_STRIDE,
        )
        if history.diverged:
            return history.message
        models.append(model)
    return models


def _measure(
    config: Config, data: _Tensors, models: list[nn.Module], seed: int, grid: np.ndarray
) -> dict[str, object] | str:
    """One seed's values of `SLICE_FIELDS`: the surface on the plane (filter-normalised random
    directions seeded ``2 seed`` and ``2 seed + 1``, or the three models' plane), the models'
    losses and accuracies, the three non-convexity measures, the Hessian's extremes at the
    centre with the evidence of negative curvature, and the negative mass of its spectrum (SLQ);
    or why the surface is not finite."""
    model = models[0]
    if len(models) == 1:
        centre = directions.parameters_of(model)
        d1 = directions.random_directions(model, seed=2 * seed, normalization="filter")
        d2 = directions.random_directions(model, seed=2 * seed + 1, normalization="filter")
        coordinates = np.zeros((1, 2))
    else:
        plane = directions.three_model_plane(models)
        centre, d1, d2, coordinates = plane.center, plane.d1, plane.d2, plane.coordinates
    X, y, loss_fn = data.X, data.y, data.loss_fn
    problem = Problem(model, loss_fn, X, y)
    Z = surface_2d(problem, d1, d2, grid, grid, center=centre)
    if not np.all(np.isfinite(Z)):
        return "the surface holds non-finite losses; lower the radius"
    with torch.no_grad():
        centre_output = torch.func.functional_call(model, centre, (X,))
        centre_loss = float(loss_fn(centre_output, y))
        model_losses = [float(loss_fn(m(X), y)) for m in models]
        model_accuracy = [accuracy(m(X), y) for m in models]
    # The whole budget (no residual rule): the Ritz values of extreme_eigenvalues, and the
    # smallest Ritz vector checked in float64 for a proof of negative curvature.
    evidence = curvature.curvature_evidence(
        problem, centre, max_iterations=config.hessian_iterations, tolerance=None, seed=seed
    )
    low, high = evidence.lambda_min, evidence.lambda_max
    spectrum = curvature.density(
        problem,
        centre,
        iterations=min(DENSITY_ITERATIONS, problem_size(problem)),
        probes=DENSITY_PROBES,
        seed=seed,
    )
    return {
        "curvature_state": evidence.code,
        "negative_mass": spectrum.negative_mass,
        "negative_mass_error": spectrum.negative_mass_error,
        "negative_threshold": spectrum.threshold,
        "surfaces": Z,
        "centre_loss": centre_loss,
        "model_losses": model_losses,
        "model_accuracy": model_accuracy,
        "model_coordinates": coordinates,
        "non_psd": non_psd_fraction(Z, grid, grid),
        "defect": max_convexity_defect(Z),
        "lambda_min": low,
        "lambda_max": high,
        "hessian_ratio": hessian_ratio(low, high),
        "direction_cosine": directions.cosine(d1, d2),
    }


def problem_size(problem: Problem) -> int:
    """The number of parameters of the problem's model."""
    return sum(p.numel() for p in problem.model.parameters())


def _diverged(config: Config, message: str, start: float) -> Result:
    R, K, A = len(config.depths), len(config.branch_counts), config.resolution
    empty = np.zeros((R, K, 0))
    grid = np.linspace(-config.radius, config.radius, A)
    return Result(
        branch_counts=np.array(config.branch_counts),
        depths=np.array(config.depths),
        alphas=grid,
        betas=grid.copy(),
        surfaces=np.zeros((R, K, 0, A, A)),
        centre_loss=empty,
        model_losses=np.zeros((R, K, 0, 1)),
        model_accuracy=np.zeros((R, K, 0, 1)),
        model_coordinates=np.zeros((R, K, 0, 1, 2)),
        non_psd=empty,
        defect=empty,
        lambda_min=empty,
        lambda_max=empty,
        hessian_ratio=empty,
        direction_cosine=empty,
        n_parameters=np.zeros((R, K), dtype=np.int64),
        n_samples=0,
        n_classes=config.n_classes,
        run_seconds=time.perf_counter() - start,
        diverged=True,
        message=message,
    )


def summary(result: Result, depth_index: int, branch_count: int) -> dict[str, float]:
    """Means over seeds at one (depth, I) of the grid: the centre's training loss and accuracy,
    the share of the slice whose 2x2 Hessian is not PSD, the convexity defect over the loss
    range, ``|lambda_min / lambda_max|`` of the full Hessian at the centre, the SLQ share of its
    spectrum below zero (``nan`` when the result has none) and the number of seeds whose
    negative curvature is proven."""
    counts = [int(i) for i in result.branch_counts]
    if branch_count not in counts:
        raise ValueError(f"branch_count must be one of {counts}, got {branch_count}")
    k, r = counts.index(branch_count), depth_index
    return {
        "centre_loss": float(result.centre_loss[r, k].mean()),
        "accuracy": float(result.model_accuracy[r, k].mean()),
        "non_psd": float(result.non_psd[r, k].mean()),
        "defect": float(result.defect[r, k].mean()),
        "hessian_ratio": float(result.hessian_ratio[r, k].mean()),
        # the SLQ negative mass and the seeds with negative curvature proven (0 before they
        # existed: older run files hold empty arrays)
        "negative_mass": _mean(result.negative_mass, r, k),
        "negative_mass_error": _mean(result.negative_mass_error, r, k),
        "proven": float((result.curvature_state[r, k] == -1).sum())
        if result.curvature_state.size
        else 0.0,
    }


def _mean(values: np.ndarray, r: int, k: int) -> float:
    return float(values[r, k].mean()) if values.size else float("nan")


# The page asks for every power of two up to max(grid, 3-D view): these prefixes of the ladder
# I = 1..32 cover every position of its two sliders on the defaults.
PRESETS: dict[str, Config] = {
    "default": Config(),
    **{
        f"up_to_{top}": Config(branch_counts=tuple(i for i in BRANCH_CHOICES if i <= top))
        for top in BRANCH_CHOICES
        if top != 8
    },
}
