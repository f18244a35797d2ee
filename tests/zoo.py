"""A zoo of ten standard architectures, written in plain PyTorch, with small seeded data.

Each `Species` builds a model (seeded, in eval mode for export) and its data, so that every door
into the engine (an ``nn.Module`` in Python, the command line's model files, the web upload's
ONNX) can be checked against the same per-point loop over ``torch.func.functional_call``. The
models are small (a few thousand parameters) so that a surface on a 5 x 5 grid takes well under
a second on a CPU; their layers are the ones researchers use: BatchNorm and residual adds,
attention with LayerNorm and GELU, recurrent cells, GroupNorm, depthwise convolutions, token
embeddings with a causal mask, transposed convolutions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

N_SAMPLES = 48


def cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every position: ``output`` (n, ..., C), ``target`` (n, ...)."""
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))


def mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every entry (targets of any shape)."""
    return F.mse_loss(output, target)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(h)))


class ResNet(nn.Module):
    """Conv-BN stem, two residual blocks, global average pooling, a linear head."""

    def __init__(self, channels: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()
        )
        self.blocks = nn.Sequential(ResidualBlock(channels), ResidualBlock(channels))
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))
        return self.head(h.mean(dim=(2, 3)))


class LeNet(nn.Module):
    """Convolutions with max and average pooling, dropout, two linear layers."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 12, 3, padding=1)
        self.drop = nn.Dropout(0.25)
        self.fc1 = nn.Linear(12 * 2 * 2, 32)
        self.fc2 = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.avg_pool2d(F.relu(self.conv2(h)), 2)
        return self.fc2(self.drop(F.relu(self.fc1(torch.flatten(h, 1)))))


class VisionTransformer(nn.Module):
    """Patch embedding by a strided convolution, a class token, learned positions, two
    pre-norm encoder layers (multi-head attention, LayerNorm, GELU), a linear head."""

    def __init__(self, dim: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.patch = nn.Conv2d(1, dim, kernel_size=4, stride=4)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(0.02 * torch.randn(1, 5, dim))
        layer = nn.TransformerEncoderLayer(
            dim, nhead=2, dim_feedforward=32, dropout=0.0, activation="gelu",
            batch_first=True, norm_first=True,
        )  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1)
        h = self.encoder(tokens + self.position)
        return self.head(self.norm(h[:, 0]))


class LayerNormMLP(nn.Module):
    """Linear, LayerNorm, GELU, twice, then a linear head (multi-output regression)."""

    def __init__(self, inputs: int = 64, hidden: int = 32, outputs: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(inputs, hidden), nn.LayerNorm(hidden), nn.GELU(),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.GELU(),
            nn.Linear(hidden, outputs),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Conv1dNet(nn.Module):
    """A 1-D CNN on sequences (n, channels, length): two convolutions, BatchNorm, pooling."""

    def __init__(self, channels: int = 2, classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(channels, 8, 5, padding=2)
        self.bn = nn.BatchNorm1d(8)
        self.conv2 = nn.Conv1d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool1d(F.relu(self.bn(self.conv1(x))), 2)
        return self.head(F.relu(self.conv2(h)).mean(dim=2))


class Recurrent(nn.Module):
    """An LSTM or GRU over sequences (n, length, features); the last hidden state classifies."""

    def __init__(self, cell: str, features: int = 3, hidden: int = 12, classes: int = 4) -> None:
        super().__init__()
        kind = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = kind(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class DepthwiseSeparable(nn.Module):
    """Depthwise and pointwise convolutions with GroupNorm and SiLU, as in mobile CNNs."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.norm1 = nn.GroupNorm(2, 8)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pointwise = nn.Conv2d(8, 16, 1)
        self.norm2 = nn.GroupNorm(4, 16)
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(self.stem(x)))
        h = F.silu(self.norm2(self.pointwise(self.depthwise(h))))
        return self.head(F.adaptive_avg_pool2d(h, 1).flatten(1))


class CausalLM(nn.Module):
    """A one-layer causal transformer on token ids (n, T) -> logits (n, T, vocabulary):
    token and position embeddings, masked self-attention, LayerNorm, GELU."""

    def __init__(self, vocabulary: int = 11, dim: int = 16, length: int = 8) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocabulary, dim)
        self.position = nn.Embedding(length, dim)
        self.attention = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 32), nn.GELU(), nn.Linear(32, dim))
        self.head = nn.Linear(dim, vocabulary)
        mask = torch.triu(torch.full((length, length), float("-inf")), diagonal=1)
        self.register_buffer("mask", mask)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        T = ids.shape[1]
        h = self.tokens(ids) + self.position(torch.arange(T, device=ids.device))
        q = self.norm1(h)
        h = h + self.attention(q, q, q, attn_mask=self.mask[:T, :T], need_weights=False)[0]
        h = h + self.mlp(self.norm2(h))
        return self.head(h)


class EncoderDecoder(nn.Module):
    """A convolutional auto-encoder: strided convolutions down, transposed convolutions up,
    InstanceNorm in the middle; the target is the image itself (n, 1, 8, 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.norm = nn.InstanceNorm2d(8, affine=True)
        self.up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)
        self.out = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm(self.down(x)))
        return self.out(F.relu(self.up(h)))


@dataclass(frozen=True)
class Species:
    """One architecture of the zoo: how to build it, its data and its loss."""

    name: str
    build: Callable[[], nn.Module]
    data: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    loss_name: str  # "cross_entropy" or "mse": the command line's --loss
    recurrent: bool = False  # has a recurrent op that vmap cannot batch

    def model(self, seed: int = 0) -> nn.Module:
        """The model, built from ``seed`` and put in eval mode."""
        torch.manual_seed(seed)
        return self.build().eval()

    def dataset(self, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X, y)``, ``N_SAMPLES`` rows, drawn from ``seed``."""
        return self.data(torch.Generator().manual_seed(seed))


def _images(classes: int) -> Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]:
    def data(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(N_SAMPLES, 1, 8, 8, generator=g), torch.randint(
            classes, (N_SAMPLES,), generator=g
        )

    return data


def _vectors(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(N_SAMPLES, 64, generator=g), torch.randn(N_SAMPLES, 3, generator=g)


def _signals(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(N_SAMPLES, 2, 16, generator=g), torch.randint(4, (N_SAMPLES,), generator=g)


def _sequences(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(N_SAMPLES, 6, 3, generator=g), torch.randint(4, (N_SAMPLES,), generator=g)


def _token_ids(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(11, (N_SAMPLES, 9), generator=g)
    return ids[:, :-1], ids[:, 1:]  # next-token prediction: targets (n, T)


def _reconstruction(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(N_SAMPLES, 1, 8, 8, generator=g)
    return x, x.clone()


ZOO: tuple[Species, ...] = (
    Species("resnet_bn", ResNet, _images(10), cross_entropy, "cross_entropy"),
    Species("lenet", LeNet, _images(10), cross_entropy, "cross_entropy"),
    Species("vit", VisionTransformer, _images(10), cross_entropy, "cross_entropy"),
    Species("mlp_layernorm_gelu", LayerNormMLP, _vectors, mse, "mse"),
    Species("cnn_1d", Conv1dNet, _signals, cross_entropy, "cross_entropy"),
    Species("lstm", lambda: Recurrent("lstm"), _sequences, cross_entropy, "cross_entropy", True),
    Species("gru", lambda: Recurrent("gru"), _sequences, cross_entropy, "cross_entropy", True),
    Species("depthwise_groupnorm", DepthwiseSeparable, _images(10), cross_entropy, "cross_entropy"),
    Species("causal_lm", CausalLM, _token_ids, cross_entropy, "cross_entropy"),
    Species("encoder_decoder", EncoderDecoder, _reconstruction, mse, "mse"),
)
BY_NAME = {species.name: species for species in ZOO}


def reference_surface(
    model: nn.Module,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    X: torch.Tensor,
    y: torch.Tensor,
    d1: dict[str, torch.Tensor],
    d2: dict[str, torch.Tensor],
    alphas: Sequence[float],
    betas: Sequence[float],
) -> np.ndarray:
    """``Z[i, j] = loss(f(theta + alphas[i] d1 + betas[j] d2; X), y)`` by the per-point loop of
    the usual tools over ``torch.func.functional_call`` (buffers as they are, eval mode), float64
    (A, B): the independent computation every door of the engine is checked against."""
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b for name, b in model.named_buffers()}
    Z = np.empty((len(alphas), len(betas)))
    with torch.no_grad():
        for i, a in enumerate(alphas):
            for j, b in enumerate(betas):
                point = {k: v + a * d1[k] + b * d2[k] for k, v in params.items()}
                Z[i, j] = float(loss(functional_call(model, {**point, **buffers}, (X,)), y))
    return Z


def build(name: str, seed: int = 0) -> nn.Module:
    """The zoo's model ``name`` built from ``seed``: a factory for the command line's
    ``--model zoo:build --model-kwargs '{"name": "lstm"}'`` (with ``tests/`` on the path)."""
    return BY_NAME[name].model(seed)
