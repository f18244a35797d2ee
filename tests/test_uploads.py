"""Uploads: ONNX only (TorchScript and pickles refused, never run), bounded models, tables
validated before they are read, clear messages."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from landscape.engine.nets import mlp
from landscape.files import uploads

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated


def scripted_bytes(model: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    return buffer.getvalue()


def onnx_model(
    nodes: list,
    initializers: list,
    inputs: int | list = 4,
    outputs: int | list | None = None,
    opset: int = 17,
) -> bytes:
    """An ONNX model with input "x" (batch, inputs) and output "out", serialised."""
    shape_in = ["batch", inputs] if isinstance(inputs, int) else inputs
    graph = helper.make_graph(
        nodes,
        "upload",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape_in)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, outputs)],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model.SerializeToString()


def onnx_mlp(model: nn.Sequential) -> bytes:
    """``model`` (Linear and ReLU/Tanh layers) as ONNX: Gemm nodes with transB=1."""
    nodes, initializers, current = [], [], "x"
    ops = {nn.ReLU: "Relu", nn.Tanh: "Tanh"}
    for k, layer in enumerate(model):
        out = "out" if k == len(model) - 1 else f"h{k}"
        if isinstance(layer, nn.Linear):
            for name in ("weight", "bias"):
                array = getattr(layer, name).detach().numpy()
                initializers.append(numpy_helper.from_array(array, f"{k}.{name}"))
            nodes.append(
                helper.make_node("Gemm", [current, f"{k}.weight", f"{k}.bias"], [out], transB=1)
            )
        else:
            nodes.append(helper.make_node(ops[type(layer)], [current], [out]))
        current = out
    return onnx_model(nodes, initializers, inputs=model[0].in_features)


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


class Payload:
    """Unpickling this object would write a marker file: the loader must never do it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def test_onnx_mlp_round_trip_equals_the_torch_model() -> None:
    torch.manual_seed(0)
    model = mlp(4, 3, [5, 6], "tanh")
    loaded = uploads.load_model(onnx_mlp(model))
    x = torch.randn(7, 4)
    torch.testing.assert_close(loaded(x), model(x))
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in model.parameters())
    assert [type(m) for m in loaded.modules() if isinstance(m, nn.Linear)] == [nn.Linear] * 3


def test_onnx_generic_nodes_match_torch() -> None:
    """MatMul + Add, Reshape from a Shape chain, Concat, Softmax: the interpreter's own nodes."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["z"]),
        helper.make_node("Add", ["z", "b"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Concat", ["r", "a"], ["c"], axis=1),
        helper.make_node("Shape", ["c"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["shape"], axis=0),
        helper.make_node("Reshape", ["c", "shape"], ["flat"]),
        helper.make_node("Softmax", ["flat"], ["out"], axis=-1),
    ]
    initializers = [
        numpy_helper.from_array(W, "W"),
        numpy_helper.from_array(b, "b"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axes"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus_one"),
    ]
    loaded = uploads.load_model(onnx_model(nodes, initializers))
    x = torch.randn(5, 4)
    a = x @ torch.as_tensor(W) + torch.as_tensor(b)
    expected = torch.softmax(torch.cat([a.relu(), a], 1), -1)
    torch.testing.assert_close(loaded(x), expected)


class _AtLoad(nn.Module):
    """Creates ``self.path`` in ``__setstate__``, which ``torch.jit.load`` runs."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.weight = nn.Parameter(torch.ones(2, 3))

    @torch.jit.export
    def __getstate__(self) -> tuple[str, bool, torch.Tensor]:
        return (self.path, self.training, self.weight)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool, torch.Tensor]) -> None:
        planted = torch.from_file(state[0], True, 16)
        self.path, self.training = state[0], state[1]
        self.weight = state[2] + 0 * planted.sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T


class _AtCall(_AtLoad):
    """Creates ``self.path`` in ``forward``, at the first evaluation."""

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool, torch.Tensor]) -> None:
        self.path, self.training, self.weight = state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        planted = torch.from_file(self.path, True, 16)
        return x @ self.weight.T + 0 * planted.sum()


def test_onnx_conv_net_surface_is_the_same_on_the_vmap_and_loop_paths() -> None:
    """Conv, BatchNormalization, MaxPool, Flatten and Gemm: the vmap path (Conv hoisted) gives the
    loop path's numbers."""
    from landscape.engine.directions import random_directions
    from landscape.engine.problem import Problem
    from landscape.engine.surface import path_taken, surface_2d

    rng = np.random.default_rng(0)
    arrays = {
        "cw": rng.standard_normal((3, 1, 3, 3)),
        "cb": rng.standard_normal(3),
        "scale": rng.uniform(0.5, 1.5, 3),
        "shift": rng.standard_normal(3),
        "mean": rng.standard_normal(3),
        "var": rng.uniform(0.5, 1.5, 3),
        "fw": rng.standard_normal((2, 18)),
        "fb": rng.standard_normal(2),
    }
    initializers = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in arrays.items()]
    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["out"], transB=1),
    ]
    model = uploads.load_model(onnx_model(nodes, initializers, inputs=["n", 1, 4, 6]))
    assert sum(p.numel() for p in model.parameters()) == 3 * 9 + 3 + 3 + 3 + 36 + 2
    X = torch.as_tensor(rng.standard_normal((10, 1, 4, 6)), dtype=torch.float32)
    y = torch.as_tensor(np.arange(10) % 2)
    d1, d2 = random_directions(model, 1, "filter"), random_directions(model, 2, "filter")
    grid = np.linspace(-1, 1, 4)
    problem = Problem(model, torch.nn.functional.cross_entropy, X, y)
    fast = surface_2d(problem, d1, d2, grid, grid, method="vmap")
    slow = surface_2d(problem, d1, d2, grid, grid, method="loop")
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)
    assert "Conv2d" in path_taken(problem)


def evil_torchscript(path: Path, where: str) -> bytes:
    """A TorchScript archive whose ``__setstate__`` (``where="load"``) or ``forward``
    (``where="forward"``) creates ``path`` with ``torch.from_file(path, shared=True, size)``."""
    module = (_AtLoad if where == "load" else _AtCall)(str(path))
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("where", ["load", "forward"])
def test_torchscript_payload_is_refused_and_writes_nothing(tmp_path: Path, where: str) -> None:
    # the payload is live: TorchScript's own loader runs it (and so would the old upload path)
    probe = tmp_path / "probe.bin"
    loaded = torch.jit.load(io.BytesIO(evil_torchscript(probe, where)))
    loaded(torch.zeros(1, 3))
    assert probe.exists()
    target = tmp_path / "planted.bin"
    data = evil_torchscript(target, where)
    with pytest.raises(ValueError, match="uploads refuse"):
        uploads.load_model(data)
    assert not target.exists()


def test_pickles_are_refused_without_unpickling(tmp_path: Path, monkeypatch) -> None:
    marker = tmp_path / "marker.txt"
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle.loads was called"))
    buffer = io.BytesIO()
    torch.save({"weights": torch.zeros(2), "payload": Payload(marker)}, buffer)
    with pytest.raises(ValueError, match="uploads refuse"):
        uploads.load_model(buffer.getvalue())
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(ValueError, match="not an ONNX model"):
            uploads.load_model(pickle.dumps(Payload(marker), protocol=protocol))
    with pytest.raises(ValueError):
        uploads.load_table(pickle.dumps(Payload(marker)), "evil.csv")
    with pytest.raises(ValueError):
        uploads.load_table(pickle.dumps(Payload(marker)), "evil.npz")
    assert not marker.exists()


def test_local_torchscript_still_loads_from_the_users_disk(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = mlp(4, 3, [5])
    path = tmp_path / "model.pt"
    path.write_bytes(scripted_bytes(model))
    loaded = uploads.load_local_torchscript(path)
    x = torch.randn(6, 4)
    torch.testing.assert_close(loaded(x), model(x))
    checkpoint = tmp_path / "checkpoint.pt"
    torch.save({"weights": torch.zeros(2)}, checkpoint)
    with pytest.raises(ValueError, match="torch.save checkpoint is refused"):
        uploads.load_local_torchscript(checkpoint)


@pytest.mark.parametrize(
    ("data", "limit", "message"),
    [
        (b"", uploads.MAX_MODEL_BYTES, "empty"),
        (b"x" * 2048, 1024, "at most"),
        (b"definitely not a model", uploads.MAX_MODEL_BYTES, "not an ONNX model"),
    ],
)
def test_bad_model_files(data: bytes, limit: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        uploads.load_model(data, max_bytes=limit)


def declared_tensor(name: str, dims: list[int], values: np.ndarray | None = None) -> TensorProto:
    """A float tensor declaring ``dims`` that holds ``values`` (none: no data in the file)."""
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
    if values is not None:
        tensor.raw_data = values.astype(np.float32).tobytes()
    return tensor


def test_external_data_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.zeros(20, dtype=np.float32).tobytes())
    weight = declared_tensor("W", [4, 5])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", str(secret)), ("offset", "0"), ("length", "80")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    data = onnx_model([helper.make_node("MatMul", ["x", "W"], ["out"])], [weight])
    with pytest.raises(ValueError, match="external data"):
        uploads.load_model(data)


def test_huge_declared_initializer_is_refused_before_allocation(monkeypatch) -> None:
    monkeypatch.setattr(
        numpy_helper, "to_array", lambda *a, **k: pytest.fail("a tensor was materialised")
    )
    huge = declared_tensor("W", [4, 10**9])
    data = onnx_model([helper.make_node("MatMul", ["x", "W"], ["out"])], [huge])
    assert len(data) < 1000
    with pytest.raises(ValueError, match="MAX_PARAMETERS"):
        uploads.load_model(data)
    # many tensors that fit one by one but not together
    parts = [numpy_helper.from_array(np.zeros((4, 4), np.float32), f"W{k}") for k in range(4)]
    nodes = [helper.make_node("MatMul", ["x", "W0"], ["h0"])]
    nodes += [helper.make_node("MatMul", [f"h{k}", f"W{k + 1}"], [f"h{k + 1}"]) for k in range(2)]
    nodes += [helper.make_node("MatMul", ["h2", "W3"], ["out"])]
    monkeypatch.setattr(uploads, "MAX_PARAMETERS", 60)
    with pytest.raises(ValueError, match="at most 60 parameter values"):
        uploads.load_model(onnx_model(nodes, parts))


def test_initializer_whose_data_does_not_match_its_shape_is_refused() -> None:
    short = declared_tensor("W", [4, 3], np.zeros(5, np.float32))
    data = onnx_model([helper.make_node("MatMul", ["x", "W"], ["out"])], [short])
    with pytest.raises(ValueError, match="declares 12 values but the file holds 5"):
        uploads.load_model(data)


def test_disallowed_operators_and_domains_are_refused() -> None:
    body = helper.make_graph([], "body", [], [])
    loop = helper.make_node("Loop", ["n", "", "x"], ["out"], body=body)
    with pytest.raises(ValueError, match="'Loop', which is not allowed"):
        uploads.load_model(onnx_model([loop], []))
    tile = helper.make_node("Tile", ["x", "reps"], ["out"])
    with pytest.raises(ValueError, match="'Tile', which is not allowed"):
        uploads.load_model(onnx_model([tile], []))
    custom = helper.make_node("Relu", ["x"], ["out"], domain="com.evil")
    with pytest.raises(ValueError, match="custom operator domain"):
        uploads.load_model(onnx_model([custom], []))
    nodes = [helper.make_node("Relu", ["x"], ["out"])] * (uploads.MAX_NODES + 1)
    with pytest.raises(ValueError, match="at most 2000 nodes"):
        uploads.load_model(onnx_model(nodes, []))


def test_declared_shapes_beyond_the_limit_are_refused() -> None:
    W = numpy_helper.from_array(np.zeros((4, 3), np.float32), "W")
    node = helper.make_node("MatMul", ["x", "W"], ["out"])
    with pytest.raises(ValueError, match="MAX_ELEMENTS"):
        uploads.load_model(onnx_model([node], [W], outputs=[10**6, 10**6]))


def test_a_node_that_would_blow_up_memory_is_stopped_before_it_runs() -> None:
    """Concat(h, h) thirty times doubles 8 x 4 values to 2^33: refused at the node past the limit,
    which the probe call of check_model reports."""
    W = numpy_helper.from_array(np.ones((4, 4), np.float32), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h0"])]
    nodes += [
        helper.make_node("Concat", [f"h{k}", f"h{k}"], [f"h{k + 1}"], axis=1) for k in range(30)
    ]
    nodes += [helper.make_node("ReduceSum", ["h30"], ["out"])]
    with pytest.raises(ValueError, match="not allowed"):  # no reduction: the graph is refused
        uploads.load_model(onnx_model(nodes, [W]))
    nodes[-1] = helper.make_node("Identity", ["h30"], ["out"])
    model = uploads.load_model(onnx_model(nodes, [W]))
    X = np.zeros((8, 4))
    with pytest.raises(ValueError, match=r"Concat node would produce .*\(MAX_ELEMENTS\)"):
        uploads.check_model(model, X, np.zeros((8, 1)), "regression")


def test_probe_output_too_large_is_refused() -> None:
    W = numpy_helper.from_array(np.zeros((4, uploads.MAX_OUTPUTS + 1), np.float32), "W")
    model = uploads.load_model(onnx_model([helper.make_node("MatMul", ["x", "W"], ["out"])], [W]))
    X = np.zeros((10, 4))
    with pytest.raises(ValueError, match="MAX_OUTPUTS"):
        uploads.check_model(model, X, np.arange(10) % 3, "classification")


def test_probe_call_past_the_time_limit_is_refused(monkeypatch) -> None:
    model = uploads.load_model(onnx_mlp(mlp(4, 3, [5])))
    X = np.zeros((10, 4))
    monkeypatch.setattr(uploads, "MAX_PROBE_SECONDS", -1.0)
    with pytest.raises(ValueError, match="time limit .*MAX_PROBE_SECONDS"):
        uploads.check_model(model, X, np.arange(10) % 3, "classification")
    assert model.deadline is None  # the limit applies to the probe call only


def test_check_model_names_what_does_not_fit() -> None:
    model = mlp(4, 3, [5])
    X = np.random.default_rng(0).standard_normal((10, 4))
    assert uploads.check_model(model, X, np.arange(10) % 3, "classification") == 3
    with pytest.raises(ValueError, match="cannot run the data"):
        uploads.check_model(model, X[:, :3], np.arange(10) % 3, "classification")
    with pytest.raises(ValueError, match="labels need 5"):
        uploads.check_model(model, X, np.arange(10) % 5, "classification")
    with pytest.raises(ValueError, match="regression"):
        uploads.check_model(model, X, np.zeros(10), "regression")
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        uploads.check_model(model, X, np.arange(10) % 3, "classification")


def test_csv_with_header_and_label_column() -> None:
    text = "a,label,b\n1,0,2\n3,1,4\n5,2,6\n"
    X, y = uploads.load_table(text.encode(), "data.csv")
    np.testing.assert_array_equal(X, [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(y, [0, 1, 2])
    assert y.dtype == np.int64 and uploads.task_of(y) == "classification"


def test_csv_without_header_takes_the_last_column_and_floats_mean_regression() -> None:
    X, y = uploads.load_table(b"1,2,0.5\n3,4,1.5\n", "data.CSV")
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(y, [0.5, 1.5])
    assert uploads.task_of(y) == "regression"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"a,b\n1,x\n2,3\n", "numbers only"),
        (b"a,b\n1,nan\n2,3\n", "NaN"),
        (b"a\n1\n2\n", "at least 2 columns"),
        (b"a,b\n1,2\n", "number of samples"),
        (b"\xff\xfe\x00", "UTF-8"),
    ],
)
def test_bad_csv(text: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        uploads.load_table(text, "bad.csv")


def test_negative_or_huge_integer_targets_mean_regression() -> None:
    for column in ("-1\n1\n-1", "0\n5000\n1"):
        rows = "\n".join(f"{k},{v}" for k, v in enumerate(column.split("\n")))
        _, y = uploads.load_table(rows.encode(), "t.csv")
        assert y.dtype == np.float64 and uploads.task_of(y) == "regression"


def test_npz_round_trip_with_images() -> None:
    X = np.random.default_rng(0).standard_normal((5, 1, 4, 4)).astype(np.float32)
    y = np.array([0, 1, 1, 0, 1])
    X2, y2 = uploads.load_table(npz_bytes(X=X, y=y), "set.npz")
    np.testing.assert_allclose(X2, X)
    np.testing.assert_array_equal(y2, y)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.zeros((3, 2))}, "arrays 'X' and 'y'"),
        ({"X": np.zeros((3, 2)), "y": np.zeros(4)}, "same number of rows"),
        ({"X": np.array([[1.0, np.inf], [0, 0]]), "y": np.zeros(2)}, "infinite"),
        ({"X": np.zeros((3, 5000)), "y": np.zeros(3)}, "features per sample"),
        ({"X": np.zeros(3), "y": np.zeros(3)}, "X must have shape"),
        ({"X": np.array([["a"], ["b"]]), "y": np.zeros(2)}, "numeric"),
    ],
)
def test_bad_npz(arrays: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        uploads.load_table(npz_bytes(**arrays), "bad.npz")


def test_npz_object_arrays_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    data = npz_bytes(X=np.array([Payload(marker)], dtype=object), y=np.zeros(1))
    with pytest.raises(ValueError, match="no pickle"):
        uploads.load_table(data, "evil.npz")
    assert not marker.exists()


def npz_with_member(name: str, header: dict, body: bytes, **arrays: np.ndarray) -> bytes:
    """An NPZ whose member ``name`` has the ``.npy`` header ``header`` and then ``body``."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, header)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, member.getvalue() + body)
        for key, array in arrays.items():
            stream = io.BytesIO()
            np.save(stream, array)
            archive.writestr(f"{key}.npy", stream.getvalue())
    return buffer.getvalue()


def test_npz_header_claiming_a_huge_array_is_refused_before_reading(monkeypatch) -> None:
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**7, 10**6)}
    data = npz_with_member("X.npy", header, b"", y=np.zeros(3))
    assert len(data) < 1000
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load was called"))
    monkeypatch.setattr(np, "frombuffer", lambda *a, **k: pytest.fail("the data was read"))
    with pytest.raises(ValueError, match=r"declares shape \(10000000, 1000000\)"):
        uploads.load_table(data, "liar.npz")


def test_npz_deflate_bomb_is_refused_by_its_uncompressed_size(monkeypatch) -> None:
    monkeypatch.setattr(uploads, "MAX_ARRAY_BYTES", 2**20)
    header = {"descr": "<f8", "fortran_order": False, "shape": (3, 2)}
    data = npz_with_member("X.npy", header, bytes(4 * 2**20), y=np.zeros(3))
    assert len(data) < 20_000
    monkeypatch.setattr(np.lib.format, "read_magic", lambda *a: pytest.fail("member was opened"))
    with pytest.raises(ValueError, match="unpacks to 4 MiB.*MAX_ARRAY_BYTES"):
        uploads.load_table(data, "bomb.npz")


def test_npz_truncated_member_is_refused() -> None:
    header = {"descr": "<f8", "fortran_order": False, "shape": (3, 2)}
    data = npz_with_member("X.npy", header, bytes(16), y=np.zeros(3))
    with pytest.raises(ValueError, match="truncated"):
        uploads.load_table(data, "short.npz")


def test_npz_fortran_order_round_trips() -> None:
    X = np.asfortranarray(np.arange(12.0).reshape(4, 3))
    X2, _ = uploads.load_table(npz_bytes(X=X, y=np.zeros(4)), "f.npz")
    np.testing.assert_array_equal(X2, X)


def test_other_suffixes_and_garbage() -> None:
    with pytest.raises(ValueError, match=r"\.csv or \.npz"):
        uploads.load_table(b"1,2\n", "data.xlsx")
    with pytest.raises(ValueError, match="not a valid NPZ"):
        uploads.load_table(b"garbage", "data.npz")
    with pytest.raises(ValueError, match="at most"):
        uploads.load_table(b"1,2\n" * 10, "data.csv", max_bytes=8)


def test_store_and_fetch(monkeypatch) -> None:
    from landscape.engine.byte_lru import ByteLRU

    monkeypatch.setattr(uploads, "_store", ByteLRU(1000, sizer=len, name="Uploads"))
    digest = uploads.store(b"hello")
    assert uploads.fetch(digest) == b"hello"
    for k in range(20):
        uploads.store(f"filler {k}".encode() * 10)  # about 90 bytes each: the store is 1000
        assert uploads.store_stats().nbytes <= 1000
    with pytest.raises(ValueError, match="upload the file again"):
        uploads.fetch(digest)
    with pytest.raises(ValueError, match="CONVEXIFY_UPLOAD_CACHE_MB"):
        uploads.store(b"x" * 1001)
