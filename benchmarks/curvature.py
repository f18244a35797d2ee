"""Benchmark: Hessian-vector products and seconds that Hutchinson and Hutch++ need for a trace
to a fixed relative error, on trained networks whose exact trace is known.

For each model (trained 200 full-batch Adam steps on digits, as in the Lab) the exact trace comes
from the dense Hessian (P products, float64). Each estimator then runs ``--trials`` times (seeds
0, 1, ...) at products m = 12, 18, 24, 36, ... until the root-mean-square relative error over the
trials is at most ``--target``; that m is its cost. Seconds are then timed at each estimator's
cost, the two alternating run by run (``--timing-runs`` each, best of), so that both see the same
load on a shared machine. Both use the same operator
(`landscape.engine.operators.curvature_operator`) in the same process.

    python benchmarks/curvature.py [--target 0.02] [--trials 20] [--max-products 3000]

Prints, per model: the exact trace, each estimator's products, error and seconds at its cost,
and the ratios Hutchinson / Hutch++ (products and seconds).

Measured (2-core shared CPU, one thread, defaults: 2% relative RMS error, 20 trials):
MLP 64-32-32-10 tanh (P = 3,466): Hutch++ 48 products (0.44 s), Hutchinson 288 (2.71 s):
6.0x the products, 6.2x the seconds. MultiBranchNet I = 4 (P = 2,440): Hutch++ 36 (0.15 s),
Hutchinson 768 (3.58 s): 21x the products, 23x the seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landscape.engine.datasets import digits
from landscape.engine.nets import MultiBranchNet, mlp
from landscape.engine.operators import curvature_operator
from landscape.engine.problem import Problem
from landscape.engine.trace import hutch_plus_plus, hutchinson

MODELS = {
    "MLP 64-32-32-10 (tanh), the issue's example": lambda: mlp(64, 10, [32, 32], "tanh"),
    "MultiBranchNet(64, 10, branches=4, width=8, relu)": lambda: MultiBranchNet(64, 10, 4, 8),
}
ESTIMATORS = {"Hutchinson": hutchinson, "Hutch++": hutch_plus_plus}


def levels(limit: int) -> list[int]:
    """12, 18, 24, 36, 48, 72, ... (factors 1.5 and 4/3 in turn), up to ``limit``."""
    out, m = [], 12
    while m <= limit:
        out.append(m)
        m = m * 3 // 2 if len(out) % 2 else m * 4 // 3
    return out


def trained(name: str) -> Problem:
    torch.manual_seed(0)
    model = MODELS[name]()
    X, y = digits()
    X_t, y_t = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):
        optimizer.zero_grad()
        F.cross_entropy(model(X_t), y_t).backward()
        optimizer.step()
    return Problem(model, F.cross_entropy, X_t, y_t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", type=float, default=0.02, help="relative RMS error")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--max-products", type=int, default=3000)
    parser.add_argument("--timing-runs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"target relative RMS error {args.target:g}, {args.trials} trials per level")
    for name in MODELS:
        problem = trained(name)
        with curvature_operator(problem, dtype=torch.float64) as op:
            exact = float(torch.trace(op.matrix()))
        with curvature_operator(problem) as op:
            P = op.dimension
            print(f"\n{name}: P = {P:,}, exact trace {exact:.6g}")
            found: dict[str, tuple[int, float, float]] = {}
            for m in levels(args.max_products):
                for label, estimator in ESTIMATORS.items():
                    if label in found:
                        continue
                    estimates = [
                        estimator(op.matvec, P, m, seed).estimate for seed in range(args.trials)
                    ]
                    error = float(np.sqrt(np.mean((np.array(estimates) / exact - 1) ** 2)))
                    if error <= args.target:
                        found[label] = (m, error, float("inf"))
                if len(found) == len(ESTIMATORS):
                    break
            for run in range(args.timing_runs if len(found) == len(ESTIMATORS) else 0):
                for label, estimator in ESTIMATORS.items():
                    m, error, best = found[label]
                    started = time.perf_counter()
                    estimator(op.matvec, P, m, 1000 + run)
                    found[label] = (m, error, min(best, time.perf_counter() - started))
            for label, (m, error, seconds) in found.items():
                print(
                    f"  {label:10s} {m:5d} products  RMS error {error:.4f}  "
                    f"{seconds:.3f} s per estimate (best of {args.timing_runs})"
                )
        if len(found) < len(ESTIMATORS):
            missing = [label for label in ESTIMATORS if label not in found]
            print(f"  {', '.join(missing)}: target not met within {args.max_products} products")
            continue
        (m1, _, s1), (m2, _, s2) = found["Hutchinson"], found["Hutch++"]
        print(f"  Hutchinson / Hutch++: {m1 / m2:.2f}x the products, {s1 / s2:.2f}x the seconds")


if __name__ == "__main__":
    main()
