"""Question 2 of the seed: are skip connections parallel branches?

A ResNet with ``k`` blocks unrolls into ``2^k`` paths (Veit et al. 2016). For each ``k`` this
compares it with a multi-branch network of ``I = 2^k`` one-hidden-layer branches whose width is
chosen so that the parameter counts match (`nets.matched_width`), on the same data and loss:

- the Branches page's three non-convexity measures, on filter-normalised random planes around
  each trained model (``landscape.engine``: `surface_2d`, `non_psd_fraction`,
  `max_convexity_defect`, `hessian_ratio` from Lanczos extreme eigenvalues);
- the empirical optimality gap: over ``restarts`` trainings from different seeds,
  ``(L_r - min_r L_r) / min_r L_r`` of the final training losses, where ``min_r L_r`` (the best of
  the restarts) stands in for the unknown global optimum.

Data: two classes of scikit-learn's 8x8 digits (labels -1, +1), a stratified subsample. Training
minimises the mean squared error plus ``weight_decay / 2 ||theta||^2`` (so that the optimum is
not zero and the gaps are relative to a positive value) by full-batch Adam; the planes show the
mean squared error alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from landscape.engine import curvature, directions
from landscape.engine.datasets import digits
from landscape.engine.nonconvexity import hessian_ratio, max_convexity_defect, non_psd_fraction
from landscape.engine.problem import Problem
from landscape.engine.surface import surface_2d
from landscape.engine.validation import check_integer, check_integers, check_number
from landscape.studies.beyond.nets import (
    branch_parameters,
    build,
    count_parameters,
    matched_width,
    resnet_parameters,
    unrolled_paths,
)

FAMILIES: tuple[str, ...] = ("resnet", "branch")


@dataclass(frozen=True)
class Config:
    max_blocks: int = 3  # k = 1..max_blocks, I = 2^k
    resnet_width: int = 8
    classes: tuple[int, int] = (3, 8)
    n: int = 120
    restarts: int = 5
    measured: int = 2  # restarts whose planes and Hessians are measured
    steps: int = 300
    lr: float = 0.01
    weight_decay: float = 1e-3
    resolution: int = 9
    radius: float = 0.5
    hessian_iterations: int = 15
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        check_integer("seed", self.seed, 0, 2**31 - 1)
        check_integer("max_blocks", self.max_blocks, 1, 5)
        check_integer("resnet_width", self.resnet_width, 2, 128)
        if len(check_integers("classes", self.classes, 0, 9, 2)) != 2:
            raise ValueError(f"classes must be two distinct digits, got {self.classes}")
        check_integer("n", self.n, 20, 350)
        check_integer("restarts", self.restarts, 2, 50)
        check_integer("measured", self.measured, 1, self.restarts)
        check_integer("steps", self.steps, 10, 5000)
        check_number("lr", self.lr, 1e-5, 1.0)
        check_number("weight_decay", self.weight_decay, 1e-6, 1.0)
        check_integer("resolution", self.resolution, 5, 41)
        check_number("radius", self.radius, 1e-3, 10.0)
        check_integer("hessian_iterations", self.hessian_iterations, 3, 100)


@dataclass
class Result:
    blocks: np.ndarray  # (K,) k
    branches: np.ndarray  # (K,) I = 2^k = unrolled paths
    parameters: np.ndarray  # (2, K) parameter counts: resnet, branch
    branch_width: np.ndarray  # (K,) matched width of each branch
    final_loss: np.ndarray  # (2, K, R) final training objective (MSE + weight decay)
    gap: np.ndarray  # (2, K, R) (L_r - min_r L_r) / min_r L_r
    non_psd: np.ndarray  # (2, K, M) fraction of the plane whose slice Hessian is not PSD
    defect: np.ndarray  # (2, K, M) largest convexity defect along the plane's grid lines
    ratio: np.ndarray  # (2, K, M) |lambda_min / lambda_max| of the Hessian at the model
    surfaces: np.ndarray  # (2, K, A, A) the first measured restart's plane
    alphas: np.ndarray  # (A,)
    run_seconds: float


def load(config: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """A stratified subsample of two digit classes: ``X`` (n, 64), ``y`` (n, 1) in {-1, +1}."""
    X, y = digits(tuple(config.classes))
    rng = np.random.default_rng(config.seed)
    picked = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[: config.n // 2] for c in (0, 1)]
    )
    X, y = X[picked], np.where(y[picked] == 0, -1.0, 1.0)
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y[:, None], dtype=torch.float32)


def objective(model: nn.Module, X: torch.Tensor, y: torch.Tensor, weight_decay: float):
    """``mean (f(x) - y)^2 + weight_decay / 2 ||theta||^2``."""
    penalty = sum(p.square().sum() for p in model.parameters())
    return nn.functional.mse_loss(model(X), y) + 0.5 * weight_decay * penalty


def train(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, steps: int, lr: float, weight_decay: float
) -> float:
    """Full-batch Adam on `objective`; its final value."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        objective(model, X, y, weight_decay).backward()
        optimiser.step()
    with torch.no_grad():
        return float(objective(model, X, y, weight_decay))


def run(config: Config, progress: Callable[[float, str], None] | None = None) -> Result:
    """Train both families at every k, measure the planes and the optimality gaps."""
    import time

    config.validate()
    start = time.perf_counter()
    report = progress or (lambda fraction, text: None)
    X, y = load(config)
    d = X.shape[1]
    ks = np.arange(1, config.max_blocks + 1)
    K, R, M, A = len(ks), config.restarts, config.measured, config.resolution
    grid = np.linspace(-config.radius, config.radius, A)
    final = np.zeros((2, K, R))
    measures = np.zeros((3, 2, K, M))
    surfaces = np.zeros((2, K, A, A))
    parameters = np.zeros((2, K), dtype=np.int64)
    widths = np.zeros(K, dtype=np.int64)
    loss_fn = nn.MSELoss()
    for ki, k in enumerate(ks):
        I = unrolled_paths(int(k))
        target = resnet_parameters(d, 1, config.resnet_width, int(k))
        widths[ki] = matched_width(lambda w, I=I: branch_parameters(d, 1, I, w), target)
        for fi, family in enumerate(FAMILIES):
            report((ki * 2 + fi) / (2 * K), f"k = {k}: {family}")
            width = config.resnet_width if family == "resnet" else int(widths[ki])
            size = int(k) if family == "resnet" else I
            for r in range(R):
                seed = config.seed + 1000 * r
                model = build(family, d, 1, width, size, seed)
                parameters[fi, ki] = count_parameters(model)
                final[fi, ki, r] = train(model, X, y, config.steps, config.lr, config.weight_decay)
                if r >= M:
                    continue
                problem = Problem(model, loss_fn, X, y)
                d1 = directions.random_directions(model, seed=2 * seed, normalization="filter")
                d2 = directions.random_directions(model, seed=2 * seed + 1, normalization="filter")
                Z = surface_2d(problem, d1, d2, grid, grid)
                low, high = curvature.extreme_eigenvalues(
                    problem, iterations=config.hessian_iterations, seed=seed
                )
                measures[:, fi, ki, r] = (
                    non_psd_fraction(Z, grid, grid),
                    max_convexity_defect(Z),
                    hessian_ratio(low, high),
                )
                if r == 0:
                    surfaces[fi, ki] = Z
    best = final.min(axis=2, keepdims=True)
    report(1.0, "done")
    return Result(
        blocks=ks,
        branches=2**ks,
        parameters=parameters,
        branch_width=widths,
        final_loss=final,
        gap=(final - best) / np.where(best > 0, best, 1.0),
        non_psd=measures[0],
        defect=measures[1],
        ratio=measures[2],
        surfaces=surfaces,
        alphas=grid,
        run_seconds=time.perf_counter() - start,
    )


def summary(result: Result) -> list[str]:
    """Sentences comparing the families at each k, from the measured numbers."""
    lines = []
    for ki, k in enumerate(result.blocks):
        res_gap, br_gap = (float(np.mean(result.gap[f, ki])) for f in (0, 1))
        res_np, br_np = (float(np.mean(result.non_psd[f, ki])) for f in (0, 1))
        lines.append(
            f"$k$ = {k} blocks vs $I$ = {result.branches[ki]} branches "
            f"({result.parameters[0, ki]} vs {result.parameters[1, ki]} parameters): mean gap to "
            f"the best restart {res_gap:.1%} vs {br_gap:.1%}; non-PSD fraction of the plane "
            f"{res_np:.2f} vs {br_np:.2f}."
        )
    return lines


RESULT_SHAPES: dict[str, str] = {
    "blocks": "i[max_blocks]",
    "branches": "i[max_blocks]",
    "parameters": "i[2,max_blocks]",
    "branch_width": "i[max_blocks]",
    "final_loss": "f[2,max_blocks,restarts]",
    "gap": "f[2,max_blocks,restarts]",
    "non_psd": "f[2,max_blocks,measured]",
    "defect": "f[2,max_blocks,measured]",
    "ratio": "f[2,max_blocks,measured]",
    "surfaces": "f[2,max_blocks,resolution,resolution]",
    "alphas": "f[resolution]",
    "run_seconds": "f",
}

PRESETS: dict[str, Config] = {"default": Config()}
