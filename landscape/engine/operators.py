"""Curvature operators of a loss: Hessian, generalised Gauss-Newton, empirical Fisher.

Every operator is symmetric, never formed, and applied to flat float64 vectors of length P (all
parameters in the order of ``model.named_parameters()``):

* ``"hessian"``: ``H v = d/d theta <grad L(theta), v>`` (Pearlmutter; one double backward pass);
* ``"ggn"``: ``G v = J^T H_L J v`` with ``J = d f / d theta`` the Jacobian of the network's outputs
  (n, k) and ``H_L = d^2 L / d f^2`` the Hessian of the loss in the outputs (PSD for a loss that is
  convex in the outputs: cross-entropy, squared error). ``J v`` is taken by the double-vjp trick
  ``J v = d/du <J^T u, v>``, so TorchScript models work too;
* ``"fisher"``: the empirical Fisher ``F v = (1/n) sum_i g_i (g_i^T v)`` with ``g_i`` the gradient
  of sample i's loss (``loss_fn`` applied to that sample alone), always PSD.

``loss_fn(outputs, targets)`` must be the mean over the n samples of a per-sample loss (as every
loss of the project is). Data in batches (``batch_size``, or the `Problem`'s ``batch_rows``):
the products are sums over mini-batches, batch ``b`` weighted by its share ``n_b / n`` of the
samples, so the operator is the one of the whole data set (equal to the one-batch operator up to
float rounding) while only one batch's graph is held at a time. The model is evaluated in eval
mode and left unchanged.

Attention is computed by its formula in the forward pass that builds the graph
(`TwiceDifferentiableAttention`): the CPU's fused attention kernel has no double backward.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.overrides import TorchFunctionMode

from landscape.engine.device import require_float64
from landscape.engine.problem import LossFn, Problem
from landscape.engine.surface import eval_mode

KINDS = ("hessian", "ggn", "fisher")
Matvec = Callable[[torch.Tensor], torch.Tensor]
Tensor = torch.Tensor
Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Operator:
    """A symmetric P x P operator on flat float64 vectors, with a count of the products made.

    ``gradient`` (P,) float64 is the loss gradient at the point; ``products`` counts calls of
    `matvec` (each costs one pass over every batch of the data).
    """

    apply: Matvec
    dimension: int
    device: torch.device
    kind: str
    gradient: torch.Tensor
    products: int = field(default=0)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``A v`` for a flat (P,) vector; float64 out, on ``device``."""
        self.products += 1
        return self.apply(v.to(self.device, torch.float64))

    def matrix(self) -> torch.Tensor:
        """The dense (P, P) float64 matrix, column by column (P products), symmetrised."""
        eye = torch.eye(self.dimension, dtype=torch.float64, device=self.device)
        A = torch.stack([self.matvec(eye[i]) for i in range(self.dimension)], dim=1)
        return (A + A.T) / 2


def check_kind(kind: str) -> None:
    """ValueError unless ``kind`` is one of `KINDS`."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def check_batch_size(batch_size: int | None) -> None:
    """ValueError unless ``batch_size`` is None (one batch) or a positive integer."""
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"batch_size must be None or an integer >= 1, got {batch_size}")


@contextmanager
def curvature_operator(
    problem: Problem,
    point: Mapping[str, torch.Tensor] | None = None,
    *,
    kind: str = "hessian",
    batch_size: int | None = None,
    dtype: torch.dtype | None = None,
) -> Iterator[Operator]:
    """Yield the `Operator` of ``kind`` (see the module docstring) at ``point``.

    ``point`` defaults to the model's parameters; ``batch_size`` to the problem's
    ``batch_rows`` (None: one batch). ``dtype`` (e.g. ``torch.float64``) evaluates a
    copy of the model and the data in that precision; by default the problem's own. With one
    batch the graph is built once and every product is one backward pass through it; with
    ``batch_size`` each product rebuilds each batch's graph (twice the work, a batch's memory).
    """
    check_kind(kind)
    check_batch_size(batch_size)
    require_float64(problem.device, "a curvature operator (products and checks in float64)")
    model = problem.model
    reference = {name: p.detach() for name, p in model.named_parameters()}
    point = reference if point is None else point
    X_t, y_t = problem.X, problem.y
    if dtype is not None and dtype != problem.dtype:
        model = copy.deepcopy(model).to(dtype)
        point = {name: t.to(dtype) for name, t in point.items()}
        X_t = X_t.to(dtype) if X_t.is_floating_point() else X_t
        y_t = y_t.to(dtype) if y_t.is_floating_point() else y_t
    loss_fn = problem.loss_fn
    device = problem.device
    n = problem.n_samples
    names = list(reference)
    dimension = sum(t.numel() for t in reference.values())
    rows = problem.batch_rows if batch_size is None else int(batch_size)
    size = n if rows is None else min(rows, n)
    bounds = [(start, min(start + size, n)) for start in range(0, n, size)]
    with eval_mode(model), _leaves(model, point, names) as (leaves, forward):
        if len(bounds) == 1:
            product, gradient = _batch_product(kind, forward, leaves, loss_fn, X_t, y_t)
            yield Operator(product, dimension, device, kind, gradient)
            return

        def batched(v: torch.Tensor) -> torch.Tensor:
            total = torch.zeros(dimension, dtype=torch.float64, device=device)
            for start, stop in bounds:
                product, _ = _batch_product(
                    kind, forward, leaves, loss_fn, X_t[start:stop], y_t[start:stop]
                )
                total += product(v) * ((stop - start) / n)
            return total

        gradient = torch.zeros(dimension, dtype=torch.float64, device=device)
        for start, stop in bounds:
            loss = loss_fn(forward(X_t[start:stop]), y_t[start:stop])
            gradient += _flat(_grad(loss, leaves)).to(torch.float64) * ((stop - start) / n)
        yield Operator(batched, dimension, device, kind, gradient)


def _grad(
    outputs: torch.Tensor | list[torch.Tensor],
    inputs: list[torch.Tensor],
    grad_outputs: torch.Tensor | list[torch.Tensor] | None = None,
    create_graph: bool = False,
) -> tuple[torch.Tensor, ...]:
    # allow_unused/materialize_grads: with a piecewise-linear loss (a hinge) some gradients, such
    # as the output bias's, do not depend on the parameters; their products are zero.
    return torch.autograd.grad(
        outputs,
        inputs,
        grad_outputs=grad_outputs,
        retain_graph=True,
        create_graph=create_graph,
        allow_unused=True,
        materialize_grads=True,
    )


def _flat(tensors: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _split(v: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    pieces = torch.split(v.to(like[0].dtype), [t.numel() for t in like])
    return [p.reshape(t.shape) for p, t in zip(pieces, like, strict=True)]


def _batch_product(
    kind: str,
    forward: Forward,
    leaves: list[torch.Tensor],
    loss_fn: LossFn,
    X: torch.Tensor,
    y: torch.Tensor,
) -> tuple[Matvec, torch.Tensor]:
    """``(v -> A_b v, grad_b)`` for one batch, both float64."""
    outputs = forward(X)
    if kind == "hessian":
        loss = loss_fn(outputs, y)
        flat_grad = _flat(_grad(loss, leaves, create_graph=True))

        def hessian(v: torch.Tensor) -> torch.Tensor:
            if not flat_grad.requires_grad:
                return torch.zeros_like(v, dtype=torch.float64)
            # the gradient of <grad, v> rather than grad_outputs=v: the same products, and no
            # grad_outputs tensor, whose first use imports sympy (about 1.5 s) through torch.fx
            products = _grad((flat_grad * v.to(flat_grad.dtype)).sum(), leaves)
            return _flat(products).to(torch.float64)

        return hessian, flat_grad.detach().to(torch.float64)

    if kind == "ggn":
        detached = outputs.detach().requires_grad_(True)
        loss = loss_fn(detached, y)
        (output_grad,) = torch.autograd.grad(loss, detached, create_graph=True)
        gradient = _flat(_grad(outputs, leaves, output_grad.detach())).to(torch.float64)
        jvp = _jacobian_vector_product(outputs, leaves)

        def ggn(v: torch.Tensor) -> torch.Tensor:
            Jv = jvp(v)
            if not output_grad.requires_grad:  # the loss is linear in the outputs: H_L = 0
                return torch.zeros_like(v, dtype=torch.float64)
            (HJv,) = torch.autograd.grad(output_grad, detached, Jv, retain_graph=True)
            return _flat(_grad(outputs, leaves, HJv)).to(torch.float64)

        return ggn, gradient

    losses = _per_sample_losses(loss_fn, outputs, y)
    total = loss_fn(outputs, y)
    mean, whole = float(losses.detach().mean()), float(total.detach())
    if abs(mean - whole) > 1e-4 * abs(whole) + 1e-6:
        raise ValueError(
            "loss_fn must be the mean of its per-sample values for the empirical Fisher, got "
            f"{whole:.6g} for the batch against a mean of {mean:.6g}"
        )
    gradient = _flat(_grad(total, leaves)).to(torch.float64)
    jvp = _jacobian_vector_product(losses, leaves)
    count = len(losses)

    def fisher(v: torch.Tensor) -> torch.Tensor:
        Gv = jvp(v)  # (n,): g_i^T v
        return _flat(_grad(losses, leaves, Gv)).to(torch.float64) / count

    return fisher, gradient


def _jacobian_vector_product(
    outputs: torch.Tensor, leaves: list[torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v -> J v`` (shaped like ``outputs``) for ``J = d outputs / d leaves``, by the double-vjp
    trick: ``J^T u`` is linear in ``u``, so ``J v = d/du <J^T u, v>``."""
    u = torch.zeros_like(outputs, requires_grad=True)
    transposed = _grad(outputs, leaves, u, create_graph=True)
    connected = [i for i, t in enumerate(transposed) if t.requires_grad]

    def jvp(v: torch.Tensor) -> torch.Tensor:
        if not connected:
            return torch.zeros_like(outputs)
        pieces = _split(v, leaves)
        (Jv,) = torch.autograd.grad(
            [transposed[i] for i in connected],
            u,
            [pieces[i] for i in connected],
            retain_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
        return Jv.detach()

    return jvp


def _per_sample_losses(loss_fn: LossFn, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``l_i = loss_fn(outputs[i:i+1], y[i:i+1])`` for every sample, shape (n,)."""
    try:
        return torch.func.vmap(lambda o, t: loss_fn(o[None], t[None]))(outputs, y)
    except (RuntimeError, ValueError, TypeError, NotImplementedError):
        return torch.stack([loss_fn(outputs[i : i + 1], y[i : i + 1]) for i in range(len(y))])


class TwiceDifferentiableAttention(TorchFunctionMode):
    """Attention as ``softmax(Q K^T / sqrt(d) + mask) V`` in plain operations, whose backward
    can itself be differentiated (the Hessian needs it; the CPU's fused flash-attention kernel
    has no double backward): ``F.scaled_dot_product_attention`` goes to torch's reference
    ("math") kernel, ``nn.MultiheadAttention`` to its path that forms the weights. The same
    numbers to float rounding. A function mode is thread-local: no other thread is touched."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is F.scaled_dot_product_attention:
            return torch.ops.aten._scaled_dot_product_attention_math(*args, **kwargs)[0]
        if func is F.multi_head_attention_forward and not kwargs.get("need_weights", True):
            kwargs["need_weights"] = True
            output, _ = func(*args, **kwargs)
            return output, None
        return func(*args, **kwargs)


@contextmanager
def _leaves(
    model: nn.Module, point: Mapping[str, torch.Tensor], names: list[str]
) -> Iterator[tuple[list[torch.Tensor], Forward]]:
    """Leaf tensors holding ``point`` and the forward pass that uses them. TorchScript models
    (which ``torch.func`` rejects) get ``point`` written into their parameters for the block."""
    if not isinstance(model, torch.jit.ScriptModule):
        leaves = [point[n].detach().clone().requires_grad_(True) for n in names]
        params = dict(zip(names, leaves, strict=True))

        def forward(X: torch.Tensor) -> torch.Tensor:
            with TwiceDifferentiableAttention():
                return functional_call(model, params, (X,))

        yield leaves, forward
        return
    parameters = dict(model.named_parameters())
    saved = {n: p.detach().clone() for n, p in parameters.items()}
    flags = {n: p.requires_grad for n, p in parameters.items()}
    try:
        with torch.no_grad():
            for n in names:
                parameters[n].copy_(point[n])
                parameters[n].requires_grad_(True)
        yield [parameters[n] for n in names], model
    finally:
        with torch.no_grad():
            for n, p in parameters.items():
                p.copy_(saved[n])
                p.requires_grad_(flags[n])
