"""An ONNX graph as an ``nn.Module``: a bounded interpreter over an allow-list of operators.

An uploaded model is data, not code: the ONNX protobuf is parsed with ``onnx`` (no pickle, no
file access), checked against declared limits before any tensor is materialised, and run by this
interpreter, which knows only the operators in `ALLOWED_OPS` (no ``Loop``, ``Scan``, ``If``, no
custom domains or functions, no ``Expand``/``Tile``/``ConstantOfShape``). ``Gemm`` and
``MatMul`` with a weight initializer become ``nn.Linear`` and ``Conv`` becomes ``nn.ConvNd``, so
the surface engine hoists them like any built-in layer; every other node is a small module, so
that forward hooks see its output. Each node's output size is computed from its inputs' shapes
before it runs and refused past ``max_elements``; an optional deadline stops a call between nodes.

``onnx2torch`` would do the conversion but imports ``torchvision``, whose wheels pin one torch
build each; this module keeps the upload path to ``onnx`` and torch alone.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from typing import cast

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

MIN_OPSET = 11

_UNARY: dict[str, Callable[..., torch.Tensor]] = {
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
    "Identity": lambda x: x,
}
_BINARY: dict[str, Callable[..., torch.Tensor]] = {
    "Add": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "Div": torch.div,
    "Pow": torch.pow,
}
_OTHER = (
    "Gemm",
    "MatMul",
    "Conv",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "BatchNormalization",
    "LeakyRelu",
    "Elu",
    "Selu",
    "Softplus",
    "Gelu",
    "Clip",
    "Softmax",
    "LogSoftmax",
    "Dropout",
    "Flatten",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Concat",
    "Gather",
    "Shape",
    "Constant",
)
ALLOWED_OPS = frozenset(_UNARY) | frozenset(_BINARY) | frozenset(_OTHER)
FLOAT_TYPES: dict[int, int] = {  # ONNX data type -> bytes per value
    onnx.TensorProto.FLOAT: 4,
    onnx.TensorProto.DOUBLE: 8,
    onnx.TensorProto.FLOAT16: 2,
}
INT_TYPES: dict[int, int] = {onnx.TensorProto.INT64: 8, onnx.TensorProto.INT32: 4}


class OnnxGraphModule(nn.Module):
    """Runs the nodes of one ONNX graph in order: one input tensor, one output tensor.

    ``weights`` holds the floating-point initializers that no ``Linear``/``Conv`` took (trained
    like any parameter); integer initializers (shapes, indices) and batch-norm statistics are
    buffers.
    """

    def __init__(self, max_elements: int) -> None:
        super().__init__()
        self.weights = nn.ParameterDict()
        self.layers = nn.ModuleList()
        self.max_elements = int(max_elements)
        self.input_name = ""
        self.output_name = ""
        self._buffer_names: dict[str, str] = {}
        self._weight_names: dict[str, str] = {}
        self._inputs: list[list[str]] = []
        self._outputs: list[list[str]] = []
        self.deadline: float | None = None  # time.monotonic() past which a call stops

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor | None] = {"": None, self.input_name: x}
        for name, key in self._weight_names.items():
            values[name] = self.weights[key]
        for name, key in self._buffer_names.items():
            values[name] = getattr(self, key)
        for layer, inputs, outputs in zip(self.layers, self._inputs, self._outputs, strict=True):
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise ValueError("model took longer than the time limit for one call")
            args = [values[name] for name in inputs]
            if isinstance(layer, _Node):
                layer.check_size(args, self.max_elements)
            else:
                _check_layer_size(layer, args[0], self.max_elements)
            values[outputs[0]] = layer(*args)
        out = values[self.output_name]
        if out is None:
            raise ValueError("model's graph output is empty")
        return out


class _Node(nn.Module):
    """One parameter-free ONNX node: ``fn(*inputs)``; ``size(*inputs)`` its output's element
    count, computed from the inputs' shapes before it runs (None: never larger than an input)."""

    def __init__(
        self,
        op: str,
        fn: Callable[..., torch.Tensor],
        size: Callable[..., int] | None = None,
    ) -> None:
        super().__init__()
        self.op = op
        self.fn = fn
        self.size = size

    def check_size(self, args: Sequence[torch.Tensor | None], limit: int) -> None:
        if self.size is None:
            return
        elements = self.size(*args)
        if elements > limit:
            raise ValueError(
                f"model's {self.op} node would produce {elements:,} values, more than the limit "
                f"of {limit:,} per tensor (MAX_ELEMENTS)"
            )

    def forward(self, *args: torch.Tensor | None) -> torch.Tensor:
        return self.fn(*args)

    def extra_repr(self) -> str:
        return self.op


def _check_layer_size(layer: nn.Module, x: torch.Tensor | None, limit: int) -> None:
    if x is None:
        raise ValueError(f"model's {type(layer).__name__} layer has no input")
    if isinstance(layer, nn.Linear):
        elements = math.prod(x.shape[:-1]) * layer.out_features
    elif isinstance(layer, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        spatial = [
            (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
            for size, pad, dilation, kernel, stride in zip(
                x.shape[2:],
                cast(tuple[int, ...], layer.padding),
                layer.dilation,
                layer.kernel_size,
                layer.stride,
                strict=True,
            )
        ]
        elements = x.shape[0] * layer.out_channels * math.prod(spatial)
    else:
        return
    if elements > limit:
        raise ValueError(
            f"model's {type(layer).__name__} layer would produce {elements:,} values, more than "
            f"the limit of {limit:,} per tensor (MAX_ELEMENTS)"
        )


def convert(model: onnx.ModelProto, max_elements: int) -> OnnxGraphModule:
    """The module that runs ``model``'s graph; ``ValueError`` for what it cannot or may not run.

    The caller has checked the graph (`landscape.files.uploads.check_onnx`): allowed operators,
    declared sizes, no external data.
    """
    graph = model.graph
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    initializers = {t.name: t for t in graph.initializer}
    real_inputs = [i.name for i in graph.input if i.name not in initializers]
    if len(real_inputs) != 1 or len(graph.output) != 1:
        raise ValueError(
            f"model must have one input and one output, got {len(real_inputs)} inputs and "
            f"{len(graph.output)} outputs"
        )
    module = OnnxGraphModule(max_elements)
    module.input_name, module.output_name = real_inputs[0], graph.output[0].name
    arrays = {name: numpy_helper.to_array(t) for name, t in initializers.items()}
    consumed: set[str] = set()  # initializers read at conversion (weights, bounds, axes)
    frozen: set[str] = set()  # float initializers that are statistics, not parameters
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Constant":
            arrays[node.output[0]] = _constant(attrs)
            continue
        layer, inputs = _layer(node, attrs, arrays)
        if layer is None:
            layer = _node(node.op_type, attrs, node.input, arrays, opset)
            inputs = list(node.input)
            if node.op_type in ("Clip", "Squeeze", "Unsqueeze", "Dropout"):
                consumed.update(name for name in inputs[1:] if name)
                inputs = inputs[:1]
            if node.op_type == "BatchNormalization":
                frozen.update(inputs[3:5])
        else:
            consumed.update(name for name in node.input[1:] if name)
        if len(node.output) != 1 and any(node.output[1:]):
            raise ValueError(f"model's {node.op_type} node has extra outputs, which are refused")
        module.layers.append(layer)
        module._inputs.append(inputs)
        module._outputs.append([node.output[0]])
    used = {name for inputs in module._inputs for name in inputs}
    for name, array in arrays.items():
        if name in consumed and name not in used:
            continue
        key = _key(name, len(module._weight_names) + len(module._buffer_names))
        if array.dtype.kind == "f" and name not in frozen:
            module.weights[key] = nn.Parameter(torch.as_tensor(array.astype(np.float32)))
            module._weight_names[name] = key
        else:
            dtype = np.float32 if array.dtype.kind == "f" else np.int64
            module.register_buffer(key, torch.as_tensor(array.astype(dtype)))
            module._buffer_names[name] = key
    return module


def _key(name: str, index: int) -> str:
    return f"t{index}_" + re.sub(r"[^0-9A-Za-z_]", "_", name)[:40]


def _constant(attrs: dict) -> np.ndarray:
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for key, dtype in (
        ("value_float", np.float32),
        ("value_floats", np.float32),
        ("value_int", np.int64),
        ("value_ints", np.int64),
    ):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    raise ValueError(f"model has a Constant node with unsupported attributes {sorted(attrs)}")


def _static(name: str, arrays: dict[str, np.ndarray]) -> np.ndarray | None:
    return arrays.get(name) if name else None


def _layer(
    node: onnx.NodeProto, attrs: dict, arrays: dict[str, np.ndarray]
) -> tuple[nn.Module | None, list[str]]:
    """``Gemm``/``MatMul`` with a 2-D weight initializer -> ``nn.Linear``; ``Conv`` with weight
    initializers -> ``nn.ConvNd`` (asymmetric pads are refused)."""
    op = node.op_type
    weight = _static(node.input[1], arrays) if len(node.input) > 1 else None
    if weight is None or weight.dtype.kind != "f":
        return None, []
    bias = _static(node.input[2], arrays) if len(node.input) > 2 else None
    if op == "MatMul" and weight.ndim == 2:
        linear = nn.Linear(weight.shape[0], weight.shape[1], bias=False)
        linear.weight.data = torch.as_tensor(weight.T.astype(np.float32)).contiguous()
        return linear, [node.input[0]]
    if op == "Gemm" and weight.ndim == 2 and not attrs.get("transA", 0):
        alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
        W = weight if attrs.get("transB", 0) else weight.T
        has_bias = len(node.input) > 2 and bool(node.input[2])
        if alpha != 1.0 or (has_bias and (bias is None or beta != 1.0 or bias.ndim > 1)):
            return None, []
        if bias is not None and bias.size not in (1, W.shape[0]):
            return None, []
        linear = nn.Linear(W.shape[1], W.shape[0], bias=has_bias)
        linear.weight.data = torch.as_tensor(np.ascontiguousarray(W).astype(np.float32))
        if has_bias and bias is not None:
            b = np.broadcast_to(bias, (W.shape[0],)).astype(np.float32)
            linear.bias.data = torch.as_tensor(b.copy())
        return linear, [node.input[0]]
    if op == "Conv" and 3 <= weight.ndim <= 5:
        dims = weight.ndim - 2
        pads = list(attrs.get("pads", [0] * 2 * dims))
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
            raise ValueError("model's Conv uses auto_pad SAME: export it with explicit pads")
        if pads[:dims] != pads[dims:]:
            raise ValueError(f"model's Conv has asymmetric pads {pads}, which are not supported")
        if len(node.input) > 2 and node.input[2] and bias is None:
            return None, []
        groups = int(attrs.get("group", 1))
        conv_class = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]
        conv = conv_class(
            weight.shape[1] * groups,
            weight.shape[0],
            tuple(weight.shape[2:]),
            stride=tuple(attrs.get("strides", [1] * dims)),
            padding=tuple(pads[:dims]),
            dilation=tuple(attrs.get("dilations", [1] * dims)),
            groups=groups,
            bias=bias is not None,
        )
        conv.weight.data = torch.as_tensor(weight.astype(np.float32))
        if bias is not None and conv.bias is not None:
            conv.bias.data = torch.as_tensor(bias.astype(np.float32))
        return conv, [node.input[0]]
    return None, []


def _numel(shape: Sequence[int]) -> int:
    return math.prod(int(s) for s in shape)


def _matmul_size(a: torch.Tensor, b: torch.Tensor) -> int:
    rows = a.shape[-2] if a.dim() > 1 else 1
    columns = b.shape[-1] if b.dim() > 1 else 1
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return _numel(batch) * rows * columns


def _node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    """The interpreter's node for one ONNX operator: elementwise ones from `_UNARY` and
    `_BINARY`, the others from their builder in `_BUILDERS`; ``ValueError`` for the rest."""
    if op in _UNARY:
        return _Node(op, _UNARY[op])
    if op in _BINARY:
        fn = _BINARY[op]
        return _Node(op, fn, lambda a, b: _numel(torch.broadcast_shapes(a.shape, b.shape)))
    build = _BUILDERS.get(op)
    if build is None:
        raise ValueError(f"model uses the operator {op!r}, which is not allowed")
    return build(op, attrs, inputs, arrays, opset)


def _matmul_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    return _Node(op, torch.matmul, _matmul_size)


def _gemm_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    ta, tb = bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0))

    def gemm(a, b, c=None):
        out = alpha * ((a.T if ta else a) @ (b.T if tb else b))
        return out if c is None else out + beta * c

    def gemm_size(a, b, c=None):
        return (a.shape[1] if ta else a.shape[0]) * (b.shape[0] if tb else b.shape[1])

    return _Node(op, gemm, gemm_size)


def _leaky_relu_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    slope = float(attrs.get("alpha", 0.01))
    return _Node(op, lambda x: F.leaky_relu(x, slope))


def _elu_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    alpha = float(attrs.get("alpha", 1.0))
    return _Node(op, lambda x: F.elu(x, alpha))


def _selu_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    alpha = float(attrs.get("alpha", 1.67326319217681884765625))
    gamma = float(attrs.get("gamma", 1.05070102214813232421875))
    return _Node(op, lambda x: gamma * torch.where(x > 0, x, alpha * torch.expm1(x)))


def _softplus_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    return _Node(op, F.softplus)


def _gelu_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    approximate = attrs.get("approximate", b"none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    return _Node(op, lambda x: F.gelu(x, approximate=approximate))


def _clip_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    low = _static(inputs[1], arrays) if len(inputs) > 1 else None
    high = _static(inputs[2], arrays) if len(inputs) > 2 else None
    if (len(inputs) > 1 and inputs[1] and low is None) or (
        len(inputs) > 2 and inputs[2] and high is None
    ):
        raise ValueError("model's Clip bounds must be constants")
    lo = None if low is None else float(low)
    hi = None if high is None else float(high)
    return _Node(op, lambda x, *_: torch.clamp(x, lo, hi))


def _softmax_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    fn = torch.softmax if op == "Softmax" else torch.log_softmax
    axis = int(attrs.get("axis", -1 if opset >= 13 else 1))
    if opset >= 13:
        return _Node(op, lambda x: fn(x, axis))

    def coerced(x):  # opset < 13: softmax of x flattened to 2-D at axis
        flat = x.reshape(_numel(x.shape[: axis % x.dim()]), -1)
        return fn(flat, 1).reshape(x.shape)

    return _Node(op, coerced)


def _dropout_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    return _Node(op, lambda x, *_: x)


def _flatten_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    axis = int(attrs.get("axis", 1))
    return _Node(op, lambda x: x.reshape(_numel(x.shape[: axis % (x.dim() + 1)]), -1))


def _reshape_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    allow_zero = bool(attrs.get("allowzero", 0))

    def reshape(x, shape):
        target = [int(s) for s in shape.tolist()]
        if not allow_zero:
            target = [x.shape[i] if s == 0 else s for i, s in enumerate(target)]
        return x.reshape(target)

    return _Node(op, reshape)


def _transpose_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    perm = attrs.get("perm")
    return _Node(op, lambda x: x.permute(perm or list(range(x.dim()))[::-1]))


def _squeeze_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    static_axes = attrs.get("axes")
    if opset >= 13 and len(inputs) > 1 and inputs[1]:
        given = _static(inputs[1], arrays)
        if given is None:
            raise ValueError(f"model's {op} axes must be constants")
        static_axes = [int(a) for a in given.reshape(-1)]
    if op == "Squeeze":

        def squeeze(x, *_):
            if static_axes is None:
                return x.squeeze()
            return x.squeeze(tuple(a % x.dim() for a in static_axes))

        return _Node(op, squeeze)

    if static_axes is None:
        raise ValueError(f"model's {op} has no axes")
    new_axes: list[int] = list(static_axes)

    def unsqueeze(x, *_):
        rank = x.dim() + len(new_axes)
        for axis in sorted(a % rank for a in new_axes):
            x = x.unsqueeze(axis)
        return x

    return _Node(op, unsqueeze)


def _concat_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    axis = int(attrs["axis"])
    return _Node(
        op,
        lambda *xs: torch.cat(xs, axis),
        lambda *xs: sum(x.numel() for x in xs),
    )


def _gather_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    axis = int(attrs.get("axis", 0))

    def gather(x, index):
        a = axis % x.dim()
        index = torch.where(index < 0, index + x.shape[a], index)
        picked = torch.index_select(x, a, index.reshape(-1))
        return picked.reshape((*x.shape[:a], *index.shape, *x.shape[a + 1 :]))

    def gather_size(x, index):
        a = axis % x.dim()
        return _numel(x.shape[:a]) * index.numel() * _numel(x.shape[a + 1 :])

    return _Node(op, gather, gather_size)


def _shape_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    start, end = attrs.get("start", 0), attrs.get("end")

    def shape(x):
        return torch.tensor(list(x.shape)[start:end], dtype=torch.int64, device=x.device)

    return _Node(op, shape)


def _batch_norm_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    if attrs.get("training_mode", 0):
        raise ValueError("model's BatchNormalization is in training mode; export in eval()")
    eps = float(attrs.get("epsilon", 1e-5))
    return _Node(
        op,
        lambda x, scale, bias, mean, var: F.batch_norm(
            x, mean, var, scale, bias, training=False, eps=eps
        ),
    )


def _pool_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    kernel = list(attrs["kernel_shape"])
    dims = len(kernel)
    pads = list(attrs.get("pads", [0] * 2 * dims))
    if pads[:dims] != pads[dims:]:
        raise ValueError(f"model's {op} has asymmetric pads {pads}, which are not supported")
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
        raise ValueError(f"model's {op} uses auto_pad SAME: export it with explicit pads")
    strides = list(attrs.get("strides", [1] * dims))
    ceil = bool(attrs.get("ceil_mode", 0))
    if op == "MaxPool":
        pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[dims - 1]
        dilation = list(attrs.get("dilations", [1] * dims))
        return _Node(
            op,
            lambda x: pool(x, kernel, strides, pads[:dims], dilation, ceil_mode=ceil),
        )
    average = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[dims - 1]
    include = bool(attrs.get("count_include_pad", 0))
    return _Node(
        op,
        lambda x: average(x, kernel, strides, pads[:dims], ceil, count_include_pad=include),
    )


def _global_average_pool_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    return _Node(op, lambda x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True))


def _conv_node(
    op: str, attrs: dict, inputs: Sequence[str], arrays: dict[str, np.ndarray], opset: int
) -> _Node:
    raise ValueError("model's Conv must take its weights from initializers")


_BUILDERS: dict[str, Callable[[str, dict, Sequence[str], dict[str, np.ndarray], int], _Node]] = {
    "MatMul": _matmul_node,
    "Gemm": _gemm_node,
    "LeakyRelu": _leaky_relu_node,
    "Elu": _elu_node,
    "Selu": _selu_node,
    "Softplus": _softplus_node,
    "Gelu": _gelu_node,
    "Clip": _clip_node,
    "Softmax": _softmax_node,
    "LogSoftmax": _softmax_node,
    "Dropout": _dropout_node,
    "Flatten": _flatten_node,
    "Reshape": _reshape_node,
    "Transpose": _transpose_node,
    "Squeeze": _squeeze_node,
    "Unsqueeze": _squeeze_node,
    "Concat": _concat_node,
    "Gather": _gather_node,
    "Shape": _shape_node,
    "BatchNormalization": _batch_norm_node,
    "MaxPool": _pool_node,
    "AveragePool": _pool_node,
    "GlobalAveragePool": _global_average_pool_node,
    "Conv": _conv_node,
}
