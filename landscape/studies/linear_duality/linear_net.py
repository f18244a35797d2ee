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
        """``X W_1^T ... W_H^T``: rows X (n, d0) in, (n, dH) out."""
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


def _gram_power(C: np.ndarray, power: float) -> tuple[np.ndarray, np.ndarray]:
    """For symmetric PSD ``C = V diag(lam) V^T`` (batched): ``sum_j lam_j^(power + 1)`` and
    ``V diag(lam^power) V^T``, the eigenvalues clipped at 0 (rounding may make them negative)."""
    lam, V = np.linalg.eigh(C)
    lam = np.maximum(lam, 0.0)
    return (lam ** (power + 1)).sum(-1), (V * lam[..., None, :] ** power) @ V.swapaxes(-1, -2)


def primal_value_and_gradient(
    weights: list[np.ndarray], G: np.ndarray, B: np.ndarray, YY: float, gamma: float
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Seed eq. (2) and its exact gradient in every ``W_i``, by hand, batched over a leading
    dimension ``R`` shared by all ``weights``; the data enter only through ``G = X^T X``
    ``(d0, d0)``, ``B = X^T Y`` ``(d0, dH)`` and ``YY = ||Y||_F^2``.

    Fit: with ``M = W_1^T ... W_H^T``, ``1/2 ||Y - X M||^2 = 1/2 (YY - 2 tr(M^T B) +
    tr(M^T G M))``; with ``D = G M - B``, its gradient in ``W_i`` is ``Q_i D^T P_{i-1}``,
    ``P_{i-1} = W_1^T ... W_{i-1}^T``, ``Q_i = W_{i+1}^T ... W_H^T``.
    Regulariser: for ``A`` with Gram ``C = A^T A = V diag(s^2) V^T``, ``||A||_{S_H}^H =
    sum s^H`` and ``d/dA = H A V diag(s^{H-2}) V^T``. For ``A = X W_1^T``, ``C = W_1 G W_1^T``
    and the gradient in ``W_1`` is ``H S W_1 G`` with ``S = V diag(s^{H-2}) V^T``. No matrix
    here has more than ``max(d_i)`` rows: the cost of a step does not grow with ``n``.
    """
    H = len(weights)
    T = [W.swapaxes(-1, -2) for W in weights]
    prefix = [T[0]]  # P_1, ..., P_H = M (P_0 = I is left implicit)
    for Wt in T[1:]:
        prefix.append(prefix[-1] @ Wt)
    M = prefix[-1]
    D = G @ M - B
    value = (
        0.5 * YY - np.einsum("...ij,ij->...", M, B) + 0.5 * np.einsum("...ij,...ij->...", M, D + B)
    )
    suffix = None  # Q_i = W_{i+1}^T ... W_H^T, built from the right (Q_H = I implicit)
    gradients: list[np.ndarray] = [np.empty(0)] * H
    for i in range(H - 1, -1, -1):
        fit_grad = D.swapaxes(-1, -2) if i == 0 else D.swapaxes(-1, -2) @ prefix[i - 1]
        if suffix is not None:
            fit_grad = suffix @ fit_grad
        power, S = _gram_power(weights[i] @ G @ T[i] if i == 0 else T[i] @ weights[i], (H - 2) / 2)
        value = value + gamma / H * power
        gradients[i] = fit_grad + gamma * (S @ weights[i] @ G if i == 0 else weights[i] @ S)
        suffix = T[i] if suffix is None else T[i] @ suffix
    return value, gradients


def train_primal_batch(
    widths: list[int],
    starts: list[tuple[float, int]],
    X: np.ndarray,
    Y: np.ndarray,
    gamma: float,
    steps: int,
    lr: float,
    optimizer: str = "gd",
) -> list[TrainingCurve]:
    """`train_primal` for several starts at once, in float64 NumPy on the CPU.

    ``starts`` lists ``(init_scale, seed)``; run ``r`` starts from the weights of
    ``DeepLinearNet(widths, init_scale, seed)``, its weights stacked as ``(R, d_i, d_{i-1})``.
    Each step evaluates the objective and its exact gradient for every run at once
    (`primal_value_and_gradient`: matrices of at most ``max(d_i)`` rows, so a few dozen
    microseconds whatever ``n``), then takes plain gradient descent ``W <- W - lr grad`` or
    Adam with torch's defaults, entry by entry: every run takes the steps it would take alone,
    and the curves equal those of `train_primal` (autograd and ``torch.optim``) up to rounding.
    A run whose weights or objective stop being finite is marked diverged, padded with NaN and
    frozen (its weights zeroed, its updates dropped).
    """
    if optimizer not in ("gd", "adam"):
        raise ValueError(f"optimizer must be 'gd' or 'adam', got {optimizer!r}")
    if not starts:
        raise ValueError("starts must list at least one (init_scale, seed), got []")
    nets = [DeepLinearNet(widths, init_scale=scale, seed=seed) for scale, seed in starts]
    params = [
        np.stack([net.weights[i].detach().numpy() for net in nets]) for i in range(len(widths) - 1)
    ]
    X64, Y64 = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    G, B, YY = X64.T @ X64, X64.T @ Y64, float(np.sum(Y64**2))
    moments = [(np.zeros_like(W), np.zeros_like(W)) for W in params]
    R = len(starts)
    values = np.full((R, steps + 1), np.nan)
    active = np.ones(R, dtype=bool)
    with np.errstate(all="ignore"):  # a diverging run overflows: its objective says so below
        for step in range(steps + 1):
            objective, gradients = primal_value_and_gradient(params, G, B, YY, gamma)
            failed = active & ~np.isfinite(objective)  # weights not finite give NaN here too
            if failed.any():
                active &= ~failed
                for W in params:
                    W[failed] = 0.0
            values[active, step] = objective[active]
            if step == steps or not active.any():
                break
            for W, grad, moment in zip(params, gradients, moments, strict=True):
                W[active] -= _update(grad[active], moment, active, step + 1, lr, optimizer)
    return [
        TrainingCurve(
            objective=values[r],
            diverged=not bool(active[r]),
            weights=[W[r].copy() for W in params],
        )
        for r in range(R)
    ]


ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults


def _update(
    grad: np.ndarray,
    moment: tuple[np.ndarray, np.ndarray],
    active: np.ndarray,
    t: int,
    lr: float,
    optimizer: str,
) -> np.ndarray:
    """The step to subtract from the active runs' weights: ``lr grad`` (gradient descent), or
    Adam's ``lr/(1 - b1^t) m / (sqrt(v)/sqrt(1 - b2^t) + eps)`` with ``m, v`` the moving
    averages of the gradient and its square (updated in ``moment``), as in ``torch.optim.Adam``."""
    if optimizer == "gd":
        return lr * grad
    (beta1, beta2), (mean, square) = ADAM_BETAS, moment
    mean[active] += (1 - beta1) * (grad - mean[active])
    square[active] = beta2 * square[active] + (1 - beta2) * grad * grad
    denom = np.sqrt(square[active]) / np.sqrt(1 - beta2**t) + ADAM_EPS
    return lr / (1 - beta1**t) * mean[active] / denom
