"""Surfaces at scale without Ray: batched data, shards, checkpoints, surface files, model files,
and the ``convexify`` command line end to end (tests/test_scale_ray.py runs the Ray side)."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape import cli
from landscape.engine.directions import parameters_of, random_directions
from landscape.engine.nets import MultiBranchNet, mlp
from landscape.engine.problem import Problem
from landscape.engine.surface import surface_2d, surface_points
from landscape.files import data_files, model_files, results, surface_files
from landscape.files.data_files import ArrayData, NpzStream
from landscape.server import cluster
from landscape.studies.branches import branch_gap
from landscape.studies.lab import lab

GRID = np.linspace(-1.0, 1.0, 7)


def small_problem(dtype=torch.float64, n=53, kind="mlp", seed=0):
    """A small classification problem: model, X (n, 5), y (n,), d1, d2."""
    torch.manual_seed(seed)
    model = (mlp(5, 3, [6], "tanh") if kind == "mlp" else MultiBranchNet(5, 3, 4, 3, 1)).to(dtype)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5))
    y = rng.integers(0, 3, n)
    d1 = random_directions(model, 0)
    d2 = random_directions(model, 1)
    return model, X, y, d1, d2


def job_for(model, X, y, d1, d2, **options):
    return cluster.SurfaceJob(
        model=model,
        loss="cross_entropy",
        data=ArrayData(X, y),
        center=parameters_of(model),
        d1=d1,
        d2=d2,
        alphas=GRID,
        betas=GRID,
        **options,
    )


def reference(model, X, y, d1, d2):
    dtype = next(model.parameters()).dtype
    problem = Problem(model, F.cross_entropy, torch.as_tensor(X, dtype=dtype), torch.as_tensor(y))
    return surface_2d(problem, d1, d2, GRID, GRID)


# --------------------------------------------------------------------------------------------
# Batched data


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_batched_data_equals_one_batch(dtype, rtol) -> None:
    model, X, y, d1, d2 = small_problem(dtype)
    one = cluster.compute_rows(job_for(model, X, y, d1, d2), 0, len(GRID))
    np.testing.assert_array_equal(one, reference(model, X, y, d1, d2))  # one batch: exact
    row = ArrayData(X, y).row_bytes()
    batched = job_for(model, X, y, d1, d2, data_budget=7 * row)  # 8 batches, the last of 4
    assert data_files.batch_rows(batched.data, batched.data_budget) == 7
    np.testing.assert_allclose(cluster.compute_rows(batched, 0, len(GRID)), one, rtol=rtol)


@pytest.mark.parametrize("kind", ["mlp", "multibranch"])
def test_problem_batch_rows_accumulate_the_one_batch_surface(kind) -> None:
    model, X, y, d1, d2 = small_problem(torch.float64, kind=kind)
    whole = Problem(model, F.cross_entropy, X, torch.as_tensor(y))
    batched = Problem(model, F.cross_entropy, X, torch.as_tensor(y), batch_rows=10)
    assert batched.batch_rows == 10 and [round(w * 53) for _, w in batched.batches()] == [
        10,
        10,
        10,
        10,
        10,
        3,
    ]
    fractions = []
    Z = surface_2d(batched, d1, d2, GRID, GRID, progress=lambda f, s: fractions.append(f))
    np.testing.assert_allclose(Z, surface_2d(whole, d1, d2, GRID, GRID), rtol=1e-12)
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    coords = np.array([[0.1, -0.3], [0.5, 0.5]])
    np.testing.assert_allclose(
        surface_points(batched, d1, d2, coords), surface_points(whole, d1, d2, coords), rtol=1e-12
    )
    assert Problem(model, F.cross_entropy, X, torch.as_tensor(y), batch_rows=99).batch_rows is None
    with pytest.raises(ValueError, match="batch_rows"):
        Problem(model, F.cross_entropy, X, torch.as_tensor(y), batch_rows=0)


def test_batched_mse_with_scalar_targets() -> None:
    torch.manual_seed(1)
    model = mlp(3, 1, [4], "tanh").double()
    X = np.random.default_rng(1).standard_normal((40, 3))
    y = X[:, 0] - 2 * X[:, 1]
    d1, d2 = random_directions(model, 0), random_directions(model, 1)
    job = cluster.SurfaceJob(
        model, "mse", ArrayData(X, y), parameters_of(model), d1, d2, GRID, GRID, data_budget=9 * 32
    )
    problem = Problem(model, F.mse_loss, torch.as_tensor(X), torch.as_tensor(y)[:, None])
    expected = surface_2d(problem, d1, d2, GRID, GRID)
    np.testing.assert_allclose(cluster.compute_rows(job, 0, len(GRID)), expected, rtol=1e-12)


def test_npz_stream_reads_the_file_in_batches(tmp_path) -> None:
    model, X, y, d1, d2 = small_problem()
    path = tmp_path / "data.npz"
    np.savez_compressed(path, X=X, y=y)
    row = ArrayData(X, y).row_bytes()
    stream = data_files.open_data(path, budget=10 * row)
    assert isinstance(stream, NpzStream) and stream.n == len(X)
    batches = list(stream.batches(10))
    assert [len(b[0]) for b in batches] == [10] * 5 + [3]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), X)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    assert isinstance(data_files.open_data(path), ArrayData)  # fits the default budget
    job = cluster.SurfaceJob(
        model,
        "cross_entropy",
        stream,
        parameters_of(model),
        d1,
        d2,
        GRID,
        GRID,
        data_budget=10 * row,
    )
    np.testing.assert_allclose(
        cluster.compute_rows(job, 0, len(GRID)), reference(model, X, y, d1, d2), rtol=1e-12
    )


def test_data_file_with_an_object_array_is_refused(tmp_path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, X=np.array([object()], dtype=object), y=np.zeros(1))
    with pytest.raises(ValueError, match="object arrays"):
        data_files.open_data(path)


# --------------------------------------------------------------------------------------------
# Shards and checkpoints in-process


def test_shards_assemble_the_in_process_surface() -> None:
    model, X, y, d1, d2 = small_problem(torch.float32, kind="multibranch")
    whole = cluster.run_surface(job_for(model, X, y, d1, d2))
    assert whole.shards == [(0, 7)]
    np.testing.assert_array_equal(whole.surface, reference(model, X, y, d1, d2))
    sharded = cluster.run_surface(job_for(model, X, y, d1, d2), shard_rows=2)
    assert sharded.shards == [(0, 2), (2, 4), (4, 6), (6, 7)]
    np.testing.assert_array_equal(sharded.surface, whole.surface)  # rows are independent
    model, X, y, d1, d2 = small_problem(torch.float32, kind="mlp")
    np.testing.assert_allclose(
        cluster.run_surface(job_for(model, X, y, d1, d2), shard_rows=3).surface,
        reference(model, X, y, d1, d2),
        rtol=1e-6,
    )


def test_checkpoint_resumes_with_only_the_missing_shards(tmp_path) -> None:
    model, X, y, d1, d2 = small_problem()
    job = job_for(model, X, y, d1, d2)
    seen = []

    def interrupt(points: int) -> None:
        seen.append(points)
        if points > 3 * len(GRID):  # in the second shard: the first is on disk
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cluster.run_surface(job, shard_rows=3, checkpoint=tmp_path, points_done=interrupt)
    stored = sorted(p.name for p in tmp_path.glob("rows-*.npy"))
    assert stored == ["rows-000000-000003.npy"]
    resumed = cluster.run_surface(job_for(model, X, y, d1, d2), checkpoint=tmp_path)
    assert resumed.shards == [(0, 3), (3, 6), (6, 7)]  # the plan stored in the manifest
    assert resumed.computed == [(3, 6), (6, 7)]
    uninterrupted = cluster.run_surface(job_for(model, X, y, d1, d2), shard_rows=3)
    np.testing.assert_array_equal(resumed.surface, uninterrupted.surface)
    np.testing.assert_allclose(resumed.surface, reference(model, X, y, d1, d2), rtol=1e-12)
    again = cluster.run_surface(job_for(model, X, y, d1, d2), checkpoint=tmp_path)
    assert again.computed == []
    np.testing.assert_array_equal(again.surface, resumed.surface)
    other = job_for(model, X, y, d2, d1)  # another plane: refused
    with pytest.raises(ValueError, match="another computation"):
        cluster.run_surface(other, checkpoint=tmp_path)


def test_job_validation_names_the_field() -> None:
    model, X, y, d1, d2 = small_problem()
    with pytest.raises(ValueError, match="loss must be one of"):
        cluster.SurfaceJob(model, "hinge", ArrayData(X, y), d1, d1, d2, GRID, GRID)
    with pytest.raises(ValueError, match="threads"):
        job_for(model, X, y, d1, d2, threads=0)
    with pytest.raises(ValueError, match="shard_rows"):
        cluster.plan_shards(5, 0)


# --------------------------------------------------------------------------------------------
# Surface files


def surface_file(**extra) -> surface_files.SurfaceFile:
    grid = np.linspace(-1, 1, 5)
    Z = np.add.outer(grid**2, grid**2)
    return surface_files.SurfaceFile(grid, grid, Z, metadata={"seed": 3}, **extra)


def test_surface_file_round_trip() -> None:
    ts = np.linspace(-1, 1, 4)
    coarse = np.linspace(-1, 1, 2)
    full = surface_file(
        slice_ts=ts,
        slice_d1=ts**2,
        slice_d2=2 * ts**2,
        curvature_alphas=coarse,
        curvature_betas=coarse,
        lambda_min=np.ones((2, 2)),
        lambda_max=2 * np.ones((2, 2)),
        curvature_ratio=0.5 * np.ones((2, 2)),
    )
    back = surface_files.load_surface(surface_files.surface_bytes(full))
    assert back.metadata == {"format": surface_files.FORMAT, "seed": 3}
    for name in surface_files.ARRAY_FIELDS:
        np.testing.assert_array_equal(getattr(back, name), getattr(full, name))
    plain = surface_files.load_surface(surface_files.surface_bytes(surface_file()))
    assert plain.slice_ts.size == 0 and plain.curvature_ratio.size == 0


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


GOOD = {"alphas": np.linspace(0, 1, 3), "betas": np.linspace(0, 1, 4), "loss": np.ones((3, 4))}


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({**GOOD, "loss": np.ones((4, 3))}, "shape"),
        ({**GOOD, "loss": np.full((3, 4), np.nan)}, "NaN"),
        ({**GOOD, "alphas": np.array([0.0, 0.0, 1.0])}, "increasing"),
        ({**GOOD, "extra": np.ones(2)}, "unknown arrays"),
        ({"alphas": GOOD["alphas"], "betas": GOOD["betas"]}, "'loss'"),
        ({**GOOD, "metadata": np.array('{"format": "other"}')}, "format"),
        ({**GOOD, "metadata": np.array("not json")}, "JSON"),
        ({**GOOD, "slice_ts": np.linspace(0, 1, 3)}, "lacks"),
        ({**GOOD, "loss": np.array(["a"] * 12).reshape(3, 4)}, "numeric"),
    ],
)
def test_surface_file_validation(arrays, message) -> None:
    with pytest.raises(ValueError, match=message):
        surface_files.load_surface(npz(**arrays))


def test_surface_file_size_limits() -> None:
    with pytest.raises(ValueError, match="at most"):
        surface_files.load_surface(b"x" * 100, max_bytes=10)
    with pytest.raises(ValueError, match="not an NPZ"):
        surface_files.load_surface(b"hello")
    big = npz(**{**GOOD, "loss": np.zeros((3, 4))}, **{})
    bomb = io.BytesIO()  # small on disk, large once unpacked
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        with zipfile.ZipFile(io.BytesIO(big)) as source:
            for name in source.namelist():
                archive.writestr(name, source.read(name))
        archive.writestr("loss_big.npy", b"\0" * (surface_files.MAX_UNCOMPRESSED_BYTES + 1))
    with pytest.raises(ValueError, match="unpack"):
        surface_files.load_surface(bomb.getvalue())


class Payload:
    """Unpickling this writes a file: the proof that a loader ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_malicious_surface_and_data_files_run_nothing(tmp_path) -> None:
    marker = tmp_path / "pwned"
    evil = np.array([Payload(marker)], dtype=object)
    with pytest.raises(ValueError, match="object arrays|numeric"):
        surface_files.load_surface(npz(**GOOD, metadata=evil))
    with pytest.raises(ValueError, match="object arrays"):
        surface_files.load_surface(npz(**{**GOOD, "loss": evil}))
    path = tmp_path / "data.npz"
    np.savez(path, X=evil, y=np.zeros(1))
    with pytest.raises(ValueError, match="object arrays"):
        data_files.open_data(path)
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# Model files


def test_pickled_checkpoints_are_refused_and_run_nothing(tmp_path) -> None:
    marker = tmp_path / "pwned"
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(Payload(marker)))
    zipped = tmp_path / "model.pt"
    torch.save({"payload": Payload(marker), "weights": torch.ones(2)}, zipped)
    assert not marker.exists()
    for path in (raw, zipped):
        with pytest.raises(ValueError, match="pickled checkpoint"):
            model_files.load_model_file(path)
    assert not marker.exists()
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["surface", "--help"])


def saved_models(tmp_path: Path, model: nn.Module) -> dict[str, Path]:
    """The model as TorchScript and as a .pt2 export with a dynamic batch dimension."""
    model = model.eval()
    paths = {"torchscript": tmp_path / "model.ts", "pt2": tmp_path / "model.pt2"}
    torch.jit.save(torch.jit.script(model), paths["torchscript"])
    example = torch.zeros(4, 5, dtype=next(model.parameters()).dtype)
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, paths["pt2"])
    return paths


def onnx_mlp(model: nn.Sequential) -> bytes:
    """``model`` (Linear and Tanh layers) as ONNX: Gemm nodes with transB=1, batch dimension
    symbolic."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers, current = [], [], "x"
    for k, layer in enumerate(model):
        out = "out" if k == len(model) - 1 else f"h{k}"
        if isinstance(layer, nn.Linear):
            for name in ("weight", "bias"):
                array = getattr(layer, name).detach().float().numpy()
                initializers.append(numpy_helper.from_array(array, f"{k}.{name}"))
            nodes.append(
                helper.make_node("Gemm", [current, f"{k}.weight", f"{k}.bias"], [out], transB=1)
            )
        else:
            nodes.append(helper.make_node("Tanh", [current], [out]))
        current = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", model[0].in_features])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        initializer=initializers,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx_model.SerializeToString()


@pytest.mark.parametrize("kind", ["onnx", "torchscript", "pt2"])
def test_local_model_formats_give_the_same_surface(tmp_path, kind) -> None:
    model, X, y, _, _ = small_problem(torch.float32)
    paths = saved_models(tmp_path, model)
    paths["onnx"] = tmp_path / "model.onnx"
    paths["onnx"].write_bytes(onnx_mlp(model))
    path = paths[kind]
    loaded = model_files.load_model_file(path)
    assert loaded.format == kind and len(loaded.digest) == 64
    names = [n for n, _ in loaded.model.named_parameters()]
    d1, d2 = random_directions(loaded.model, 0), random_directions(loaded.model, 1)
    got = reference(loaded.model, X, y, d1, d2)
    rename = dict(zip(names, [n for n, _ in model.named_parameters()], strict=True))
    mine = {rename[k]: v for k, v in d1.items()}, {rename[k]: v for k, v in d2.items()}
    np.testing.assert_allclose(got, reference(model, X, y, *mine), rtol=1e-6)
    job = job_for(loaded.model, X, y, d1, d2, model_file=(loaded.format, loaded.data))
    copy = pickle.loads(pickle.dumps(job))  # what a Ray worker receives: the file, reloaded
    np.testing.assert_allclose(cluster.compute_rows(copy, 0, len(GRID)), got, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# The command line


def test_cli_surface_end_to_end(tmp_path, capsys) -> None:
    model, X, y, _, _ = small_problem(torch.float32, n=60)
    paths = saved_models(tmp_path, model)
    np.savez(tmp_path / "data.npz", X=X.astype(np.float32), y=y)
    out = tmp_path / "surface.npz"
    argv = [
        "surface", "--model", str(paths["torchscript"]), "--data", str(tmp_path / "data.npz"),
        "--loss", "cross_entropy", "--directions", "filter", "--range", "0.5", "--resolution",
        "9", "--out", str(out), "--seed", "2", "--slices", "5", "--curvature", "2",
        "--no-progress", "--checkpoint", str(tmp_path / "ck"), "--shard-rows", "4",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    stored = surface_files.load_surface(out.read_bytes())
    meta = stored.metadata
    assert meta["model_sha256"] == data_files.file_digest(paths["torchscript"])
    assert meta["data_sha256"] == data_files.file_digest(tmp_path / "data.npz")
    assert meta["direction_seeds"] == [4, 5] and meta["resolution"] == 9
    assert meta["shards"] == 3 and meta["versions"]["torch"] == torch.__version__
    assert meta["command"].startswith("convexify surface --model")
    loaded = model_files.load_model_file(paths["torchscript"]).model
    d1 = random_directions(loaded, 4, "filter")
    d2 = random_directions(loaded, 5, "filter")
    grid = np.linspace(-0.5, 0.5, 9)
    problem = Problem(loaded, F.cross_entropy, torch.as_tensor(X, dtype=torch.float32), y)
    expected = surface_2d(problem, d1, d2, grid, grid)
    np.testing.assert_allclose(stored.loss, expected, rtol=1e-6)
    np.testing.assert_allclose(stored.slice_d1[2], stored.loss[4, 4], rtol=1e-6)  # t = 0
    assert stored.lambda_min.shape == (2, 2)
    # the same command again: every shard from the checkpoint, the same numbers
    assert cli.main(argv) == 0
    again = surface_files.load_surface(out.read_bytes())
    assert again.metadata["shards_computed"] == 0
    np.testing.assert_array_equal(again.loss, stored.loss)
    # the Lab opens it
    result, meta = lab.open_surface_file(out.read_bytes())
    np.testing.assert_array_equal(result.surface, stored.loss)
    np.testing.assert_array_equal(result.slice_d2, stored.slice_d2)
    np.testing.assert_array_equal(result.curvature_ratio, stored.curvature_ratio)
    assert meta["model_sha256"] == stored.metadata["model_sha256"]
    assert result.center_loss == stored.loss[4, 4] and result.n_samples == 60
    from landscape.studies.lab import figures

    for draw in (figures.lab_surface, figures.lab_slices, figures.lab_curvature):
        assert draw(result).data  # the Lab's figures draw an opened file


def test_cli_curvature_in_batches_equals_one_pass_and_reports_states(tmp_path) -> None:
    model, X, y, _, _ = small_problem(torch.float32, n=60)
    paths = saved_models(tmp_path, model)
    np.savez(tmp_path / "data.npz", X=X.astype(np.float32), y=y)
    stored = {}
    for rows in (0, 7):
        out = tmp_path / f"surface{rows}.npz"
        argv = [
            "surface", "--model", str(paths["torchscript"]), "--data",
            str(tmp_path / "data.npz"), "--loss", "cross_entropy", "--resolution", "3",
            "--out", str(out), "--curvature", "2", "--curvature-batch-rows", str(rows),
            "--no-progress",
        ]  # fmt: skip
        assert cli.main(argv) == 0
        stored[rows] = surface_files.load_surface(out.read_bytes())
    one, batched = stored[0], stored[7]
    np.testing.assert_allclose(batched.lambda_min, one.lambda_min, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(batched.lambda_max, one.lambda_max, rtol=1e-4, atol=1e-7)
    states = np.array(batched.metadata["curvature_state"])
    assert states.shape == (2, 2) and set(np.unique(states)) <= {-1, 0}
    rayleigh = np.array(batched.metadata["curvature_rayleigh"])
    assert np.all(rayleigh[states == -1] < 0)
    assert batched.metadata["curvature_batch_rows"] == 7


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys) -> None:
    torch.save({"w": torch.ones(1)}, tmp_path / "model.pt")
    np.savez(tmp_path / "data.npz", X=np.ones((3, 2)), y=np.zeros(3, dtype=int))
    argv = ["surface", "--model", str(tmp_path / "model.pt"), "--data", str(tmp_path / "data.npz")]
    code = cli.main([*argv, "--loss", "mse", "--out", str(tmp_path / "s.npz")])
    assert code == 2
    assert "pickled checkpoint" in capsys.readouterr().err


def test_sweep_params_are_typed_like_the_config() -> None:
    parsed = cli.parse_params(
        branch_gap.Config, ["--branch-counts", "1,2", "--restarts", "2", "--lr", "0.1"]
    )
    assert parsed == {"branch_counts": (1, 2), "restarts": 2, "lr": 0.1}
    with pytest.raises(ValueError, match="unknown parameter"):
        cli.parse_params(branch_gap.Config, ["--nope", "1"])
    with pytest.raises(ValueError, match="restarts must be like"):
        cli.parse_params(branch_gap.Config, ["--restarts", "many"])


def test_cli_sweep_writes_a_run_file_the_page_loads(tmp_path) -> None:
    out = tmp_path / "gap.json"
    argv = ["sweep", "gap-vs-I", "--out", str(out), "--no-progress"]
    params = ["--branch-counts", "1,2", "--restarts", "2", "--steps", "30", "--n", "8"]
    assert cli.main([*argv, *params]) == 0
    config, result = results.load_run_file(out.read_bytes(), branch_gap)
    assert config.branch_counts == (1, 2) and config.restarts == 2
    direct = branch_gap.run(config)
    np.testing.assert_allclose(result.primal_restarts, direct.primal_restarts)
    assert json.loads(out.read_text())["study"] == branch_gap.__name__


def test_ray_address_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(cluster.RAY_ADDRESS_VARIABLE, "ray://head:10001")
    assert cluster.default_address() == "ray://head:10001"
    monkeypatch.delenv(cluster.RAY_ADDRESS_VARIABLE)
    assert cluster.default_address() == ""
    assert os.environ.get(cluster.RAY_ADDRESS_VARIABLE) is None


def test_compute_on_is_offered_with_ray_and_hidden_without(monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    from ui.runner import clear_cache

    app = str(Path(__file__).resolve().parents[1] / "app.py")
    clear_cache()
    monkeypatch.setenv(cluster.RAY_ADDRESS_VARIABLE, "auto")  # checked when a run joins it
    at = AppTest.from_file(app, default_timeout=120)
    at.run()
    labels = [r.label for r in at.radio]
    assert "Compute on" in labels
    at.radio(key="compute_on").set_value("Ray cluster").run()
    assert at.session_state["settings"].compute_on == "auto"
    monkeypatch.setattr(cluster, "ray_available", lambda: False)
    hidden = AppTest.from_file(app, default_timeout=120)
    hidden.run()
    assert "Compute on" not in [r.label for r in hidden.radio]
    assert hidden.session_state["settings"].compute_on == ""


def test_small_resnet_shapes_and_hoisted_stem() -> None:
    from landscape.engine.nets import SmallResNet
    from landscape.engine.surface import path_taken

    torch.manual_seed(0)
    model = SmallResNet()
    X = torch.rand(6, 784)
    assert model(X).shape == (6, 10)
    assert sum(p.numel() for p in model.parameters()) == 4026
    problem = Problem(model, F.cross_entropy, X, torch.arange(6))
    assert path_taken(problem) == "vmap, hoisted: stem (Conv2d)"
    d1, d2 = random_directions(model, 0), random_directions(model, 1)
    grid = np.array([-0.5, 0.5])
    Z = surface_2d(problem, d1, d2, grid, grid)
    looped = surface_2d(problem, d1, d2, grid, grid, method="loop")
    np.testing.assert_allclose(Z, looped, rtol=1e-5)
    with pytest.raises(ValueError, match="channels"):
        SmallResNet(channels=0)


def test_cli_streams_data_over_its_budget(tmp_path) -> None:
    """Data over ``--data-budget`` is read from disk in batches: the same surface to rounding."""
    model, X, y, _, _ = small_problem(torch.float32, n=300)
    path = saved_models(tmp_path, model)["pt2"]
    np.savez_compressed(tmp_path / "data.npz", X=X.astype(np.float32), y=y)
    common = ["surface", "--model", str(path), "--data", str(tmp_path / "data.npz")]
    common += ["--loss", "cross_entropy", "--resolution", "5", "--no-progress", "--threads", "1"]
    assert cli.main([*common, "--out", str(tmp_path / "whole.npz")]) == 0
    budget = str(40 * 28 / 2**20)  # 40 rows of 5 float32 + one int64 label per batch
    streamed_argv = ["--out", str(tmp_path / "streamed.npz"), "--data-budget", budget]
    assert cli.main([*common, *streamed_argv]) == 0
    whole = surface_files.load_surface((tmp_path / "whole.npz").read_bytes())
    streamed = surface_files.load_surface((tmp_path / "streamed.npz").read_bytes())
    assert not whole.metadata["data_streamed"] and streamed.metadata["data_streamed"]
    assert streamed.metadata["data_sha256"] == whole.metadata["data_sha256"]
    np.testing.assert_allclose(streamed.loss, whole.loss, rtol=2e-6)
