"""The width sweep of the Width study (seed section 3.1; MATH.md section 3).

One architecture at a fixed depth, trained at every width ``m = 2^k`` in [min_width, max_width] with
the same data, seed and step (the theorem's, see `landscape.studies.width.width`). Per width: the
loss curve, the final weight movement ``max_h ||W^(h) - W^(h)(0)||_F / sqrt(m)``, the largest Gram
drift ``max_k ||G^(H)(k) - G^(H)(0)||_2 / lambda_min(K^(H))`` and the deviation at initialisation
``||G^(H)(0) - K^(H)||_2 / lambda_min(K^(H))``, each fitted against m on log-log axes. Du et al.'s
proof bounds all three by ``O(m^(-1/2))``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from landscape.engine.device import Device, resolve_device
from landscape.engine.gram import Architecture, KernelActivation, gram_matrix, lambda_min
from landscape.engine.progress import Progress, silent
from landscape.engine.validation import COST_LIMIT, check_cost, check_integer
from landscape.server import cluster
from landscape.studies.width.wide_nets import TrainingHistory, WideNetSpec, train
from landscape.studies.width.width import (
    MAX_WIDTH,
    SINGULAR_RTOL,
    DataFields,
    sphere_data,
    theorem_step,
    training_cost,
    validate_training,
)


def power_of_two_widths(low: int, high: int) -> np.ndarray:
    """``[2^k for low <= 2^k <= high]`` as int64."""
    return np.array([2**k for k in range(0, 31) if low <= 2**k <= high], dtype=np.int64)


def check_width_range(low: int, high: int, cap: int, field: str = "max_width") -> None:
    """``1 <= low <= high <= cap`` holding at least two powers of two; ValueError naming
    ``min_width`` or ``field``, the value and the range otherwise."""
    check_integer("min_width", low, 1, cap)
    check_integer(field, high, low, cap)
    if len(power_of_two_widths(low, high)) < 2:
        raise ValueError(
            f"[min_width, {field}] = [{low}, {high}] must hold at least two powers of two"
        )


def loglog_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)`` of ``log y = slope log x + intercept``; NaN if < 2."""
    keep = np.isfinite(y) & (y > 0)
    if keep.sum() < 2:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)
    return float(slope), float(intercept)


@dataclass(frozen=True)
class Config(DataFields):
    """One architecture at a fixed depth, trained at every power-of-two width; defaults take
    about ten seconds on a 2-core CPU."""

    depth: int = 3
    architecture: Architecture = "fc"
    activation: KernelActivation = "tanh"
    c_res: float = 0.5
    step_multiplier: float = 100.0
    iterations: int = 200
    min_width: int = 16
    max_width: int = 512
    seed: int = 0
    device: Device = "auto"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field outside its allowed range."""
        validate_training(self)
        check_width_range(self.min_width, self.max_width, MAX_WIDTH)
        check_cost(
            "training at every width (iterations x n x (d m + (H - 1) m^2))",
            6.0
            * sum(
                training_cost(self, m) for m in power_of_two_widths(self.min_width, self.max_width)
            ),
            COST_LIMIT,
            "multiply-adds",
            "lower max_width, the depth H, n or iterations",
        )
        check_integer("seed", self.seed, 0, 2**32 - 1)


@dataclass
class Result:
    """Per width: the loss curve and the three quantities the proof bounds by O(m^(-1/2))."""

    widths: np.ndarray  # (W,)
    loss: np.ndarray  # (W, iterations + 1), NaN after a divergence
    diverged: np.ndarray  # (W,) bool
    bound: np.ndarray  # (iterations + 1,) L(0) (1 - eta lambda_min / 2)^k with the mean L(0)
    weight_movement: np.ndarray  # (W,) at the last iteration run
    gram_drift: np.ndarray  # (W,) max_k ||G^(H)(k) - G^(H)(0)||_2 / lambda_min
    init_deviation: np.ndarray  # (W,) ||G^(H)(0) - K^(H)||_2 / lambda_min
    movement_slope: float
    movement_intercept: float
    drift_slope: float
    drift_intercept: float
    deviation_slope: float
    deviation_intercept: float
    lambda_min: float
    eta: float
    message: str


# `train`'s positional arguments for one width: spec, X, y, eta, iterations, seed, device.
TrainArguments = tuple[WideNetSpec, np.ndarray, np.ndarray, float, int, int, torch.device]


def train_width(run: tuple) -> TrainingHistory:
    """One width of the sweep: ``train(spec, X, y, eta, iterations, seed, device)`` (a Ray task
    inside ``engine.cluster.compute_on``)."""
    return train(*run)


#: What a run file may hold for each Result field (landscape.files.results.check_result):
#: kind f/i/b/s, ! finite, dimensions named alike agree; a Config field's name is its value.
RESULT_SHAPES: dict[str, str] = {
    "widths": "i[W]",
    "loss": "f[W,T]",
    "diverged": "b[W]",
    "bound": "f[T]",
    "weight_movement": "f[W]",
    "gram_drift": "f[W]",
    "init_deviation": "f[W]",
    "movement_slope": "f",
    "movement_intercept": "f",
    "drift_slope": "f",
    "drift_intercept": "f",
    "deviation_slope": "f",
    "deviation_intercept": "f",
    "lambda_min": "f",
    "eta": "f",
    "message": "s",
}


def run(config: Config, progress: Progress | None = None) -> Result:
    """Train at every width and fit the three quantities against m (the widths run as Ray
    tasks inside ``engine.cluster.compute_on(address)``)."""
    config.validate()
    report = progress or silent
    device = resolve_device(config.device)
    X, y = sphere_data(config.dataset, config.n, config.input_dim, config.seed)
    K = gram_matrix(X, config.depth, config.activation, config.architecture, config.c_res)
    lam = lambda_min(K)
    eta = theorem_step(lam, config.n, config.depth, config.architecture, config.step_multiplier)
    widths = power_of_two_widths(config.min_width, config.max_width)
    singular = lam <= SINGULAR_RTOL * np.linalg.eigvalsh(K)[-1]
    runs: list[TrainArguments] = [
        (
            WideNetSpec(config.depth, int(m), config.activation, config.architecture, config.c_res),
            X,
            y,
            eta,
            config.iterations,
            config.seed,
            device,
        )
        for m in (widths if not singular else [])
    ]
    histories = _train_all(runs, widths, report)
    loss, diverged, movement, drift, deviation = _measures(
        histories, len(widths), config.iterations, K, lam
    )
    report(1.0, "Done")
    fits = [
        loglog_slope(widths.astype(np.float64), values) for values in (movement, drift, deviation)
    ]
    message = ""
    if singular:
        message = f"lambda_min(K^(H)) = {lam:.2e} is zero to rounding: no step size, no sweep."
    elif diverged.any():
        message = f"Diverged at m = {widths[diverged].tolist()}; the fits use the other widths."
    mean_start = np.nanmean(loss[:, 0]) if not singular else float("nan")
    return Result(
        widths=widths,
        loss=loss,
        diverged=diverged,
        bound=mean_start * (1.0 - eta * lam / 2.0) ** np.arange(config.iterations + 1),
        weight_movement=movement,
        gram_drift=drift,
        init_deviation=deviation,
        movement_slope=fits[0][0],
        movement_intercept=fits[0][1],
        drift_slope=fits[1][0],
        drift_intercept=fits[1][1],
        deviation_slope=fits[2][0],
        deviation_intercept=fits[2][1],
        lambda_min=lam,
        eta=eta,
        message=message,
    )


def _train_all(
    runs: list[TrainArguments], widths: np.ndarray, report: Progress
) -> list[TrainingHistory]:
    """`train` at every width: one Ray task per width inside ``cluster.compute_on``, else in
    turn; progress counted in the cost of a run, which grows like m^2."""
    costs = np.cumsum(widths.astype(np.float64) ** 2) / np.sum(widths.astype(np.float64) ** 2)
    if cluster.compute_location() is not None:  # one Ray task per width
        return cluster.parallel_map(
            train_width,
            runs,
            progress=lambda k, run: report(costs[k], f"Width m = {run[0].width} done"),
        )
    histories = []
    for index, run in enumerate(runs):
        before = costs[index - 1] if index else 0.0
        histories.append(
            train(
                *run,
                progress=_between(report, before, costs[index], f"Width m = {run[0].width}"),
            )
        )
    return histories


def _measures(
    histories: list[TrainingHistory], count: int, iterations: int, K: np.ndarray, lam: float
) -> tuple[np.ndarray, ...]:
    """Per width (``count`` rows; NaN where no run): the loss curve (iterations + 1), whether it
    diverged, the final weight movement, the largest Gram drift and the deviation at
    initialisation, the last two relative to ``lambda_min(K^(H))``."""
    loss = np.full((count, iterations + 1), np.nan)
    diverged = np.zeros(count, dtype=bool)
    movement, drift, deviation = (np.full(count, np.nan) for _ in range(3))
    for index, history in enumerate(histories):
        loss[index, : len(history.loss)] = history.loss
        diverged[index] = history.diverged
        if not history.diverged:
            movement[index] = history.weight_movement[-1]
            drift[index] = history.gram_change.max() / lam
        deviation[index] = np.linalg.norm(history.gram_last_init - K, 2) / lam
    return loss, diverged, movement, drift, deviation


def _between(report: Progress, start: float, end: float, stage: str) -> Callable[[float], None]:
    """A fraction-only progress callback mapping [0, 1] onto [start, end] of ``report``."""
    return lambda fraction: report(start + fraction * (end - start), stage)
