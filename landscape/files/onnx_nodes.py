"""The ONNX interpreter's parameter-free operators: elementwise, shape and tensor operators.

Each builder takes ``(op, attrs, inputs, arrays, opset)`` (the node's operator, its attributes,
its input names, the tensors known at conversion, the model's opset) and returns a `Node`: the
operator as a function of its input tensors, with the number of values of its largest output
and the multiply-adds it does (summed over a call, at most the limit), both computed from the
inputs' shapes (and, for
``ConstantOfShape`` and ``Expand``, the requested shape) before it runs, so that a node is
refused before it allocates. ``size`` None: never larger than its largest input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor
SizeFn = Callable[..., int]
Builder = Callable[[str, dict, Sequence[str], dict[str, np.ndarray], int], "Node"]


class Node(nn.Module):
    """One parameter-free ONNX node: ``fn(*inputs)`` (a tensor, or a tuple for several outputs);
    ``size(*inputs)`` its largest output's element count, ``work(*inputs)`` its multiply-adds
    and ``unfolded(*inputs)`` the values of a convolution's unfolded input for one sample, all
    computed from the inputs' shapes before it runs (None: bounded by an input)."""

    def __init__(
        self,
        op: str,
        fn: Callable[..., Tensor | tuple[Tensor, ...]],
        size: SizeFn | None = None,
        work: SizeFn | None = None,
        unfolded: SizeFn | None = None,
    ) -> None:
        super().__init__()
        self.op = op
        self.fn = fn
        self.size = size
        self.work = work
        self.unfolded = unfolded

    def check(
        self, args: Sequence[Tensor | None], max_elements: int, spent: int, max_work: int
    ) -> int:
        """The node's multiply-adds; ``ValueError`` when it would produce more than
        ``max_elements`` values in one tensor or bring the call's ``spent`` multiply-adds past
        ``max_work``."""
        if self.size is not None:
            refuse_size(f"{self.op} node", self.size(*args), max_elements)
        if self.unfolded is not None:
            refuse_unfolded(f"{self.op} node", self.unfolded(*args), max_elements)
        work = 0 if self.work is None else self.work(*args)
        refuse_work(f"{self.op} node", work, spent, max_work)
        return work

    def forward(self, *args: Tensor | None) -> Tensor | tuple[Tensor, ...]:
        """``fn(*args)``: the node's output (a tuple for several outputs)."""
        return self.fn(*args)

    def extra_repr(self) -> str:
        """The ONNX operator's name, shown in the module's ``repr``."""
        return self.op


def refuse_size(what: str, elements: int, limit: int) -> None:
    """``ValueError`` when ``what`` would produce more than ``limit`` values in one tensor."""
    if elements > limit:
        raise ValueError(
            f"model's {what} would produce {elements:,} values, more than the limit of "
            f"{limit:,} per tensor (MAX_ELEMENTS)"
        )


def refuse_work(what: str, work: int, spent: int, limit: int) -> None:
    """``ValueError`` when ``what``'s ``work`` multiply-adds would bring a call that has done
    ``spent`` past ``limit``."""
    if spent + work > limit:
        raise ValueError(
            f"model's {what} would do {work:,} multiply-adds, bringing one call to "
            f"{spent + work:,}, more than the limit of {limit:,} per call (MAX_WORK)"
        )


def refuse_unfolded(what: str, values: int, limit: int) -> None:
    """``ValueError`` when a convolution would unfold more than ``limit`` values per sample."""
    if values > limit:
        raise ValueError(
            f"model's {what} would unfold {values:,} values per sample, more than the limit of "
            f"{limit:,} per tensor (MAX_ELEMENTS)"
        )


def numel(shape: Sequence[int]) -> int:
    """The number of values of a tensor of ``shape`` (Python integers: no overflow)."""
    return math.prod(int(s) for s in shape)


def static(name: str, arrays: dict[str, np.ndarray]) -> np.ndarray | None:
    """The tensor named ``name`` when it is known at conversion (an initializer, a constant)."""
    return arrays.get(name) if name else None


def int_list(values: Tensor, what: str) -> list[int]:
    """A 1-D integer tensor (a shape, axes, indices) as Python integers; ``ValueError`` else."""
    if values.is_floating_point() or values.dim() > 1:
        raise ValueError(f"model's {what} must be a 1-D integer tensor, got {values.dtype}")
    return [int(v) for v in values.reshape(-1).tolist()]


def broadcast_size(*tensors: Tensor | None) -> int:
    """Values of the broadcast of the tensors' shapes (numpy rules)."""
    shapes = [t.shape for t in tensors if t is not None]
    return numel(torch.broadcast_shapes(*shapes))


def _divide(a: Tensor, b: Tensor) -> Tensor:
    """ONNX ``Div``: integer division truncates, as in C."""
    if a.is_floating_point() or b.is_floating_point():
        return torch.div(a, b)
    return torch.div(a, b, rounding_mode="trunc")


UNARY: dict[str, Callable[..., Tensor]] = {
    "Relu": torch.relu,
    "Sigmoid": torch.sigmoid,
    "Tanh": torch.tanh,
    "Exp": torch.exp,
    "Log": torch.log,
    "Sqrt": torch.sqrt,
    "Abs": torch.abs,
    "Neg": torch.neg,
    "Erf": torch.erf,
    "Reciprocal": torch.reciprocal,
    "Softsign": F.softsign,
    "Not": torch.logical_not,
    "Identity": lambda x: x,
}
BINARY: dict[str, Callable[..., Tensor]] = {
    "Add": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "Div": _divide,
    "Pow": torch.pow,
    "Equal": torch.eq,
    "Less": torch.lt,
    "Greater": torch.gt,
    "And": torch.logical_and,
    "Or": torch.logical_or,
}
TYPES: dict[int, torch.dtype] = {  # ONNX data type -> the interpreter's dtype
    onnx.TensorProto.FLOAT: torch.float32,
    onnx.TensorProto.DOUBLE: torch.float32,
    onnx.TensorProto.FLOAT16: torch.float32,
    onnx.TensorProto.INT64: torch.int64,
    onnx.TensorProto.INT32: torch.int64,
    onnx.TensorProto.INT16: torch.int64,
    onnx.TensorProto.INT8: torch.int64,
    onnx.TensorProto.UINT8: torch.int64,
    onnx.TensorProto.BOOL: torch.bool,
}


def elementwise(op: str) -> Node:
    """A node of `UNARY` or `BINARY`; binary ones bounded by their broadcast shape."""
    if op in UNARY:
        return Node(op, UNARY[op])
    return Node(op, BINARY[op], broadcast_size)


def _cast(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    """``Cast``: floating types compute in float32 (the parameters' precision rules the sums),
    integer types in int64, booleans as bool; strings and other types are refused."""
    target = int(attrs.get("to", 0))
    if target not in TYPES:
        name = onnx.TensorProto.DataType.Name(target) if target else "no type"
        raise ValueError(f"model's Cast to {name} is refused (numbers and booleans only)")
    dtype = TYPES[target]

    def cast(x: Tensor) -> Tensor:
        if dtype.is_floating_point and x.is_floating_point():
            return x  # float to float: keep the parameters' dtype
        return x.to(dtype)

    return Node(op, cast)


def _mod(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    fn = torch.fmod if attrs.get("fmod", 0) else torch.remainder
    return Node(op, fn, broadcast_size)


def _where(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    return Node(op, torch.where, broadcast_size)


def _requested_shape(shape: Tensor, what: str) -> list[int]:
    dims = int_list(shape, f"{what} shape")
    if any(d < 0 for d in dims):
        raise ValueError(f"model's {what} asks for the negative shape {dims}")
    return dims


def _constant_of_shape(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int
) -> Node:
    """``ConstantOfShape``: refused past the limit from the requested shape, before allocating."""
    value = attrs.get("value")
    array = np.zeros(1, np.float32) if value is None else onnx.numpy_helper.to_array(value)
    if array.size != 1:
        raise ValueError(f"model's ConstantOfShape value must hold one number, got {array.size}")
    fill = array.reshape(-1)[0].item()
    dtype = (
        torch.float32
        if array.dtype.kind == "f"
        else torch.bool
        if array.dtype == bool
        else torch.int64
    )

    def constant(shape: Tensor) -> Tensor:
        return torch.full(_requested_shape(shape, op), fill, dtype=dtype, device=shape.device)

    return Node(op, constant, lambda shape: numel(_requested_shape(shape, op)))


def _expand(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    """``Expand``: the two-way broadcast of the input and the requested shape."""

    def target(x: Tensor, shape: Tensor) -> torch.Size:
        return torch.broadcast_shapes(x.shape, tuple(_requested_shape(shape, op)))

    return Node(op, lambda x, shape: x.expand(target(x, shape)), lambda x, s: numel(target(x, s)))


def _slice(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    """``Slice`` (opset >= 10: starts, ends, axes, steps as inputs); never larger than its input."""

    def slice_(x: Tensor, starts: Tensor, ends: Tensor, axes=None, steps=None) -> Tensor:
        begin, end = int_list(starts, "Slice starts"), int_list(ends, "Slice ends")
        dims = list(range(len(begin))) if axes is None else int_list(axes, "Slice axes")
        step = [1] * len(begin) if steps is None else int_list(steps, "Slice steps")
        for axis, b, e, s in zip(dims, begin, end, step, strict=True):
            if s == 0:
                raise ValueError("model's Slice has a step of 0")
            a = axis % x.dim()
            start, stop, stride = slice(b, e, s).indices(x.shape[a])
            if stride > 0:
                x = x.narrow(a, start, max(0, stop - start))[
                    (slice(None),) * a + (slice(None, None, stride),)
                ]
            else:
                index = torch.arange(start, stop, stride, device=x.device)
                x = x.index_select(a, index)
        return x

    return Node(op, slice_)


def _reduce_mean(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    """``ReduceMean`` over ``axes`` (an attribute before opset 18, an input from 18)."""
    keep = bool(attrs.get("keepdims", 1))
    noop = bool(attrs.get("noop_with_empty_axes", 0))
    attribute_axes = attrs.get("axes")

    def reduce(x: Tensor, axes: Tensor | None = None) -> Tensor:
        chosen = attribute_axes if axes is None else int_list(axes, "ReduceMean axes")
        if not chosen:
            if noop:
                return x
            chosen = list(range(x.dim()))
        return x.mean(dim=tuple(a % x.dim() for a in chosen), keepdim=keep)

    return Node(op, reduce)


def _matmul(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    def size(a: Tensor, b: Tensor) -> int:
        rows = a.shape[-2] if a.dim() > 1 else 1
        columns = b.shape[-1] if b.dim() > 1 else 1
        return numel(torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])) * rows * columns

    return Node(op, torch.matmul, size, lambda a, b: size(a, b) * a.shape[-1])


def _gemm(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    ta, tb = bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0))

    def gemm(a: Tensor, b: Tensor, c: Tensor | None = None) -> Tensor:
        out = alpha * ((a.T if ta else a) @ (b.T if tb else b))
        return out if c is None else out + beta * c

    def size(a: Tensor, b: Tensor, c: Tensor | None = None) -> int:
        shape = ((a.shape[1] if ta else a.shape[0]), (b.shape[0] if tb else b.shape[1]))
        return numel(torch.broadcast_shapes(shape, () if c is None else c.shape))

    def work(a: Tensor, b: Tensor, c: Tensor | None = None) -> int:
        return size(a, b) * (a.shape[0] if ta else a.shape[1])

    return Node(op, gemm, size, work)


def _activation(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    """``LeakyRelu``, ``Elu``, ``Selu``, ``Softplus``, ``Gelu`` with their attributes."""
    alpha = attrs.get("alpha")
    if op == "LeakyRelu":
        slope = 0.01 if alpha is None else float(alpha)
        return Node(op, lambda x: F.leaky_relu(x, slope))
    if op == "Elu":
        scale = 1.0 if alpha is None else float(alpha)
        return Node(op, lambda x: F.elu(x, scale))
    if op == "Selu":
        a = 1.67326319217681884765625 if alpha is None else float(alpha)
        gamma = float(attrs.get("gamma", 1.05070102214813232421875))
        return Node(op, lambda x: gamma * torch.where(x > 0, x, a * torch.expm1(x)))
    if op == "Softplus":
        return Node(op, F.softplus)
    approximate = attrs.get("approximate", b"none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    return Node(op, lambda x: F.gelu(x, approximate=approximate))


def _clip(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    low = static(inputs[1], arrays) if len(inputs) > 1 else None
    high = static(inputs[2], arrays) if len(inputs) > 2 else None
    if (len(inputs) > 1 and inputs[1] and low is None) or (
        len(inputs) > 2 and inputs[2] and high is None
    ):
        raise ValueError("model's Clip bounds must be constants")
    lo = None if low is None else float(low)
    hi = None if high is None else float(high)
    return Node(op, lambda x, *_: torch.clamp(x, lo, hi))


def _softmax(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    fn = torch.softmax if op == "Softmax" else torch.log_softmax
    axis = int(attrs.get("axis", -1 if opset >= 13 else 1))
    if opset >= 13:
        return Node(op, lambda x: fn(x, axis))

    def coerced(x: Tensor) -> Tensor:  # opset < 13: softmax of x flattened to 2-D at axis
        flat = x.reshape(numel(x.shape[: axis % x.dim()]), -1)
        return fn(flat, 1).reshape(x.shape)

    return Node(op, coerced)


def _dropout(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    return Node(op, lambda x, *_: x)


def _flatten(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    axis = int(attrs.get("axis", 1))
    return Node(op, lambda x: x.reshape(numel(x.shape[: axis % (x.dim() + 1)]), -1))


def _reshape(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    allow_zero = bool(attrs.get("allowzero", 0))

    def reshape(x: Tensor, shape: Tensor) -> Tensor:
        target = int_list(shape, "Reshape shape")
        if not allow_zero:
            target = [x.shape[i] if s == 0 else s for i, s in enumerate(target)]
        return x.reshape(target)

    return Node(op, reshape)


def _transpose(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    perm = attrs.get("perm")
    return Node(op, lambda x: x.permute(perm or list(range(x.dim()))[::-1]))


def _squeeze(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    """``Squeeze``/``Unsqueeze``; their axes (an input from opset 13) must be constants."""
    axes = attrs.get("axes")
    if opset >= 13 and len(inputs) > 1 and inputs[1]:
        given = static(inputs[1], arrays)
        if given is None:
            raise ValueError(f"model's {op} axes must be constants")
        axes = [int(a) for a in given.reshape(-1)]
    if op == "Squeeze":
        return Node(
            op,
            lambda x, *_: (
                x.squeeze() if axes is None else x.squeeze(tuple(a % x.dim() for a in axes))
            ),
        )
    if axes is None:
        raise ValueError(f"model's {op} has no axes")
    new_axes: list[int] = list(axes)

    def unsqueeze(x: Tensor, *_: Tensor) -> Tensor:
        rank = x.dim() + len(new_axes)
        for axis in sorted(a % rank for a in new_axes):
            x = x.unsqueeze(axis)
        return x

    return Node(op, unsqueeze)


def _concat(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    axis = int(attrs["axis"])
    return Node(op, lambda *xs: torch.cat(xs, axis), lambda *xs: sum(x.numel() for x in xs))


def _gather(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    axis = int(attrs.get("axis", 0))

    def gather(x: Tensor, index: Tensor) -> Tensor:
        a = axis % x.dim()
        index = torch.where(index < 0, index + x.shape[a], index)
        picked = torch.index_select(x, a, index.reshape(-1))
        return picked.reshape((*x.shape[:a], *index.shape, *x.shape[a + 1 :]))

    def size(x: Tensor, index: Tensor) -> int:
        a = axis % x.dim()
        return numel(x.shape[:a]) * index.numel() * numel(x.shape[a + 1 :])

    return Node(op, gather, size)


def _shape(op: str, attrs: dict, inputs: Sequence[str], arrays: dict, opset: int) -> Node:
    start, end = attrs.get("start", 0), attrs.get("end")

    def shape(x: Tensor) -> Tensor:
        return torch.tensor(list(x.shape)[start:end], dtype=torch.int64, device=x.device)

    return Node(op, shape)


BUILDERS: dict[str, Builder] = {
    "Cast": _cast,
    "Mod": _mod,
    "Where": _where,
    "ConstantOfShape": _constant_of_shape,
    "Expand": _expand,
    "Slice": _slice,
    "ReduceMean": _reduce_mean,
    "MatMul": _matmul,
    "Gemm": _gemm,
    "LeakyRelu": _activation,
    "Elu": _activation,
    "Selu": _activation,
    "Softplus": _activation,
    "Gelu": _activation,
    "Clip": _clip,
    "Softmax": _softmax,
    "LogSoftmax": _softmax,
    "Dropout": _dropout,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "Unsqueeze": _squeeze,
    "Concat": _concat,
    "Gather": _gather,
    "Shape": _shape,
}
