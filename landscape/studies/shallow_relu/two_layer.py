"""Study 2b: two-layer ReLU networks solved exactly by their convex program, against training.

Pilanci & Ergen (ICML 2020; seed section 2.2 and its reference [5]). For data ``X`` (n, 2) or
(n, 3) (inputs and a bias column), the convex program over every activation pattern
(``solvers.convex_relu``) gives the global optimum of

    ell(relu(X U^T) a, y) + beta/2 (||U||_F^2 + ||a||^2),   U (m, d), a (m,),

and a network of critical width ``m*`` that attains it. Here networks of widths 1 to a few
``m*`` are trained on the same objective (Adam or SGD, several restarts) and their final
objectives compared with that optimum: the optimality gap of ordinary training. No trained
network can go below the optimum; narrow ones often stay above it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch

from landscape.engine.datasets import two_dimensional
from landscape.engine.device import Device, resolve_device
from landscape.engine.progress import Progress, silent
from landscape.engine.validation import COST_LIMIT, check_cost, check_integer, check_number
from landscape.server.threads import limited_threads
from solvers import convex_relu
from solvers.convex_relu import (
    LOSSES,
    METHODS,
    network_output,
    nonconvex_objective,
    solve_convex_relu,
)

Dataset = Literal["regression_1d", "moons", "circles", "spirals"]
DATASETS: tuple[Dataset, ...] = get_args(Dataset)
Optimizer = Literal["adam", "sgd"]
OPTIMIZERS: tuple[Optimizer, ...] = get_args(Optimizer)
MAX_POINTS_2D = 60  # n^2 - n + 2 <= 3542 patterns: the exact program stays a few seconds


@dataclass(frozen=True)
class Config:
    """Every knob of the two-layer section; defaults render in a few seconds on a CPU."""

    dataset: Dataset = "regression_1d"
    n: int = 16
    noise: float = 0.1
    loss: convex_relu.Loss = "squared"
    beta: float = 0.02
    solver: convex_relu.Method = "cvxpy"  # the reference solver by default
    restarts: int = 4
    width_factor: float = 3.0  # widths from 1 to width_factor * m*
    width_count: int = 6
    optimizer: Optimizer = "adam"
    lr: float = 0.01
    steps: int = 1500
    grid: int = 81  # resolution of the fitted curve or decision map
    seed: int = 0
    device: Device = "auto"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field outside its allowed range."""
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.dataset == "regression_1d":
            check_integer("n", self.n, 3, 500)
        else:
            check_integer(
                "n (2-D data: the exact program has n^2 - n + 2 patterns)",
                self.n,
                4,
                MAX_POINTS_2D,
            )
        check_number("noise", self.noise, 0.0, 2.0)
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.dataset == "regression_1d" and self.loss != "squared":
            raise ValueError(f"loss must be 'squared' for regression_1d, got {self.loss!r}")
        check_number("beta", self.beta, 1e-6, 100.0)
        if self.solver not in METHODS:
            raise ValueError(f"solver must be one of {METHODS}, got {self.solver!r}")
        check_integer("restarts", self.restarts, 1, 50)
        check_number("width_factor", self.width_factor, 1.0, 10.0)
        check_integer("width_count", self.width_count, 1, 20)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        check_number("lr", self.lr, 1e-6, 10.0)
        check_integer("steps", self.steps, 1, 100_000)
        check_integer("grid", self.grid, 5, 301)
        check_integer("seed", self.seed, 0, 2**32 - 1)
        widest = self.width_factor * (self.n + 1)  # widths up to width_factor x m* <= n + 1
        check_cost(
            "training (widths x restarts x steps x n x width)",
            18.0 * (self.width_count + 1) * self.restarts * self.steps * self.n * widest
            + 4.0 * self.grid**2 * widest,
            COST_LIMIT,
            "multiply-adds",
            "lower steps, restarts, width_count or n",
        )

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """Inputs (n, 1) or (n, 2) and targets (n,): labels in {-1, +1} for 2-D sets.

        ``regression_1d``: ``x ~ U[-2, 2]`` sorted, ``y = sin(2 x) + noise N(0, 1)``.
        """
        if self.dataset == "regression_1d":
            rng = np.random.default_rng(self.seed)
            x = np.sort(rng.uniform(-2.0, 2.0, self.n))
            return x[:, None], np.sin(2.0 * x) + self.noise * rng.standard_normal(self.n)
        points, labels = two_dimensional(self.dataset, self.n, self.noise, self.seed)
        return points, 2.0 * labels - 1.0


@dataclass
class Result:
    """Everything the page draws; NumPy arrays, floats, ints and strings only."""

    dataset: str
    loss: str
    points: np.ndarray  # (n, 1) or (n, 2) inputs, without the bias column
    targets: np.ndarray  # (n,)
    convex_objective: float  # the global optimum of the weight-decay objective
    convex_lower_bound: float  # the solver's dual certificate
    convex_network_objective: float  # objective of the recovered network
    n_patterns: int
    critical_width: int  # m*
    solver_seconds: float
    solver_converged: bool
    widths: np.ndarray  # (W,)
    final_objectives: np.ndarray  # (W, R) weight-decay objective after training
    diverged: np.ndarray  # (W, R) bool
    history_steps: np.ndarray  # (C,)
    histories: np.ndarray  # (W, R, C) objective during training, NaN after a divergence
    best_width: int
    best_objective: float
    grid_x: np.ndarray  # (G,)
    grid_y: np.ndarray  # (G,) second coordinate for 2-D data, empty for 1-D
    convex_output: np.ndarray  # (G,) or (G, G) [x, y]: network output on the grid
    trained_output: np.ndarray  # same, for the best trained network
    message: str


#: What a run file may hold for each Result field (landscape.files.results.check_result):
#: kind f/i/b/s, ! finite, dimensions named alike agree; a Config field's name is its value.
RESULT_SHAPES: dict[str, str] = {
    "dataset": "s",
    "loss": "s",
    "points": "f[N,D]",
    "targets": "f[N]",
    "convex_objective": "f",
    "convex_lower_bound": "f",
    "convex_network_objective": "f",
    "n_patterns": "i",
    "critical_width": "i",
    "solver_seconds": "f",
    "solver_converged": "b",
    "widths": "i[W]",
    "final_objectives": "f[W,restarts]",
    "diverged": "b[W,restarts]",
    "history_steps": "i[K]",
    "histories": "f[W,restarts,K]",
    "best_width": "i",
    "best_objective": "f",
    "grid_x": "f![grid]",
    "grid_y": "f![GY?]",
    "convex_output": "f[grid]|f[grid,grid]",
    "trained_output": "f[grid]|f[grid,grid]",
    "message": "s",
}


def optimality_gap(result: Result) -> float:
    """How far the best trained network stays above the global optimum, relatively:
    ``(best_objective - convex_objective) / convex_objective`` (>= 0 up to the solver's
    tolerance, since no network of any width beats the convex program)."""
    return (result.best_objective - result.convex_objective) / result.convex_objective


def certified_to(result: Result) -> float:
    """The solver's relative certificate ``(convex_objective - convex_lower_bound) /
    convex_objective``: the optimum lies within this fraction below the value shown."""
    return (result.convex_objective - result.convex_lower_bound) / result.convex_objective


def _torch_loss(f: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """``ell`` summed over samples (last axis), as in ``solvers.convex_relu.loss_value``."""
    if loss == "squared":
        return 0.5 * torch.sum((f - y) ** 2, dim=-1)
    if loss == "hinge":
        return torch.sum(torch.relu(1.0 - y * f), dim=-1)
    return torch.sum(torch.nn.functional.softplus(-y * f), dim=-1)


@dataclass
class Training:
    """Networks trained together: one per (width, restart), padded to the largest width."""

    first_layers: np.ndarray  # (B, m_max, d), zero rows beyond each width
    second_layers: np.ndarray  # (B, m_max)
    history_steps: np.ndarray  # (C,)
    histories: np.ndarray  # (B, C) objective, NaN after a divergence
    diverged: np.ndarray  # (B,) bool


def train_networks(
    X: np.ndarray,
    y: np.ndarray,
    widths: list[int],
    beta: float,
    loss: str,
    optimizer: str,
    lr: float,
    steps: int,
    seed: int,
    device: torch.device | str = "cpu",
    checkpoints: int = 100,
) -> Training:
    """Train one network per entry of ``widths`` on ``ell + beta/2 (||U||^2 + ||a||^2)``.

    All networks run as one batch (float64, full batch): neuron ``j`` of network ``b`` is masked
    off when ``j >= widths[b]``, so it has no output, no penalty and no gradient. Start:
    ``U ~ N(0, 2/d)``, ``a ~ N(0, 1/m)``.
    """
    device = torch.device(device)
    mask = torch.as_tensor(
        np.arange(max(widths))[None, :] < np.array(widths)[:, None],
        dtype=torch.float64,
        device=device,
    )
    U, a = _initial_weights(widths, X.shape[1], seed, mask)
    Xt = torch.as_tensor(X, dtype=torch.float64, device=device)
    yt = torch.as_tensor(y, dtype=torch.float64, device=device)

    def objective() -> torch.Tensor:
        Um, am = U * mask[:, :, None], a * mask
        f = torch.einsum("bnm,bm->bn", torch.relu(torch.einsum("nd,bmd->bnm", Xt, Um)), am)
        return _torch_loss(f, yt, loss) + 0.5 * beta * (
            torch.sum(Um**2, dim=(1, 2)) + torch.sum(am**2, dim=1)
        )

    solver = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)([U, a], lr=lr)
    record = np.unique(np.linspace(0, steps, min(checkpoints, steps + 1)).round().astype(int))
    histories, alive = _descend(objective, solver, steps, record, mask)
    with torch.no_grad():
        for param in (U, a):
            param.masked_fill_(~alive.reshape(-1, *([1] * (param.dim() - 1))), 0.0)
    return Training(
        first_layers=(U * mask[:, :, None]).detach().cpu().numpy(),
        second_layers=(a * mask).detach().cpu().numpy(),
        history_steps=record,
        histories=histories,
        diverged=(~alive).cpu().numpy(),
    )


def _initial_weights(
    widths: list[int], d: int, seed: int, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``U ~ N(0, 2/d)`` (B, m, d) and ``a ~ N(0, 1/m_b)`` (B, m), masked, requiring grad
    (drawn on the CPU from ``seed``, then moved to the mask's device)."""
    B, m = mask.shape
    generator = torch.Generator().manual_seed(seed)
    U = torch.randn(B, m, d, generator=generator, dtype=torch.float64) * np.sqrt(2.0 / d)
    a = (
        torch.randn(B, m, generator=generator, dtype=torch.float64)
        / torch.sqrt(torch.as_tensor(widths, dtype=torch.float64))[:, None]
    )
    U = (U.to(mask.device) * mask[:, :, None]).requires_grad_()
    a = (a.to(mask.device) * mask).requires_grad_()
    return U, a


def _descend(
    objective: Callable[[], torch.Tensor],
    solver: torch.optim.Optimizer,
    steps: int,
    record: np.ndarray,
    mask: torch.Tensor,
) -> tuple[np.ndarray, torch.Tensor]:
    """Full-batch steps on the sum of the B objectives (one per row of ``mask``) that are still
    finite; returns the objectives at the ``record`` steps (B, C), NaN once diverged, and which
    stayed finite (B,)."""
    count = mask.shape[0]
    histories = np.full((count, len(record)), np.nan)
    alive = torch.ones(count, dtype=torch.bool, device=mask.device)
    column = 0
    for step in range(steps + 1):
        solver.zero_grad()
        values = objective()
        alive &= torch.isfinite(values)
        if column < len(record) and step == record[column]:
            histories[:, column] = torch.where(alive, values, torch.nan).detach().cpu().numpy()
            column += 1
        if step == steps or not bool(alive.any()):
            break
        torch.where(alive, values, 0.0).sum().backward()
        solver.step()
    return histories, alive


def width_sweep(critical: int, factor: float, count: int) -> np.ndarray:
    """About ``count`` widths from 1 to ``factor * m*``, geometric, always including ``m*``."""
    top = max(1, int(round(factor * max(critical, 1))))
    grid = np.round(np.geomspace(1, top, count)).astype(int) if count > 1 else np.array([top])
    return np.unique(np.r_[grid, max(critical, 1)])


def _grid(points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluation inputs with a bias column: (G, 2) in 1-D, (G*G, 3) in 2-D ([x, y] order)."""
    low, high = points.min(axis=0), points.max(axis=0)
    pad = 0.15 * (high - low) + 0.1
    axes = [np.linspace(lo - p, hi + p, size) for lo, hi, p in zip(low, high, pad, strict=True)]
    if points.shape[1] == 1:
        return axes[0], np.zeros(0), np.c_[axes[0], np.ones(size)]
    gx, gy = np.meshgrid(axes[0], axes[1], indexing="ij")
    return axes[0], axes[1], np.c_[gx.ravel(), gy.ravel(), np.ones(gx.size)]


def run(config: Config, progress: Progress | None = None) -> Result:
    """Solve the exact convex program, train widths 1..factor*m* with restarts, compare."""
    config.validate()
    report = progress or silent
    device = resolve_device(config.device)
    points, y = config.data()
    X = np.c_[points, np.ones(len(points))]
    report(0.0, f"Solving the exact convex program ({config.solver})")
    with limited_threads(1):
        solution = solve_convex_relu(
            X, y, config.beta, loss=config.loss, patterns="all", method=config.solver, device=device
        )
    critical = solution.critical_width
    widths = width_sweep(critical, config.width_factor, config.width_count)
    batch = [int(m) for m in widths for _ in range(config.restarts)]
    report(0.3, f"Training {len(batch)} networks ({config.optimizer}, {config.steps} steps)")
    trained = _train(config, X, y, batch, device)
    report(0.9, "Evaluating the networks")
    finals = _final_objectives(config, X, y, trained)
    shape = (len(widths), config.restarts)
    best, message = _best_run(finals, trained.diverged)
    grid_x, grid_y, inputs = _grid(points, config.grid)
    size = (config.grid,) if points.shape[1] == 1 else (config.grid, config.grid)
    convex_out = network_output(solution.first_layer, solution.second_layer, inputs)
    trained_out = network_output(trained.first_layers[best], trained.second_layers[best], inputs)
    report(1.0, "Done")
    return Result(
        dataset=config.dataset,
        loss=config.loss,
        points=points,
        targets=y,
        convex_objective=float(solution.objective),
        convex_lower_bound=float(solution.lower_bound),
        convex_network_objective=float(solution.network_objective),
        n_patterns=int(solution.n_patterns),
        critical_width=int(critical),
        solver_seconds=float(solution.seconds),
        solver_converged=bool(solution.converged),
        widths=widths,
        final_objectives=finals.reshape(shape),
        diverged=trained.diverged.reshape(shape),
        history_steps=trained.history_steps,
        histories=trained.histories.reshape(*shape, -1),
        best_width=int(batch[best]),
        best_objective=float(finals[best]),
        grid_x=grid_x,
        grid_y=grid_y,
        convex_output=convex_out.reshape(size),
        trained_output=trained_out.reshape(size),
        message=message,
    )


def _train(
    config: Config, X: np.ndarray, y: np.ndarray, batch: list[int], device: torch.device
) -> Training:
    """`train_networks` on one thread with the config's loss, optimiser, steps and seed."""
    with limited_threads(1):
        return train_networks(
            X,
            y,
            batch,
            config.beta,
            config.loss,
            config.optimizer,
            config.lr,
            config.steps,
            config.seed,
            device,
        )


def _final_objectives(
    config: Config, X: np.ndarray, y: np.ndarray, trained: Training
) -> np.ndarray:
    """The non-convex objective of every trained network in float64 (NaN where it diverged)."""
    layers = zip(trained.first_layers, trained.second_layers, trained.diverged, strict=True)
    return np.array(
        [
            nonconvex_objective(U, a, X, y, config.beta, config.loss) if not bad else np.nan
            for U, a, bad in layers
        ]
    )


def _best_run(finals: np.ndarray, diverged: np.ndarray) -> tuple[int, str]:
    """The index of the lowest final objective, and what the page says about divergences."""
    if np.all(np.isnan(finals)):
        return 0, "Every training run diverged (NaN/inf): lower the learning rate."
    count = int(diverged.sum())
    message = f"{count} training run(s) diverged: lower the learning rate." if count else ""
    return int(np.nanargmin(finals)), message


BETA_LADDER = (0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0)  # with the default 0.02

PRESETS: dict[str, Config] = {
    "default": Config(),
    # the page's beta slider: every value opens at once
    **{f"beta_{beta:g}": Config(beta=beta) for beta in BETA_LADDER},
}
