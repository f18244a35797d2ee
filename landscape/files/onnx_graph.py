"""An ONNX graph as an ``nn.Module``: a bounded interpreter over an allow-list of operators.

An uploaded model is data, not code: the ONNX protobuf is parsed with ``onnx`` (no pickle, no
file access), checked against declared limits before any tensor is materialised
(`landscape.files.uploads.check_onnx`), and run by this interpreter, which knows only the
operators in `ALLOWED_OPS` (no ``Loop``, ``Scan``, ``If``, no custom domains or functions, no
``Tile``, ``Range``, ``Resize``). ``Gemm`` and ``MatMul`` with a weight initializer become
``nn.Linear`` and ``Conv`` becomes ``nn.ConvNd`` (`landscape.files.onnx_layers`), so the surface
engine hoists them like any built-in layer; every other node is a small module
(`landscape.files.onnx_nodes`, `landscape.files.onnx_recurrent`), so that forward hooks see its
output. Before each node runs, its largest output and (for a convolution) its unfolded input
are computed from the shapes of its actual inputs and refused past ``max_elements``, and its
multiply-adds are added to the call's and refused past ``max_work``: the bounds hold on what is
computed, whatever the file declares. An optional deadline stops a call between nodes.

A graph exported with a fixed batch size ``B`` (``torch.onnx.export`` without dynamic shapes
writes ``B`` into its reshapes) runs any number of rows in pieces of ``B`` rows, the last one
padded with copies of its first row and cut off: models in eval mode treat rows independently.
An integer input (token ids) is rounded to int64 before the graph runs.

``onnx2torch`` was measured on the test zoo: it converts fewer of the default exports (no
``LSTM``, ``GRU``, opset-19 ``Reshape``) and imports ``torchvision``, whose wheels pin one torch
build each; this interpreter keeps the upload path to ``onnx`` and torch alone.
"""

from __future__ import annotations

import re
import time

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from landscape.files import onnx_layers, onnx_nodes, onnx_recurrent
from landscape.files.onnx_nodes import Node, Tensor

MIN_OPSET = 11
_BUILDERS: dict[str, onnx_nodes.Builder] = {
    **onnx_nodes.BUILDERS,
    **onnx_layers.BUILDERS,
    **onnx_recurrent.BUILDERS,
}
ALLOWED_OPS = (
    frozenset(onnx_nodes.UNARY)
    | frozenset(onnx_nodes.BINARY)
    | frozenset(_BUILDERS)
    | frozenset({"Constant"})
)
FLOAT_TYPES: dict[int, int] = {  # ONNX data type -> bytes per value
    onnx.TensorProto.FLOAT: 4,
    onnx.TensorProto.DOUBLE: 8,
    onnx.TensorProto.FLOAT16: 2,
}
INT_TYPES: dict[int, int] = {
    onnx.TensorProto.INT64: 8,
    onnx.TensorProto.INT32: 4,
    onnx.TensorProto.INT16: 2,
    onnx.TensorProto.INT8: 1,
    onnx.TensorProto.UINT8: 1,
    onnx.TensorProto.BOOL: 1,
}


class OnnxGraphModule(nn.Module):
    """Runs the nodes of one ONNX graph in order: one input tensor, one output tensor.

    ``weights`` holds the floating-point initializers that no ``Linear``/``Conv`` took (trained
    like any parameter); integer initializers (shapes, indices), ``Constant`` nodes and
    batch-norm statistics are buffers. ``batch``: the fixed batch size the graph declares (0:
    any); ``integer_input``: the graph takes integers (token ids).
    """

    def __init__(self, max_elements: int, max_work: int) -> None:
        super().__init__()
        self.weights = nn.ParameterDict()
        self.layers = nn.ModuleList()
        self.max_elements = int(max_elements)
        self.max_work = int(max_work)
        self.input_name = ""
        self.output_name = ""
        self.batch = 0
        self.integer_input = False
        self._buffer_names: dict[str, str] = {}
        self._weight_names: dict[str, str] = {}
        self._inputs: list[list[str]] = []
        self._outputs: list[list[str]] = []
        self.deadline: float | None = None  # time.monotonic() past which a call stops

    def forward(self, x: Tensor) -> Tensor:
        """The graph's output at the batch ``x`` (n, ...), rows in, rows out.

        Integer-input graphs get ``x`` rounded to integers. A graph declaring a fixed ``batch``
        b != n runs on pieces of b rows, the last padded with copies of its first row and the
        padding's outputs dropped; every node is checked against ``max_elements`` and the
        call's multiply-adds, over all pieces, against ``max_work`` before it runs."""
        if self.integer_input:
            x = torch.round(x).long() if x.is_floating_point() else x.long()
        rows = x.shape[0] if x.dim() else 0
        if not self.batch or rows == self.batch:
            return self._run(x, [0])
        spent = [0]  # multiply-adds of this call, over its pieces
        pieces = []
        for start in range(0, rows, self.batch):
            piece = x[start : start + self.batch]
            short = self.batch - piece.shape[0]
            if short:
                piece = torch.cat([piece, piece[:1].expand(short, *piece.shape[1:])])
            pieces.append(self._run(piece, spent)[: self.batch - short])
        return torch.cat(pieces)

    def _run(self, x: Tensor, spent: list[int]) -> Tensor:
        """The graph on one input: each node checked against the limits before it runs, its
        multiply-adds added to ``spent[0]``."""
        values: dict[str, Tensor | None] = {"": None, self.input_name: x}
        for name, key in self._weight_names.items():
            values[name] = self.weights[key]
        for name, key in self._buffer_names.items():
            values[name] = getattr(self, key)
        for layer, inputs, outputs in zip(self.layers, self._inputs, self._outputs, strict=True):
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise ValueError("model took longer than the time limit for one call")
            args = [values[name] for name in inputs]
            limits = (self.max_elements, spent[0], self.max_work)
            if isinstance(layer, Node):
                spent[0] += layer.check(args, *limits)
            else:
                spent[0] += onnx_layers.check_layer(layer, args[0], *limits)
            result = layer(*args)
            results = result if isinstance(result, tuple) else (result,)
            for name, value in zip(outputs, results, strict=False):
                values[name] = value
        out = values.get(self.output_name)
        if out is None:
            raise ValueError("model's graph output is empty")
        return out


def convert(model: onnx.ModelProto, max_elements: int, max_work: int) -> OnnxGraphModule:
    """The module that runs ``model``'s graph; ``ValueError`` for what it cannot or may not run.

    The caller has checked the graph (`landscape.files.uploads.check_onnx`): allowed operators,
    declared sizes, no external data.
    """
    graph = model.graph
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    initializers = {t.name: t for t in graph.initializer}
    real_inputs = [i for i in graph.input if i.name not in initializers]
    if len(real_inputs) != 1 or len(graph.output) != 1:
        raise ValueError(
            f"model must have one input and one output, got {len(real_inputs)} inputs and "
            f"{len(graph.output)} outputs"
        )
    module = OnnxGraphModule(max_elements, max_work)
    module.input_name, module.output_name = real_inputs[0].name, graph.output[0].name
    module.batch, module.integer_input = _input_kind(real_inputs[0])
    arrays = {name: numpy_helper.to_array(t) for name, t in initializers.items()}
    consumed: set[str] = set()  # initializers read at conversion (weights, bounds, axes)
    frozen: set[str] = set()  # float tensors that are statistics or constants, not parameters
    defined = {module.input_name}  # the tensors the nodes so far compute
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Constant":
            arrays[node.output[0]] = _constant(attrs)
            frozen.add(node.output[0])
            continue
        if node.op_type == "Identity" and node.input[0] in arrays:
            arrays[node.output[0]] = arrays[node.input[0]]  # each reader gets its own copy
            continue
        layer, inputs = _layer_of(node, attrs, arrays, opset, consumed, frozen)
        for name in inputs:
            if name and name not in arrays and name not in defined:
                raise ValueError(
                    f"model's {node.op_type} node reads {name!r}, which no node before it "
                    "computes (the interpreter computes the first output of each node, all "
                    "of an LSTM's and a GRU's)"
                )
        outputs = list(node.output[: onnx_recurrent.OUTPUTS.get(node.op_type, 1)])
        defined.update(outputs)
        module.layers.append(layer)
        module._inputs.append(inputs)
        module._outputs.append(outputs)
    if module.output_name not in defined:
        raise ValueError(f"model's output {module.output_name!r} is not computed by its nodes")
    _keep_tensors(module, arrays, consumed, frozen)
    return module


def _input_kind(value: onnx.ValueInfoProto) -> tuple[int, bool]:
    """``(fixed batch size or 0, integer input)`` from the graph input's declared type."""
    tensor = value.type.tensor_type
    elem = tensor.elem_type
    if elem not in FLOAT_TYPES and elem not in INT_TYPES:
        name = onnx.TensorProto.DataType.Name(elem)
        raise ValueError(f"model's input {value.name!r} has type {name}; numbers only")
    dims = tensor.shape.dim
    batch = dims[0].dim_value if dims and dims[0].HasField("dim_value") else 0
    return int(batch), elem in INT_TYPES


def _layer_of(
    node: onnx.NodeProto,
    attrs: dict,
    arrays: dict[str, np.ndarray],
    opset: int,
    consumed: set[str],
    frozen: set[str],
) -> tuple[nn.Module, list[str]]:
    """The module that runs ``node`` and the names of its inputs at run time."""
    layer = onnx_layers.weight_layer(node.op_type, node.input, attrs, arrays)
    if layer is not None:
        consumed.update(name for name in node.input[1:] if name)
        return layer, [node.input[0]]
    inputs = list(node.input)
    if node.op_type in onnx_nodes.UNARY or node.op_type in onnx_nodes.BINARY:
        return onnx_nodes.elementwise(node.op_type), inputs
    build = _BUILDERS.get(node.op_type)
    if build is None:
        raise ValueError(f"model uses the operator {node.op_type!r}, which is not allowed")
    built = build(node.op_type, attrs, inputs, arrays, opset)
    if node.op_type in ("Clip", "Squeeze", "Unsqueeze", "Dropout"):
        consumed.update(name for name in inputs[1:] if name)
        inputs = inputs[:1]
    if node.op_type == "BatchNormalization":
        frozen.update(inputs[3:5])
    return built, inputs


def _keep_tensors(
    module: OnnxGraphModule,
    arrays: dict[str, np.ndarray],
    consumed: set[str],
    frozen: set[str],
) -> None:
    """The tensors the nodes read at run time: float ones as parameters (unless ``frozen``, or
    holding an infinity: an attention mask), the others (integers, booleans, statistics,
    constants) as buffers."""
    used = {name for inputs in module._inputs for name in inputs}
    for name, array in arrays.items():
        if name not in used:
            continue
        key = _key(name, len(module._weight_names) + len(module._buffer_names))
        if array.dtype.kind == "f" and name not in frozen and np.isfinite(array).all():
            module.weights[key] = nn.Parameter(torch.as_tensor(array.astype(np.float32)))
            module._weight_names[name] = key
        else:
            kind = array.dtype.kind
            dtype = np.float32 if kind == "f" else np.bool_ if kind == "b" else np.int64
            module.register_buffer(key, torch.as_tensor(array.astype(dtype)))
            module._buffer_names[name] = key


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
