"""A hostile user's ONNX files: each small file that would become a large tensor, a long
computation or a read of our disk is refused with a clear message, before it allocates, and
nothing is written. The loader is the web upload's (`landscape.files.uploads.load_model`); the
bounds hold on what the graph computes, not only on what the file declares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from landscape.files import uploads


def graph_bytes(
    nodes: list,
    initializers: list | None = None,
    inputs: list | None = None,
    input_type: int = TensorProto.FLOAT,
    opset: int = 18,
) -> bytes:
    """A model with input "x" of ``inputs`` (default ("n", 4)) and output "out", serialised."""
    graph = helper.make_graph(
        nodes,
        "attack",
        [helper.make_tensor_value_info("x", input_type, inputs or ["n", 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        initializer=initializers or [],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model.SerializeToString()


def ints(name: str, values: list[int]) -> TensorProto:
    return numpy_helper.from_array(np.asarray(values, np.int64), name)


def floats(name: str, shape: tuple[int, ...]) -> TensorProto:
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def add_weight(nodes: list, initializers: list, last: str) -> None:
    """Ends the graph with ``out = last + w``: a model needs one parameter to load."""
    initializers.append(floats("w", (1,)))
    nodes.append(helper.make_node("Add", [last, "w"], ["out"]))


@pytest.fixture(autouse=True)
def nothing_written(tmp_path: Path, monkeypatch):
    """Each attack runs in an empty directory, which must stay empty."""
    monkeypatch.chdir(tmp_path)
    yield
    assert list(tmp_path.iterdir()) == []


def run(data: bytes, rows: int = 2, **limits: int) -> None:
    """Load ``data`` and call it on ``rows`` rows of zeros, as the Lab's probe does."""
    model = uploads.load_model(data, **limits)
    uploads.check_model(model, np.zeros((rows, 4)), np.zeros((rows, 1)), "regression")


def test_constant_of_shape_computed_from_the_input_is_refused_before_allocating(
    monkeypatch,
) -> None:
    """Shape(x) * 10^6 -> ConstantOfShape: (2 10^6, 4 10^6) values from a file of a few hundred
    bytes; torch.full is never called."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Mul", ["s", "big"], ["huge"]),
        helper.make_node("ConstantOfShape", ["huge"], ["h"]),
    ]
    initializers = [ints("big", [10**6])]
    add_weight(nodes, initializers, "h")
    data = graph_bytes(nodes, initializers)
    assert len(data) < 400
    monkeypatch.setattr(torch, "full", lambda *a, **k: pytest.fail("a tensor was allocated"))
    with pytest.raises(ValueError, match=r"ConstantOfShape node would produce .*MAX_ELEMENTS"):
        run(data)


def test_constant_of_shape_with_a_negative_shape_is_refused() -> None:
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["h"])]
    initializers = [ints("shape", [-1, 4])]
    add_weight(nodes, initializers, "h")
    with pytest.raises(ValueError, match="negative shape"):
        run(graph_bytes(nodes, initializers))


def test_expand_to_a_huge_shape_is_refused() -> None:
    nodes = [helper.make_node("Expand", ["x", "shape"], ["h"])]
    initializers = [ints("shape", [10**5, 10**5, 1, 4])]
    add_weight(nodes, initializers, "h")
    with pytest.raises(ValueError, match=r"Expand node would produce .*MAX_ELEMENTS"):
        run(graph_bytes(nodes, initializers))


def test_matmul_of_allowed_tensors_past_the_work_limit_is_refused() -> None:
    """Two (64, 64) tensors are small, but chained products of them are bounded per node by
    their multiply-adds (here a limit of 10^5 against 64^3)."""
    nodes = [
        helper.make_node("ConstantOfShape", ["shape"], ["a"]),
        helper.make_node("MatMul", ["a", "a"], ["h"]),
    ]
    initializers = [ints("shape", [64, 64])]
    add_weight(nodes, initializers, "h")
    with pytest.raises(
        ValueError,
        match=r"MatMul node would do 262,144 multiply-adds, bringing one call .*MAX_WORK",
    ):
        run(graph_bytes(nodes, initializers), max_work=10**5)


def test_many_nodes_each_under_the_work_limit_are_bounded_by_the_call_total() -> None:
    """Four products of 64^3 multiply-adds each: under a limit of 10^6 one by one, past it
    together; the fourth is refused before it runs."""
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["h0"])]
    nodes += [helper.make_node("MatMul", [f"h{k}", "h0"], [f"h{k + 1}"]) for k in range(4)]
    initializers = [ints("shape", [64, 64])]
    add_weight(nodes, initializers, "h4")
    with pytest.raises(ValueError, match=r"bringing one call to 1,048,576, more than the limit"):
        run(graph_bytes(nodes, initializers), max_work=10**6)


def test_convolution_whose_unfolded_input_is_huge_is_refused() -> None:
    """A 32 x 32 kernel over 16 channels of 64 x 64: input and output are small, the unfolded
    input (33^2 positions x 16 x 1024) is not."""
    W = floats("W", (1, 16, 32, 32))
    node = helper.make_node("Conv", ["x", "W"], ["out"], kernel_shape=[32, 32])
    data = graph_bytes([node], [W], inputs=["n", 16, 64, 64])
    model = uploads.load_model(data, max_elements=2**22)
    with pytest.raises(ValueError, match=r"Conv2d layer would unfold 17,842,176 .*MAX_ELEMENTS"):
        model(torch.zeros(1, 16, 64, 64))


def test_transposed_convolution_with_a_huge_stride_is_refused() -> None:
    W = floats("W", (4, 1, 1, 1))
    node = helper.make_node("ConvTranspose", ["x", "W"], ["out"], strides=[10**5, 10**5])
    model = uploads.load_model(graph_bytes([node], [W], inputs=["n", 4, 8, 8]))
    with pytest.raises(ValueError, match=r"ConvTranspose node would produce .*MAX_ELEMENTS"):
        model(torch.zeros(1, 4, 8, 8))


def test_pooling_with_a_huge_kernel_is_bounded_by_its_work() -> None:
    nodes = [helper.make_node("MaxPool", ["x"], ["h"], kernel_shape=[60, 60])]
    initializers: list = []
    add_weight(nodes, initializers, "h")
    model = uploads.load_model(
        graph_bytes(nodes, initializers, inputs=["n", 1, 64, 64]), max_work=10**4
    )
    with pytest.raises(ValueError, match=r"MaxPool node would do .*MAX_WORK"):
        model(torch.zeros(1, 1, 64, 64))


def test_recurrent_node_over_a_long_sequence_is_bounded_by_its_work() -> None:
    H = 8
    initializers = [floats("W", (1, 4 * H, 4)), floats("R", (1, 4 * H, H))]
    nodes = [helper.make_node("LSTM", ["x", "W", "R"], ["Y"], hidden_size=H)]
    nodes += [helper.make_node("ReduceMean", ["Y"], ["out"], keepdims=0)]
    model = uploads.load_model(
        graph_bytes(nodes, initializers, inputs=[1000, "n", 4], opset=17), max_work=10**5
    )
    with pytest.raises(ValueError, match=r"LSTM node would do 384,000 .*per call \(MAX_WORK\)"):
        model(torch.zeros(1000, 1, 4))


def test_attention_mask_that_broadcasts_the_scores_is_refused() -> None:
    """A boolean mask of shape (1000, 1, 1, 1) would broadcast the (1, 1, 4, 4) scores of one
    sample to 16,000 values: counted before the node runs (here against a limit of 10^4)."""
    mask = numpy_helper.from_array(np.ones((1000, 1, 1, 1), bool), "mask")
    nodes = [helper.make_node("Attention", ["x", "x", "x", "mask"], ["h"])]
    initializers = [mask]
    add_weight(nodes, initializers, "h")
    model = uploads.load_model(
        graph_bytes(nodes, initializers, inputs=["n", 1, 4, 4], opset=23), max_elements=10**4
    )
    with pytest.raises(ValueError, match=r"Attention node would produce 16,000 values"):
        model(torch.zeros(1, 1, 4, 4))


def test_gemm_bias_that_would_broadcast_the_product_is_refused() -> None:
    initializers = [floats("W", (4, 3)), floats("C", (1000, 1, 3))]
    node = helper.make_node("Gemm", ["x", "W", "C"], ["out"])
    model = uploads.load_model(graph_bytes([node], initializers), max_elements=1000)
    with pytest.raises(ValueError, match=r"Gemm node would produce 6,000 values"):
        model(torch.zeros(2, 4))


def test_normalisation_scale_that_would_broadcast_the_input_is_refused() -> None:
    scale = numpy_helper.from_array(np.ones(1000, np.float32), "scale")
    node = helper.make_node("InstanceNormalization", ["x", "scale", "scale"], ["out"])
    model = uploads.load_model(graph_bytes([node], [scale], inputs=["n", 1, 8, 8]))
    with pytest.raises(ValueError, match="one scale and bias per channel"):
        model(torch.zeros(2, 1, 8, 8))


def test_huge_group_count_is_refused() -> None:
    W = floats("W", (1, 1, 1, 1))
    node = helper.make_node("Conv", ["x", "W"], ["out"], group=10**9)
    with pytest.raises(ValueError, match="divisible by groups"):
        uploads.load_model(graph_bytes([node], [W], inputs=["n", 4, 8, 8]))


@pytest.mark.parametrize("op", ["Loop", "If", "Scan", "Tile", "Range", "Resize", "Pad"])
def test_control_flow_and_shape_growing_operators_are_refused(op: str) -> None:
    body = helper.make_graph([], "body", [], [])
    node = helper.make_node(op, ["x"], ["out"], body=body)
    with pytest.raises(ValueError, match=f"operator '{op}', which is not allowed"):
        uploads.load_model(graph_bytes([node]))


def test_sub_graph_attributes_are_refused_on_any_operator() -> None:
    body = helper.make_graph([], "body", [], [])
    node = helper.make_node("Relu", ["x"], ["out"], then_branch=body)
    with pytest.raises(ValueError, match="holds a sub-graph"):
        uploads.load_model(graph_bytes([node]))


def test_string_tensors_and_casts_are_refused() -> None:
    text = helper.make_tensor("text", TensorProto.STRING, [2], [b"rm -rf", b"/"])
    nodes = [helper.make_node("Constant", [], ["c"], value=text)]
    nodes += [helper.make_node("Relu", ["x"], ["out"])]
    with pytest.raises(ValueError, match="type STRING"):
        uploads.load_model(graph_bytes(nodes))
    cast = [helper.make_node("Cast", ["x"], ["h"], to=TensorProto.STRING)]
    initializers: list = []
    add_weight(cast, initializers, "h")
    with pytest.raises(ValueError, match="Cast to STRING is refused"):
        uploads.load_model(graph_bytes(cast, initializers))
    node = helper.make_node("Relu", ["x"], ["out"])
    with pytest.raises(ValueError, match="input 'x' has type STRING"):
        uploads.load_model(graph_bytes([node], [floats("w", (1,))], input_type=TensorProto.STRING))


def test_external_data_in_a_constant_is_refused(tmp_path: Path) -> None:
    value = TensorProto(name="c", data_type=TensorProto.FLOAT, dims=[4])
    value.data_location = TensorProto.EXTERNAL
    entry = value.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"
    nodes = [helper.make_node("Constant", [], ["c"], value=value)]
    nodes += [helper.make_node("Add", ["x", "c"], ["out"])]
    with pytest.raises(ValueError, match="external data"):
        uploads.load_model(graph_bytes(nodes))


def test_sparse_initializers_and_sparse_constants_are_refused() -> None:
    values = numpy_helper.from_array(np.ones(1, np.float32), "v")
    sparse = helper.make_sparse_tensor(values, ints("i", [0]), [10**9])
    node = helper.make_node("Relu", ["x"], ["out"])
    graph = helper.make_graph(
        [node],
        "attack",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        sparse_initializer=[sparse],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(ValueError, match="sparse initializers"):
        uploads.load_model(model.SerializeToString())
    constant = helper.make_node("Constant", [], ["c"], sparse_value=sparse)
    with pytest.raises(ValueError, match="tensor-list attributes"):
        uploads.load_model(graph_bytes([constant, node]))


def test_huge_attributes_count_against_the_parameter_limit(monkeypatch) -> None:
    """A Constant's value_ints and any list attribute count as values of the model."""
    monkeypatch.setattr(uploads, "MAX_PARAMETERS", 1000)
    nodes = [helper.make_node("Constant", [], ["c"], value_ints=list(range(5000)))]
    nodes += [helper.make_node("Transpose", ["x"], ["out"], perm=list(range(3000)))]
    with pytest.raises(ValueError, match="tensors and attributes declare more"):
        uploads.load_model(graph_bytes(nodes, [floats("w", (1,))]))


def test_recurrent_options_outside_the_interpreter_are_refused() -> None:
    H = 2
    initializers = [floats("W", (1, 4 * H, 4)), floats("R", (1, 4 * H, H)), ints("lens", [3])]
    node = helper.make_node("LSTM", ["x", "W", "R", "", "lens"], ["out"], hidden_size=H)
    with pytest.raises(ValueError, match="LSTM uses sequence_lens, which is refused"):
        uploads.load_model(graph_bytes([node], initializers, inputs=[3, "n", 4]))
    node = helper.make_node(
        "LSTM", ["x", "W", "R"], ["out"], hidden_size=H, activations=["Relu", "Tanh", "Tanh"]
    )
    with pytest.raises(ValueError, match="activations"):
        uploads.load_model(graph_bytes([node], initializers[:2], inputs=[3, "n", 4]))
