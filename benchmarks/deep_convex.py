"""Benchmark: the exact convex programs beyond two layers, three ways in one run.

Both programs (`solvers.three_layer_relu`, `solvers.convex_cnn`) on the Beyond page's data
(`landscape.studies.beyond.exact`: planar points, 1-D signals), squared loss, every pattern:

- vectorised: a few cvxpy expressions (one variable matrix, one cone constraint per layer),
  Clarabel (the default method);
- block by block: the same program written one cvxpy variable per block
  (`solvers.reference_programs`), Clarabel: the baseline of the vectorisation;
- interior point: the torch barrier method (``method="interior_point"``; the CNN's is the
  two-layer one with patches pooled into samples, the three-layer's adds the outer walls).

It prints the optima (they must agree), the wall times and the ratios.

    python benchmarks/deep_convex.py [--points 6] [--signals 8] [--repeats 1] [--threads 1]
                                     [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landscape.studies.beyond.exact import planar, signals
from solvers.convex_cnn import solve_convex_cnn
from solvers.reference_programs import blockwise_cnn, blockwise_three_layer
from solvers.three_layer_relu import solve_three_layer

BETA = 0.1


def timed(function: Callable[[], float], repeats: int) -> tuple[float, float]:
    """``(value, best wall time)`` over ``repeats`` calls."""
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
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="cpu", help="device of the interior-point method")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    X, y = planar(args.points, 0)
    patches, target = signals(args.signals, 0)
    rows = [
        (
            f"three-layer, n={args.points}",
            lambda: solve_three_layer(X, y, BETA).objective,
            lambda: blockwise_three_layer(X, y, BETA, "CLARABEL"),
            lambda: (
                solve_three_layer(X, y, BETA, method="interior_point", device=args.device).objective
            ),
        ),
        (
            f"CNN, n={args.signals}",
            lambda: solve_convex_cnn(patches, target, BETA).objective,
            lambda: blockwise_cnn(patches, target, BETA, "CLARABEL"),
            lambda: (
                solve_convex_cnn(
                    patches, target, BETA, method="interior_point", device=args.device
                ).objective
            ),
        ),
    ]
    print(f"beta = {BETA}, torch threads = {args.threads}, interior point on {args.device}")
    for name, ours, baseline, interior in rows:
        value, seconds = timed(ours, args.repeats)
        reference, base_seconds = timed(baseline, args.repeats)
        barrier, barrier_seconds = timed(interior, args.repeats)
        print(
            f"{name}: vectorised {value:.10g} in {seconds:.2f} s; block by block "
            f"{reference:.10g} in {base_seconds:.2f} s (relative difference "
            f"{abs(value - reference) / abs(reference):.1e}, speed-up "
            f"{base_seconds / seconds:.1f}x); interior point {barrier:.10g} in "
            f"{barrier_seconds:.2f} s (relative difference {abs(barrier / value - 1):.1e}, "
            f"vectorised cvxpy / interior point {seconds / barrier_seconds:.2f}x)"
        )


if __name__ == "__main__":
    main()
