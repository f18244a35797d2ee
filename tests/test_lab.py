"""The Landscape Lab study: validation, consistency of its numbers, uploads, divergence."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from landscape.engine.nets import mlp
from landscape.files import uploads
from landscape.server import study_parts
from landscape.studies.lab import curvature as lab_curvature
from landscape.studies.lab import lab, reuse
from landscape.studies.lab import plane as lab_plane
from landscape.studies.lab import training as lab_training

SMALL = {
    "branches": 3,
    "width": 4,
    "epochs": 8,
    "resolution": 7,
    "curvature_resolution": 2,
    "lanczos_iterations": 4,
    "dataset": "iris",
}


def small(**changes) -> lab.Config:
    return lab.Config(**{**SMALL, **changes})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"model": "cnn"}, "model"),
        ({"resolution": 103}, "resolution"),
        ({"resolution": 30.5}, "resolution must be an integer"),
        ({"span": 0.0}, "span"),
        ({"curvature_resolution": 1}, "curvature_resolution"),
        ({"lr": 2.0}, "lr"),
        ({"directions": "pca", "epochs": 2}, "epochs"),
        ({"model": "upload"}, "model_upload"),
        ({"dataset": "upload", "data_upload": "0" * 64, "data_name": "x.txt"}, "data_upload"),
        (
            {"directions": "three_models", "model": "upload", "model_upload": "0" * 64},
            "three_models",
        ),
        ({"normalization": "unit"}, "normalization"),
    ],
)
def test_validation_names_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        small(**changes).validate()


def test_default_config_is_valid() -> None:
    lab.Config().validate()


@pytest.mark.slow
@pytest.mark.parametrize("directions", ["random", "pca", "three_models"])
def test_numbers_agree_with_each_other(directions: str) -> None:
    result = lab.run(small(directions=directions))
    even = lab.run(small(directions=directions, resolution=8, curvature_resolution=0))
    assert even.center_loss == pytest.approx(result.center_loss, rel=1e-6)  # off the grid
    assert not result.diverged
    R = SMALL["resolution"]
    assert result.surface.shape == (R, R) and np.all(np.isfinite(result.surface))
    middle = (R - 1) // 2
    assert result.alphas[middle] == pytest.approx(0.0, abs=1e-12)
    # The centre by three different evaluations: the grid, the 3x3 finite-difference grid, slices.
    assert result.surface[middle, middle] == pytest.approx(result.center_loss, rel=1e-6)
    zero = np.argmin(np.abs(result.slice_ts))
    assert result.slice_d1[zero] == pytest.approx(result.center_loss, rel=1e-6)
    assert result.slice_d2[zero] == pytest.approx(result.center_loss, rel=1e-6)
    assert result.curvature_ratio.shape == (2, 2)
    assert np.all(result.lambda_min <= result.lambda_max)
    assert result.slice_hessian.shape == (2, 2)
    assert 0 < result.train_accuracy <= 1
    if directions == "random":
        # The centre is the trained model: the interpolation reaches it at t = 1.
        one = np.argmin(np.abs(result.interpolation_ts - 1))
        assert result.interpolation[one] == pytest.approx(result.center_loss, rel=1e-6)
    if directions == "pca":
        np.testing.assert_allclose(result.trajectory[-1], 0.0, atol=1e-9)
        assert result.trajectory_loss[-1] == pytest.approx(result.center_loss, rel=1e-6)
        assert 0 < result.explained_variance.sum() <= 1 + 1e-9
    if directions == "three_models":
        assert result.model_points.shape == (3, 2) and result.model_losses.shape == (3,)
        # Model 0 is the model the random-direction run trains: same seed, same loss.
        reference = lab.run(small(directions="random"))
        assert result.model_losses[0] == pytest.approx(reference.center_loss, rel=1e-5)


def test_sub_sampled_slices_have_a_band() -> None:
    result = lab.run(small(sample_size=40, curvature_resolution=0))
    assert result.slice_d1_std.shape == result.slice_d1.shape
    assert np.all(result.slice_d1_std >= 0) and np.any(result.slice_d1_std > 0)
    assert result.curvature_ratio.size == 0


def onnx_mlp(model: nn.Sequential) -> bytes:
    """An MLP (Linear and ReLU layers) as ONNX bytes: Gemm nodes with transB=1, opset 17."""
    nodes, initializers, current = [], [], "x"
    for k, layer in enumerate(model):
        out = "out" if k == len(model) - 1 else f"h{k}"
        if isinstance(layer, nn.Linear):
            names = [f"{k}.weight", f"{k}.bias"]
            for name, tensor in zip(names, (layer.weight, layer.bias), strict=True):
                initializers.append(numpy_helper.from_array(tensor.detach().numpy(), name))
            nodes.append(helper.make_node("Gemm", [current, *names], [out], transB=1))
        else:
            nodes.append(helper.make_node("Relu", [current], [out]))
        current = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", model[0].in_features])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        initializer=initializers,
    )
    opset = [helper.make_opsetid("", 17)]
    return helper.make_model(graph, opset_imports=opset).SerializeToString()


@pytest.mark.slow
def test_uploaded_onnx_model_and_data_run_end_to_end_on_the_vmap_path() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    data = io.BytesIO()
    np.savez(data, X=X, y=y)
    common = dict(dataset="upload", data_upload=uploads.store(data.getvalue()), resolution=5)
    common["data_name"] = "mine.npz"
    reference = mlp(3, 2, [6])
    config = small(model="upload", model_upload=uploads.store(onnx_mlp(reference)), **common)
    result = lab.run(config)
    assert not result.diverged and result.surface_method.startswith("vmap")
    assert "Linear" in result.surface_method  # the first Gemm is hoisted like a built-in layer
    assert result.n_samples == 60 and result.task == "classification"
    assert result.n_parameters == sum(p.numel() for p in reference.parameters())
    assert np.all(np.isfinite(result.surface))
    # with no training, the centre's loss is the reference network's loss on the data
    untrained = lab.run(small(model="upload", model_upload=config.model_upload, epochs=0, **common))
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(
            reference(torch.as_tensor(X, dtype=torch.float32)), torch.as_tensor(y)
        )
    assert untrained.center_loss == pytest.approx(float(expected), rel=1e-5)


def test_uploaded_model_that_does_not_fit_the_data_is_a_value_error() -> None:
    config = small(model="upload", model_upload=uploads.store(onnx_mlp(mlp(5, 2, [6]))))
    with pytest.raises(ValueError, match="cannot run the data"):
        lab.run(config)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated
def test_uploaded_torchscript_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    target = tmp_path / "planted.bin"

    class Planted(nn.Module):
        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path
            self.weight = nn.Parameter(torch.ones(3, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            planted = torch.from_file(self.path, True, 16)
            return x @ self.weight.T + 0 * planted.sum()

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Planted(str(target))), buffer)
    config = small(model="upload", model_upload=uploads.store(buffer.getvalue()))
    with pytest.raises(ValueError, match="ONNX"):
        lab.run(config)
    assert not target.exists()


def test_regression_that_overflows_reports_divergence() -> None:
    X = np.random.default_rng(0).standard_normal((30, 2))
    y = np.full(30, 1e25)  # squared error overflows float32
    text = "a,b,y\n" + "\n".join(f"{a},{b},{t}" for (a, b), t in zip(X, y, strict=True))
    config = small(
        model="mlp",
        dataset="upload",
        data_upload=uploads.store(text.encode()),
        data_name="big.csv",
    )
    result = lab.run(config)
    assert result.diverged and "diverged" in result.message
    assert result.surface.size == 0


def test_surface_downloads_round_trip() -> None:
    result = lab.run(small(curvature_resolution=0))
    with np.load(io.BytesIO(lab.surface_npz(result)), allow_pickle=False) as archive:
        np.testing.assert_array_equal(archive["loss"], result.surface)
        np.testing.assert_array_equal(archive["alphas"], result.alphas)
    rows = np.loadtxt(io.StringIO(lab.surface_csv(result)), delimiter=",", skiprows=1)
    assert rows.shape == (result.surface.size, 3)
    np.testing.assert_allclose(rows[:, 2].reshape(result.surface.shape), result.surface, rtol=1e-9)
    np.testing.assert_allclose(rows[:: len(result.betas), 0], result.alphas, rtol=1e-9)


def test_runs_are_reproducible() -> None:
    a = lab.run(small(curvature_resolution=0))
    b = lab.run(small(curvature_resolution=0))
    np.testing.assert_array_equal(a.surface, b.surface)


@pytest.mark.slow
def test_regression_loss_at_the_initial_weights_is_the_mean_squared_error() -> None:
    """Independent check of the regression path: rebuild the seeded initial MLP by hand."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(40)
    text = "a,b,c,target\n" + "\n".join(
        ",".join(f"{v:.17g}" for v in (*row, t)) for row, t in zip(X, y, strict=True)
    )
    config = small(
        model="mlp",
        hidden=7,
        dataset="upload",
        data_upload=uploads.store(text.encode()),
        data_name="r.csv",
        seed=3,
        curvature_resolution=0,
    )
    result = lab.run(config)
    assert result.task == "regression" and np.isnan(result.train_accuracy)
    assert result.surface_method == "vmap, hoisted: 0 (Linear)"
    torch.manual_seed(3)
    initial = mlp(3, 1, [7, 7])
    with torch.no_grad():
        prediction = initial(torch.as_tensor(X, dtype=torch.float32)).double().numpy()[:, 0]
    expected = float(np.mean((prediction - y) ** 2))
    zero = np.argmin(np.abs(result.interpolation_ts))
    assert result.interpolation[zero] == pytest.approx(expected, rel=1e-5)
    assert result.loss_history[0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_slice_hessian_by_products_matches_finite_differences_for_a_smooth_net() -> None:
    result = lab.run(small(activation="tanh", curvature_resolution=0))
    scale = np.abs(result.slice_hessian).max()  # float64 differences, O(h^2) from the products
    np.testing.assert_allclose(result.slice_hessian_fd, result.slice_hessian, atol=1e-3 * scale)
    np.testing.assert_allclose(result.slice_eigenvalues, np.linalg.eigvalsh(result.slice_hessian))


@pytest.mark.slow
def test_moving_range_or_resolution_reuses_training_and_matches_a_fresh_run() -> None:
    """The trained models and the curvature are cached; the results equal a run from scratch."""
    from dataclasses import fields, replace

    import numpy as np

    from landscape.studies.lab import lab as study

    base = study.Config(
        epochs=5, branches=2, width=3, resolution=7, curvature_resolution=2, lanczos_iterations=3
    )
    study.run(base)
    key = study.training_key(base)
    trained = study_parts.kept(reuse.TRAINING.table, key)
    moved = replace(base, resolution=9, span=1.5)
    assert study.training_key(moved) == key
    cached = study.run(moved)
    assert study_parts.kept(reuse.TRAINING.table, key) is trained
    study.clear_caches()
    fresh = study.run(moved)
    for field in fields(fresh):
        if field.name.endswith("_seconds"):
            continue
        a, b = getattr(cached, field.name), getattr(fresh, field.name)
        if isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=field.name)
        elif not (isinstance(b, float) and np.isnan(b)):
            assert a == b, field.name


def _assert_same(
    a: lab.Result, b: lab.Result, names: list[str] | None = None, rtol: float = 0.0
) -> None:
    """Field by field (NaN equal to NaN), wall-clock timings aside; floats to ``rtol`` (arrays:
    of each element, or of the array's largest magnitude for elements near zero)."""
    from dataclasses import fields

    for name in names or [f.name for f in fields(b)]:
        if name.endswith("_seconds"):
            continue
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(y, np.ndarray) and y.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * _scale(y), err_msg=name)
        elif isinstance(y, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=name)
        elif isinstance(y, float):
            assert x == pytest.approx(y, rel=rtol, abs=0.0, nan_ok=True), name
        else:
            assert x == y, name


def _scale(array: np.ndarray) -> float:
    """The largest finite magnitude in ``array`` (0 when there is none)."""
    finite = np.abs(np.asarray(array, dtype=float))
    finite = finite[np.isfinite(finite)]
    return float(finite.max()) if finite.size else 0.0


def _counting(monkeypatch, module, name: str) -> list[int]:
    """Count the calls of ``module.<name>`` (still calling it)."""
    calls: list[int] = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


@pytest.mark.slow
def test_moving_the_range_trains_once_and_keeps_the_centre_evidence(monkeypatch) -> None:
    """A new range reuses the trained model and the centre's evidence (calls counted); only the
    surface, the slices and the curvature map are recomputed; the answer equals a run from
    scratch."""
    from dataclasses import replace

    from landscape.files import presets

    lab.clear_caches()
    trainings = _counting(monkeypatch, lab_training, "train_models")
    centres = _counting(monkeypatch, lab_curvature, "centre_evidence")
    maps = _counting(monkeypatch, lab_curvature, "curvature_group")
    base = small(curvature_resolution=2, lanczos_iterations=4, seed=3)
    lab.run(base)
    moved = lab.run(replace(base, span=1.7))
    assert (len(trainings), len(centres), len(maps)) == (1, 1, 2)
    lab.run(replace(base, span=1.7, resolution=9))
    assert (len(trainings), len(centres), len(maps)) == (1, 1, 2)
    lab.clear_caches()
    with presets.afresh():
        fresh = lab.run(replace(base, span=1.7))
    assert (len(trainings), len(centres), len(maps)) == (2, 2, 3)
    _assert_same(moved, fresh)


@pytest.mark.slow
def test_a_new_resolution_on_a_preset_takes_its_stored_curvature(monkeypatch) -> None:
    """Moving the resolution off a stored preset computes no curvature: the curvature and the
    evidence are the stored preset's (which tests/test_presets.py checks by what it claims);
    the surface at the new resolution equals one computed afresh (`TRAINED_RTOL`)."""
    from dataclasses import fields, replace

    from landscape.files import presets

    lab.clear_caches()
    maps = _counting(monkeypatch, lab_curvature, "curvature_group")
    centres = _counting(monkeypatch, lab_curvature, "centre_evidence")
    slices = _counting(monkeypatch, lab_plane, "slices")
    default = lab.Config()
    stored = presets.lookup(lab.__name__, default)
    assert stored is not None, "run: python -m landscape precompute landscape.studies.lab.lab"
    moved = lab.run(replace(default, resolution=45))
    assert (len(maps), len(centres), len(slices)) == (0, 0, 0)
    assert moved.surface.shape == (45, 45)
    groups = [f.name for g in (lab.Curvature, lab.Evidence) for f in fields(g)]
    _assert_same(moved, stored, groups)
    with presets.afresh():  # the parts kept from the presets are computed anew in there
        fresh = lab.run(replace(default, resolution=45, curvature_resolution=0))
    assert (len(centres), len(slices)) == (1, 1)
    # the surface at the new resolution is this run's, on the stored training; the slices are
    # the stored preset's; the fresh run trained anew (equal to `TRAINED_RTOL` on any machine)
    _assert_same(moved, fresh, [f.name for f in fields(lab.Surface)], TRAINED_RTOL)
    planes = [f.name for g in (lab.Plane, lab.Slices) for f in fields(g)]
    _assert_same(moved, fresh, planes, TRAINED_RTOL)


def test_training_steps_equal_torch_adam() -> None:
    """The Lab's training takes torch.optim.Adam's full-batch steps bit for bit (the trained
    weights of every stored preset were written by these steps)."""
    import copy

    config = small(epochs=7)
    data = lab_training.prepare_data(config)
    ours = lab_training.build_model(config, data.X, data.y, data.task, data.outputs, seed=1)
    theirs = copy.deepcopy(ours)
    losses, _ = lab_training.train(ours, data, config, lambda *a: None)
    optimiser = torch.optim.Adam(theirs.parameters(), lr=config.lr)
    reference = []
    for _ in range(config.epochs):
        optimiser.zero_grad()
        loss = data.loss_fn(theirs(data.X_t), data.y_t)
        loss.backward()
        optimiser.step()
        reference.append(float(loss.detach()))
    np.testing.assert_array_equal(losses, reference)
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_a_new_resolution_below_the_slice_points_keeps_the_slices(monkeypatch) -> None:
    """The slices have max(SLICE_POINTS, resolution) points: a new resolution below that
    reuses them (calls counted), one above recomputes them; each equals a fresh run."""
    from dataclasses import fields, replace

    from landscape.files import presets

    lab.clear_caches()
    slices = _counting(monkeypatch, lab_plane, "slices")
    base = small(seed=5)
    lab.run(base)
    moved = lab.run(replace(base, resolution=9))
    assert len(slices) == 1
    above = lab.run(replace(base, resolution=lab.SLICE_POINTS + 2))
    assert len(slices) == 2 and len(above.slice_ts) == lab.SLICE_POINTS + 2
    lab.clear_caches()
    with presets.afresh():
        fresh = lab.run(replace(base, resolution=9))
    _assert_same(moved, fresh, [f.name for f in fields(lab.Slices)])


def _assert_same_training(a: lab_training.Trained, b: lab_training.Trained, rtol: float) -> None:
    """Equal weights of every model, checkpoints and loss history, to ``rtol``."""
    assert len(a.models) == len(b.models) and len(a.trajectory) == len(b.trajectory)
    for x, y in zip(a.models, b.models, strict=True):
        p, q = x.state_dict(), y.state_dict()
        assert p.keys() == q.keys()
        for name in q:
            atol = rtol * _scale(q[name])
            np.testing.assert_allclose(p[name], q[name], rtol=rtol, atol=atol, err_msg=name)
    for c, d in zip(a.trajectory, b.trajectory, strict=True):
        assert c.keys() == d.keys()
        for name in d:
            atol = rtol * _scale(d[name])
            np.testing.assert_allclose(c[name], d[name], rtol=rtol, atol=atol, err_msg=name)
    np.testing.assert_allclose(a.history, b.history, rtol=rtol, atol=0.0)


# A stored training (computed by `python -m landscape precompute` on one machine) and the same
# training run here: bit for bit on that machine's stack, a little apart on another processor,
# BLAS or torch build, where float32 training takes other rounding. Measured with AVX-512
# kernels in place of the presets' AVX2: weights 6e-7 apart (2e-5 of the smallest, 5e-6 of each
# array's largest), surfaces and evidence 4e-5 relative at most. A restore gone wrong moves
# them by their own size.
TRAINED_RTOL = 1e-4


@pytest.mark.slow
def test_the_stored_training_is_the_training() -> None:
    """A configuration off the presets with a preset's training key restores that training
    (`lab_training.restored`): its models, checkpoints and loss history equal the training run anew
    (`presets.afresh`) to `TRAINED_RTOL`, and its start is the fresh training's start bit for
    bit (both are the model built from the seed) and, to rounding, its first checkpoint."""
    from landscape.engine.progress import silent
    from landscape.files import presets

    config = lab.Config(span=1.7)
    lab.clear_caches()
    _, restored = lab_training.trained(config, silent)
    assert restored.restored, "run: python -m landscape precompute landscape.studies.lab.lab"
    with presets.afresh():  # the restored training kept in memory is not used in there
        _, fresh = lab_training.trained(config, silent)
    assert not fresh.restored and len(fresh.history) == config.epochs
    _assert_same_training(restored, fresh, TRAINED_RTOL)
    for name, tensor in fresh.start.items():
        assert torch.equal(restored.start[name], tensor), name  # both built here from the seed
        # the stored first checkpoint was built from the seed on the presets' machine
        torch.testing.assert_close(restored.trajectory[0][name], tensor, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_a_range_off_the_presets_trains_nothing(monkeypatch) -> None:
    """A range off the ladder (1.7) runs on the stored training (no training: calls counted) and
    answers as the same run computed afresh, field by field to `TRAINED_RTOL`."""
    from dataclasses import replace

    from landscape.files import presets

    lab.clear_caches()
    trainings = _counting(monkeypatch, lab_training, "train_models")
    config = replace(lab.Config(span=1.7), curvature_resolution=0)  # no map: a faster test
    moved = lab.run(config)
    assert not trainings
    lab.clear_caches()
    with presets.afresh():
        fresh = lab.run(config)
    assert len(trainings) == 1
    _assert_same(moved, fresh, rtol=TRAINED_RTOL)


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["intact", "missing", "truncated", "another_model"])
def test_a_damaged_stored_training_is_trained_again(monkeypatch, tmp_path, damage) -> None:
    """With the Lab's presets copied to another folder, an intact stored training is restored
    there; one whose file is missing, cut short (not an NPZ archive) or holds another model's
    arrays (a weight with a column fewer) is not: the Lab trains (counted) instead, and the
    training equals the stored one's source (the intact file)."""
    import json

    from landscape.engine.progress import silent
    from landscape.files import presets

    index = json.loads((presets.PRESET_DIR / presets.INDEX).read_text())
    entries = [entry for entry in index if entry["study"] == lab.__name__]
    (tmp_path / presets.INDEX).write_text(json.dumps(entries))
    source = presets.PRESET_DIR / entries[0]["training"]
    target = tmp_path / entries[0]["training"]
    if damage == "intact":
        target.write_bytes(source.read_bytes())
    elif damage == "truncated":
        target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    elif damage == "another_model":
        arrays = dict(np.load(source, allow_pickle=False))
        name = next(n for n in arrays if n.startswith("model/"))
        arrays[name] = arrays[name][..., :-1]
        np.savez(target, **arrays)
    lab.clear_caches()
    _, intact = lab_training.trained(lab.Config(), silent)  # from the presets' own folder
    assert intact.restored
    monkeypatch.setattr(presets, "PRESET_DIR", tmp_path)
    lab.clear_caches()
    trainings = _counting(monkeypatch, lab_training, "train_models")
    _, trained = lab_training.trained(lab.Config(span=1.7), silent)
    assert trained.restored == (damage == "intact")
    assert len(trainings) == (0 if damage == "intact" else 1)
    _assert_same_training(trained, intact, TRAINED_RTOL)


def test_each_run_evaluates_its_own_copy_of_the_shared_training() -> None:
    """`torch.func.functional_call` swaps a module's parameters in place: the cached models are
    copied for every caller, never handed out themselves."""
    from landscape.engine.progress import silent

    config = small(directions="three_models")
    _, first = lab_training.trained(config, silent)
    _, second = lab_training.trained(replace(config, resolution=9, span=1.5), silent)
    _, shared = lab_training.shared_training(config, silent)
    for a, b, kept in zip(first.models, second.models, shared.models, strict=True):
        assert a is not b and a is not kept and b is not kept
        assert not set(map(id, a.parameters())) & set(map(id, kept.parameters()))
        for (name, weight), (_, original) in zip(
            a.state_dict().items(), kept.state_dict().items(), strict=True
        ):
            torch.testing.assert_close(weight, original, rtol=0, atol=0, msg=name)


@pytest.mark.slow
def test_runs_of_one_training_at_once_equal_the_same_runs_in_turn() -> None:
    """Three runs sharing one training (range and resolution moved) in three threads, as the
    server's run queue does, against the same runs one after another: before each run had its
    own models, the threads read each other's weights (surfaces off by up to 34)."""
    import threading

    base = small(resolution=15, curvature_resolution=0)
    configs = [replace(base, resolution=r, span=s) for r, s in ((15, 1.3), (13, 1.7), (11, 1.1))]
    lab.run(base)  # the shared training
    at_once: dict[int, lab.Result] = {}
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            at_once[index] = lab.run(configs[index])
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(configs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for index, config in enumerate(configs):
        for part in (reuse.CURVATURE, reuse.CENTRE, reuse.HESSIAN, reuse.SLICES):
            study_parts.forget(part.table)  # computed again, in turn, from the same shared training
        in_turn = lab.run(config)
        np.testing.assert_allclose(at_once[index].surface, in_turn.surface, rtol=1e-12, atol=0)
