"""Benchmark: the convex program of a two-layer ReLU network, three solvers on one problem.

Issue 4's target problem: n = 400 Gaussian samples in d = 10, targets from a 4-neuron ReLU
teacher plus noise, 100 sampled gate vectors (deduplicated), beta = 0.4 (pyscnn's lambda = 1e-3
with its 1/n scaling), squared loss. It solves the same program (same patterns) with
cvxpy + Clarabel (the reference), with this project's torch interior-point method, and with
pyscnn's augmented-Lagrangian solver when pyscnn is installed, then prints each objective, its
relative gap to Clarabel's, the dual certificates, the wall times and the time ratios.

    python benchmarks/convex_relu.py [--n 400] [--d 10] [--gates 100] [--beta 0.4]
                                     [--threads 1] [--device cpu] [--repeats 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from solvers.convex_relu import convex_objective, solve_convex_relu
from solvers.patterns import sample_patterns


def problem(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (n, d) Gaussian; ``y = relu(X U*^T) a* + 0.1 N(0, 1)`` with 4 Gaussian teachers."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    teacher, weights = rng.standard_normal((4, d)), rng.standard_normal(4)
    return X, np.maximum(X @ teacher.T, 0.0) @ weights + 0.1 * rng.standard_normal(n)


def solve_pyscnn(
    X: np.ndarray, y: np.ndarray, patterns: np.ndarray, gates: np.ndarray, beta: float
) -> tuple[float, float] | None:
    """pyscnn's AL solver on the same gates, data not unitised, float64; None if not installed.

    pyscnn minimises ``1/(2n) ||f - y||^2 + lambda sum ||.||``, i.e. our objective over ``n``
    with ``lambda = beta / n``; the returned (v, w) are scored with our ``convex_objective``.
    """
    try:
        from scnn.metrics import Metrics
        from scnn.models import ConvexReLU
        from scnn.optimize import optimize_model
        from scnn.regularizers import NeuronGL1
        from scnn.solvers import AL
    except ImportError:
        return None
    model = ConvexReLU(gates.T, c=1)
    start = time.perf_counter()
    fitted, _ = optimize_model(
        model,
        AL(model),
        Metrics(),
        X,
        y,
        regularizer=NeuronGL1(beta / X.shape[0]),
        return_convex=True,
        unitize_data=False,
        dtype="float64",
    )
    seconds = time.perf_counter() - start
    v, w = (np.asarray(p, dtype=np.float64)[0] for p in fitted.parameters)
    return convex_objective(v, w, patterns, X, y, beta), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--gates", type=int, default=100)
    parser.add_argument("--beta", type=float, default=0.4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (Clarabel runs on one thread)"
    )
    parser.add_argument("--device", default="cpu", help="torch device of the interior-point solver")
    parser.add_argument("--repeats", type=int, default=1, help="best-of repeats per solver")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    X, y = problem(args.n, args.d, args.seed)
    patterns, gates = sample_patterns(X, args.gates, args.seed)
    print(
        f"n = {args.n}, d = {args.d}, {patterns.shape[0]} distinct patterns from {args.gates} "
        f"gates, beta = {args.beta} (pyscnn lambda = {args.beta / args.n:g}), "
        f"torch threads = {args.threads}, device = {args.device}"
    )

    def best(method: str, **kwargs: object) -> tuple[object, float]:
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            solution = solve_convex_relu(
                X, y, args.beta, patterns=args.gates, seed=args.seed, method=method, **kwargs
            )
            runs.append((solution, time.perf_counter() - start))
        return min(runs, key=lambda run: run[1])

    reference, reference_seconds = best("cvxpy")
    interior, interior_seconds = best("interior_point", device=args.device)
    rows = [
        ("cvxpy + Clarabel", reference.objective, reference.lower_bound, reference_seconds),
        ("interior_point (torch)", interior.objective, interior.lower_bound, interior_seconds),
    ]
    scnn = solve_pyscnn(X, y, patterns, gates, args.beta)
    if scnn is not None:
        rows.append(("pyscnn AL", scnn[0], float("nan"), scnn[1]))
    print(
        f"{'solver':<24}{'objective':>18}{'rel. to Clarabel':>18}{'dual bound':>18}"
        f"{'seconds':>10}{'Clarabel / this':>17}"
    )
    for name, objective, bound, seconds in rows:
        gap = (objective - reference.objective) / reference.objective
        print(
            f"{name:<24}{objective:>18.10g}{gap:>18.2e}{bound:>18.10g}{seconds:>10.2f}"
            f"{reference_seconds / seconds:>17.2f}"
        )
    if scnn is None:
        print("pyscnn is not installed: its AL solver was not compared (pip install pyscnn).")
    print(
        f"interior point: {interior.iterations} Newton steps, certified relative gap "
        f"{(interior.objective - interior.lower_bound) / interior.objective:.1e}, "
        f"converged = {interior.converged}"
    )


if __name__ == "__main__":
    main()
