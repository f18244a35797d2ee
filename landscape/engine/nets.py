"""Small networks used by the studies: a plain MLP and the multi-branch network of seed eq. 16.

Inputs ``x`` have shape (n, in_features); outputs have shape (n, out_features). Weights use the
``nn.Linear`` layout (out, in).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

import torch
from torch import nn

from landscape.engine.validation import check_integer

Activation = Literal["relu", "tanh", "softplus", "gelu", "linear"]
ACTIVATIONS: dict[Activation, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
    "linear": nn.Identity,
}


def _check_activation(activation: str) -> Activation:
    for name in ACTIVATIONS:
        if name == activation:
            return name
    raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")


def mlp(
    in_features: int, out_features: int, hidden: Sequence[int], activation: str = "relu"
) -> nn.Sequential:
    """A fully connected network ``x -> W_H s(... s(W_1 x + b_1) ...) + b_H``.

    ``hidden`` lists the hidden widths (empty for a linear model); layers are ``nn.Linear``
    modules at even indices of the returned ``nn.Sequential``, activations in between.
    """
    in_features = check_integer("in_features", in_features, 1)
    out_features = check_integer("out_features", out_features, 1)
    widths = [check_integer("hidden width", w, 1) for w in hidden]
    act = ACTIVATIONS[_check_activation(activation)]
    layers: list[nn.Module] = []
    previous = in_features
    for w in widths:
        layers += [nn.Linear(previous, w), act()]
        previous = w
    layers.append(nn.Linear(previous, out_features))
    return nn.Sequential(*layers)


class MultiBranchNet(nn.Module):
    """``f(x) = (1/I) sum_{i=1..I} f_i(x)`` (seed eq. 16), each ``f_i`` an MLP.

    Branch ``i`` is ``self.branches[i]``, an ``mlp`` with ``depth`` hidden layers of ``width``
    units. The forward pass stacks the branches: their first layers form one wide layer of
    ``I * width`` units and their last layers one wide layer read by a single matrix product.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        branches: int,
        width: int,
        depth: int = 1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.in_features = check_integer("in_features", in_features, 1)
        self.out_features = check_integer("out_features", out_features, 1)
        self.num_branches = check_integer("branches", branches, 1)
        self.width = check_integer("width", width, 1)
        self.depth = check_integer("depth", depth, 1)
        self.activation = _check_activation(activation)
        self.act = ACTIVATIONS[self.activation]()
        self.branches = nn.ModuleList(
            mlp(in_features, out_features, [width] * depth, activation) for _ in range(branches)
        )

    def layers(self, index: int) -> list[nn.Linear]:
        """The ``nn.Linear`` at position ``index`` (0, 2, ..., 2 depth) of every branch."""
        return [cast(nn.Linear, cast(nn.Sequential, b)[index]) for b in self.branches]

    def _hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer of every branch, shape (n, I * width), branch-major."""
        first = torch.cat([b.weight for b in self.layers(0)])  # (I*w, in)
        bias = torch.cat([b.bias for b in self.layers(0)])
        h = self.act(torch.addmm(bias, x, first.T))  # (n, I*w)
        for layer in range(1, self.depth):
            idx = 2 * layer
            weight = torch.stack([b.weight for b in self.layers(idx)])  # (I, w, w)
            bias = torch.stack([b.bias for b in self.layers(idx)])  # (I, w)
            hb = h.view(h.shape[0], self.num_branches, self.width).transpose(0, 1)  # (I, n, w)
            hb = torch.baddbmm(bias.unsqueeze(1), hb, weight.transpose(1, 2))
            h = self.act(hb).transpose(0, 1).reshape(h.shape[0], -1)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(1/I) sum_i f_i(x)``, shape (n, out_features)."""
        last = 2 * self.depth
        weight = torch.cat([b.weight for b in self.layers(last)], dim=1)  # (out, I*w)
        bias = torch.stack([b.bias for b in self.layers(last)]).mean(0)
        return torch.addmm(bias, self._hidden(x), weight.T / self.num_branches)

    def branch_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Each branch's output ``f_i(x)``, shape (I, n, out_features)."""
        return torch.stack([branch(x) for branch in self.branches])


class ResidualBlock(nn.Module):
    """``relu(x + conv2(relu(conv1(x))))`` with two 3x3 convolutions of ``channels`` channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(x + conv2(relu(conv1(x))))``, shape (n, channels, H, W) in and out."""
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


class SmallResNet(nn.Module):
    """A small ResNet for 28x28 grey images given as flat rows (n, 784): a patch stem (a
    ``patch`` x ``patch`` convolution with stride ``patch``, 1 -> ``channels``, on a
    ``side / patch`` square grid), ``blocks`` residual blocks (`ResidualBlock`) and a linear
    classifier on the flattened feature map.

    With the defaults (patch 7, 8 channels, 2 blocks: a 4x4 grid) an image costs about 50 k
    multiply-adds; the stem reads the data directly, so the surface engine hoists it.
    """

    def __init__(
        self, classes: int = 10, channels: int = 8, blocks: int = 2, patch: int = 7, side: int = 28
    ) -> None:
        super().__init__()
        check_integer("channels", channels, 1, 512)
        check_integer("blocks", blocks, 1, 32)
        check_integer("patch", patch, 1, side)
        self.side = side
        self.stem = nn.Conv2d(1, channels, patch, stride=patch)
        self.blocks = nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))
        grid = side // patch
        self.head = nn.Linear(channels * grid * grid, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The class scores ``head(flatten(blocks(relu(stem(image)))))``: rows x (n, side^2)
        read as images (n, 1, side, side), scores (n, classes)."""
        images = x.reshape(x.shape[0], 1, self.side, self.side)
        features = self.blocks(torch.relu(self.stem(images)))
        return self.head(features.flatten(1))
