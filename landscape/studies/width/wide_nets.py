"""Du et al.'s wide networks, their output-gradient Gram matrices and full-batch gradient descent.

Shapes follow the project (MATH.md): ``X`` is (n, d) with unit rows, ``W^(1)`` is (m, d),
``W^(h)`` (m, m) for 2 <= h <= H in PyTorch's (out, in) layout, ``a`` is (m,), outputs ``u`` (n,).
Every weight starts ``N(0, 1)`` and every layer is trained (seed section 3.1; MATH.md section 3):

    fully connected  x^(0) = x,  x^(h) = sqrt(c_sigma / m) sigma(W^(h) x^(h-1)),  1 <= h <= H,
    ResNet           x^(1) = sqrt(c_sigma / m) sigma(W^(1) x),
                     x^(h) = x^(h-1) + c_res / (H sqrt(m)) sigma(W^(h) x^(h-1)),  2 <= h <= H,
    output           u = a^T x^(H),   loss  L = 1/2 ||u - y||^2.

Float64 throughout (mps, which lacks it, falls back to the CPU): the loss curves are read down
to 1e-10 and the Gram drifts are small.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from landscape.engine.device import float64_device
from landscape.engine.gram import ACTIVATIONS, ARCHITECTURES, MAX_DEPTH, c_sigma

MAX_WIDTH = 10**7
Tensor = torch.Tensor

_TORCH_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "erf": torch.erf,
    "softplus": torch.nn.functional.softplus,
    "tanh": torch.tanh,
}


_TORCH_DERIVATIVES: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": lambda z: (z > 0).to(z.dtype),  # ReLU'(0) = 0 (MATH.md conventions)
    "erf": lambda z: (2.0 / math.sqrt(math.pi)) * torch.exp(-z * z),
    "softplus": torch.sigmoid,
    "tanh": lambda z: 1.0 - torch.tanh(z) ** 2,
}


def torch_activation(activation: str) -> Callable[[Tensor], Tensor]:
    """``sigma`` as a torch function (softplus is ``log(1 + e^x)``, torch's beta = 1)."""
    if activation not in _TORCH_ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return _TORCH_ACTIVATIONS[activation]


def torch_activation_prime(activation: str) -> Callable[[Tensor], Tensor]:
    """``sigma'`` as a torch function."""
    torch_activation(activation)
    return _TORCH_DERIVATIVES[activation]


@dataclass(frozen=True)
class WideNetSpec:
    """The architecture: depth ``H`` (number of ``W`` matrices), width ``m``, sigma, fc/resnet."""

    depth: int
    width: int
    activation: str = "relu"
    architecture: str = "fc"
    c_res: float = 0.5

    def validate(self) -> None:
        """``ValueError`` naming the first field outside its range."""
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}"
            )
        low = 1 if self.architecture == "fc" else 2
        if int(self.depth) != self.depth or not low <= self.depth <= MAX_DEPTH:
            raise ValueError(
                f"depth ({self.architecture}) must be an integer in "
                f"[{low}, {MAX_DEPTH}], got {self.depth}"
            )
        if int(self.width) != self.width or not 1 <= self.width <= MAX_WIDTH:
            raise ValueError(f"width must be an integer in [1, {MAX_WIDTH}], got {self.width}")
        torch_activation(self.activation)
        if self.architecture == "resnet" and not 0.0 < self.c_res < 1.0:
            raise ValueError(f"c_res must be in (0, 1), got {self.c_res}")

    def layer_scale(self, h: int) -> float:
        """The factor before ``sigma(W^(h) x^(h-1))``: ``sqrt(c_sigma/m)``, or ``c_res/(H sqrt m)``
        for ResNet layers h >= 2."""
        if self.architecture == "resnet" and h >= 2:
            return self.c_res / (self.depth * math.sqrt(self.width))
        return math.sqrt(c_sigma(self.activation) / self.width)

    def next_hidden(self, h: int, previous: Tensor, pre: Tensor) -> Tensor:
        """``x^(h)`` (n, m) from ``x^(h-1)`` and the pre-activation ``W^(h) x^(h-1)`` (n, m)."""
        out = self.layer_scale(h) * torch_activation(self.activation)(pre)
        if self.architecture == "resnet" and h >= 2:
            return previous + out
        return out


def init_weights(
    spec: WideNetSpec,
    d: int,
    seed: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> list[Tensor]:
    """``[W^(1) (m, d), W^(2..H) (m, m), a (m,)]``, every entry ``N(0, 1)``, drawn from ``seed``."""
    spec.validate()
    generator = torch.Generator().manual_seed(int(seed))
    m = spec.width
    shapes = [(m, d)] + [(m, m)] * (spec.depth - 1) + [(m,)]
    return [torch.randn(shape, generator=generator, dtype=dtype).to(device) for shape in shapes]


def forward(
    spec: WideNetSpec, weights: list[Tensor], X: Tensor
) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """``(u (n,), [x^(0), ..., x^(H)], [W^(1) x^(0), ..., W^(H) x^(H-1)])`` for rows of ``X``."""
    hidden, pre = [X], []
    for h in range(1, spec.depth + 1):
        z = hidden[-1] @ weights[h - 1].T
        pre.append(z)
        hidden.append(spec.next_hidden(h, hidden[-1], z))
    return hidden[-1] @ weights[-1], hidden, pre


def layer_grams(spec: WideNetSpec, weights: list[Tensor], X: Tensor) -> Tensor:
    """``[G^(1), ..., G^(H), G^(a)]`` stacked (H + 1, n, n): seed eq. 11 split by layer.

    ``G^(h)_ij = <du_i/dW^(h), du_j/dW^(h)> = <delta^(h)_i, delta^(h)_j> <x^(h-1)_i, x^(h-1)_j>``
    with ``delta^(h)_i = du_i / d(W^(h) x^(h-1)_i)`` (from one backward pass of ``sum_i u_i``,
    since ``u_i`` depends only on sample i), and ``G^(a)_ij = <x^(H)_i, x^(H)_j>``. The full
    ``G = sum`` of the stack; ``G^(H)`` is the block Du et al.'s ``K^(H)`` describes.
    """
    u, hidden, deltas = _forward_backward(spec, weights, X)
    return _grams(hidden, deltas)


def gradients_and_grams(
    spec: WideNetSpec, weights: list[Tensor], X: Tensor, y: Tensor
) -> tuple[Tensor, list[Tensor], Tensor]:
    """``(u (n,), [grad_W^(1) L, ..., grad_W^(H) L, grad_a L], layer_grams)`` at ``weights``.

    ``L = 1/2 ||u - y||^2``; ``grad_{W^(h)} L = sum_i (u_i - y_i) delta^(h)_i x^(h-1)_i^T`` and
    ``grad_a L = sum_i (u_i - y_i) x^(H)_i``, from the same per-sample ``delta`` as the Grams.
    """
    u, hidden, deltas = _forward_backward(spec, weights, X)
    residual = u - y
    grads = [
        (residual[:, None] * delta).T @ x for x, delta in zip(hidden[:-1], deltas, strict=True)
    ]
    grads.append(residual @ hidden[-1])
    return u, grads, _grams(hidden, deltas)


def _forward_backward(
    spec: WideNetSpec, weights: list[Tensor], X: Tensor
) -> tuple[Tensor, list[Tensor], tuple[Tensor, ...]]:
    with torch.enable_grad():
        leaves = [w.detach().requires_grad_(True) for w in weights]
        u, hidden, pre = forward(spec, leaves, X)
        deltas = torch.autograd.grad(u.sum(), pre)
    return u.detach(), [x.detach() for x in hidden], deltas


def _grams(hidden: list[Tensor], deltas: tuple[Tensor, ...]) -> Tensor:
    blocks = [(x @ x.T) * (delta @ delta.T) for x, delta in zip(hidden[:-1], deltas, strict=True)]
    blocks.append(hidden[-1] @ hidden[-1].T)
    return torch.stack(blocks)


def sample_last_gram_at_init(spec: WideNetSpec, X: Tensor, seed: int) -> Tensor:
    """One draw of ``G^(H)(0)`` (n, n) for a width-m network, exact in distribution, in O(H n^2 m).

    Given ``x^(h-1)`` (n, m'), the pre-activations ``x^(h-1) W^(h)T`` of a fresh ``N(0, 1)`` layer
    have i.i.d. columns ``N(0, x^(h-1) x^(h-1)T)``, so each layer is drawn as ``S Xi`` with
    ``S S^T = x^(h-1) x^(h-1)T`` and ``Xi`` (n, m) standard normal, never forming ``W^(h)`` (m, m).
    Then ``G^(H)(0) = s_H^2 (x^(H-1) x^(H-1)T) * ((sigma'(Z_H) a)(sigma'(Z_H) a)^T)`` with
    ``a ~ N(0, I)`` and ``s_H`` = `WideNetSpec.layer_scale` (H).
    """
    spec.validate()
    generator = torch.Generator(device=X.device).manual_seed(int(seed))
    x = X
    for h in range(1, spec.depth + 1):
        evals, evecs = torch.linalg.eigh(x @ x.T)
        root = evecs * evals.clamp(min=0.0).sqrt()
        noise = torch.randn(
            x.shape[0], spec.width, generator=generator, dtype=X.dtype, device=X.device
        )
        z = root @ noise
        if h < spec.depth:
            x = spec.next_hidden(h, x, z)
    a = torch.randn(spec.width, generator=generator, dtype=X.dtype, device=X.device)
    delta = spec.layer_scale(spec.depth) * torch_activation_prime(spec.activation)(z) * a
    return (x @ x.T) * (delta @ delta.T)


@dataclass
class TrainingHistory:
    """Per-iteration record of one gradient-descent run; arrays have ``iterations_run + 1`` rows."""

    loss: np.ndarray  # L(k) = 1/2 ||u(k) - y||^2
    weight_movement: np.ndarray  # max_h ||W^(h)(k) - W^(h)(0)||_F / sqrt(m)
    gram_change: np.ndarray  # ||G^(H)(k) - G^(H)(0)||_2
    lambda_min_last: np.ndarray  # lambda_min(G^(H)(k))
    lambda_min_full: np.ndarray  # lambda_min(G(k)), all layers and a
    lambda_max_full_init: float  # lambda_max(G(0)): gradient descent is stable for eta < 2 / it
    gram_last_init: np.ndarray  # G^(H)(0) (n, n)
    outputs_init: np.ndarray  # u(0) (n,)
    iterations_run: int
    diverged: bool


def train(
    spec: WideNetSpec,
    X: np.ndarray,
    y: np.ndarray,
    eta: float,
    iterations: int,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Callable[[float], None] | None = None,
    track: bool = True,
) -> TrainingHistory:
    """Full-batch gradient descent ``theta(k+1) = theta(k) - eta grad L(theta(k))`` on all layers.

    The gradients and the per-layer Grams come from `gradients_and_grams`. A loss that becomes
    non-finite or exceeds 1e6 L(0) stops the run with ``diverged=True``. With ``track=False``
    only the loss is recorded per iteration (the movement and Gram series stay empty; the
    initial Gram quantities are still filled in).
    """
    spec.validate()
    if not (np.isfinite(eta) and eta > 0):
        raise ValueError(f"eta must be a finite number > 0, got {eta}")
    if int(iterations) != iterations or iterations < 0:
        raise ValueError(f"iterations must be an integer >= 0, got {iterations}")
    device = float64_device(device)
    X_t, y_t = _training_data(X, y, device)
    weights = init_weights(spec, X_t.shape[1], seed, device)
    start = [w.clone() for w in weights[:-1]] if track else []
    root_m = math.sqrt(spec.width)

    records: dict[str, list[float]] = {
        key: [] for key in ("loss", "move", "change", "last", "full")
    }
    gram_init = outputs_init = None
    lambda_max_init = math.nan
    diverged = False
    for k in range(int(iterations) + 1):
        u, grads, grams = gradients_and_grams(spec, weights, X_t, y_t)
        residual = u - y_t
        loss = 0.5 * float(residual @ residual)
        if not math.isfinite(loss) or (records["loss"] and loss > 1e6 * records["loss"][0]):
            diverged = True
            break
        last, full = grams[-2], grams.sum(0)
        if gram_init is None:
            gram_init, outputs_init = last.clone(), u.clone()
            lambda_max_init = float(torch.linalg.eigvalsh(full)[-1])
        records["loss"].append(loss)
        if track:
            _record_step(records, weights, start, root_m, last, full, gram_init)
        if k == iterations:
            break
        for w, g in zip(weights, grads, strict=True):
            w.sub_(g, alpha=eta)
        if progress is not None:
            progress((k + 1) / (iterations + 1))

    return _history(records, gram_init, outputs_init, lambda_max_init, len(y_t), diverged)


def _training_data(
    X: np.ndarray, y: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``X`` (n, d) and ``y`` flattened to (n,), float64 on ``device``; a ValueError when their
    numbers of rows differ."""
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float64), device=device)
    y_t = torch.as_tensor(np.asarray(y, dtype=np.float64).reshape(-1), device=device)
    if X_t.shape[0] != y_t.shape[0]:
        raise ValueError(
            f"X and y must have the same number of rows, got {X_t.shape[0]} and {y_t.shape[0]}"
        )
    return X_t, y_t


def _record_step(
    records: dict[str, list[float]],
    weights: list[Tensor],
    start: list[Tensor],
    root_m: float,
    last: Tensor,
    full: Tensor,
    gram_init: Tensor,
) -> None:
    records["move"].append(
        max(
            float(torch.linalg.norm(w - w0)) / root_m
            for w, w0 in zip(weights[:-1], start, strict=True)
        )
    )
    records["change"].append(float(torch.linalg.matrix_norm(last - gram_init, ord=2)))
    records["last"].append(float(torch.linalg.eigvalsh(last)[0]))
    records["full"].append(float(torch.linalg.eigvalsh(full)[0]))


def _history(
    records: dict[str, list[float]],
    gram_init: Tensor | None,
    outputs_init: Tensor | None,
    lambda_max_init: float,
    n: int,
    diverged: bool,
) -> TrainingHistory:
    return TrainingHistory(
        loss=np.array(records["loss"]),
        weight_movement=np.array(records["move"]),
        gram_change=np.array(records["change"]),
        lambda_min_last=np.array(records["last"]),
        lambda_min_full=np.array(records["full"]),
        lambda_max_full_init=lambda_max_init,
        gram_last_init=(gram_init.cpu().numpy() if gram_init is not None else np.zeros((n, n))),
        outputs_init=(
            outputs_init.cpu().numpy() if outputs_init is not None else np.full(n, np.nan)
        ),
        iterations_run=max(len(records["loss"]) - 1, 0),
        diverged=diverged,
    )
