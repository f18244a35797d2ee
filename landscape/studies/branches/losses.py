"""Losses for the branch study: the tau-hinge (seed eq. 17), multi-class hinge, cross-entropy.

Every loss maps network outputs and targets to the mean over the ``n`` samples (a 0-d tensor).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F

LossName = Literal["tau_hinge", "multiclass_hinge", "cross_entropy"]
LOSS_NAMES: tuple[LossName, ...] = get_args(LossName)

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def tau_hinge(outputs: torch.Tensor, y: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Mean tau-hinge loss, seed eq. (17): ``(1/n) sum_j max(0, 1 - y_j f(x_j) / tau)``.

    ``outputs`` has shape (n,) or (n, 1); labels ``y`` (n,) take values in {-1, +1}; ``tau > 0``.
    """
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    f = _as_vector("outputs", outputs)
    if f.shape != y.shape:
        raise ValueError(f"y must have shape {tuple(f.shape)}, got {tuple(y.shape)}")
    return torch.clamp(1.0 - y.to(f.dtype) * f / tau, min=0.0).mean()


def multiclass_hinge(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean multi-class hinge, the value of torch's ``multi_margin_loss`` (the original authors'
    MNIST loss): ``(1/n) sum_j (1/C) sum_{k != y_j} max(0, 1 - s_{j, y_j} + s_{j, k})``.

    ``scores`` (n, C), integer ``labels`` (n,) in [0, C). Written with ``gather`` and ``clamp``
    because ``multi_margin_loss`` has no double backward (Hessian-vector products) and no
    batching rule under ``vmap``. The ``k = y_j`` term is ``max(0, 1) = 1`` and is subtracted.
    """
    correct = scores.gather(1, labels.long().unsqueeze(1))  # (n, 1)
    margins = torch.clamp(1.0 - correct + scores, min=0.0)  # (n, C)
    return (margins.sum(1) - 1.0).mean() / scores.shape[1]


def cross_entropy(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy ``(1/n) sum_j -log softmax(s_j)_{y_j}``; scores (n, C), labels (n,)."""
    return F.cross_entropy(scores, labels.long())


def loss_function(name: str, tau: float = 1.0) -> LossFunction:
    """The loss ``name`` (one of ``LOSS_NAMES``) as a function ``(outputs, targets) -> mean``."""
    if name == "tau_hinge":
        if not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        return lambda outputs, y: tau_hinge(outputs, y, tau)
    if name == "multiclass_hinge":
        return multiclass_hinge
    if name == "cross_entropy":
        return cross_entropy
    raise ValueError(f"loss must be one of {LOSS_NAMES}, got {name!r}")


def _as_vector(name: str, t: torch.Tensor) -> torch.Tensor:
    if t.ndim == 2 and t.shape[1] == 1:
        return t[:, 0]
    if t.ndim != 1:
        raise ValueError(f"{name} must have shape (n,) or (n, 1), got {tuple(t.shape)}")
    return t
