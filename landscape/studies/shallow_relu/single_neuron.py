"""Study 2a: one ReLU neuron and its convex relaxation (Ergen & Pilanci 2019; seed section 2.2).

Shapes: ``X`` (n, D) samples in rows (``D = d + 1`` with the bias feature), ``w`` (D,). In the
seed's notation ``X_s = X^T`` and ``sigma(W^T X_s) = relu(X w)^T``. The two losses are

    L(w)   = ||relu(X w) - y||^2                                 (seed eq. 7, non-convex)
    L_r(w) = ||relu(X w)||^2 - 2 y^T X w + ||y||^2                (seed eq. 8, convex)
           = L(w) + 2 y^T relu(-X w)                              (so L_r >= L when y >= 0)

with gradients ``grad L = 2 X^T D (relu(X w) - y)``, ``D = diag(1[X w > 0])`` (seed eq. 6), and
``grad L_r = 2 X^T (relu(X w) - y)``: the relaxation drops the mask ``D``, so a neuron that is off
on every sample (a dead neuron, where ``grad L = 0``) still moves. On planted data
``y = relu(X w*)``, ``grad L_r(w*) = 0`` and ``w*`` minimises the convex ``L_r`` (uniquely when
``X`` has full column rank), hence also ``L``. The seed does not publish its data model; here:
Gaussian features with a chosen condition number, a planted unit ``w*`` and bias, label noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch

from landscape.engine.device import Device, resolve_device
from landscape.engine.progress import Progress, silent
from landscape.engine.validation import COST_LIMIT, check_cost, check_integer, check_number
from landscape.server.threads import limited_threads

Initialisation = Literal["gaussian", "opposite", "dead"]
INITIALISATIONS: tuple[Initialisation, ...] = get_args(Initialisation)
METHODS = ("vanilla", "relaxed")


def _in_range(name: str, value: float, low: float, high: float) -> None:
    check_number(name, value, low, high)


# --------------------------------------------------------------------------------------------
# The two losses and their gradients (NumPy, float64)
# --------------------------------------------------------------------------------------------
def loss(w: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``L(w) = ||relu(X w) - y||^2``; ``w`` (D,) or a stack (..., D) -> scalar or (...)."""
    return np.sum((np.maximum(np.asarray(w) @ X.T, 0.0) - y) ** 2, axis=-1)


def relaxed_loss(w: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``L_r(w) = ||relu(X w)||^2 - 2 y^T X w + ||y||^2``; ``w`` (D,) or (..., D)."""
    z = np.asarray(w) @ X.T
    return np.sum(np.maximum(z, 0.0) ** 2, axis=-1) - 2.0 * z @ y + y @ y


def loss_gradient(w: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``grad L(w) = 2 X^T D (relu(X w) - y)`` with ``D = diag(1[X w > 0])`` (seed eq. 6)."""
    z = X @ w
    return 2.0 * X.T @ ((z > 0) * (np.maximum(z, 0.0) - y))


def relaxed_gradient(w: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``grad L_r(w) = 2 X^T (relu(X w) - y)``: the gradient of ``L`` without the mask ``D``."""
    return 2.0 * X.T @ (np.maximum(X @ w, 0.0) - y)


def min_second_difference(values: np.ndarray) -> float:
    """Smallest second difference ``f(x+h) - 2 f(x) + f(x-h)`` on a grid, along both axes and
    both diagonals: non-negative for a function convex along every line."""
    centre = values[1:-1, 1:-1]
    pairs = [
        (values[2:, 1:-1], values[:-2, 1:-1]),
        (values[1:-1, 2:], values[1:-1, :-2]),
        (values[2:, 2:], values[:-2, :-2]),
        (values[2:, :-2], values[:-2, 2:]),
    ]
    return float(min(np.min(a - 2.0 * centre + b) for a, b in pairs))


def final_median(curves: np.ndarray) -> float:
    """Median over replicates of the last finite value of each curve (S, T + 1)."""
    last = [row[np.isfinite(row)][-1] for row in curves if np.any(np.isfinite(row))]
    return float(np.median(last)) if last else float("nan")


# --------------------------------------------------------------------------------------------
# The study
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    """Every knob of the single-neuron section; defaults render in about a second on a CPU."""

    n: int = 100  # training samples
    n_test: int = 200
    d: int = 10  # features, not counting the bias
    noise: float = 0.0  # standard deviation of the label noise (0: the seed's noiseless setting)
    condition: float = 1.0  # condition number of the feature covariance
    bias: bool = True  # append a constant feature (needed for a dead start)
    step: float = 0.5  # step size in units of 1 / (2 lambda_max(X^T X)), the 1/Lipschitz step
    iterations: int = 300
    init: Initialisation = "gaussian"
    init_scale: float = 1.0
    seeds: int = 10  # independent data sets and starts; the curves show median and band
    slice_resolution: int = 41
    seed: int = 0
    device: Device = "auto"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field outside its allowed range."""
        check_integer("n", self.n, 2, 20_000)
        check_integer("n_test", self.n_test, 1, 20_000)
        check_integer("d", self.d, 1, 500)
        _in_range("noise", self.noise, 0.0, 10.0)
        _in_range("condition", self.condition, 1.0, 1e6)
        _in_range("step", self.step, 1e-6, 4.0)
        check_integer("iterations", self.iterations, 1, 100_000)
        if self.init not in INITIALISATIONS:
            raise ValueError(f"init must be one of {INITIALISATIONS}, got {self.init!r}")
        if self.init == "dead" and not self.bias:
            raise ValueError(
                "init='dead' needs bias=True: without a bias a neuron is never off on every "
                "sample of symmetric data"
            )
        _in_range("init_scale", self.init_scale, 1e-6, 100.0)
        check_integer("seeds", self.seeds, 1, 200)
        check_integer("slice_resolution", self.slice_resolution, 5, 201)
        check_integer("seed", self.seed, 0, 2**32 - 1)
        check_cost(
            "training (seeds x iterations x (n + n_test) x d, twice)",
            8.0 * self.seeds * self.iterations * (self.n + self.n_test) * self.d
            + 2.0 * self.slice_resolution**2 * self.n * self.d,
            COST_LIMIT,
            "multiply-adds",
            "lower iterations, seeds, n or d",
        )


@dataclass
class Result:
    """Everything the page draws; NumPy arrays, floats and strings only."""

    iterations: np.ndarray  # (T + 1,)
    vanilla_train: np.ndarray  # (S, T + 1) training mean squared error of relu(X w)
    vanilla_test: np.ndarray  # (S, T + 1)
    vanilla_recovery: np.ndarray  # (S, T + 1) ||w - w*|| / ||w*||
    relaxed_train: np.ndarray
    relaxed_test: np.ndarray
    relaxed_recovery: np.ndarray
    vanilla_diverged: np.ndarray  # (S,) bool
    relaxed_diverged: np.ndarray
    dead_at_start: np.ndarray  # (S,) bool: relu(X w0) = 0 on every training sample
    relaxed_gradient_at_star: np.ndarray  # (S,) ||grad L_r(w*)|| / ||X^T y||
    slice_alphas: np.ndarray  # (R,) coordinate along w* (w* at 1, the origin at 0)
    slice_betas: np.ndarray  # (R,) coordinate along a random direction orthogonal to w*
    slice_loss: np.ndarray  # (R, R) L on the first seed's training data, [alpha, beta]
    slice_relaxed: np.ndarray  # (R, R) L_r
    slice_identity_error: float  # max |L_r - L - 2 y^T relu(-X w)| / max L_r on the slice
    slice_min_curvature_loss: float  # min_second_difference(L) / max L: < 0 means non-convex
    slice_min_curvature_relaxed: float
    message: str


#: What a run file may hold for each Result field (landscape.files.results.check_result):
#: kind f/i/b/s, ! finite, dimensions named alike agree; a Config field's name is its value.
RESULT_SHAPES: dict[str, str] = {
    "iterations": "i[T]",
    "vanilla_train": "f[seeds,T]",
    "vanilla_test": "f[seeds,T]",
    "vanilla_recovery": "f[seeds,T]",
    "relaxed_train": "f[seeds,T]",
    "relaxed_test": "f[seeds,T]",
    "relaxed_recovery": "f[seeds,T]",
    "vanilla_diverged": "b[seeds]",
    "relaxed_diverged": "b[seeds]",
    "dead_at_start": "b[seeds]",
    "relaxed_gradient_at_star": "f[seeds]",
    "slice_alphas": "f![slice_resolution]",
    "slice_betas": "f![slice_resolution]",
    "slice_loss": "f[slice_resolution,slice_resolution]",
    "slice_relaxed": "f[slice_resolution,slice_resolution]",
    "slice_identity_error": "f",
    "slice_min_curvature_loss": "f",
    "slice_min_curvature_relaxed": "f",
    "message": "s",
}


PlantedData = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # X, y, tests, w*
Curves = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # train, test, recovery, diverged


def planted_data(
    config: Config, replicate: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``X_train`` (n, D), ``y_train``, ``X_test``, ``y_test``, ``w*`` (D,) for one replicate.

    Features ``Z diag(sqrt(lambda)) Q^T`` with ``lambda`` log-spaced from 1 to ``1/condition`` and
    a random rotation ``Q``; ``w*`` a unit vector (bias ``b* ~ N(0, 1/16)`` appended when
    ``bias``); ``y = relu(X w*) + noise * N(0, 1)``.
    """
    rng = np.random.default_rng([config.seed, replicate])
    total, d = config.n + config.n_test, config.d
    spectrum = config.condition ** (-np.linspace(0.0, 1.0, d)) if d > 1 else np.ones(1)
    rotation = np.linalg.qr(rng.standard_normal((d, d)))[0]
    X = (rng.standard_normal((total, d)) * np.sqrt(spectrum)) @ rotation.T
    w_star = rng.standard_normal(d)
    w_star /= np.linalg.norm(w_star)
    if config.bias:
        X = np.c_[X, np.ones(total)]
        w_star = np.r_[w_star, 0.25 * rng.standard_normal()]
    y = np.maximum(X @ w_star, 0.0) + config.noise * rng.standard_normal(total)
    return X[: config.n], y[: config.n], X[config.n :], y[config.n :], w_star


def initial_weights(
    config: Config, X: np.ndarray, w_star: np.ndarray, replicate: int
) -> np.ndarray:
    """The start ``w0`` (D,): Gaussian, ``-w*`` (the wrong half-space), or a dead neuron.

    Gaussian: ``init_scale * N(0, I / D)``. Opposite: ``-init_scale * w* / ||w*||``. Dead: a
    Gaussian direction whose bias is set below ``-max_j |x_j^T w|`` so that ``X w0 < 0``.
    """
    rng = np.random.default_rng([config.seed, replicate, 1])
    D = X.shape[1]
    if config.init == "opposite":
        return -config.init_scale * w_star / np.linalg.norm(w_star)
    w = config.init_scale * rng.standard_normal(D) / np.sqrt(D)
    if config.init == "dead":
        w[-1] = 0.0
        w[-1] = -(np.max(np.abs(X @ w)) + config.init_scale)
    return w


def gradient_descent(
    X: torch.Tensor,
    y: torch.Tensor,
    X_test: torch.Tensor,
    y_test: torch.Tensor,
    w_star: torch.Tensor,
    w0: torch.Tensor,
    steps: torch.Tensor,
    iterations: int,
    relaxed: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batched GD ``w <- w - step * grad`` on ``L`` (or ``L_r``) for S replicates at once.

    ``X`` (S, n, D), ``y`` (S, n), ``w_star``, ``w0`` (S, D), ``steps`` (S,). Returns training
    and test mean squared errors of ``relu(X w)`` and ``||w - w*|| / ||w*||``, each
    (S, iterations + 1), NaN after a divergence, and the divergence flags (S,).
    """
    w = w0.clone()
    star_norm = torch.linalg.norm(w_star, dim=1)
    history = torch.full(
        (3, w.shape[0], iterations + 1), float("nan"), dtype=w.dtype, device=w.device
    )
    alive = torch.ones(w.shape[0], dtype=torch.bool, device=w.device)
    for t in range(iterations + 1):
        z = torch.einsum("snd,sd->sn", X, w)
        active = torch.relu(z)
        history[0, alive, t] = torch.mean((active - y) ** 2, dim=1)[alive]
        z_test = torch.einsum("snd,sd->sn", X_test, w)
        history[1, alive, t] = torch.mean((torch.relu(z_test) - y_test) ** 2, dim=1)[alive]
        history[2, alive, t] = (torch.linalg.norm(w - w_star, dim=1) / star_norm)[alive]
        finite = torch.isfinite(history[:, :, t]).all(dim=0)
        alive &= finite
        if t == iterations or not bool(alive.any()):
            break
        residual = active - y if relaxed else (z > 0) * (active - y)
        gradient = 2.0 * torch.einsum("snd,sn->sd", X, residual)
        w = torch.where(alive[:, None], w - steps[:, None] * gradient, w)
    diverged = ~alive
    for index in torch.nonzero(diverged).flatten().tolist():
        first_bad = int(torch.nonzero(~torch.isfinite(history[:, index, :]).all(dim=0))[0])
        history[:, index, first_bad:] = float("nan")
    values = history.cpu().numpy()
    return values[0], values[1], values[2], diverged.cpu().numpy()


def _slice(
    config: Config, X: np.ndarray, y: np.ndarray, w_star: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """``L`` and ``L_r`` on the plane through 0, ``w*`` and a random direction ``e2 _|_ w*``.

    ``w = ||w*|| (alpha e1 + beta e2)``, ``e1 = w*/||w*||``; returns the grids and the largest
    deviation from the identity ``L_r = L + 2 y^T relu(-X w)`` (relative to max L_r).
    """
    rng = np.random.default_rng([config.seed, 10**6])
    scale = np.linalg.norm(w_star)
    e1 = w_star / scale
    e2 = rng.standard_normal(w_star.shape)
    e2 -= (e2 @ e1) * e1
    e2 /= np.linalg.norm(e2)
    alphas = np.linspace(-1.25, 1.75, config.slice_resolution)
    betas = np.linspace(-1.5, 1.5, config.slice_resolution)
    W = scale * (alphas[:, None, None] * e1 + betas[None, :, None] * e2)
    values, relaxed = loss(W, X, y), relaxed_loss(W, X, y)
    identity = values + 2.0 * np.maximum(-W @ X.T, 0.0) @ y
    error = float(np.max(np.abs(relaxed - identity)) / max(float(np.max(np.abs(relaxed))), 1e-300))
    return alphas, betas, values, relaxed, error


def run(config: Config, progress: Progress | None = None) -> Result:
    """GD on ``L`` and on ``L_r`` (same data, start and step) over ``seeds`` replicates; slice."""
    config.validate()
    report = progress or silent
    device = resolve_device(config.device)
    report(0.0, "Drawing planted data")
    data = [planted_data(config, s) for s in range(config.seeds)]
    starts = [initial_weights(config, d[0], d[4], s) for s, d in enumerate(data)]
    curves = _descend_both(config, data, starts, device, report)
    report(0.9, "Slicing L and L_r")
    X, y, _, _, w_star = data[0]
    alphas, betas, values, relaxed_values, identity_error = _slice(config, X, y, w_star)
    peak = max(float(np.max(values)), 1e-300)
    dead = np.array([bool(np.all(d[0] @ w <= 0)) for d, w in zip(data, starts, strict=True)])
    at_star = np.array([_relative_gradient_at_star(d) for d in data])
    diverged = {key: curves[key][3] for key in curves}
    count = int(diverged[False].sum() + diverged[True].sum())
    message = f"{count} of {2 * config.seeds} runs diverged (NaN/inf): lower the step size."
    message = message if count else ""
    report(1.0, "Done")
    return Result(
        iterations=np.arange(config.iterations + 1),
        vanilla_train=curves[False][0],
        vanilla_test=curves[False][1],
        vanilla_recovery=curves[False][2],
        relaxed_train=curves[True][0],
        relaxed_test=curves[True][1],
        relaxed_recovery=curves[True][2],
        vanilla_diverged=diverged[False],
        relaxed_diverged=diverged[True],
        dead_at_start=dead,
        relaxed_gradient_at_star=at_star,
        slice_alphas=alphas,
        slice_betas=betas,
        slice_loss=values,
        slice_relaxed=relaxed_values,
        slice_identity_error=identity_error,
        slice_min_curvature_loss=min_second_difference(values) / peak,
        slice_min_curvature_relaxed=min_second_difference(relaxed_values) / peak,
        message=message,
    )


def _descend_both(
    config: Config,
    data: list[PlantedData],
    starts: list[np.ndarray],
    device: torch.device,
    report: Progress,
) -> dict[bool, Curves]:
    """Gradient descent on ``L`` (key False) and on ``L_r`` (key True) for every seed at once:
    the same data, start and step ``step / (2 ||X||_2^2)``."""
    stack = {
        name: torch.as_tensor(np.stack([d[i] for d in data]), dtype=torch.float64, device=device)
        for i, name in enumerate(("X", "y", "X_test", "y_test", "w_star"))
    }
    lipschitz = [2.0 * np.linalg.norm(d[0], 2) ** 2 for d in data]
    steps = torch.as_tensor(config.step / np.array(lipschitz), dtype=torch.float64, device=device)
    w0 = torch.as_tensor(np.stack(starts), dtype=torch.float64, device=device)
    curves: dict[bool, Curves] = {}
    with limited_threads(1):  # thousands of tiny batched products: threads only add overhead
        for index, relaxed in enumerate((False, True)):
            report(0.1 + 0.4 * index, f"Gradient descent on {'L_r' if relaxed else 'L'}")
            curves[relaxed] = gradient_descent(
                stack["X"],
                stack["y"],
                stack["X_test"],
                stack["y_test"],
                stack["w_star"],
                w0,
                steps,
                config.iterations,
                relaxed,
            )
    return curves


def _relative_gradient_at_star(data: PlantedData) -> float:
    """``||grad L_r(w*)|| / ||X^T y||`` for one seed's planted data ``(X, y, ..., w*)``."""
    X, y, w_star = data[0], data[1], data[4]
    return float(
        np.linalg.norm(relaxed_gradient(w_star, X, y)) / max(float(np.linalg.norm(X.T @ y)), 1e-300)
    )


PRESETS: dict[str, Config] = {"default": Config()}
