"""Benchmark: ``gram_matrix`` + ``lambda_min`` at n = 2000, depth 20, against a per-pair baseline.

The engine evaluates each layer over all pairs at once: closed forms (ReLU, erf) as array
expressions, quadrature (softplus, tanh) on a 1025-point correlation grid and a cubic spline. The
baseline is what a direct transcription of Definition 1 does: every pair (i, j) on its own, the
closed forms with scalar ``math`` calls and the quadrature as a 2-D Gauss-Hermite sum per pair
(vectorised over the nodes). The baseline is timed on a ``--baseline-n`` subset and scaled by the
number of pairs, ``(n / baseline_n)^2`` (its cost is proportional to it); the output says so.

    python benchmarks/gram.py [--n 2000] [--depth 20] [--baseline-n 60] [--repeats 2]

Prints, per architecture and activation: the engine's best-of-``repeats`` seconds for K^(H) and for
lambda_min(K^(H)), the baseline's estimated seconds, their ratio, and the engine's largest
deviation from the baseline on the subset (both compute the same matrix there).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landscape.engine.datasets import unit_sphere
from landscape.engine.gram import (
    ACTIVATIONS,
    ARCHITECTURES,
    DEFAULT_DEGREE,
    activation_functions,
    c_sigma,
    gaussian_mean,
    gram_matrix,
    lambda_min,
)
from landscape.engine.gram import _hermite as hermite


def pair_value(activation: str, q: float, rho: float, derivative: bool) -> float:
    """One expectation for one pair: scalar closed form, or a Gauss-Hermite sum over the nodes."""
    rho = min(max(rho, -1.0), 1.0)
    if activation == "relu":
        theta = math.acos(rho)
        if derivative:
            return (math.pi - theta) / (2 * math.pi)
        return q * (math.sqrt(1 - rho * rho) + (math.pi - theta) * rho) / (2 * math.pi)
    if activation == "erf":
        if derivative:
            return 4 / math.pi / math.sqrt((1 + 2 * q) ** 2 - 4 * q * q * rho * rho)
        return 2 / math.pi * math.asin(2 * q * rho / (1 + 2 * q))
    function = activation_functions(activation)[1 if derivative else 0]
    nodes, weights = hermite(DEFAULT_DEGREE)
    u = math.sqrt(q) * nodes[:, None]
    v = math.sqrt(q) * (rho * nodes[:, None] + math.sqrt(1 - rho * rho) * nodes[None, :])
    return float(weights @ (function(u) * function(v)) @ weights)


def baseline_gram(
    X: np.ndarray, depth: int, activation: str, architecture: str, c_res: float = 0.5
) -> np.ndarray:
    """Definition 1 (fc) and the ResNet recursion, pair by pair."""
    n, c = X.shape[0], c_sigma(activation)
    K = X @ X.T
    q, b, step = 1.0, 0.0, c_res / depth

    def layer(K: np.ndarray, q: float, derivative: bool) -> np.ndarray:
        out = np.empty_like(K)
        for i in range(n):
            for j in range(i, n):
                out[i, j] = out[j, i] = pair_value(activation, q, K[i, j] / q, derivative)
        return out

    for h in range(1, depth):
        if architecture == "fc" or h == 1:
            K = c * layer(K, q, False)
            q = 1.0
            b = math.sqrt(c) * gaussian_mean(activation, 1.0)
        else:
            mu = gaussian_mean(activation, q)
            K = K + 2 * step * b * mu + step**2 * layer(K, q, False)
            b, q = b + step * mu, float(K[0, 0])
    scale = c if architecture == "fc" else step**2
    return scale * K * layer(K, q, True)


def best_of(repeats: int, call) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = call()
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--baseline-n", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    X = unit_sphere(args.n, 10, seed=0)
    subset = X[: args.baseline_n]
    scale = (args.n / args.baseline_n) ** 2
    print(
        f"n = {args.n}, depth H = {args.depth}, d = 10; baseline timed at n = "
        f"{args.baseline_n} and scaled by (n / baseline_n)^2 = {scale:.0f}"
    )
    print(
        f"{'architecture':>12} {'activation':>10} {'K^(H) s':>9} {'lambda_min s':>12} "
        f"{'baseline s':>11} {'ratio':>8} {'max |diff|':>11} {'lambda_min':>11}"
    )
    for architecture in ARCHITECTURES:
        for activation in ACTIVATIONS:
            t_gram, K = best_of(
                args.repeats, lambda a=architecture, s=activation: gram_matrix(X, args.depth, s, a)
            )
            t_eig, lam = best_of(args.repeats, lambda K=K: lambda_min(K))
            t_base, K_base = best_of(
                1, lambda a=architecture, s=activation: baseline_gram(subset, args.depth, s, a)
            )
            K_sub = gram_matrix(subset, args.depth, activation, architecture)
            diff = float(np.abs(K_sub - K_base).max())
            estimate = t_base * scale
            print(
                f"{architecture:>12} {activation:>10} {t_gram:9.2f} {t_eig:12.2f} "
                f"{estimate:11.1f} {estimate / (t_gram + t_eig):8.0f} {diff:11.1e} "
                f"{lam:11.3e}"
            )


if __name__ == "__main__":
    main()
