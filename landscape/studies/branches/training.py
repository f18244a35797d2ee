"""Training a network by SGD or Adam (mini-batch or full batch) on a penalised objective.

The objective is ``J(theta) = loss(f(X_b; theta), y_b) + (weight_decay / 2) ||theta||^2``, the
squared norm over the trainable parameters; data and model live on one torch device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
from torch import nn

from landscape.engine.validation import check_integer, check_number
from landscape.studies.branches.losses import LossFunction

Optimizer = Literal["sgd", "adam"]
OPTIMIZERS: tuple[Optimizer, ...] = get_args(Optimizer)


@dataclass
class TrainingRun:
    """History of one training run: the full-data objective after each epoch."""

    objective: np.ndarray  # (epochs + 1,), entry 0 before training
    diverged: bool
    message: str

    @property
    def final(self) -> float:
        """The full-data objective after the last epoch."""
        return float(self.objective[-1])


def squared_norm(model: nn.Module) -> torch.Tensor:
    """``||theta||^2`` summed over the trainable parameters of ``model``."""
    squares = [(p * p).sum() for p in model.parameters() if p.requires_grad]
    total = squares[0] if squares else torch.zeros(())
    for square in squares[1:]:  # left to right, as Python's sum
        total = total + square
    return total


def objective(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFunction,
    weight_decay: float = 0.0,
) -> torch.Tensor:
    """``J(theta) = loss(f(X; theta), y) + (weight_decay / 2) ||theta||^2`` as a 0-d tensor."""
    value = loss_fn(model(X), y)
    if weight_decay:
        value = value + 0.5 * weight_decay * squared_norm(model)
    return value


def train(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFunction,
    *,
    optimizer: str = "adam",
    lr: float = 1e-2,
    epochs: int = 50,
    batch_size: int | None = None,
    weight_decay: float = 0.0,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> TrainingRun:
    """Minimise ``J`` over ``model``'s trainable parameters in place; returns the history.

    ``X`` (n, d) and ``y`` (n,) on the model's device; ``batch_size=None`` is full batch.
    Mini-batches are a fresh permutation each epoch drawn from ``seed``. Stops at the first
    non-finite objective and says so.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if check_number("lr", lr, 0.0, 1e6) <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr}")
    check_integer("epochs", epochs, 0)
    n = X.shape[0]
    if batch_size is not None:  # an integer: a float batch size loops in the slicing below
        check_integer("batch_size (or None)", batch_size, 1, n)
    params = [p for p in model.parameters() if p.requires_grad]
    opt: torch.optim.Optimizer = (
        torch.optim.SGD(params, lr=lr, momentum=0.9, foreach=True)
        if optimizer == "sgd"
        else torch.optim.Adam(params, lr=lr, foreach=True)
    )
    generator = torch.Generator().manual_seed(int(seed))
    step = n if batch_size is None else int(batch_size)
    history = [_evaluate(model, X, y, loss_fn, weight_decay)]
    for epoch in range(int(epochs)):
        order = torch.arange(n) if step == n else torch.randperm(n, generator=generator)
        order = order.to(X.device)
        for start in range(0, n, step):
            index = order[start : start + step]
            opt.zero_grad(set_to_none=True)
            objective(model, X[index], y[index], loss_fn, weight_decay).backward()
            opt.step()
        history.append(_evaluate(model, X, y, loss_fn, weight_decay))
        if not np.isfinite(history[-1]):
            return TrainingRun(
                np.array(history),
                True,
                f"objective became {history[-1]} at epoch {epoch + 1}; lower lr",
            )
        if progress is not None:
            progress((epoch + 1) / epochs)
    return TrainingRun(np.array(history), False, "")


def _evaluate(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss_fn: LossFunction, weight_decay: float
) -> float:
    with torch.no_grad():
        return float(objective(model, X, y, loss_fn, weight_decay))
