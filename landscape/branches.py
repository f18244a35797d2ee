"""Study 4: loss surfaces of multi-branch networks and their measured non-convexity against I.

Seed section 3.2 and its Figure 2 (Zhang, Shao & Salakhutdinov 2019): a network of I parallel
branches, ``f(x) = (1/I) sum_i f_i(x)`` (seed eq. 16), is trained; the loss is drawn on a 2-D
slice through the trained weights and its non-convexity is measured three ways
(``landscape.nonconvexity``). One ``run`` handles one value of I, so that a page can cache each I.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from landscape import branch_data, curvature, directions
from landscape.branch_training import train
from landscape.device import resolve_device
from landscape.losses import LOSS_NAMES, LossFunction, loss_function
from landscape.nets import MultiBranchNet
from landscape.nonconvexity import hessian_ratio, max_convexity_defect, non_psd_fraction
from landscape.surface import surface_2d

TASKS = ("pair", "all")
CONSTRUCTIONS = ("filter", "three_models")
OPTIMIZERS = ("sgd", "adam")
BRANCH_CHOICES = (1, 2, 4, 8, 16, 32)
MODEL_SEED_STRIDE = 10_007  # the three models of a plane use seeds s, s + stride, s + 2 stride


@dataclass(frozen=True)
class Config:
    """One value of I and everything the surface depends on; defaults render fast on a CPU."""

    branches: int = 4
    width: int = 4
    depth: int = 1
    dataset: str = "digits"
    task: str = "pair"
    digit_a: int = 3
    digit_b: int = 8
    n_samples: int = 300  # 0: the whole (filtered) data set
    loss: str = "tau_hinge"
    tau: float = 1.0
    optimizer: str = "adam"
    lr: float = 0.01
    epochs: int = 30
    batch_size: int = 64  # 0: full batch
    weight_decay: float = 0.0
    construction: str = "filter"
    resolution: int = 21
    radius: float = 1.0
    seeds: int = 2
    hessian_iterations: int = 20
    data_dir: str = ""
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        """ValueError naming the field, its value and the allowed range."""
        _check_int("branches", self.branches, 1, 256)
        _check_int("width", self.width, 1, 512)
        _check_int("depth", self.depth, 1, 3)
        _check_choice("dataset", self.dataset, branch_data.DATASET_NAMES)
        _check_choice("task", self.task, TASKS)
        _check_int("digit_a", self.digit_a, 0, 9)
        _check_int("digit_b", self.digit_b, 0, 9)
        if self.task == "pair" and self.digit_a == self.digit_b:
            raise ValueError(f"digit_b must differ from digit_a, got both {self.digit_a}")
        _check_int("n_samples", self.n_samples, 0, 100_000)
        if self.n_samples == 1:
            raise ValueError("n_samples must be 0 (all) or an integer in [2, 100000], got 1")
        _check_choice("loss", self.loss, LOSS_NAMES)
        if self.loss == "tau_hinge" and self.n_classes != 2:
            raise ValueError("loss 'tau_hinge' needs a binary task: set task='pair' or a 2-D set")
        _check_float("tau", self.tau, 1e-3, 100.0)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_float("lr", self.lr, 1e-5, 1.0)
        _check_int("epochs", self.epochs, 1, 1000)
        _check_int("batch_size", self.batch_size, 0, 100_000)
        _check_float("weight_decay", self.weight_decay, 0.0, 1.0)
        _check_choice("construction", self.construction, CONSTRUCTIONS)
        _check_int("resolution", self.resolution, 5, 101)
        _check_float("radius", self.radius, 0.01, 10.0)
        _check_int("seeds", self.seeds, 1, 10)
        _check_int("hessian_iterations", self.hessian_iterations, 2, 200)
        _check_int("seed", self.seed, 0, 2**31 - 1)
        resolve_device(self.device)

    @property
    def n_classes(self) -> int:
        """Number of labels of the task: 2 for a digit pair or a 2-D set, 10 otherwise."""
        return 2 if self.task == "pair" or self.dataset in ("moons", "circles", "spirals") else 10

    @property
    def classes(self) -> tuple[int, int] | None:
        """The two labels kept for a pair of an image set; None for all classes or 2-D sets."""
        two_d = self.dataset in ("moons", "circles", "spirals")
        return (self.digit_a, self.digit_b) if self.task == "pair" and not two_d else None


@dataclass
class Result:
    """Surfaces and non-convexity measures for one I, over ``S`` seeds (``k`` models per seed)."""

    branches: int
    alphas: np.ndarray  # (A,)
    betas: np.ndarray  # (B,)
    surfaces: np.ndarray  # (S, A, B) data loss on the slice
    centre_loss: np.ndarray  # (S,) loss at the slice centre, evaluated directly
    model_losses: np.ndarray  # (S, k) loss of each trained model (k = 1 or 3)
    model_accuracy: np.ndarray  # (S, k) training accuracy of each trained model
    model_coordinates: np.ndarray  # (S, k, 2) where the trained models sit in the slice
    non_psd: np.ndarray  # (S,) fraction of the slice whose 2x2 Hessian is not PSD
    defect: np.ndarray  # (S,) largest convexity defect along grid lines / loss range
    lambda_min: np.ndarray  # (S,) extreme eigenvalues of the full Hessian at the centre
    lambda_max: np.ndarray  # (S,)
    hessian_ratio: np.ndarray  # (S,) max(0, -lambda_min) / lambda_max
    direction_cosine: np.ndarray  # (S,) cosine between the slice's two directions
    n_parameters: int
    n_samples: int
    n_classes: int
    seconds: float
    diverged: bool
    message: str


def load_data(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (n, d) and training targets: ``y`` in {-1, +1} for the tau-hinge, labels otherwise."""
    X, y = branch_data.load(
        config.dataset,
        classes=config.classes,
        n_samples=None,
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


def run(config: Config, progress: Callable[[float, str], None] | None = None) -> Result:
    """Train, slice and measure for ``config.branches`` branches over ``config.seeds`` seeds.

    ``progress`` is accepted for the study interface but not called: ``ui.runner`` caches ``run``
    with ``st.cache_data``, which cannot replay progress updates on a cache hit; one run is one
    value of I, and the page shows progress across the values of I.
    """
    config.validate()
    start = time.perf_counter()
    device = resolve_device(config.device)
    X_np, y_np = load_data(config)
    X = torch.as_tensor(X_np, dtype=torch.float32, device=device)
    y = torch.as_tensor(y_np, device=device)
    y = y.float() if config.loss == "tau_hinge" else y.long()
    out_features = 1 if config.loss == "tau_hinge" else config.n_classes
    loss_fn = loss_function(config.loss, config.tau)
    grid = np.linspace(-config.radius, config.radius, config.resolution)
    per_model = 3 if config.construction == "three_models" else 1
    batch = config.batch_size if 0 < config.batch_size < len(y_np) else None
    fields: dict[str, list] = {
        name: []
        for name in (
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
        )
    }
    n_parameters = 0
    for s in range(config.seeds):
        seed = config.seed + s
        models = []
        for k in range(per_model):
            torch.manual_seed(seed + k * MODEL_SEED_STRIDE)
            model = MultiBranchNet(
                X.shape[1], out_features, config.branches, config.width, config.depth
            ).to(device)
            history = train(
                model,
                X,
                y,
                loss_fn,
                optimizer=config.optimizer,
                lr=config.lr,
                epochs=config.epochs,
                batch_size=batch,
                weight_decay=config.weight_decay,
                seed=seed + k * MODEL_SEED_STRIDE,
            )
            if history.diverged:
                return _diverged(config, history.message, start)
            models.append(model)
        n_parameters = sum(p.numel() for p in models[0].parameters())
        model = models[0]
        if per_model == 1:
            centre = directions.parameters_of(model)
            d1 = directions.random_directions(model, seed=2 * seed, normalization="filter")
            d2 = directions.random_directions(model, seed=2 * seed + 1, normalization="filter")
            coordinates = np.zeros((1, 2))
        else:
            plane = directions.three_model_plane(models)
            centre, d1, d2, coordinates = plane.center, plane.d1, plane.d2, plane.coordinates
        Z = surface_2d(model, loss_fn, X, y, d1, d2, grid, grid, center=centre)
        if not np.all(np.isfinite(Z)):
            return _diverged(config, "the surface holds non-finite losses; lower the radius", start)
        with torch.no_grad():
            centre_output = torch.func.functional_call(model, centre, (X,))
            fields["centre_loss"].append(float(loss_fn(centre_output, y)))
            fields["model_losses"].append([float(loss_fn(m(X), y)) for m in models])
            fields["model_accuracy"].append([accuracy(m(X), y) for m in models])
        low, high = curvature.extreme_eigenvalues(
            model,
            _connected(loss_fn),
            X,
            y,
            point=centre,
            iterations=config.hessian_iterations,
            seed=seed,
        )
        fields["surfaces"].append(Z)
        fields["model_coordinates"].append(coordinates)
        fields["non_psd"].append(non_psd_fraction(Z, grid, grid))
        fields["defect"].append(max_convexity_defect(Z))
        fields["lambda_min"].append(low)
        fields["lambda_max"].append(high)
        fields["hessian_ratio"].append(hessian_ratio(low, high))
        fields["direction_cosine"].append(directions.cosine(d1, d2))
    arrays = {name: np.asarray(values, dtype=np.float64) for name, values in fields.items()}
    return Result(
        branches=config.branches,
        alphas=grid,
        betas=grid.copy(),
        **arrays,
        n_parameters=n_parameters,
        n_samples=len(y_np),
        n_classes=config.n_classes,
        seconds=time.perf_counter() - start,
        diverged=False,
        message="",
    )


def _connected(loss_fn: LossFunction) -> LossFunction:
    """``loss_fn`` plus ``0 * sum f^2``: the same value, gradient and Hessian, but a gradient graph
    that reaches every parameter.

    With a piecewise-linear loss (the hinges) the gradient does not depend on the output bias,
    and ``torch.autograd.grad`` in ``curvature``'s Hessian-vector product refuses a parameter
    absent from the graph; the zero term puts it back without changing any number.
    """
    return lambda outputs, y: loss_fn(outputs, y) + 0.0 * outputs.square().sum()


def _diverged(config: Config, message: str, start: float) -> Result:
    empty = np.zeros(0)
    grid = np.linspace(-config.radius, config.radius, config.resolution)
    return Result(
        branches=config.branches,
        alphas=grid,
        betas=grid.copy(),
        surfaces=np.zeros((0, config.resolution, config.resolution)),
        centre_loss=empty,
        model_losses=np.zeros((0, 1)),
        model_accuracy=np.zeros((0, 1)),
        model_coordinates=np.zeros((0, 1, 2)),
        non_psd=empty,
        defect=empty,
        lambda_min=empty,
        lambda_max=empty,
        hessian_ratio=empty,
        direction_cosine=empty,
        n_parameters=0,
        n_samples=0,
        n_classes=config.n_classes,
        seconds=time.perf_counter() - start,
        diverged=True,
        message=message,
    )


@dataclass
class Sweep:
    """Per-I results stacked for the figures: K values of I, S seeds each."""

    branches: np.ndarray  # (K,)
    alphas: np.ndarray  # (A,)
    betas: np.ndarray  # (B,)
    surfaces: np.ndarray  # (K, A, B) the first seed's surface for each I
    model_coordinates: np.ndarray  # (K, k, 2) the first seed's trained models in its slice
    non_psd: np.ndarray  # (K, S)
    defect: np.ndarray  # (K, S)
    hessian_ratio: np.ndarray  # (K, S)
    train_loss: np.ndarray  # (K, S) loss at the slice centre


def collect(results: Sequence[Result]) -> Sweep:
    """Stack the non-diverged per-I results, sorted by I."""
    kept = sorted((r for r in results if not r.diverged), key=lambda r: r.branches)
    if not kept:
        raise ValueError("results must hold at least one run that did not diverge")
    return Sweep(
        branches=np.array([r.branches for r in kept]),
        alphas=kept[0].alphas,
        betas=kept[0].betas,
        surfaces=np.stack([r.surfaces[0] for r in kept]),
        model_coordinates=np.stack([r.model_coordinates[0] for r in kept]),
        non_psd=np.stack([r.non_psd for r in kept]),
        defect=np.stack([r.defect for r in kept]),
        hessian_ratio=np.stack([r.hessian_ratio for r in kept]),
        train_loss=np.stack([r.centre_loss for r in kept]),
    )


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or int(value) != value or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def _check_float(name: str, value: float, low: float, high: float) -> None:
    if not (np.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
