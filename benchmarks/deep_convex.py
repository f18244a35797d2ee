"""Benchmark: the exact convex programs beyond two layers, vectorised against block by block.

Both programs of `solvers.three_layer_relu` and `solvers.convex_cnn` are built as a few
vectorised cvxpy expressions (one variable matrix, one cone constraint per layer) and solved by
Clarabel. The baseline writes the same program the obvious way, one cvxpy variable and one
constraint per block (as the tests' independent formulations do), also solved by Clarabel. The
script prints both optima (they must agree), the wall times and their ratio.

    python benchmarks/deep_convex.py [--points 6] [--signals 8] [--repeats 1]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solvers.convex_cnn import image_patches, solve_convex_cnn
from solvers.patterns import enumerate_patterns
from solvers.three_layer_relu import outer_patterns, solve_three_layer

BETA = 0.1


def blockwise_three_layer(X: np.ndarray, y: np.ndarray) -> float:
    """One variable per (outer pattern, sign, inner pattern, sign) block; Clarabel."""
    import cvxpy as cp

    inner = enumerate_patterns(X)[0].astype(float)
    outer = outer_patterns(X, "all").astype(float)
    f, penalty, constraints = 0, 0, []
    for D2 in outer:
        for s in (1.0, -1.0):
            h = 0
            for D1 in inner:
                for t in (1.0, -1.0):
                    v = cp.Variable(X.shape[1])
                    constraints.append(cp.multiply(2 * D1 - 1, X @ v) >= 0)
                    h = h + t * cp.multiply(D1, X @ v)
                    penalty = penalty + cp.norm(v, 2)
            constraints.append(cp.multiply(2 * D2 - 1, h) >= 0)
            f = f + s * cp.multiply(D2, h)
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(f - y) + BETA * penalty), constraints)
    problem.solve(solver=cp.CLARABEL)
    return float(problem.value)


def blockwise_cnn(patches: np.ndarray, y: np.ndarray) -> float:
    """One variable per (pattern, sign) and one constraint per patch position; Clarabel."""
    import cvxpy as cp

    n, K, h = patches.shape
    gates = enumerate_patterns(patches.reshape(n * K, h))[0].reshape(-1, n, K).astype(float)
    f, penalty, constraints = 0, 0, []
    for D in gates:
        M = sum(D[:, k, None] * patches[:, k, :] for k in range(K)) / K
        for sign in (1.0, -1.0):
            v = cp.Variable(h)
            for k in range(K):
                constraints.append(cp.multiply(2 * D[:, k] - 1, patches[:, k, :] @ v) >= 0)
            f = f + sign * (M @ v)
            penalty = penalty + cp.norm(v, 2)
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(f - y) + BETA * penalty), constraints)
    problem.solve(solver=cp.CLARABEL)
    return float(problem.value)


def timed(function, repeats: int) -> tuple[float, float]:
    best, value = np.inf, np.nan
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return value, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=6, help="samples of the three-layer problem")
    parser.add_argument("--signals", type=int, default=8, help="signals of the CNN problem")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*too many subexpressions")
    rng = np.random.default_rng(0)
    points = rng.standard_normal((args.points, 2))
    X = np.c_[points, np.ones(args.points)]
    y = np.sin(2.0 * points[:, 0]) + 0.3 * points[:, 1]
    signals = rng.standard_normal((args.signals, 4))
    patches = image_patches(signals, 2)
    target = np.sin(signals[:, 0] + signals[:, 2]) + 0.5 * signals[:, 1] * signals[:, 3]
    rows = [
        (
            f"three-layer, n={args.points}",
            lambda: solve_three_layer(X, y, BETA).objective,
            lambda: blockwise_three_layer(X, y),
        ),
        (
            f"CNN, n={args.signals}",
            lambda: solve_convex_cnn(patches, target, BETA).objective,
            lambda: blockwise_cnn(patches, target),
        ),
    ]
    for name, ours, baseline in rows:
        value, seconds = timed(ours, args.repeats)
        reference, base_seconds = timed(baseline, args.repeats)
        print(
            f"{name}: vectorised {value:.10g} in {seconds:.2f} s; block by block "
            f"{reference:.10g} in {base_seconds:.2f} s; relative difference "
            f"{abs(value - reference) / abs(reference):.1e}; speed-up {base_seconds / seconds:.1f}x"
        )


if __name__ == "__main__":
    main()
