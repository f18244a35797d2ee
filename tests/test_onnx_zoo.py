"""The ONNX door carries the zoo: every architecture of `tests.zoo`, exported by
``torch.onnx.export`` in eval mode with its defaults (the dynamo exporter at its default and at
the newest opset, the TorchScript exporter at opsets 13 and 23), read by the web upload's loader
and the command line's, gives the PyTorch model's outputs, and the engine's surface on it
equals the per-point loop over ``torch.func.functional_call`` on the same loaded module."""

from __future__ import annotations

import contextlib
import io
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from landscape.engine.directions import random_directions
from landscape.engine.problem import Problem
from landscape.engine.surface import surface_2d
from landscape.files import model_files, uploads
from tests.zoo import BY_NAME, ZOO, reference_surface

pytest.importorskip("onnxscript")  # the dynamo exporter, torch.onnx.export's default

EXPORTS = {  # name -> torch.onnx.export keyword arguments
    "default": {},  # the dynamo exporter at its default opset (20 in torch 2.13)
    "newest": {"opset_version": onnx.defs.onnx_opset_version()},  # Attention, GroupNormalization
    "legacy-13": {"dynamo": False, "opset_version": 13},
    "legacy-23": {"dynamo": False, "opset_version": 23},  # the TorchScript exporter's newest
}
# The TorchScript exporter writes attention (scaled_dot_product_attention) from opset 14 only.
NOT_EXPORTABLE = {("vit", "legacy-13"), ("causal_lm", "legacy-13")}


@cache
def exported(name: str, how: str) -> bytes:
    """Species ``name`` exported as ``how`` on an example of two rows (a fixed batch of 2)."""
    species = BY_NAME[name]
    model, (X, _) = species.model(), species.dataset()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (X[:2],), buffer, **EXPORTS[how])
    return buffer.getvalue()


CASES = [
    pytest.param(s.name, how, id=f"{s.name}-{how}")
    for s in ZOO
    for how in EXPORTS
    if (s.name, how) not in NOT_EXPORTABLE
]


@pytest.mark.parametrize(("name", "how"), CASES)
def test_exported_zoo_model_gives_the_torch_outputs_and_the_loop_surface(
    name: str, how: str, tmp_path: Path
) -> None:
    species = BY_NAME[name]
    model, (X, y) = species.model(), species.dataset()
    data = exported(name, how)
    loaded = uploads.load_model(data)  # the web upload's path
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    from_disk = model_files.load_model_file(path).model  # the command line's path
    with torch.no_grad():
        expected = model(X)
        for module in (loaded, from_disk):
            out = module(X)
            scale = float(expected.abs().max())
            assert float((out - expected).abs().max()) <= 1e-5 * scale
        assert float(species.loss(loaded(X), y)) == pytest.approx(
            float(species.loss(expected, y)), rel=1e-5
        )
    d1, d2 = random_directions(loaded, seed=1), random_directions(loaded, seed=2)
    alphas, betas = [-0.5, 0.0, 0.5], [-0.25, 0.25]
    Z = surface_2d(Problem(loaded, species.loss, X, y), d1, d2, alphas, betas)
    Z_loop = reference_surface(loaded, species.loss, X, y, d1, d2, alphas, betas)
    np.testing.assert_allclose(Z, Z_loop, rtol=1e-5)
    assert Z_loop.std() > 0  # the directions move the loss


def test_token_ids_work_as_integers_and_as_the_floats_a_table_holds() -> None:
    species = BY_NAME["causal_lm"]
    model, (ids, _) = species.model(), species.dataset()
    loaded = uploads.load_model(exported("causal_lm", "default"))
    assert loaded.integer_input
    with torch.no_grad():
        expected = model(ids)
        for given in (ids, ids.double(), ids.float()):
            torch.testing.assert_close(loaded(given), expected, rtol=1e-5, atol=1e-5)


def test_fixed_batch_export_runs_any_number_of_rows() -> None:
    """The default export fixes the batch at the example's 2 rows; 1, 3 and 5 rows run in
    pieces (the last padded and cut off) and give the rows' own outputs."""
    species = BY_NAME["vit"]
    model, (X, _) = species.model(), species.dataset()
    loaded = uploads.load_model(exported("vit", "default"))
    assert loaded.batch == 2
    with torch.no_grad():
        for rows in (1, 3, 5):
            torch.testing.assert_close(loaded(X[:rows]), model(X[:rows]), rtol=1e-5, atol=1e-6)


def test_batch_norm_folded_by_the_exporter_is_carried() -> None:
    """The TorchScript exporter folds eval-mode BatchNorm into the convolutions and shares one
    zero bias among them through Identity nodes: each convolution gets its own copy."""
    loaded = uploads.load_model(exported("resnet_bn", "legacy-13"))
    convolutions = [m for m in loaded.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convolutions) == 5
    assert all(conv.bias is not None for conv in convolutions)


def attention_model(**attributes: object) -> bytes:
    """``out = Attention(x, x, x, mask)``, x (N, L, heads E) with 2 query and 2 key heads."""
    nodes = [onnx.helper.make_node("Attention", ["x", "x", "x", "mask"], ["h"], **attributes)]
    nodes += [onnx.helper.make_node("Add", ["h", "w"], ["out"])]
    mask = np.tril(np.ones((5, 5), bool)) | np.eye(5, k=2, dtype=bool)
    graph = onnx.helper.make_graph(
        nodes,
        "attention",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 5, 8])],
        [onnx.helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, None)],
        initializer=[
            onnx.numpy_helper.from_array(mask, "mask"),
            onnx.numpy_helper.from_array(np.zeros(1, np.float32), "w"),
        ],
    )
    opset = [onnx.helper.make_opsetid("", 23)]
    return onnx.helper.make_model(graph, opset_imports=opset).SerializeToString()


@pytest.mark.parametrize("causal", [0, 1])
def test_attention_with_heads_in_the_last_axis_and_a_boolean_mask(causal: int) -> None:
    loaded = uploads.load_model(
        attention_model(q_num_heads=2, kv_num_heads=2, is_causal=causal, scale=0.5)
    )
    x = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0))
    heads = x.reshape(3, 5, 2, 4).transpose(1, 2)
    mask = torch.as_tensor(np.tril(np.ones((5, 5), bool)) | np.eye(5, k=2, dtype=bool))
    if causal:
        mask = mask & torch.ones(5, 5, dtype=torch.bool).tril()
    expected = torch.nn.functional.scaled_dot_product_attention(
        heads, heads, heads, attn_mask=mask, scale=0.5
    )
    with torch.no_grad():
        out = loaded(x)
    torch.testing.assert_close(out, expected.transpose(1, 2).reshape(3, 5, 8))


def test_group_normalization_of_opset_18_scales_each_group() -> None:
    """Opset 18's GroupNormalization takes one scale and bias per group."""
    node = onnx.helper.make_node(
        "GroupNormalization", ["x", "scale", "bias"], ["out"], num_groups=2, epsilon=1e-5
    )
    scale, bias = np.array([2.0, 3.0], np.float32), np.array([0.5, -1.0], np.float32)
    graph = onnx.helper.make_graph(
        [node],
        "group_norm",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 4, 3])],
        [onnx.helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, None)],
        initializer=[
            onnx.numpy_helper.from_array(scale, "scale"),
            onnx.numpy_helper.from_array(bias, "bias"),
        ],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    loaded = uploads.load_model(model.SerializeToString())
    x = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(1))
    expected = torch.nn.functional.group_norm(
        x, 2, torch.tensor([2.0, 2.0, 3.0, 3.0]), torch.tensor([0.5, 0.5, -1.0, -1.0])
    )
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected)


def test_an_output_the_interpreter_does_not_compute_is_refused_by_name() -> None:
    """A Dropout's mask (its second output) read by a later node: refused at loading."""
    nodes = [
        onnx.helper.make_node("Dropout", ["x"], ["h", "kept"]),
        onnx.helper.make_node("Cast", ["kept"], ["k"], to=onnx.TensorProto.FLOAT),
        onnx.helper.make_node("Mul", ["h", "k"], ["out"]),
    ]
    graph = onnx.helper.make_graph(
        nodes,
        "dropout",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 4])],
        [onnx.helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, None)],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    with pytest.raises(ValueError, match="Cast node reads 'kept', which no node before it"):
        uploads.load_model(model.SerializeToString())
