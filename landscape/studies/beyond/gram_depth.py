"""Question 3 of the seed: which other architectures keep lambda_min(K^(H)) polynomial in depth?

Du et al.'s infinite-width Gram recursion (seed section 3.1, MATH.md section 3) for three more
architectures, beside fully connected and ResNet (``landscape.engine.gram``). Inputs lie on the
unit sphere (``X`` (n, d)), every weight is ``N(0, 1)``, ``c = c_sigma``, ``u = a^T x^(H)`` and
``K^(H)`` is the infinite-width Gram of the gradients with respect to the last hidden layer.

- ``branch`` (I parallel branches in every layer, averaged as in the seed's ``f = 1/I sum f_i``):
  ``x^(h) = (1/I) sum_i sqrt(c/m) sigma(W^(h,i) x^(h-1))``, 1 <= h <= H. Two different branches
  are independent, so their inner products tend to ``c mu_a mu_b`` (``mu = E sigma(u)``):
      ``K^(h)_ab = c [ (1/I) E sigma(u) sigma(v) + (1 - 1/I) mu_a mu_b ]``,
      ``K^(H)_ab = (c/I) K^(H-1)_ab E sigma'(u) sigma'(v)``.
- ``highway`` (a skip with a fixed gate ``alpha``, norm-preserving):
  ``x^(1) = sqrt(c/m) sigma(W^(1) x)``, ``x^(h) = sqrt(1-alpha) x^(h-1) + sqrt(alpha c/m)
  sigma(W^(h) x^(h-1))``; with ``b_a = lim <x_a, 1>/sqrt(m)`` (as in the ResNet recursion):
      ``K^(h)_ab = (1-alpha) K_ab + sqrt(alpha (1-alpha) c) (b_a mu_b + b_b mu_a)
                   + alpha c E sigma(u) sigma(v)``,
      ``b^(h) = sqrt(1-alpha) b^(h-1) + sqrt(alpha c) mu``,
      ``K^(H)_ab = alpha c K^(H-1)_ab E sigma'(u) sigma'(v)``.
- ``dense`` (DenseNet-style concatenation, rescaled): ``x^(h) = [x^(h-1); sqrt(c/m) sigma(W^(h)
  x^(h-1))] / sqrt(2)`` for h >= 2; concatenated blocks add their inner products:
      ``K^(h) = (K^(h-1) + c E sigma sigma) / 2``,  ``K^(H) = (c/2) K^(H-1) E sigma' sigma'``.

Every expectation is over ``(u, v) ~ N(0, A^(h)_ab)`` built from ``K^(h-1)`` (its diagonal is one
number on the sphere). Each recursion is checked against a Monte Carlo of the network itself
(``monte_carlo_gram``) at a finite width. Then ``lambda_min(K^(H))`` against depth, a fitted decay
(exponential ``log lambda = a + b H`` or power law ``log lambda = a + b log H``, whichever fits
better) and the polynomial part ``n^4 / lambda_min^4`` of the width Du et al.'s theorems ask for
(their FC bound carries a further ``2^{O(H)}``; constants dropped).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from landscape.engine.datasets import unit_sphere
from landscape.engine.gram import (
    ACTIVATIONS,
    c_sigma,
    gaussian_mean,
    gram_matrices,
    lambda_min,
    pair_expectation,
)
from landscape.engine.validation import check_choice, check_integer, check_number
from landscape.studies.beyond.notes import not_finite

ARCHITECTURES: tuple[str, ...] = ("fc", "resnet", "branch", "highway", "dense")
NEW_ARCHITECTURES: tuple[str, ...] = ("branch", "highway", "dense")
MAX_DEPTH = 200
TORCH_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "erf": torch.erf,
    "softplus": torch.nn.functional.softplus,
    "tanh": torch.tanh,
}
TORCH_DERIVATIVES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": lambda z: (z > 0).to(z.dtype),
    "erf": lambda z: (2.0 / math.sqrt(math.pi)) * torch.exp(-z * z),
    "softplus": torch.sigmoid,
    "tanh": lambda z: 1.0 - torch.tanh(z) ** 2,
}


@dataclass(frozen=True)
class Config:
    """The sphere data (``n`` points in ``input_dim`` dimensions), depths 1..``max_depth`` of
    every architecture, the branch and highway parameters ``branches`` (I) and ``alpha``, and
    the Monte Carlo networks (``mc_width``, ``mc_depth``, ``mc_draws``) that check each
    recursion."""

    n: int = 16  # samples on the sphere
    input_dim: int = 8
    max_depth: int = 20
    branches: int = 4  # I of the branch architecture
    alpha: float = 0.5  # gate of the highway skip
    c_res: float = 0.5  # ResNet's c_res (MATH.md)
    activation: str = "relu"
    mc_width: int = 8192  # width of the Monte Carlo networks
    mc_depth: int = 3  # depth at which the recursions are checked
    mc_draws: int = 8
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        """ValueError naming the field, its value and the allowed range."""
        check_integer("seed", self.seed, 0, 2**31 - 1)
        check_integer("n", self.n, 2, 200)
        check_integer("input_dim", self.input_dim, 2, 256)
        check_integer("max_depth", self.max_depth, 3, MAX_DEPTH)
        check_integer("branches", self.branches, 1, 64)
        check_number("alpha", self.alpha, 1e-3, 1.0)
        c_res = self.c_res
        if isinstance(c_res, bool) or not isinstance(c_res, int | float) or not 0.0 < c_res < 1.0:
            raise ValueError(f"c_res must be a number in (0, 1), got {c_res!r}")
        check_choice("activation", self.activation, ACTIVATIONS)
        check_integer("mc_width", self.mc_width, 16, 65536)
        check_integer("mc_depth", self.mc_depth, 2, 12)
        check_integer("mc_draws", self.mc_draws, 1, 64)


@dataclass
class Result:
    """``lambda_min(K^(H))`` of A architectures at D depths (A, D), each decay's fitted laws
    (exponential ``log lambda = a + b H``, power ``log lambda = a + b log H``), the width's
    polynomial part ``n^4 / lambda_min^4`` (A, D) and each recursion's Monte Carlo error (A,)."""

    architectures: str  # the A names, ARCHITECTURES order, joined by "|"
    depths: np.ndarray  # (D,) 1..max_depth
    lambda_min: np.ndarray  # (A, D), NaN where the architecture has no such depth (ResNet H=1)
    fit_exponential: np.ndarray  # (A,) bool: the exponential law fits better than the power law
    fit_slope: np.ndarray  # (A,) b of the better fit (per layer, or per log-layer)
    exp_slope: np.ndarray  # (A,) b of log lambda = a + b H
    power_slope: np.ndarray  # (A,) b of log lambda = a + b log H
    exp_r2: np.ndarray  # (A,)
    power_r2: np.ndarray  # (A,)
    width_poly: np.ndarray  # (A, D) n^4 / lambda_min^4
    mc_relative_error: np.ndarray  # (A,) ||mean G_MC - K^(H)||_F / ||K^(H)||_F at mc_depth
    mc_standard_error: np.ndarray  # (A,) the same for half the draws against the other half
    n: int
    message: str = ""  # which numbers are NaN and why; empty when every number is finite


def recursion_gram(
    X: np.ndarray,
    depths: list[int],
    architecture: str,
    activation: str = "relu",
    branches: int = 4,
    alpha: float = 0.5,
    c_res: float = 0.5,
) -> list[np.ndarray]:
    """``K^(H)`` (n, n) for every ``H`` in ``depths`` (see the module docstring)."""
    check_choice("architecture", architecture, ARCHITECTURES)
    if architecture in ("fc", "resnet"):
        return gram_matrices(X, depths, activation, architecture, c_res)
    X = np.asarray(X, dtype=np.float64)
    c = c_sigma(activation)
    K = np.clip(X @ X.T, -1.0, 1.0)
    np.fill_diagonal(K, 1.0)
    b = 0.0
    out: dict[int, np.ndarray] = {}
    for h in range(1, max(depths) + 1):
        q = float(np.mean(np.diag(K)))
        if h in depths:
            derivative = pair_expectation(activation, q, K / q, True)
            if architecture == "branch":
                factor = c / branches
            else:
                factor = c if h == 1 else (alpha * c if architecture == "highway" else c / 2.0)
            last = factor * K * derivative
            out[h] = 0.5 * (last + last.T)
        both = pair_expectation(activation, q, K / q, False)
        mu = gaussian_mean(activation, q)
        if architecture == "branch":
            K = c * (both / branches + (1.0 - 1.0 / branches) * mu * mu)
        elif h == 1:
            K, b = c * both, math.sqrt(c) * mu
        elif architecture == "highway":
            K = (1 - alpha) * K + 2 * math.sqrt(alpha * (1 - alpha) * c) * b * mu + alpha * c * both
            b = math.sqrt(1 - alpha) * b + math.sqrt(alpha * c) * mu
        else:
            K = 0.5 * (K + c * both)
    return [out[d] for d in depths]


def monte_carlo_gram(
    X: np.ndarray,
    depth: int,
    width: int,
    architecture: str,
    seed: int,
    activation: str = "relu",
    branches: int = 4,
    alpha: float = 0.5,
    c_res: float = 0.5,
) -> np.ndarray:
    """One draw of ``G^(H)(0)`` (n, n) of a width-``m`` network with explicit ``N(0, 1)`` weights.

    ``G^(H)_ab = sum_layers <d u_a / d W^(H), d u_b / d W^(H)>`` over every matrix of the last
    hidden layer (``I`` of them for ``branch``): ``s^2 (x x^T) * ((sigma'(Z) a)(sigma'(Z) a)^T)``
    summed over those matrices, with ``x = x^(H-1)`` from a forward pass through explicit weights
    and ``s`` the factor before the last layer's ``sigma``.
    """
    g = torch.Generator().manual_seed(int(seed))
    sigma = TORCH_ACTIVATIONS[activation]
    c = c_sigma(activation)
    x = torch.as_tensor(X, dtype=torch.float64)
    m = width
    count = branches if architecture == "branch" else 1

    def layer(inputs: torch.Tensor) -> torch.Tensor:
        """``inputs W^T`` for a fresh ``N(0, 1)`` W: columns i.i.d. ``N(0, inputs inputs^T)``."""
        evals, evecs = torch.linalg.eigh(inputs @ inputs.T)
        root = evecs * evals.clamp(min=0.0).sqrt()
        return root @ torch.randn(inputs.shape[0], m, generator=g, dtype=torch.float64)

    for h in range(1, depth):  # the hidden layers below the last one
        pre = [layer(x) for _ in range(count)]
        new = torch.stack([sigma(z) for z in pre]).mean(dim=0)
        if h == 1 or architecture in ("fc", "branch"):
            x = math.sqrt(c / m) * new
        elif architecture == "resnet":
            x = x + c_res / (depth * math.sqrt(m)) * new
        elif architecture == "highway":
            x = math.sqrt(1 - alpha) * x + math.sqrt(alpha * c / m) * new
        else:
            x = torch.cat([x, math.sqrt(c / m) * new], dim=1) / math.sqrt(2.0)
    # the last layer: u = a^T x^(H) depends on W^(H) through s * sigma(W^(H) x^(H-1)) only, so
    # d u_a / d W^(H) = s (a * sigma'(W^(H) x_a)) x_a^T and the Gram is a Hadamard product
    if depth == 1 or architecture in ("fc", "branch"):
        scale = math.sqrt(c / m) / count
    elif architecture == "resnet":
        scale = c_res / (depth * math.sqrt(m))
    elif architecture == "highway":
        scale = math.sqrt(alpha * c / m)
    else:
        scale = math.sqrt(c / m) / math.sqrt(2.0)
    derivative = TORCH_DERIVATIVES[activation]
    a = torch.randn(m, generator=g, dtype=torch.float64)  # the output weights of this block
    gram = torch.zeros(x.shape[0], x.shape[0], dtype=torch.float64)
    for _ in range(count):
        delta = scale * derivative(layer(x)) * a
        gram += (x @ x.T) * (delta @ delta.T)
    return gram.numpy()


def fit_decay(depths: np.ndarray, values: np.ndarray) -> tuple[float, float, float, float]:
    """Least-squares fits of ``log lambda`` on ``H`` and on ``log H``: slopes and R^2 of each."""
    keep = np.isfinite(values) & (values > 0)
    H, y = depths[keep].astype(np.float64), np.log(values[keep])
    results = []
    for x in (H, np.log(H)):
        slope, intercept = np.polyfit(x, y, 1)
        residual = y - (slope * x + intercept)
        total = np.sum((y - y.mean()) ** 2)
        results += [float(slope), float(1.0 - residual @ residual / total) if total > 0 else 1.0]
    return results[0], results[1], results[2], results[3]


def _monte_carlo_check(
    config: Config, X: np.ndarray, architecture: str, K: np.ndarray
) -> tuple[float, float]:
    """``||mean G_MC - K|| / ||K||`` at ``mc_depth`` over ``mc_draws`` networks, and the same
    between the two halves of the draws (the Monte Carlo's own noise; NaN with one draw)."""
    draws = [
        monte_carlo_gram(
            X,
            config.mc_depth,
            config.mc_width,
            architecture,
            config.seed + k,
            config.activation,
            config.branches,
            config.alpha,
            config.c_res,
        )
        for k in range(config.mc_draws)
    ]
    error = np.linalg.norm(np.mean(draws, axis=0) - K) / np.linalg.norm(K)
    half = max(1, len(draws) // 2)
    noise = (
        np.linalg.norm(np.mean(draws[:half], axis=0) - np.mean(draws[half:], axis=0))
        / np.linalg.norm(K)
        if len(draws) > 1
        else np.nan
    )
    return float(error), float(noise)


def _with_message(result: Result) -> Result:
    """``result`` with its ``message``: which fields hold NaN and why (`NAN_REASONS`)."""
    result.message = not_finite(result, NAN_REASONS, NAN_LABELS)
    return result


NO_DECAY_LAW = r"a decay law needs two depths $H \ge 2$ with $\lambda_{\min} > 0$"
#: Why a field may hold NaN by design (`notes.not_finite`; anything else is a divergence).
NAN_REASONS: dict[str, str] = {
    "lambda_min": "the ResNet has no depth $H = 1$ (its first layer is fully connected)",
    "width_poly": r"$n^4/\lambda_{\min}^4$ is undefined where $\lambda_{\min}$ is NaN or $\le 0$",
    "mc_standard_error": "one Monte Carlo draw has no half to compare with",
    "fit_slope": NO_DECAY_LAW,
    "exp_slope": NO_DECAY_LAW,
    "power_slope": NO_DECAY_LAW,
    "exp_r2": NO_DECAY_LAW,
    "power_r2": NO_DECAY_LAW,
    "mc_relative_error": "the Gram matrix at the Monte Carlo depth is zero or not finite",
}
#: The fields of `NAN_REASONS` as the page names them (typeset).
NAN_LABELS: dict[str, str] = {
    "lambda_min": r"$\lambda_{\min}(K^{(H)})$",
    "width_poly": "the width the theorem asks for",
    "mc_standard_error": "the Monte Carlo standard error",
    "fit_slope": "the fitted decay rate",
    "exp_slope": "the exponential fit's rate",
    "power_slope": "the power law's exponent",
    "exp_r2": "the exponential fit's $R^2$",
    "power_r2": "the power law's $R^2$",
    "mc_relative_error": "the Monte Carlo relative error",
}


def run(config: Config, progress: Callable[[float, str], None] | None = None) -> Result:
    """Every architecture's ``lambda_min(K^(H))`` for H = 1..max_depth, fits, Monte Carlo checks."""
    config.validate()
    report = progress or (lambda fraction, text: None)
    X = unit_sphere(config.n, config.input_dim, config.seed)
    depths = np.arange(1, config.max_depth + 1)
    A = len(ARCHITECTURES)
    lam = np.full((A, depths.size), np.nan)
    mc_error, mc_noise = np.zeros(A), np.zeros(A)
    fits = np.zeros((A, 4))
    activation, branches = config.activation, config.branches
    alpha, c_res = config.alpha, config.c_res
    for index, architecture in enumerate(ARCHITECTURES):
        report(index / A, f"{architecture}: Gram recursion and Monte Carlo")
        valid = [int(d) for d in depths if architecture != "resnet" or d >= 2]
        grams = recursion_gram(X, valid, architecture, activation, branches, alpha, c_res)
        for d, K in zip(valid, grams, strict=True):
            lam[index, d - 1] = lambda_min(K)
        fitted = depths >= 2
        fits[index] = fit_decay(depths[fitted], lam[index, fitted])
        (K,) = recursion_gram(
            X, [config.mc_depth], architecture, activation, branches, alpha, c_res
        )
        mc_error[index], mc_noise[index] = _monte_carlo_check(config, X, architecture, K)
    report(1.0, "done")
    exponential = fits[:, 1] >= fits[:, 3]
    return _with_message(
        Result(
            architectures="|".join(ARCHITECTURES),
            depths=depths,
            lambda_min=lam,
            fit_exponential=exponential,
            fit_slope=np.where(exponential, fits[:, 0], fits[:, 2]),
            exp_slope=fits[:, 0],
            power_slope=fits[:, 2],
            exp_r2=fits[:, 1],
            power_r2=fits[:, 3],
            width_poly=config.n**4 / np.where(lam > 0, lam, np.nan) ** 4,
            mc_relative_error=mc_error,
            mc_standard_error=mc_noise,
            n=config.n,
        )
    )


def summary(result: Result) -> list[str]:
    """One sentence per architecture from the measured numbers."""
    lines = []
    for i, name in enumerate(result.architectures.split("|")):
        slope = float(result.fit_slope[i])
        if result.fit_exponential[i]:
            law = f"exponential, $\\lambda_{{\\min}}$ times {np.exp(slope):.3g} per layer"
        else:
            law = f"power law, $\\lambda_{{\\min}} \\propto H^{{{slope:.2f}}}$"
        last = result.lambda_min[i, -1]
        lines.append(
            f"**{name}**: {law} ($R^2$ {max(result.exp_r2[i], result.power_r2[i]):.3f}); "
            f"$\\lambda_{{\\min}}$ = {last:.3g} at $H$ = {result.depths[-1]}, "
            f"$n^4/\\lambda_{{\\min}}^4$ = {result.width_poly[i, -1]:.3g}; Monte Carlo off by "
            f"{result.mc_relative_error[i]:.1%} (draw noise {result.mc_standard_error[i]:.1%})."
        )
    return lines


RESULT_SHAPES: dict[str, str] = {
    "architectures": "s",
    "depths": "i[max_depth]",
    "lambda_min": "f[A,max_depth]",
    "fit_exponential": "b[A]",
    "fit_slope": "f[A]",
    "exp_slope": "f[A]",
    "power_slope": "f[A]",
    "exp_r2": "f[A]",
    "power_r2": "f[A]",
    "width_poly": "f[A,max_depth]",
    "mc_relative_error": "f[A]",
    "mc_standard_error": "f[A]",
    "n": "i",
    "message": "s",
}

PRESETS: dict[str, Config] = {"default": Config()}
