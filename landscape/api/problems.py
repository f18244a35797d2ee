"""A model, a loss and data as a researcher holds them, turned into the engine's `Problem`.

``loss`` is a callable ``loss(outputs, targets)`` that averages over the samples, or one of the
names in `LOSSES`: ``"cross_entropy"`` (``torch.nn.functional.cross_entropy`` for integer labels
(n,); for integer targets (n, ...) such as a language model's next tokens, the mean over every
position with the classes on the outputs' last axis, `cross_entropy_per_position`) and
``"mse"`` (``torch.nn.functional.mse_loss``, targets shaped like the outputs; targets (n,) for
a model with outputs (n, 1) are read as (n, 1)). ``X`` and ``y`` are NumPy arrays or
tensors; floating-point data take the dtype of the model's parameters, integer labels stay
integers. ``device=None`` computes where the model's parameters are; a device name (``"cpu"``,
``"cuda"``, ``"mps"``, ``"auto"``: cuda, then cpu) computes on a copy of the model moved
there, so the model itself never moves; ``"mps"`` has no float64, so curvature refuses it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from landscape.engine.device import resolve_device
from landscape.engine.directions import Params, parameters_of
from landscape.engine.problem import LossFn, Problem
from landscape.engine.surface import eval_mode

LossName = Literal["cross_entropy", "mse"]
LOSS_NAMES: tuple[LossName, ...] = get_args(LossName)
LOSSES: dict[str, LossFn] = {"cross_entropy": F.cross_entropy, "mse": F.mse_loss}
Loss = LossName | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Data = np.ndarray | torch.Tensor
DeviceChoice = str | torch.device | None
Point = nn.Module | Mapping[str, torch.Tensor]


def cross_entropy_per_position(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The mean cross-entropy over every position: ``outputs`` (n, ..., C) with the classes on
    the last axis, integer ``targets`` (n, ...)."""
    return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))


def resolve_loss(loss: Loss, targets: torch.Tensor | None = None) -> LossFn:
    """The loss function for ``loss``: a callable as given, a name from `LOSSES`
    (``"cross_entropy"`` on integer ``targets`` of two or more axes: per position)."""
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"loss must be a callable or one of {LOSS_NAMES}, got {loss!r}")
        tokens = targets is not None and targets.dim() >= 2 and not targets.is_floating_point()
        if loss == "cross_entropy" and tokens:
            return cross_entropy_per_position
        return LOSSES[loss]
    if not callable(loss):
        raise ValueError(f"loss must be a callable or one of {LOSS_NAMES}, got {loss!r}")
    return loss


def on_device(model: nn.Module, device: DeviceChoice) -> nn.Module:
    """``model`` itself when it already lives on ``device`` (or ``device`` is None), else a
    deep copy moved there."""
    first = next(iter(model.parameters()), None)
    if first is None:
        raise ValueError("model must have at least one parameter")
    if device is None:
        return model
    target = resolve_device(device) if isinstance(device, str) else torch.device(device)
    here = first.device
    if here.type == target.type and (target.index is None or target.index == here.index):
        return model
    return copy.deepcopy(model).to(target)


def problem(
    model: nn.Module,
    loss: Loss,
    X: Data,
    y: Data,
    *,
    device: DeviceChoice = None,
    memory_budget: int | None = None,
    batch_rows: int | None = None,
) -> Problem:
    """The engine's `Problem` for a model, a loss (callable or name) and data (NumPy or torch).

    ``X`` (n, ...) and ``y`` (n, ...) end on the model's device; floating-point data in the
    parameters' dtype. ``memory_budget`` (bytes) bounds one pass's working memory;
    ``batch_rows`` evaluates the data in batches of that many rows (the same numbers to float
    rounding, one batch's activations in memory).
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    targets = _targets(loss, y)
    loss_fn = resolve_loss(loss, torch.as_tensor(targets))
    model = on_device(model, device)
    built = Problem(model, loss_fn, X, targets, memory_budget=memory_budget, batch_rows=batch_rows)
    if loss == "mse" and built.y.dim() == 1 and _output_shape(built)[1:] == (1,):
        built.y = built.y[:, None]
    return built


def _targets(loss: Loss, y: Data) -> Data:
    """Integer-valued float labels (n,) as int64 for ``"cross_entropy"``; others unchanged."""
    if loss != "cross_entropy":
        return y
    labels = torch.as_tensor(y)
    if labels.dim() == 1 and labels.is_floating_point():
        if not bool(torch.all(labels == labels.round())):
            raise ValueError(
                "y must hold integer class labels (n,) for loss='cross_entropy', got "
                "non-integer values"
            )
        return labels.long()
    return y


def _output_shape(built: Problem) -> tuple[int, ...]:
    """The shape of the model's output on the first sample (eval mode, no gradient)."""
    with eval_mode(built.model), torch.no_grad():
        return tuple(built.model(built.X[:1]).shape)


def point_of(point: Point, model: nn.Module, label: str) -> Params:
    """The parameters of ``point`` (a model, a state dict or a ``name -> tensor`` mapping) for
    the parameters of ``model``, detached, on its device and in its dtype; buffers dropped."""
    values = parameters_of(point) if isinstance(point, nn.Module) else dict(point)
    reference = dict(model.named_parameters())
    missing = sorted(set(reference) - set(values))
    if missing:
        raise ValueError(f"{label} must hold every parameter of the model; missing {missing}")
    out: Params = {}
    for name, ref in reference.items():
        tensor = torch.as_tensor(values[name])
        if tuple(tensor.shape) != tuple(ref.shape):
            raise ValueError(
                f"{label}[{name!r}] must have shape {tuple(ref.shape)}, got {tuple(tensor.shape)}"
            )
        out[name] = tensor.detach().to(ref.device, ref.dtype).clone()
    return out
