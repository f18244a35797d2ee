"""Two networks trained from different seeds on the same data, and one aligned to the other.

The networks are the engine's MLP (``depth`` hidden layers of ``width`` units) or its
multi-branch network ``(1/I) sum_i f_i`` (each branch such an MLP), trained by Adam on
mini-batches. `align` returns the second network with its hidden units (and branches) permuted
to match the first, by weight matching or activation matching (`permutations`): the same
function, other weights.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from landscape.engine.nets import MultiBranchNet, mlp
from landscape.server import seeding
from landscape.studies.connectivity import permutations as perm

ArchitectureName = Literal["mlp", "branches"]
ARCHITECTURES: tuple[ArchitectureName, ...] = get_args(ArchitectureName)
Alignment = Literal["none", "weights", "activations"]
ALIGNMENTS: tuple[Alignment, ...] = get_args(Alignment)


@dataclass(frozen=True)
class NetSpec:
    """The architecture of both networks of a pair."""

    architecture: ArchitectureName
    in_features: int
    out_features: int
    width: int
    depth: int
    branches: int

    def build(self, seed: int) -> nn.Module:
        """The network with its initial weights drawn from ``seed`` (float32)."""

        with seeding.seeded(seed):
            if self.architecture == "mlp":
                return mlp(self.in_features, self.out_features, [self.width] * self.depth)
            return MultiBranchNet(
                self.in_features, self.out_features, self.branches, self.width, self.depth
            )


@dataclass(frozen=True)
class Training:
    """Adam on mini-batches: ``epochs`` passes of batches of ``batch_size`` rows."""

    epochs: int
    lr: float
    batch_size: int


def loss_function(classification: bool) -> perm.LossFn:
    """Cross-entropy of logits against integer labels, or the mean squared error of (n, 1)
    outputs against (n,) targets."""
    if classification:
        return F.cross_entropy
    return lambda output, target: F.mse_loss(output[:, 0], target)


def train(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: perm.LossFn,
    training: Training,
    seed: int,
) -> np.ndarray:
    """Train ``model`` in place; the full-data loss after each epoch, shape (epochs + 1,)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=training.lr)
    history = [_full_loss(model, X, y, loss_fn)]
    for _ in range(training.epochs):
        order = torch.randperm(X.shape[0], generator=generator)
        for start in range(0, X.shape[0], training.batch_size):
            rows = order[start : start + training.batch_size]
            optimizer.zero_grad()
            loss_fn(model(X[rows]), y[rows]).backward()
            optimizer.step()
        history.append(_full_loss(model, X, y, loss_fn))
    return np.array(history)


def _full_loss(model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss_fn: perm.LossFn) -> float:
    with torch.no_grad():
        return float(loss_fn(model(X), y))


def branch_modules(model: nn.Module) -> list[nn.Sequential]:
    """The MLPs of a network: its branches, or the MLP itself."""
    if isinstance(model, MultiBranchNet):
        return [branch for branch in model.branches if isinstance(branch, nn.Sequential)]
    if isinstance(model, nn.Sequential):
        return [model]
    raise ValueError(f"cannot align a {type(model).__name__}")


def align(reference: nn.Module, other: nn.Module, how: Alignment, X: torch.Tensor) -> nn.Module:
    """A copy of ``other`` with its hidden units (and branches) permuted to match
    ``reference``: ``"weights"`` by weight matching, ``"activations"`` by activation matching
    on ``X``; ``"none"`` returns an unchanged copy."""
    aligned = copy.deepcopy(other)
    if how == "none":
        return aligned
    A = [perm.mlp_layers(b) for b in branch_modules(reference)]
    B = [perm.mlp_layers(b) for b in branch_modules(other)]
    if how == "weights":
        order, perms = perm.match_branches(A, B)
    else:
        order, perms = _activation_branches(A, B, X)
    for target, j, p in zip(branch_modules(aligned), order, perms, strict=True):
        perm.load_layers(target, perm.permute_layers(B[int(j)], p))
    return aligned


def _activation_branches(
    A: list[perm.Layers], B: list[perm.Layers], X: torch.Tensor
) -> tuple[np.ndarray, list[perm.Permutations]]:
    """Activation matching inside each branch pair, branches ordered by the summed
    correlation of their matched units (a linear assignment over the branch pairs)."""
    relu = nn.ReLU()
    table = [[perm.activation_matching(a, b, X, relu) for b in B] for a in A]
    score = torch.tensor(
        [
            [perm.activation_agreement(a, b, X, relu, table[i][j]) for j, b in enumerate(B)]
            for i, a in enumerate(A)
        ]
    )
    order = perm.assignment(score)
    return order, [table[i][int(j)] for i, j in enumerate(order)]


def largest_output_change(before: nn.Module, after: nn.Module, X: torch.Tensor) -> float:
    """``max |f_before(X) - f_after(X)|``: zero to rounding for a permutation."""
    with torch.no_grad():
        return float((before(X) - after(X)).abs().max())
