"""Study 3: width, after Du, Lee, Li, Wang & Zhai 2019 (seed section 3.1; MATH.md section 3).

For a data set on the unit sphere and a fully connected or ResNet architecture, `run` computes the
infinite-width Gram matrix ``K^(H)`` and its spectrum, sets the step size the theorem prescribes,

    fully connected  eta = multiplier * lambda_min(K^(H)) / n^2          (seed eq. 14, 2^O(H) -> 1)
    ResNet           eta = multiplier * lambda_min(K^(H)) * H^2 / n^2,

trains one width-m network on ``L = 1/2 ||u - y||^2`` by full-batch gradient descent on all layers,
and records per iteration the loss against the bound ``L(0) (1 - eta lambda_min / 2)^k`` (eq. 15),
the weight movement ``max_h ||W^(h)(k) - W^(h)(0)||_F / sqrt(m)`` (eq. 12), the Gram drift
``||G^(H)(k) - G^(H)(0)||_2 / lambda_min(K^(H))`` and ``lambda_min(G^(H)(k))``. The multiplier is
the theorem's unspecified constant; ``2 / lambda_max(G(0))`` is reported as the stability limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from landscape.engine import datasets
from landscape.engine.device import Device, resolve_device
from landscape.engine.gram import (
    ACTIVATIONS,
    ARCHITECTURES,
    Architecture,
    KernelActivation,
    gram_matrix,
    lambda_min,
)
from landscape.engine.progress import Progress, silent
from landscape.engine.validation import (
    COST_LIMIT,
    check_choice,
    check_cost,
    check_integer,
    check_number,
)
from landscape.files.results import from_groups
from landscape.studies.width.wide_nets import TrainingHistory, WideNetSpec, train

Dataset = Literal["sphere", "digits"]
DATASETS: tuple[Dataset, ...] = get_args(Dataset)
MAX_N = 512
MAX_DEPTH = 20
MAX_WIDTH = 8192
SINGULAR_RTOL = 1e-12


def sphere_data(dataset: str, n: int, input_dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (n, d) with unit rows and a scalar target ``y`` (n,) with ``|y_i| <= 1``.

    ``"sphere"``: ``x_i`` uniform on the sphere of R^d, ``y_i = sin(pi <v, x_i>)`` for a random unit
    ``v``. ``"digits"``: n of scikit-learn's 8 x 8 digits (d = 64), pixels centred over the whole
    set and each row scaled to unit norm; ``y_i = +1`` for odd digits and ``-1`` for even ones.
    """
    rng = np.random.default_rng(seed)
    if dataset == "digits":
        images, labels = datasets.digits()
        centred = images - images.mean(axis=0)
        keep = rng.choice(len(labels), size=n, replace=False)
        X = centred[keep] / np.linalg.norm(centred[keep], axis=1, keepdims=True)
        return X, np.where(labels[keep] % 2 == 1, 1.0, -1.0)
    X = datasets.unit_sphere(n, input_dim, seed)
    v = rng.standard_normal(input_dim)
    return X, np.sin(np.pi * X @ (v / np.linalg.norm(v)))


def theorem_step(
    lambda_min_K: float, n: int, depth: int, architecture: str, multiplier: float
) -> float:
    """``multiplier * lambda_min / n^2``, times ``H^2`` for ResNet (Du et al.'s prescriptions)."""
    scale = depth**2 if architecture == "resnet" else 1
    return float(multiplier * lambda_min_K * scale / n**2)


@dataclass(frozen=True)
class DataFields:
    """The data knobs shared by this study and its sweeps."""

    dataset: Dataset = "sphere"
    n: int = 32
    input_dim: int = 8

    def validate_data(self) -> None:
        """``ValueError`` naming the first data field outside its range."""
        check_choice("dataset", self.dataset, DATASETS)
        check_integer("n", self.n, 2, MAX_N)
        if self.dataset == "sphere":
            check_integer("input_dim", self.input_dim, 2, 256)


def training_cost(config: Any, width: int) -> float:
    """Multiply-adds of one forward pass per iteration at ``width`` (the estimate
    ``iterations n (d m + (H - 1) m^2 + m)``; the backward pass costs about twice that)."""
    d = config.input_dim if config.dataset == "sphere" else 64
    layers = d * width + (config.depth - 1) * width * width + width
    return float(config.iterations) * config.n * layers


def validate_training(config: Any) -> None:
    """The checks a Width configuration and its width sweep share: data, architecture,
    activation, depth, ``c_res``, step multiplier and iterations."""
    config.validate_data()
    check_choice("architecture", config.architecture, ARCHITECTURES)
    check_choice("activation", config.activation, ACTIVATIONS)
    low_depth = 1 if config.architecture == "fc" else 2
    check_integer(f"depth H ({config.architecture})", config.depth, low_depth, MAX_DEPTH)
    c_res = check_number("c_res", config.c_res, 0.0, 1.0)
    if config.architecture == "resnet" and not 0.0 < c_res < 1.0:
        raise ValueError(f"c_res must be in (0, 1), got {config.c_res}")
    check_number("step_multiplier", config.step_multiplier, 1e-6, 1e9)
    check_integer("iterations", config.iterations, 1, 20_000)


@dataclass(frozen=True)
class Config(DataFields):
    """Every knob of the Width page; defaults render in about a second on a CPU."""

    depth: int = 3  # H, the number of hidden weight matrices W^(1..H)
    width: int = 256  # m
    architecture: Architecture = "fc"
    activation: KernelActivation = "tanh"
    c_res: float = 0.5
    step_multiplier: float = 100.0
    iterations: int = 200
    seed: int = 0
    device: Device = "auto"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field outside its allowed range."""
        validate_training(self)
        check_integer("width m", self.width, 1, MAX_WIDTH)
        check_cost(
            "training (iterations x n x (d m + (H - 1) m^2))",
            6.0 * training_cost(self, self.width),
            COST_LIMIT,
            "multiply-adds",
            "lower the width m, the depth H, n or iterations",
        )
        check_integer("seed", self.seed, 0, 2**32 - 1)


@dataclass
class Kernel:
    """The infinite-width Gram matrix, its spectrum and the theorem's step (group of `Result`)."""

    gram: np.ndarray  # K^(H) (n, n)
    eigenvalues: np.ndarray  # of K^(H), ascending (n,)
    targets: np.ndarray  # y (n,)
    lambda_min: float  # lambda_min(K^(H))
    eta: float


@dataclass
class Dynamics:
    """Gradient descent on one width-m network, against the theorem (group of `Result`)."""

    eta_stable: float  # 2 / lambda_max(G(0)), NaN when no run
    loss: np.ndarray  # (k + 1,) L(k), up to divergence
    bound: np.ndarray  # L(0) (1 - eta lambda_min / 2)^k, same length
    weight_movement: np.ndarray  # max_h ||W^(h)(k) - W^(h)(0)||_F / sqrt(m)
    gram_drift: np.ndarray  # ||G^(H)(k) - G^(H)(0)||_2 / lambda_min(K^(H))
    lambda_min_last: np.ndarray  # lambda_min(G^(H)(k))
    lambda_min_full: np.ndarray  # lambda_min(G(k)), every layer and a
    init_deviation: float  # ||G^(H)(0) - K^(H)||_2 / lambda_min(K^(H))
    measured_rate: float  # (L(k_end) / L(0))^(1 / k_end)
    bound_rate: float  # 1 - eta lambda_min / 2
    diverged: bool
    message: str  # empty, or why the run stopped or did not start


@dataclass
class Result(Dynamics, Kernel):
    """Everything the page draws; NumPy arrays, floats and strings only: the fields of
    `Kernel`, then those of `Dynamics` (flat, as saved)."""


#: What a run file may hold for each Result field (landscape.files.results.check_result):
#: kind f/i/b/s, ! finite, dimensions named alike agree; a Config field's name is its value.
RESULT_SHAPES: dict[str, str] = {
    "gram": "f[N,N]",
    "eigenvalues": "f[N]",
    "targets": "f[N]",
    "lambda_min": "f",
    "eta": "f",
    "eta_stable": "f",
    "loss": "f[T]",
    "bound": "f[T]",
    "weight_movement": "f[T]",
    "gram_drift": "f[T]",
    "lambda_min_last": "f[T]",
    "lambda_min_full": "f[T]",
    "init_deviation": "f",
    "measured_rate": "f",
    "bound_rate": "f",
    "diverged": "b",
    "message": "s",
}


def run(config: Config, progress: Progress | None = None) -> Result:
    """Compute ``K^(H)``, train one width-m network at the theorem's step, record the dynamics."""
    config.validate()
    report = progress or silent
    device = resolve_device(config.device)
    report(0.0, "Computing K^(H)")
    X, y = sphere_data(config.dataset, config.n, config.input_dim, config.seed)
    kernel = _kernel(config, X, y)
    if kernel.lambda_min <= SINGULAR_RTOL * kernel.eigenvalues[-1]:
        return from_groups(Result, kernel, _no_dynamics(kernel.lambda_min))
    spec = WideNetSpec(
        config.depth, config.width, config.activation, config.architecture, config.c_res
    )
    history = train(
        spec,
        X,
        y,
        kernel.eta,
        config.iterations,
        config.seed,
        device,
        progress=lambda f: report(0.1 + 0.9 * f, "Gradient descent"),
    )
    report(1.0, "Done")
    return from_groups(Result, kernel, _dynamics(kernel, history))


def _kernel(config: Config, X: np.ndarray, y: np.ndarray) -> Kernel:
    """``K^(H)`` of the data, its eigenvalues, and the theorem's step `theorem_step`."""
    K = gram_matrix(X, config.depth, config.activation, config.architecture, config.c_res)
    lam = lambda_min(K)
    eta = theorem_step(lam, config.n, config.depth, config.architecture, config.step_multiplier)
    return Kernel(gram=K, eigenvalues=np.linalg.eigvalsh(K), targets=y, lambda_min=lam, eta=eta)


def _no_dynamics(lam: float) -> Dynamics:
    """No run: ``lambda_min(K^(H))`` is zero to rounding, so the theorem gives no step."""
    empty, nan = np.zeros(0), float("nan")
    message = (
        f"lambda_min(K^(H)) = {lam:.2e} is zero to rounding: the theorem gives no "
        "rate and no step size here. Use fewer layers, another activation or "
        "distinct points."
    )
    return Dynamics(nan, empty, empty, empty, empty, empty, empty, nan, nan, nan, False, message)


def _dynamics(kernel: Kernel, history: TrainingHistory) -> Dynamics:
    """The recorded run against the theorem: the bound ``L(0) (1 - eta lambda_min / 2)^k``,
    the measured rate ``(L(k_end) / L(0))^(1 / k_end)``, drifts relative to ``lambda_min``."""
    eta, lam = kernel.eta, kernel.lambda_min
    steps = np.arange(len(history.loss))
    bound_rate = 1.0 - eta * lam / 2.0
    end = len(history.loss) - 1
    measured = (
        float((history.loss[-1] / history.loss[0]) ** (1.0 / end))
        if end > 0 and history.loss[0] > 0
        else float("nan")
    )
    message = ""
    if history.diverged:
        message = (
            f"Gradient descent diverged after {history.iterations_run} iterations: eta = "
            f"{eta:.3g} is above the stability limit 2 / lambda_max(G(0)) = "
            f"{2.0 / history.lambda_max_full_init:.3g}. Lower the step multiplier."
        )
    return Dynamics(
        eta_stable=2.0 / history.lambda_max_full_init,
        loss=history.loss,
        bound=history.loss[0] * bound_rate**steps,
        weight_movement=history.weight_movement,
        gram_drift=history.gram_change / lam,
        lambda_min_last=history.lambda_min_last,
        lambda_min_full=history.lambda_min_full,
        init_deviation=float(np.linalg.norm(history.gram_last_init - kernel.gram, 2) / lam),
        measured_rate=measured,
        bound_rate=bound_rate,
        diverged=history.diverged,
        message=message,
    )


def stable_multiplier(result: Result, multiplier: float) -> float:
    """The largest stable step in units of the theorem's step: ``multiplier * eta_stable / eta``
    with ``eta_stable = 2 / lambda_max(G(0))`` (beyond it the linearised dynamics diverge)."""
    return multiplier * result.eta_stable / result.eta


WIDTH_LADDER = (16, 32, 64, 128, 512, 1024, 2048, 4096)  # with the default m = 256 (4096: minutes)
DEPTH_LADDER = (1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12)  # with the default H = 3

PRESETS: dict[str, Config] = {
    "default": Config(),
    # the page's headline sliders, m and H, on the defaults: every rung opens at once
    **{f"m_{m}": Config(width=m) for m in WIDTH_LADDER},
    **{f"H_{depth}": Config(depth=depth) for depth in DEPTH_LADDER},
    "resnet": Config(architecture="resnet", step_multiplier=3000.0),
    "digits": Config(dataset="digits", n=64),
}
