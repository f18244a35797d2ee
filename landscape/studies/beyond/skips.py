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

The page's run (``classes``, ``resnet_width``) is repeated over ``sweep_widths`` x the digit pairs
of ``sweep_classes`` (read two at a time), so that each statement is checked at two widths and on
two data sets, with its spread over the restarts.

Data: two classes of scikit-learn's 8x8 digits (labels -1, +1), a stratified subsample. Training
minimises the mean squared error plus ``weight_decay / 2 ||theta||^2`` (so that the optimum is
not zero and the gaps are relative to a positive value) by full-batch Adam; the planes show the
mean squared error alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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
from landscape.studies.beyond.notes import not_finite

FAMILIES: tuple[str, ...] = ("resnet", "branch")


@dataclass(frozen=True)
class Config:
    """ResNets of k = 1..``max_blocks`` blocks against ``I = 2^k`` matched branches: the data
    (two ``classes``, ``n`` samples), the trainings (``restarts``, ``steps``, ``lr``,
    ``weight_decay``), the measured planes (``resolution``, ``radius``, ``hessian_iterations``)
    and the sweep over ``sweep_widths`` x the digit pairs of ``sweep_classes``."""

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
    sweep_widths: tuple[int, ...] = (8, 16)  # ResNet widths of the sweep
    sweep_classes: tuple[int, ...] = (3, 8, 1, 7)  # digit pairs of the sweep, two at a time
    seed: int = 0
    device: str = "auto"

    @property
    def sweep_pairs(self) -> list[tuple[int, int]]:
        """The digit pairs of ``sweep_classes``: entries (0, 1), (2, 3), ..."""
        c = self.sweep_classes
        return [(int(c[i]), int(c[i + 1])) for i in range(0, len(c), 2)]

    def validate(self) -> None:
        """ValueError naming the field, its value and the allowed range."""
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
        check_integers("sweep_widths", self.sweep_widths, 2, 128, 3)
        pairs = self.sweep_classes
        if (
            isinstance(pairs, str | bytes)
            or not isinstance(pairs, tuple | list)
            or len(pairs) not in (2, 4, 6)
            or not all(isinstance(c, int) and not isinstance(c, bool) for c in pairs)
            or not all(0 <= c <= 9 for c in pairs)
            or any(pairs[i] == pairs[i + 1] for i in range(0, len(pairs) - 1, 2))
        ):
            raise ValueError(
                "sweep_classes must hold 1 to 3 digit pairs (2, 4 or 6 digits in [0, 9], the two "
                f"of each pair distinct), got {pairs!r}"
            )


@dataclass
class Result:
    """For 2 families (ResNet, branches) at K block counts: parameter counts (2, K), every
    restart's final loss and gap ``(L_r - min_r L_r) / min_r L_r`` (2, K, R), the non-convexity
    measures of M measured restarts (2, K, M), and the same over the sweep (C, W, 2, K, ...)."""

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
    # the sweep: C digit pairs x W ResNet widths (run files saved before it leave these empty)
    sweep_pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    sweep_widths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sweep_parameters: np.ndarray = field(  # (W, 2, K)
        default_factory=lambda: np.zeros((0, 2, 0), dtype=np.int64)
    )
    sweep_gap: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 2, 0, 0)))  # (C,W,2,K,R)
    sweep_non_psd: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 2, 0, 0)))  # M last
    sweep_defect: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 2, 0, 0)))
    sweep_ratio: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 2, 0, 0)))
    message: str = ""  # what is not finite and why; empty when every number is finite


def load(
    config: Config, classes: tuple[int, int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A stratified subsample of two digit classes (``config.classes`` unless ``classes``):
    ``X`` (n, 64), ``y`` (n, 1) in {-1, +1}."""
    X, y = digits(tuple(classes or config.classes))
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


@dataclass
class _Measured:
    """One (digit pair, ResNet width) of the study: every array of `Result` at that setting."""

    final: np.ndarray  # (2, K, R)
    measures: np.ndarray  # (3, 2, K, M) non-PSD, defect, ratio
    surfaces: np.ndarray  # (2, K, A, A)
    parameters: np.ndarray  # (2, K)
    widths: np.ndarray  # (K,)

    @property
    def gap(self) -> np.ndarray:
        best = self.final.min(axis=2, keepdims=True)
        return (self.final - best) / np.where(best > 0, best, 1.0)


def _measure(
    config: Config,
    classes: tuple[int, int],
    resnet_width: int,
    report: Callable[[float, str], None],
) -> _Measured:
    """Train both families at every k on one digit pair and ResNet width; measure them."""
    X, y = load(config, classes)
    d = X.shape[1]
    ks = np.arange(1, config.max_blocks + 1)
    K, R, M, A = len(ks), config.restarts, config.measured, config.resolution
    grid = np.linspace(-config.radius, config.radius, A)
    out = _Measured(
        final=np.zeros((2, K, R)),
        measures=np.zeros((3, 2, K, M)),
        surfaces=np.zeros((2, K, A, A)),
        parameters=np.zeros((2, K), dtype=np.int64),
        widths=np.zeros(K, dtype=np.int64),
    )
    loss_fn = nn.MSELoss()
    for ki, k in enumerate(ks):
        I = unrolled_paths(int(k))
        target = resnet_parameters(d, 1, resnet_width, int(k))
        out.widths[ki] = matched_width(lambda w, I=I: branch_parameters(d, 1, I, w), target)
        for fi, family in enumerate(FAMILIES):
            report((ki * 2 + fi) / (2 * K), f"k = {k}: {family}")
            width = resnet_width if family == "resnet" else int(out.widths[ki])
            size = int(k) if family == "resnet" else I
            for r in range(R):
                seed = config.seed + 1000 * r
                model = build(family, d, 1, width, size, seed)
                out.parameters[fi, ki] = count_parameters(model)
                out.final[fi, ki, r] = train(
                    model, X, y, config.steps, config.lr, config.weight_decay
                )
                if r >= M:
                    continue
                problem = Problem(model, loss_fn, X, y)
                d1 = directions.random_directions(model, seed=2 * seed, normalization="filter")
                d2 = directions.random_directions(model, seed=2 * seed + 1, normalization="filter")
                Z = surface_2d(problem, d1, d2, grid, grid)
                low, high = curvature.extreme_eigenvalues(
                    problem, iterations=config.hessian_iterations, seed=seed
                )
                out.measures[:, fi, ki, r] = (
                    non_psd_fraction(Z, grid, grid),
                    max_convexity_defect(Z),
                    hessian_ratio(low, high),
                )
                if r == 0:
                    out.surfaces[fi, ki] = Z
    return out


def run(config: Config, progress: Callable[[float, str], None] | None = None) -> Result:
    """Train both families at every k, measure the planes and the optimality gaps, on the
    page's digit pair and width and over the sweep's pairs x widths."""
    import time

    config.validate()
    start = time.perf_counter()
    report = progress or (lambda fraction, text: None)
    pairs, widths = config.sweep_pairs, list(config.sweep_widths)
    steps = 1 + len(pairs) * len(widths)

    def part(index: int, label: str) -> Callable[[float, str], None]:
        return lambda fraction, text: report((index + fraction) / steps, f"{label}: {text}")

    classes = (int(config.classes[0]), int(config.classes[1]))
    main = _measure(config, classes, config.resnet_width, part(0, "page"))
    runs: dict[tuple[tuple[int, int], int], _Measured] = {(classes, config.resnet_width): main}
    for c, pair in enumerate(pairs):
        for w, width in enumerate(widths):
            if (pair, width) not in runs:
                label = f"digits {pair[0]} vs {pair[1]}, width {width}"
                runs[(pair, width)] = _measure(
                    config, pair, width, part(1 + c * len(widths) + w, label)
                )
    sweep = [[runs[(pair, width)] for width in widths] for pair in pairs]
    ks = np.arange(1, config.max_blocks + 1)
    result = Result(
        blocks=ks,
        branches=2**ks,
        parameters=main.parameters,
        branch_width=main.widths,
        final_loss=main.final,
        gap=main.gap,
        non_psd=main.measures[0],
        defect=main.measures[1],
        ratio=main.measures[2],
        surfaces=main.surfaces,
        alphas=np.linspace(-config.radius, config.radius, config.resolution),
        run_seconds=time.perf_counter() - start,
        sweep_pairs=np.asarray(pairs, dtype=np.int64).reshape(-1, 2),
        sweep_widths=np.asarray(widths, dtype=np.int64),
        sweep_parameters=np.stack([m.parameters for m in sweep[0]]),
        sweep_gap=np.array([[m.gap for m in row] for row in sweep]),
        sweep_non_psd=np.array([[m.measures[0] for m in row] for row in sweep]),
        sweep_defect=np.array([[m.measures[1] for m in row] for row in sweep]),
        sweep_ratio=np.array([[m.measures[2] for m in row] for row in sweep]),
    )
    result.message = not_finite(result)
    report(1.0, "done")
    return result


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


def sweep_summary(result: Result) -> list[str]:
    """Sentences over the sweep (digit pairs x widths), from its numbers: in how many settings
    the ResNet's mean gap and non-PSD fraction are below the matched branches', with the
    spread over restarts, and whether its measures fall with k as the branches' do."""
    C, W = result.sweep_gap.shape[:2]
    if C * W == 0:
        return []
    settings = [
        f"{a} vs {b}, width {w}" for a, b in result.sweep_pairs for w in result.sweep_widths
    ]
    gap = result.sweep_gap.reshape(C * W, 2, -1)  # restarts pooled over k
    flat = result.sweep_non_psd.reshape(C * W, 2, -1)
    lower_gap = int(np.sum(gap[:, 0].mean(axis=1) < gap[:, 1].mean(axis=1)))
    lower_flat = int(np.sum(flat[:, 0].mean(axis=1) < flat[:, 1].mean(axis=1)))

    def within(values: np.ndarray) -> int:  # settings whose two means differ by < 1 sd
        difference = np.abs(values[:, 0].mean(axis=1) - values[:, 1].mean(axis=1))
        return int(
            np.sum(difference < np.maximum(values[:, 0].std(axis=1), values[:, 1].std(axis=1)))
        )

    lines = [
        f"Over {C * W} settings ({C} digit pairs x {W} widths): the ResNet's mean gap to the "
        f"best restart is below the matched branches' in {lower_gap} of {C * W}, its non-PSD "
        f"fraction in {lower_flat} of {C * W}; the two means differ by less than one standard "
        f"deviation of the restarts in {within(gap)} of {C * W} settings for the gap and "
        f"{within(flat)} of {C * W} for the non-PSD fraction."
    ]
    for i, name in enumerate(settings):
        lines.append(
            f"{name}: gap {gap[i, 0].mean():.1%} ± {gap[i, 0].std():.1%} (ResNet) vs "
            f"{gap[i, 1].mean():.1%} ± {gap[i, 1].std():.1%} (branches), non-PSD "
            f"{flat[i, 0].mean():.2f} ± {flat[i, 0].std():.2f} vs "
            f"{flat[i, 1].mean():.2f} ± {flat[i, 1].std():.2f}."
        )
    if result.sweep_non_psd.shape[3] >= 2:
        trend = np.sign(
            result.sweep_non_psd[:, :, :, -1].mean(axis=-1)
            - result.sweep_non_psd[:, :, :, 0].mean(axis=-1)
        ).reshape(C * W, 2)
        same = int(np.sum(trend[:, 0] == trend[:, 1]))
        lines.append(
            f"From k = 1 to k = {result.sweep_non_psd.shape[3]}, the ResNet's non-PSD fraction "
            f"moves the same way as the branches' (both up, both down or both flat) in {same} "
            f"of {C * W} settings: where it does not, the two part."
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
    # free sizes (run files saved before the sweep load with these empty)
    "sweep_pairs": "i[pairs?,2]",
    "sweep_widths": "i[widths?]",
    "sweep_parameters": "i[widths?,2,ks?]",
    "sweep_gap": "f[pairs?,widths?,2,ks?,runs?]",
    "sweep_non_psd": "f[pairs?,widths?,2,ks?,planes?]",
    "sweep_defect": "f[pairs?,widths?,2,ks?,planes?]",
    "sweep_ratio": "f[pairs?,widths?,2,ks?,planes?]",
    "message": "s",
}

PRESETS: dict[str, Config] = {"default": Config()}
