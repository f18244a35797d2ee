"""Deep linear networks in torch, trained on the regularised objective (seed eq. 2) itself.

Shapes: ``X`` (n, d0), ``Y`` (n, dH); weight ``W_i`` of shape ``(d_i, d_{i-1})``; the network
maps ``X`` to ``X W_1^T ... W_H^T`` (the seed's ``W_H ... W_1 X_s`` transposed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class DeepLinearNet(nn.Module):
    """``x -> W_H ... W_1 x`` without biases; ``widths = [d0, d1, ..., dH]``.

    Each ``W_i`` starts as ``init_scale * N(0, 1) / sqrt(d_{i-1})``.
    """

    def __init__(
        self,
        widths: list[int],
        init_scale: float = 1.0,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if len(widths) < 3:
            raise ValueError(f"widths must list d0, ..., dH with H >= 2, got {widths}")
        if any(int(w) < 1 for w in widths):
            raise ValueError(f"every width must be >= 1, got {widths}")
        if not np.isfinite(init_scale) or init_scale < 0:
            raise ValueError(f"init_scale must be a finite number >= 0, got {init_scale}")
        generator = torch.Generator().manual_seed(int(seed))
        self.weights = nn.ParameterList(
            nn.Parameter(
                init_scale
                * torch.randn(d_out, d_in, generator=generator, dtype=dtype)
                / float(np.sqrt(d_in))
            )
            for d_in, d_out in zip(widths[:-1], widths[1:], strict=True)
        )

    @classmethod
    def from_weights(
        cls, weights: list[np.ndarray], dtype: torch.dtype = torch.float64
    ) -> DeepLinearNet:
        """A network holding copies of ``weights`` (each ``(d_i, d_{i-1})``)."""
        widths = [weights[0].shape[1], *(W.shape[0] for W in weights)]
        net = cls(widths, init_scale=0.0, dtype=dtype)
        with torch.no_grad():
            for parameter, W in zip(net.weights, weights, strict=True):
                parameter.copy_(torch.as_tensor(W, dtype=dtype))
        return net

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        out = X
        for W in self.weights:
            out = out @ W.T
        return out


def schatten_power(A: torch.Tensor, p: int) -> torch.Tensor:
    """``||A||_{S_p}^p = sum_j sigma_j(A)^p``; batched over leading dimensions."""
    return torch.linalg.svdvals(A).pow(p).sum(-1)


def primal_objective(
    weights: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Seed eq. (2) in torch, batched over any leading dimensions shared by all ``weights``.

    ``1/2 ||Y - X W_1^T ... W_H^T||_F^2``
    ``+ gamma/H (||X W_1^T||_{S_H}^H + sum_{i>=2} ||W_i||_{S_H}^H)``.
    """
    H = len(weights)
    first = X @ weights[0].transpose(-1, -2)
    out = first
    for W in weights[1:]:
        out = out @ W.transpose(-1, -2)
    fit = 0.5 * (Y - out).pow(2).sum((-1, -2))
    reg = schatten_power(first, H) + sum(schatten_power(W, H) for W in weights[1:])
    return fit + gamma / H * reg


@dataclass
class TrainingCurve:
    """Objective per iteration (``steps + 1`` values, the first at initialisation)."""

    objective: np.ndarray
    diverged: bool
    weights: list[np.ndarray]


def train_primal(
    net: DeepLinearNet,
    X: np.ndarray,
    Y: np.ndarray,
    gamma: float,
    steps: int,
    lr: float,
    optimizer: str = "gd",
    device: torch.device | str = "cpu",
    callback: Callable[[int], None] | None = None,
) -> TrainingCurve:
    """Full-batch gradient descent (``"gd"``) or Adam (``"adam"``) on the primal objective (eq. 2).

    Stops early, with ``diverged=True``, as soon as the objective is NaN or infinite; the curve is
    then padded with NaN to ``steps + 1`` entries.
    """
    if optimizer not in ("gd", "adam"):
        raise ValueError(f"optimizer must be 'gd' or 'adam', got {optimizer!r}")
    dtype = net.weights[0].dtype
    net = net.to(device)
    Xt = torch.as_tensor(X, dtype=dtype, device=device)
    Yt = torch.as_tensor(Y, dtype=dtype, device=device)
    params = list(net.weights)
    opt = torch.optim.SGD(params, lr=lr) if optimizer == "gd" else torch.optim.Adam(params, lr=lr)
    values = np.full(steps + 1, np.nan)
    diverged = False
    for step in range(steps + 1):
        opt.zero_grad(set_to_none=True)
        loss = primal_objective(params, Xt, Yt, gamma)
        value = float(loss.detach())
        if not np.isfinite(value):
            diverged = True
            break
        values[step] = value
        if step == steps:
            break
        loss.backward()
        opt.step()
        if callback is not None:
            callback(step)
    weights = [W.detach().cpu().numpy().copy() for W in params]
    return TrainingCurve(objective=values, diverged=diverged, weights=weights)


def primal_slice(
    weights: list[np.ndarray],
    directions: tuple[list[np.ndarray], list[np.ndarray]],
    X: np.ndarray,
    Y: np.ndarray,
    gamma: float,
    alphas: np.ndarray,
    betas: np.ndarray,
) -> np.ndarray:
    """``Z[i, j] = P(W + alphas[i] D1 + betas[j] D2)`` for the primal (eq. 2), all points at once.

    ``weights``, ``D1`` and ``D2`` are lists of ``(d_i, d_{i-1})`` arrays; returns
    ``(len(alphas), len(betas))`` float64.
    """
    d1, d2 = directions
    a = torch.as_tensor(np.asarray(alphas, dtype=np.float64))
    b = torch.as_tensor(np.asarray(betas, dtype=np.float64))
    A, B = torch.meshgrid(a, b, indexing="ij")
    A, B = A.reshape(-1, 1, 1), B.reshape(-1, 1, 1)
    batch = [
        torch.as_tensor(W) + A * torch.as_tensor(u) + B * torch.as_tensor(v)
        for W, u, v in zip(weights, d1, d2, strict=True)
    ]
    Xt = torch.as_tensor(X, dtype=torch.float64)
    Yt = torch.as_tensor(Y, dtype=torch.float64)
    values = primal_objective(batch, Xt, Yt, gamma)
    return values.reshape(len(a), len(b)).numpy()


def train_primal_batch(
    widths: list[int],
    starts: list[tuple[float, int]],
    X: np.ndarray,
    Y: np.ndarray,
    gamma: float,
    steps: int,
    lr: float,
    optimizer: str = "gd",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> list[TrainingCurve]:
    """`train_primal` for several starts at once: one batched objective for all of them.

    ``starts`` lists ``(init_scale, seed)``; run ``r`` starts from the weights of
    ``DeepLinearNet(widths, init_scale, seed)``, its weights stacked as ``(R, d_i, d_{i-1})``.
    The runs share no parameter and the optimisers act entry by entry (SGD, Adam), so the loss
    ``sum_r P_r(W_r)`` gives every run the steps it would take alone: the curves equal those of
    `train_primal` up to rounding. A run whose weights or objective stop being finite is marked
    diverged, padded with NaN and frozen (its weights zeroed, left out of the sum).
    """
    if optimizer not in ("gd", "adam"):
        raise ValueError(f"optimizer must be 'gd' or 'adam', got {optimizer!r}")
    if not starts:
        raise ValueError("starts must list at least one (init_scale, seed), got []")
    nets = [
        DeepLinearNet(widths, init_scale=scale, seed=seed, dtype=dtype) for scale, seed in starts
    ]
    params: list[torch.Tensor] = [
        nn.Parameter(torch.stack([net.weights[i].detach() for net in nets]).to(device))
        for i in range(len(widths) - 1)
    ]
    Xt = torch.as_tensor(X, dtype=dtype, device=device)
    Yt = torch.as_tensor(Y, dtype=dtype, device=device)
    opt = torch.optim.SGD(params, lr=lr) if optimizer == "gd" else torch.optim.Adam(params, lr=lr)
    R = len(starts)
    values = np.full((R, steps + 1), np.nan)
    active = torch.ones(R, dtype=torch.bool, device=device)
    for step in range(steps + 1):
        with torch.no_grad():
            finite = torch.stack([W.isfinite().flatten(1).all(1) for W in params]).all(0)
            if not bool(finite.all()):
                for W in params:
                    W[~finite] = 0.0
            active &= finite
        opt.zero_grad(set_to_none=True)
        objective = primal_objective(params, Xt, Yt, gamma)
        with torch.no_grad():
            active &= objective.isfinite()
            current = objective.detach().cpu().numpy()
        keep = active.cpu().numpy()
        values[keep, step] = current[keep]
        if step == steps or not bool(active.any()):
            break
        objective[active].sum().backward()
        with torch.no_grad():
            for W in params:
                if W.grad is not None:
                    W.grad[~active] = 0.0
        opt.step()
    diverged = ~active.cpu().numpy()
    return [
        TrainingCurve(
            objective=values[r],
            diverged=bool(diverged[r]),
            weights=[W[r].detach().cpu().numpy().copy() for W in params],
        )
        for r in range(R)
    ]
