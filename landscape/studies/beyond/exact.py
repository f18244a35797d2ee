"""Deeper networks solved exactly: the convex optimum against many trained networks.

Two exact convex programs beyond the two-layer one (``solvers/``):

- a parallel three-layer ReLU network with path regularisation (`solvers.three_layer_relu`), on
  ``n`` planar points with a bias column, every inner and outer activation pattern;
- a two-layer CNN (convolution, ReLU, average pooling, linear layer; weight decay) on 1-D signals of
  length 4 with filters of width 2 plus a bias (`solvers.convex_cnn`), every patch pattern; and on
  8x8 digits (two classes, 3x3 filters at stride 2, hinge loss) with sampled patterns, where the
  convex optimum is an upper bound on the global one.

For each, ``restarts`` networks of the same architecture are trained from random initialisations
(full-batch Adam on the same objective, float64); the convex optimum is a lower bound of every
one of them (exact programs) and the recovered network attains it. The result keeps every
restart's final objective, so the page can show how far typical training stays.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from landscape.engine.datasets import digits
from landscape.engine.validation import check_integer, check_number
from landscape.studies.beyond.notes import not_finite
from solvers.convex_cnn import cnn_objective, image_patches, solve_convex_cnn
from solvers.convex_relu import Loss
from solvers.three_layer_relu import solve_three_layer, three_layer_objective


@dataclass(frozen=True)
class Config:
    """The three exact programs' data (``n_points`` planar points, ``n_signals`` 1-D signals,
    ``n_images`` digits with ``image_patterns`` sampled patterns), the weight decay ``beta``, and
    the ``restarts`` trained networks of each architecture (``steps`` of Adam at ``lr``)."""

    n_points: int = 6  # three-layer data (exact: n <= 8)
    n_signals: int = 6  # CNN on 1-D signals (exact)
    n_images: int = 40  # CNN on digits (sampled patterns)
    image_patterns: int = 30
    beta: float = 0.1
    restarts: int = 8
    steps: int = 1500
    lr: float = 0.01
    subnetworks: int = 6  # K of the trained three-layer networks
    inner_width: int = 6  # m1 of each trained sub-network
    filters: int = 16  # filters of the trained CNNs
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        """ValueError naming the field, its value and the allowed range."""
        check_integer("seed", self.seed, 0, 2**31 - 1)
        check_integer("n_points", self.n_points, 3, 7)
        check_integer("n_signals", self.n_signals, 3, 12)
        check_integer("n_images", self.n_images, 10, 200)
        check_integer("image_patterns", self.image_patterns, 1, 200)
        check_number("beta", self.beta, 1e-4, 10.0)
        check_integer("restarts", self.restarts, 1, 100)
        check_integer("steps", self.steps, 10, 20000)
        check_number("lr", self.lr, 1e-5, 1.0)
        check_integer("subnetworks", self.subnetworks, 1, 64)
        check_integer("inner_width", self.inner_width, 1, 64)
        check_integer("filters", self.filters, 1, 256)


@dataclass
class Result:
    """For each of the 3 problems: the convex optimum, the recovered network's objective and
    size, every one of R trained restarts' final objective (3, R), and whether the program is
    exact (every pattern) or an upper bound (sampled patterns)."""

    problems: str  # the three problems joined by "|"
    exact: np.ndarray  # (3,) bool: every pattern (lower bound) or sampled (upper bound)
    optimum: np.ndarray  # (3,) convex optimum
    recovered: np.ndarray  # (3,) objective of the recovered network
    trained: np.ndarray  # (3, R) final objective of every trained restart
    recovered_size: np.ndarray  # (3,) neurons / filters of the recovered network
    solver_seconds: np.ndarray  # (3,)
    message: str = ""  # which numbers are NaN and why; empty when every number is finite


def planar(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` Gaussian points in R^2 with a bias column; ``y = sin(2 x_1) + 0.3 x_2``."""
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((n, 2))
    return np.c_[points, np.ones(n)], np.sin(2.0 * points[:, 0]) + 0.3 * points[:, 1]


def signals(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Patches (n, 3, 3) of Gaussian signals of length 4 and a non-linear target."""
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((n, 4))
    return image_patches(x, 2), np.sin(x[:, 0] + x[:, 2]) + 0.5 * x[:, 1] * x[:, 3]


def digit_patches(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """3x3 patches at stride 2 (plus a bias) of ``n`` digits 3 and 8; labels +1 / -1."""
    X, y = digits((3, 8))
    picked = np.random.default_rng(seed).permutation(len(y))[:n]
    return image_patches(X[picked].reshape(-1, 8, 8), 3, stride=2), np.where(
        y[picked] == 0, 1.0, -1.0
    )


def train_three_layer(X: np.ndarray, y: np.ndarray, config: Config, seed: int) -> float:
    """Adam on ``1/2 ||f - y||^2 + beta R`` of a (K, m1) parallel network; its final objective."""
    g = torch.Generator().manual_seed(seed)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    K, m = config.subnetworks, config.inner_width
    W1 = (0.7 * torch.randn(K, m, X.shape[1], generator=g, dtype=torch.float64)).requires_grad_()
    w2 = (0.5 * torch.randn(K, m, generator=g, dtype=torch.float64)).requires_grad_()
    w3 = (0.5 * torch.randn(K, generator=g, dtype=torch.float64)).requires_grad_()
    optimiser = torch.optim.Adam([W1, w2, w3], lr=config.lr)
    for _ in range(config.steps):
        optimiser.zero_grad()
        hidden = torch.relu(torch.einsum("nd,kmd->knm", Xt, W1))
        f = (torch.relu((hidden * w2[:, None, :]).sum(-1)) * w3[:, None]).sum(0)
        path = (w3.abs()[:, None] * w2.abs() * W1.norm(dim=-1)).sum()
        (0.5 * ((f - yt) ** 2).sum() + config.beta * path).backward()
        optimiser.step()
    return three_layer_objective(
        list(W1.detach().numpy()),
        list(w2.detach().numpy()),
        w3.detach().numpy(),
        X,
        y,
        config.beta,
    )


def train_cnn(patches: np.ndarray, y: np.ndarray, loss: Loss, config: Config, seed: int) -> float:
    """Adam on ``ell + beta/2 (||U||^2 + ||a||^2)`` of a CNN; its final objective."""
    g = torch.Generator().manual_seed(seed)
    P, yt = torch.tensor(patches), torch.tensor(y)
    shape = (config.filters, patches.shape[2])
    U = (0.7 * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()
    a = (0.5 * torch.randn(config.filters, generator=g, dtype=torch.float64)).requires_grad_()
    optimiser = torch.optim.Adam([U, a], lr=config.lr)
    for _ in range(config.steps):
        optimiser.zero_grad()
        f = torch.relu(torch.einsum("nkh,mh->nkm", P, U)).mean(1) @ a
        fit = 0.5 * ((f - yt) ** 2).sum() if loss == "squared" else torch.relu(1 - yt * f).sum()
        (fit + 0.5 * config.beta * (U.square().sum() + a.square().sum())).backward()
        optimiser.step()
    return cnn_objective(U.detach().numpy(), a.detach().numpy(), patches, y, config.beta, loss)


def run(config: Config, progress: Callable[[float, str], None] | None = None) -> Result:
    """Solve the three programs, train ``restarts`` networks of each architecture."""
    config.validate()
    report = progress or (lambda fraction, text: None)
    R = config.restarts
    trained = np.zeros((3, R))
    optimum, recovered, size, seconds = (np.zeros(3) for _ in range(4))

    report(0.0, "three-layer convex program")
    X, y = planar(config.n_points, config.seed)
    start = time.perf_counter()
    three = solve_three_layer(X, y, config.beta)
    seconds[0] = time.perf_counter() - start
    optimum[0], recovered[0], size[0] = three.objective, three.network_objective, three.neurons
    for r in range(R):
        report(0.1 + 0.3 * r / R, f"three-layer restart {r + 1}/{R}")
        trained[0, r] = train_three_layer(X, y, config, config.seed + r)

    report(0.4, "CNN convex program (1-D signals)")
    patches, target = signals(config.n_signals, config.seed)
    start = time.perf_counter()
    cnn = solve_convex_cnn(patches, target, config.beta)
    seconds[1] = time.perf_counter() - start
    optimum[1], recovered[1], size[1] = cnn.objective, cnn.network_objective, cnn.width
    for r in range(R):
        report(0.45 + 0.25 * r / R, f"CNN restart {r + 1}/{R}")
        trained[1, r] = train_cnn(patches, target, "squared", config, config.seed + r)

    report(0.7, "CNN convex program (digits, sampled patterns)")
    patches, labels = digit_patches(config.n_images, config.seed)
    beta_images = 10.0 * config.beta
    start = time.perf_counter()
    image = solve_convex_cnn(
        patches, labels, beta_images, "hinge", config.image_patterns, config.seed
    )
    seconds[2] = time.perf_counter() - start
    optimum[2], recovered[2], size[2] = image.objective, image.network_objective, image.width
    image_config = Config(**{**config.__dict__, "beta": beta_images})
    for r in range(R):
        report(0.75 + 0.25 * r / R, f"digits CNN restart {r + 1}/{R}")
        trained[2, r] = train_cnn(patches, labels, "hinge", image_config, config.seed + r)
    report(1.0, "done")
    result = Result(
        problems="three-layer parallel|CNN, 1-D signals|CNN, digits 3 vs 8",
        exact=np.array([True, True, False]),
        optimum=optimum,
        recovered=recovered,
        trained=trained,
        recovered_size=size,
        solver_seconds=seconds,
    )
    result.message = not_finite(result)
    return result


def summary(result: Result) -> list[str]:
    """One sentence per problem from the measured numbers."""
    lines = []
    for i, name in enumerate(result.problems.split("|")):
        best, median = float(result.trained[i].min()), float(np.median(result.trained[i]))
        opt = float(result.optimum[i])
        kind = "global optimum" if result.exact[i] else "upper bound (sampled patterns)"
        lines.append(
            f"{name}: convex {kind} {opt:.6g}, attained by the recovered network "
            f"({result.recovered[i]:.6g}); best of {result.trained.shape[1]} trained networks "
            f"{best:.6g} ({(best - opt) / abs(opt):+.2%}), median {(median - opt) / abs(opt):+.2%}."
        )
    return lines


RESULT_SHAPES: dict[str, str] = {
    "problems": "s",
    "exact": "b[3]",
    "optimum": "f[3]",
    "recovered": "f[3]",
    "trained": "f[3,restarts]",
    "recovered_size": "f[3]",
    "solver_seconds": "f[3]",
    "message": "s",
}

PRESETS: dict[str, Config] = {"default": Config()}
