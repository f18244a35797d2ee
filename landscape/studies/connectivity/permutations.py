"""Permutation symmetry of hidden units, and the two ways of aligning one network to another.

An MLP ``h_l = sigma(W_l h_{l-1} + b_l)``, ``l = 1..L`` (``h_0 = x``, no activation after
``W_L``) computes the same function after ``W_l -> P_l W_l P_{l-1}^T``, ``b_l -> P_l b_l`` for any
permutations ``P_1, ..., P_{L-1}`` of the hidden units (``P_0 = P_L = I``). A permutation is
stored as an index array ``p`` (the new unit ``i`` is the old unit ``p[i]``), so ``P W`` is
``W[p]`` and ``W P^T`` is ``W[:, p]``.

Weights are given as the list of layers ``[(W_1, b_1), ..., (W_L, b_L)]`` in the ``nn.Linear``
layout (``W_l`` of shape (out, in)). A multi-branch network ``(1/I) sum_i f_i`` is a list of
such lists, one per branch; it is also unchanged when its branches are reordered.

Weight matching (Ainsworth et al., 2023) maximises ``sum_l <W_l^A, P_l W_l^B P_{l-1}^T>_F +
<b_l^A, P_l b_l^B>`` by coordinate descent over layers: with the other permutations fixed, the
best ``P_l`` solves a linear assignment on ``W_l^A P_{l-1} (W_l^B)^T + b_l^A (b_l^B)^T +
(W_{l+1}^A)^T P_{l+1} W_{l+1}^B``. Activation matching takes ``P_l`` from a linear assignment on
the cross-correlation of the two networks' hidden activations of layer ``l`` on the data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

Layers = list[tuple[torch.Tensor, torch.Tensor]]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Permutations = list[np.ndarray]


def mlp_layers(model: nn.Sequential) -> Layers:
    """The ``(W_l, b_l)`` of the ``nn.Linear`` modules of ``model``, in order (detached)."""
    layers = [(m.weight.detach(), m.bias.detach()) for m in model if isinstance(m, nn.Linear)]
    if not layers or any(m.bias is None for m in model if isinstance(m, nn.Linear)):
        raise ValueError("model must be a sequence of nn.Linear layers with biases")
    return layers


def load_layers(model: nn.Sequential, layers: Layers) -> None:
    """Write ``layers`` into the ``nn.Linear`` modules of ``model`` (shapes must agree)."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    if len(linears) != len(layers):
        raise ValueError(f"model has {len(linears)} linear layers, got {len(layers)}")
    with torch.no_grad():
        for module, (W, b) in zip(linears, layers, strict=True):
            module.weight.copy_(W)
            module.bias.copy_(b)


def permute_layers(layers: Layers, perms: Permutations) -> Layers:
    """``W_l -> P_l W_l P_{l-1}^T``, ``b_l -> P_l b_l`` for the hidden permutations ``perms``
    (one per hidden layer, ``len(layers) - 1`` of them): the same function, other weights."""
    if len(perms) != len(layers) - 1:
        raise ValueError(f"need {len(layers) - 1} permutations, got {len(perms)}")
    out: Layers = []
    for l, (W, b) in enumerate(layers):
        rows = torch.as_tensor(perms[l]) if l < len(perms) else torch.arange(W.shape[0])
        W = W[rows]
        if l > 0:
            W = W[:, torch.as_tensor(perms[l - 1])]
        out.append((W, b[rows]))
    return out


def random_permutations(layers: Layers, seed: int) -> Permutations:
    """A uniformly random permutation of every hidden layer's units (seeded)."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(W.shape[0]) for W, _ in layers[:-1]]


def assignment(score: torch.Tensor) -> np.ndarray:
    """The permutation ``p`` maximising ``sum_i score[i, p[i]]`` (a linear assignment)."""
    _, columns = linear_sum_assignment(score.double().cpu().numpy(), maximize=True)
    return np.asarray(columns, dtype=np.int64)


def _layer_score(A: Layers, B: Layers, perms: Permutations, l: int) -> torch.Tensor:
    """The weight-matching score matrix of hidden layer ``l`` (0-based), shape (w_l, w_l):
    ``W_l^A P_{l-1} (W_l^B)^T + b_l^A (b_l^B)^T + (W_{l+1}^A)^T P_{l+1} W_{l+1}^B``."""
    WA, bA = A[l]
    WB, bB = B[l]
    if l > 0:
        WB = WB[:, torch.as_tensor(perms[l - 1])]
    score = WA.double() @ WB.double().T + torch.outer(bA.double(), bB.double())
    WA_next, WB_next = A[l + 1][0], B[l + 1][0]
    if l + 1 < len(perms):
        WB_next = WB_next[torch.as_tensor(perms[l + 1])]
    return score + WA_next.double().T @ WB_next.double()


def matching_objective(A: Layers, B: Layers, perms: Permutations) -> float:
    """``sum_l <W_l^A, P_l W_l^B P_{l-1}^T>_F + <b_l^A, P_l b_l^B>``."""
    return float(
        sum(
            (WA.double() * WB.double()).sum() + (bA.double() * bB.double()).sum()
            for (WA, bA), (WB, bB) in zip(A, permute_layers(B, perms), strict=True)
        )
    )


def weight_matching(A: Layers, B: Layers, seed: int = 0, max_sweeps: int = 100) -> Permutations:
    """The permutations of ``B``'s hidden units that align its weights to ``A``'s (Ainsworth et
    al.'s weight matching): coordinate descent over the hidden layers in a random order per
    sweep, each step a linear assignment (`_layer_score`), until a sweep changes nothing."""
    _check_same_shapes(A, B)
    perms = [np.arange(W.shape[0]) for W, _ in A[:-1]]
    rng = np.random.default_rng(seed)
    for _ in range(max_sweeps):
        changed = False
        for l in rng.permutation(len(perms)):
            best = assignment(_layer_score(A, B, perms, int(l)))
            changed |= not np.array_equal(best, perms[l])
            perms[l] = best
        if not changed:
            break
    return perms


def hidden_activations(
    layers: Layers, X: torch.Tensor, activation: nn.Module
) -> list[torch.Tensor]:
    """``h_1, ..., h_{L-1}``: the hidden activations of the MLP on ``X`` (n, in), each (n, w_l)."""
    h = X
    out = []
    for W, b in layers[:-1]:
        h = activation(h @ W.T + b)
        out.append(h)
    return out


def activation_matching(
    A: Layers, B: Layers, X: torch.Tensor, activation: nn.Module
) -> Permutations:
    """The permutations of ``B``'s hidden units that best correlate its activations with
    ``A``'s on ``X``: for each layer, a linear assignment on the cross-correlation
    ``C[i, j] = corr(h_l^A[:, i], h_l^B[:, j])`` over the samples (a dead unit correlates 0)."""
    _check_same_shapes(A, B)
    with torch.no_grad():
        pairs = zip(
            hidden_activations(A, X, activation), hidden_activations(B, X, activation), strict=True
        )
        return [assignment(_correlation(hA, hB)) for hA, hB in pairs]


def activation_agreement(
    A: Layers, B: Layers, X: torch.Tensor, activation: nn.Module, perms: Permutations
) -> float:
    """``sum_l sum_i corr(h_l^A[:, i], h_l^B[:, p_l[i]])``: how well ``perms`` match the
    activations of ``B`` to those of ``A`` on ``X``."""
    with torch.no_grad():
        pairs = zip(
            hidden_activations(A, X, activation), hidden_activations(B, X, activation), strict=True
        )
        return float(
            sum(
                _correlation(hA, hB[:, torch.as_tensor(p)]).diagonal().sum()
                for (hA, hB), p in zip(pairs, perms, strict=True)
            )
        )


def _correlation(hA: torch.Tensor, hB: torch.Tensor) -> torch.Tensor:
    """``corr(hA[:, i], hB[:, j])`` over the rows, shape (w, w); a constant column gives 0."""
    a = hA.double() - hA.double().mean(0)
    b = hB.double() - hB.double().mean(0)
    sa, sb = a.norm(dim=0), b.norm(dim=0)
    a = a / torch.where(sa > 0, sa, torch.ones_like(sa))
    b = b / torch.where(sb > 0, sb, torch.ones_like(sb))
    return a.T @ b


def _check_same_shapes(A: Layers, B: Layers) -> None:
    if [tuple(W.shape) for W, _ in A] != [tuple(W.shape) for W, _ in B]:
        raise ValueError("the two networks must have the same layer shapes")


def match_branches(
    A: Sequence[Layers], B: Sequence[Layers], seed: int = 0
) -> tuple[np.ndarray, list[Permutations]]:
    """Weight matching for multi-branch networks ``(1/I) sum_i f_i``: the branch order
    ``q`` (``B``'s branch ``q[i]`` goes to position ``i``) maximising the sum of the matched
    branch pairs' weight-matching objectives (a linear assignment over the I x I pairs), and the
    hidden permutations of each reordered branch of ``B``."""
    if len(A) != len(B):
        raise ValueError(f"the networks have {len(A)} and {len(B)} branches")
    table = [[weight_matching(a, b, seed) for b in B] for a in A]
    score = torch.tensor(
        [[matching_objective(a, b, table[i][j]) for j, b in enumerate(B)] for i, a in enumerate(A)]
    )
    order = assignment(score)
    return order, [table[i][int(j)] for i, j in enumerate(order)]
