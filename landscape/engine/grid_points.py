"""Losses at many points ``theta + a d1 + b d2`` of a plane, for any ``nn.Module``.

The generic paths of `landscape.engine.surface`:

- the chunked path: points in chunks sized from a memory budget, the parameters at a chunk's
  points one product ``theta + coords [d1; d2]``, the layers the model applies to its data
  hoisted (`landscape.engine.hoisting`), and the forward of a chunk either under ``vmap``
  (``"vmap"``) or, where ``vmap`` cannot run the model (an operator without a batching rule,
  such as ``aten::lstm.input``; a custom ``autograd.Function``; control flow on a tensor's
  value), one ``functional_call`` per point (``"loop (vmap has no batching rule for ...)"``).
  The choice is made once per call by a probe on the first point: ``vmap`` is refused only when
  it raises where the same point evaluated without it does not, so an error of the model itself
  still reaches the caller;
- the write-in loop: for each point, write the weights into the model and forward the data (the
  only way for TorchScript models, which ``torch.func`` rejects).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from landscape.engine.directions import Params, parameters_of
from landscape.engine.hoisting import HoistedLayers, hoist_first_layers, substituted_calls
from landscape.engine.problem import LossFn, Problem, cross_entropy_over_positions
from landscape.engine.progress import Progress

Forward = Callable[..., torch.Tensor]
# What vmap raises for a model it cannot batch: RuntimeError (a missing batching rule, control
# flow on a value, .item(), an autograd.Function without setup_context), NotImplementedError.
VMAP_REFUSALS = (RuntimeError, NotImplementedError)
WRITE_IN_PATH = "loop (weights written into the model per point)"


@dataclass(frozen=True)
class PointLosses:
    """Losses at the points, (P,) float64, and the path that computed them, in words."""

    values: np.ndarray
    path: str


class GridPlane:
    """A `Problem` with the parameter points of a plane (centre, directions), validated."""

    def __init__(self, problem: Problem, center: Params, directions: dict[str, Params]) -> None:
        self.model, self.loss_fn = problem.model, problem.loss_fn
        self.X, self.y, self.device = problem.X, problem.y, problem.device
        self.center, self.directions = center, directions

    @classmethod
    def build(
        cls,
        problem: Problem,
        center: Mapping[str, torch.Tensor] | None,
        directions: Mapping[str, Mapping[str, torch.Tensor]],
    ) -> GridPlane:
        """The plane of ``problem``'s model: ``center`` (the model's parameters theta when None)
        and each direction moved to every parameter's device and dtype; ``ValueError`` naming
        the point when it misses or adds a parameter, or a tensor's shape differs from the
        parameter's."""
        reference = parameters_of(problem.model)
        points = {"center": reference if center is None else center, **directions}
        checked = {name: _on_device(name, p, reference) for name, p in points.items()}
        center_t = checked.pop("center")
        return cls(problem, center_t, checked)


def _on_device(label: str, params: Mapping[str, torch.Tensor], reference: Params) -> Params:
    if set(params) != set(reference):
        missing = sorted(set(reference) - set(params))
        extra = sorted(set(params) - set(reference))
        raise ValueError(
            f"{label} must name the model's parameters; missing {missing}, unknown {extra}"
        )
    out = {}
    for name, ref in reference.items():
        t = params[name]
        if tuple(t.shape) != tuple(ref.shape):
            raise ValueError(
                f"{label}[{name!r}] must have shape {tuple(ref.shape)}, got {tuple(t.shape)}"
            )
        out[name] = t.detach().to(ref.device, ref.dtype)
    return out


# --------------------------------------------------------------------------------------------
# Losses over a batch of grid points.


def batched_loss(loss_fn: LossFn, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``[loss_fn(outputs[g], y) for g]`` as a tensor (G,), computed without a Python loop.

    Cross-entropy is computed with the classes on axis 1 (torch's last-axis softmax is slow for
    few classes on a CPU; outputs that are a view of a class-first array need no copy); with
    `cross_entropy_over_positions`, outputs (G, n, T, C) and targets (n, T) are first flattened
    to (G, n T, C) and (n T,). The squared loss is computed directly; any other loss runs under
    ``vmap`` (or, if it cannot be vmapped, point by point).
    """
    ignore = _cross_entropy_ignore_index(loss_fn)
    if (
        loss_fn is cross_entropy_over_positions
        and not y.is_floating_point()
        and outputs.shape[1:-1] == y.shape
    ):
        outputs, y, ignore = outputs.flatten(1, -2), y.reshape(-1), -100
    if ignore is not None and outputs.dim() == 3 and y.dim() == 1 and not y.is_floating_point():
        G, n = outputs.shape[:2]
        # Classes on axis 1 (torch's "K-dimensional" cross-entropy): vectorised over samples.
        per_sample = F.cross_entropy(
            outputs.transpose(1, 2), y.expand(G, n), reduction="none", ignore_index=ignore
        )
        return per_sample.sum(1) / (y != ignore).sum()
    if _is_mean_squared(loss_fn) and outputs.shape[1:] == y.shape:
        return (outputs - y).square().flatten(1).mean(1)
    try:
        return vmap(loss_fn, in_dims=(0, None))(outputs, y)
    except RuntimeError:
        return torch.stack([loss_fn(o, y) for o in outputs])


def _cross_entropy_ignore_index(loss_fn: LossFn) -> int | None:
    if loss_fn is F.cross_entropy:
        return -100
    if (
        isinstance(loss_fn, nn.CrossEntropyLoss)
        and loss_fn.weight is None
        and loss_fn.reduction == "mean"
        and loss_fn.label_smoothing == 0.0
    ):
        return loss_fn.ignore_index
    return None


def _is_mean_squared(loss_fn: LossFn) -> bool:
    return loss_fn is F.mse_loss or (
        isinstance(loss_fn, nn.MSELoss) and loss_fn.reduction == "mean"
    )


# --------------------------------------------------------------------------------------------
# The chunked path: vmap over chunks of points, or one functional_call per point.


def vmap_refusal(under_vmap: Callable[[], object], one_by_one: Callable[[], object]) -> str | None:
    """Why ``vmap`` cannot run a model, in words, or ``None`` when it can.

    ``under_vmap`` and ``one_by_one`` compute the same small thing (one point) with and without
    ``vmap``. ``vmap`` is refused only when it raises one of `VMAP_REFUSALS` and ``one_by_one``
    succeeds; when both fail, ``one_by_one``'s error (the model's own) is raised.
    """
    try:
        under_vmap()
    except VMAP_REFUSALS as error:
        one_by_one()
        return _reason(error)
    return None


def _reason(error: BaseException) -> str:
    """``"vmap has no batching rule for aten::lstm.input"``, or vmap's first sentence."""
    text = str(error)
    rule = re.search(r"Batching rule not implemented for ([\w:.]+?)\.?(\s|$)", text)
    if rule:
        return f"vmap has no batching rule for {rule.group(1)}"
    first = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
    first = first.removeprefix("vmap: ")
    return f"vmap cannot run the model: {first}"


def loop_path(refusal: str) -> str:
    """The path's name when vmap is refused: ``"loop (<reason>)"``."""
    return f"loop ({refusal})"


def one_point_at_a_time(forward: Forward) -> Forward:
    """``forward`` over the leading (point) axis of its arguments, one call per point, stacked:
    what ``vmap(forward)`` computes, for models ``vmap`` cannot run."""

    def evaluate(params: Params, *hoisted: torch.Tensor) -> torch.Tensor:
        count = len(next(iter(params.values())))
        return torch.stack(
            [
                forward({n: t[g] for n, t in params.items()}, *(z[g] for z in hoisted))
                for g in range(count)
            ]
        )

    return evaluate


def chunked_points(
    plane: GridPlane, coords: np.ndarray, budget: int, progress: Progress | None
) -> PointLosses:
    """Losses at ``center + coords[p, 0] d1 + coords[p, 1] d2``, (P,), in chunks of points.

    The parameters at a chunk's points are one product ``theta + coords [d1; d2]``; those that
    neither direction moves (biases, with Li et al.'s zeroed 1-D directions) stay unbatched.
    The hoisted layers' outputs at the chunk's points are likewise ``Z0 + coords [Z1; Z2]``.
    """
    model, center = plane.model, plane.center
    d1, d2 = plane.directions["d1"], plane.directions["d2"]
    moving = [n for n in center if bool(d1[n].any()) or bool(d2[n].any())]
    if not moving:  # both directions are zero: the loss is the centre's everywhere
        outputs = functional_call(model, center, (plane.X,))[None]
        value = float(batched_loss(plane.loss_fn, outputs, plane.y)[0])
        return PointLosses(np.full(len(coords), value), "one forward (both directions zero)")
    fixed = {n: t for n, t in center.items() if n not in moving}
    params_at = _parameters_at(center, d1, d2, moving)
    hoisted = hoist_first_layers(model, plane.X, center, d1, d2, max_bytes=budget)
    chunk = max(1, min(len(coords), budget // bytes_per_point(plane)))
    coords_t = torch.as_tensor(coords, device=plane.device, dtype=center[moving[0]].dtype)
    out = torch.empty(len(coords), dtype=torch.float64)
    no_calls = nullcontext(lambda outputs: None)
    with no_calls if hoisted is None else substituted_calls(model, hoisted) as use:

        def forward(params: Params, *hoisted_outputs: torch.Tensor) -> torch.Tensor:
            use(hoisted_outputs)
            return functional_call(model, {**fixed, **params}, (plane.X,))

        def losses(points: torch.Tensor, evaluate: Forward) -> torch.Tensor:
            z = [] if hoisted is None else hoisted.outputs_at(points)
            return batched_loss(plane.loss_fn, evaluate(params_at(points), *z), plane.y)

        one_by_one = one_point_at_a_time(forward)
        refusal = vmap_refusal(
            lambda: losses(coords_t[:1], vmap(forward)), lambda: losses(coords_t[:1], one_by_one)
        )
        evaluate = vmap(forward) if refusal is None else one_by_one
        for start in range(0, len(coords), chunk):
            values = losses(coords_t[start : start + chunk], evaluate)
            out[start : start + chunk] = values.to("cpu", torch.float64)
            if progress is not None:
                progress((start + chunk) / len(coords), f"Grid points up to {start + chunk}")
    path = "vmap" if refusal is None else loop_path(refusal)
    return PointLosses(out.numpy(), path + ", " + hoisted_words(model, hoisted))


def _parameters_at(
    center: Params, d1: Params, d2: Params, moving: list[str]
) -> Callable[[torch.Tensor], Params]:
    """``points (G, 2) -> {name: (G, *shape)}``: the moving parameters at the points."""
    shapes = [center[n].shape for n in moving]
    sizes = [s.numel() for s in shapes]

    def flat(point: Params) -> torch.Tensor:
        return torch.cat([point[n].reshape(-1) for n in moving])

    theta, theta_directions = flat(center), torch.stack([flat(d1), flat(d2)])

    def at(points: torch.Tensor) -> Params:
        values = torch.addmm(theta, points, theta_directions)  # (G, moving entries)
        parts = values.split(sizes, dim=1)
        return {
            name: part.view(len(points), *shape)
            for name, part, shape in zip(moving, parts, shapes, strict=True)
        }

    return at


def hoisted_words(model: nn.Module, hoisted: HoistedLayers | None) -> str:
    """``"hoisted: 0 (Linear)"`` naming the hoisted layers, or ``"nothing hoisted"``."""
    if hoisted is None:
        return "nothing hoisted"
    names = (f"{layer} ({type(model.get_submodule(layer)).__name__})" for layer in hoisted.layers)
    return "hoisted: " + ", ".join(names)


def bytes_per_point(plane: GridPlane) -> int:
    """Memory one grid point costs in a vmap pass: its parameters plus every module's output.

    Measured by forward hooks on one pass over the data; temporaries (bias additions,
    activations) are covered by a factor of three on the activations.
    """
    sizes: list[int] = []

    def hook(_module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel() * output.element_size())

    model = plane.model
    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        functional_call(model, plane.center, (plane.X,))
    finally:
        for handle in handles:
            handle.remove()
    params = sum(t.numel() * t.element_size() for t in plane.center.values())
    return max(1, 3 * sum(sizes) + 3 * params)


# --------------------------------------------------------------------------------------------
# The write-in loop (TorchScript).


def write_in_points(plane: GridPlane, coords: np.ndarray, progress: Progress | None) -> PointLosses:
    """The baseline: for each point, write the weights into the model and forward all data."""
    model, d1, d2 = plane.model, plane.directions["d1"], plane.directions["d2"]
    parameters = dict(model.named_parameters())
    saved = {name: p.detach().clone() for name, p in parameters.items()}
    out = np.empty(len(coords))
    try:
        for k, (a, b) in enumerate(coords):
            for name, p in parameters.items():
                p.copy_(plane.center[name] + float(a) * d1[name] + float(b) * d2[name])
            out[k] = float(plane.loss_fn(model(plane.X), plane.y))
            if progress is not None and k % 64 == 0:
                progress(k / len(coords), f"Grid point {k + 1} of {len(coords)}")
    finally:
        for name, p in parameters.items():
            p.copy_(saved[name])
    return PointLosses(out, WRITE_IN_PATH)
