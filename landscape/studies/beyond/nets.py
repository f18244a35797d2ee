"""Networks of the beyond study: ResNets, matched multi-branch networks, parameter matching.

A ResNet with ``k`` blocks on inputs ``X`` (n, d):

    z_0 = W_in x + b_in,   z_i = z_{i-1} + V_i relu(U_i z_{i-1} + c_i) + e_i,   f = w_out^T z_k + b

unrolls into ``2^k`` paths (Veit, Wilber & Belongie 2016): each block is passed either through its
identity or through its residual branch. For linear blocks (``relu`` removed, no biases) the
expansion is exact, ``prod_i (I + A_i) = sum_{S subset of blocks} prod_{i in S} A_i``, which
``unrolled_linear`` evaluates term by term (tested against the network).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from landscape.engine.nets import MultiBranchNet, mlp
from landscape.engine.validation import check_integer
from landscape.server import seeding


class ResNet(nn.Module):
    """``k`` residual blocks of width ``width`` between an input and an output linear layer."""

    def __init__(self, in_features: int, out_features: int, width: int, blocks: int) -> None:
        super().__init__()
        self.width = check_integer("width", width, 1)
        self.blocks = check_integer("blocks", blocks, 0)
        self.inp = nn.Linear(in_features, width)
        self.residual = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
            for _ in range(blocks)
        )
        self.out = nn.Linear(width, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``out(z_k)`` with ``z_0 = inp(x)``, ``z_j = z_{j-1} + L2_j(relu(L1_j(z_{j-1})))`` (L:
        affine, width to width): x (n, d) in, (n, out_features) out."""
        z = self.inp(x)
        for block in self.residual:
            z = z + block(z)
        return self.out(z)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return int(sum(p.numel() for p in model.parameters()))


def resnet_parameters(d: int, out: int, width: int, blocks: int) -> int:
    """``d w + w + k (2 w^2 + 2 w) + w out + out``."""
    return d * width + width + blocks * (2 * width * width + 2 * width) + width * out + out


def branch_parameters(d: int, out: int, branches: int, width: int, depth: int = 1) -> int:
    """``I`` branches, each an MLP ``d -> width (x depth) -> out`` with biases."""
    per = d * width + width + (depth - 1) * (width * width + width) + width * out + out
    return branches * per


def mlp_parameters(d: int, out: int, width: int, depth: int) -> int:
    """A fully connected network with ``depth`` hidden layers of ``width``."""
    return branch_parameters(d, out, 1, width, depth)


def matched_width(count, budget: int, high: int = 100_000) -> int:
    """The width ``w >= 1`` whose ``count(w)`` is closest to ``budget`` (``count`` increasing)."""
    low_w, high_w = 1, 2
    while count(high_w) < budget and high_w < high:
        high_w *= 2
    while high_w - low_w > 1:
        middle = (low_w + high_w) // 2
        low_w, high_w = (middle, high_w) if count(middle) <= budget else (low_w, middle)
    return min((low_w, high_w), key=lambda w: (abs(count(w) - budget), w))


def unrolled_paths(blocks: int) -> int:
    """Number of input-output paths of a ResNet with ``blocks`` blocks: counted on its graph.

    Node ``i`` is the sum after block ``i``; block ``i`` joins node ``i-1`` to node ``i`` by two
    edges (identity, residual). Paths are counted by dynamic programming over the nodes.
    """
    blocks = check_integer("blocks", blocks, 0)
    paths = [1] + [0] * blocks
    for i in range(1, blocks + 1):
        paths[i] = 2 * paths[i - 1]  # identity edge + residual edge from node i-1
    return paths[-1]


def unrolled_linear(matrices: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, int]:
    """``sum_S prod_{i in S} A_i x`` over every subset ``S`` (in block order): (output, #terms)."""
    total, terms = np.zeros_like(x, dtype=np.float64), 0
    for mask in itertools.product((False, True), repeat=len(matrices)):
        z = np.asarray(x, dtype=np.float64)
        for use, A in zip(mask, matrices, strict=True):
            if use:
                z = z @ A.T
        total += z
        terms += 1
    return total, terms


def build(family: str, d: int, out: int, width: int, size: int, seed: int) -> nn.Module:
    """``family`` in {resnet (size = blocks), branch (size = I), fc (size = hidden layers)}."""
    builders: dict[str, Callable[[], nn.Module]] = {
        "resnet": lambda: ResNet(d, out, width, size),
        "branch": lambda: MultiBranchNet(d, out, size, width, 1),
        "fc": lambda: mlp(d, out, [width] * size),
    }
    if family not in builders:
        raise ValueError(f"family must be one of {tuple(builders)}, got {family!r}")
    with seeding.seeded(seed):
        model = builders[family]()
    return model


def log_ladder(low: int, high: int, count: int) -> list[int]:
    """``count`` integers spaced evenly in log between ``low`` and ``high``."""
    return sorted({int(round(v)) for v in np.geomspace(low, high, count)})


__all__ = ["ResNet", "build", "count_parameters", "math"]
