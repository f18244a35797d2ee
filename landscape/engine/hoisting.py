"""The weight layers a model applies to its data, hoisted out of a surface's grid loop.

On the plane ``theta + a d1 + b d2`` every weight is affine in the grid coordinates. A layer
that is affine in its own weights (``nn.Linear``: ``u W^T + c``; ``nn.Conv1d/2d/3d``:
``conv(u, W) + c``) and whose input ``u`` does not depend on the parameters therefore outputs

    z(a, b) = L(u; W + a U + b V, c + a u_c + b v_c) = Z0 + a Z1 + b Z2,

with ``Z0 = L(u; W, c)``, ``Z1 = L(u; U, u_c)``, ``Z2 = L(u; V, v_c)`` computed once per surface
instead of once per grid point (for a multi-layer perceptron on the 64 pixels of the digits, 60 %
of the arithmetic of a forward pass).

`data_calls` finds these calls in any model, with no knowledge of its class: one forward
pass runs under a dispatch mode that marks every tensor computed from a parameter (through any
operation, comparisons and ``detach`` included; a parameter read out as a Python number is not
followed, but ``vmap`` refuses that for the parameters a surface moves), and each call of a
``Linear``/``Conv`` module is recorded with whether its input is marked. Dispatch modes are
thread-local and the recording wraps only this model's own modules (which, as under
``functional_call``, no other thread may use meanwhile), so other threads, other sessions of the
app, are not touched; ``torch.fx``'s tracer, by contrast, patches ``nn.Module.__call__`` for the
whole process. `substituted_calls` then makes the recorded calls return the hoisted outputs
while the rest of the model runs as written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary

from landscape.engine.directions import ParamMapping

AFFINE_IN_WEIGHTS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class HoistedCall:
    """Call number ``call`` (0-based, in one forward pass) of the module named ``layer``."""

    layer: str
    call: int
    shape: torch.Size


@dataclass(frozen=True)
class HoistedLayers:
    """The hoisted calls and their outputs at ``theta``, ``d1`` and ``d2``: ``Z0`` (S,) and
    ``Z_directions`` (2, S), every call's output flattened and concatenated in ``calls`` order."""

    calls: tuple[HoistedCall, ...]
    Z0: torch.Tensor
    Z_directions: torch.Tensor

    @property
    def layers(self) -> tuple[str, ...]:
        """The hoisted layers' names, one per call, in ``calls`` order."""
        return tuple(call.layer for call in self.calls)

    def outputs_at(self, coords: torch.Tensor) -> list[torch.Tensor]:
        """Each hoisted call's output at the points ``coords`` (G, 2), ``Z0 + a Z1 + b Z2``,
        shape (G, *shape): views of one (G, S) product."""
        flat = torch.addmm(self.Z0, coords.to(self.Z0.dtype), self.Z_directions)
        sizes = [call.shape.numel() for call in self.calls]
        return [
            part.view(len(coords), *call.shape)
            for part, call in zip(flat.split(sizes, dim=1), self.calls, strict=True)
        ]


def data_calls(
    model: nn.Module, X: torch.Tensor, center: ParamMapping, max_bytes: int | None = None
) -> list[tuple[HoistedCall, torch.Tensor]]:
    """The ``Linear``/``Conv`` calls of ``model(X)`` whose input does not depend on a parameter,
    each with that input; none when the three outputs a surface stores for them would take more
    than ``max_bytes``. Call under ``torch.no_grad`` in the mode (eval) the surface uses: the
    calls are those of that pass."""
    found: list[tuple[HoistedCall, torch.Tensor]] = []
    marks = _ParameterMarks(model.parameters())

    def record(name: str, count: int, original: Callable, args: tuple, kwargs: dict) -> object:
        output = original(*args, **kwargs)
        (u,) = args if len(args) == 1 and not kwargs else (None,)
        named = all(
            f"{name}.{key}" in center for key, _ in model.get_submodule(name).named_parameters()
        )
        if (
            isinstance(u, torch.Tensor)
            and isinstance(output, torch.Tensor)
            and named
            and not marks[u]
        ):
            found.append((HoistedCall(name, count, output.shape), u))
        return output

    names = [name for name, m in model.named_modules() if type(m) in AFFINE_IN_WEIGHTS]
    with _counted_forwards(model, names, record), marks:
        model(X)
    itemsize = next(iter(center.values())).element_size()
    stored = 3 * sum(call.shape.numel() for call, _ in found) * itemsize
    return [] if max_bytes is not None and stored > max_bytes else found


def hoist_first_layers(
    model: nn.Module,
    X: torch.Tensor,
    center: ParamMapping,
    d1: ParamMapping,
    d2: ParamMapping,
    max_bytes: int | None = None,
) -> HoistedLayers | None:
    """The `data_calls` of ``model(X)`` with their outputs at ``center``, ``d1`` and ``d2``;
    ``None`` when there is none."""
    calls = data_calls(model, X, center, max_bytes)
    if not calls:
        return None

    def outputs(point: ParamMapping) -> torch.Tensor:
        return torch.cat(
            [_layer_output(model, call.layer, u, point).reshape(-1) for call, u in calls]
        )

    return HoistedLayers(
        calls=tuple(call for call, _ in calls),
        Z0=outputs(center),
        Z_directions=torch.stack([outputs(d1), outputs(d2)]),
    )


@contextmanager
def substituted_calls(
    model: nn.Module, hoisted: HoistedLayers
) -> Iterator[Callable[[Sequence[torch.Tensor]], None]]:
    """While open, the hoisted calls of each forward pass return the outputs last given to the
    yielded ``use(outputs)`` (one per hoisted call, in order; call it before each pass); every
    other call runs as written. The modules are restored on exit."""
    keys = [(call.layer, call.call) for call in hoisted.calls]
    by_call: dict[tuple[str, int], torch.Tensor] = {}

    def substitute(name: str, count: int, original: Callable, args: tuple, kwargs: dict) -> object:
        z = by_call.get((name, count))
        return original(*args, **kwargs) if z is None else z

    names = sorted({call.layer for call in hoisted.calls})
    with _counted_forwards(model, names, substitute) as counts:

        def use(outputs: Sequence[torch.Tensor]) -> None:
            by_call.clear()
            by_call.update(zip(keys, outputs, strict=True))
            counts.clear()

        yield use


class _ParameterMarks(TorchDispatchMode):
    """Marks every tensor computed from a marked one, starting from ``parameters``."""

    def __init__(self, parameters: Iterator[torch.Tensor]) -> None:
        super().__init__()
        self._marked: WeakIdKeyDictionary = WeakIdKeyDictionary()
        for p in parameters:
            self._marked[p] = True

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        """Nothing under this mode is compiled: do not wrap ``__torch_dispatch__`` in
        ``torch._dynamo.disable``, whose first call imports ``torch._dynamo`` (1-2 s)."""
        return False

    def __getitem__(self, tensor: torch.Tensor) -> bool:
        return tensor in self._marked

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = tree_leaves((args, kwargs))
        if any(isinstance(t, torch.Tensor) and t in self._marked for t in inputs):
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    self._marked[t] = True
        return out


@contextmanager
def _counted_forwards(
    model: nn.Module,
    names: Sequence[str],
    call: Callable[[str, int, Callable, tuple, dict], object],
) -> Iterator[dict[str, int]]:
    """Route every call of the named submodules through ``call(name, count, original, args,
    kwargs)``, ``count`` numbering that module's calls from 0; yields the counts (clear them to
    start a new pass). The forwards are instance attributes, so other instances are untouched,
    and are restored on exit."""
    counts: dict[str, int] = {}

    def forward_of(name: str, original: Callable) -> Callable:
        def forward(*args: object, **kwargs: object) -> object:
            count = counts.get(name, 0)
            counts[name] = count + 1
            return call(name, count, original, args, kwargs)

        return forward

    saved: dict[str, Callable | None] = {}
    try:
        for name in names:
            module = model.get_submodule(name)
            saved[name] = module.__dict__.get("forward")
            module.forward = forward_of(name, module.forward)
        yield counts
    finally:
        for name, previous in saved.items():
            module = model.get_submodule(name)
            if previous is None:
                del module.forward
            else:
                module.forward = previous


def _layer_output(
    model: nn.Module, name: str, u: torch.Tensor, point: ParamMapping
) -> torch.Tensor:
    """The layer ``name`` applied to ``u`` with its weights (and bias) taken from ``point``."""
    layer = model.get_submodule(name)
    weights = {key: point[f"{name}.{key}"] for key, _ in layer.named_parameters()}
    return functional_call(layer, weights, (u,))
