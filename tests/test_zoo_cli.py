"""The command-line door: every architecture of the zoo as the user's code and a weights file
(safetensors, and a state dict read with ``weights_only=True``), and as a ``.pt2`` export with a
dynamic batch dimension, against the per-point loop (`zoo.reference_surface`) to 1e-5 relative;
and what the door refuses, with the message it gives.

The factory is ``zoo:build`` (tests/zoo.py, importable because pytest puts ``tests/`` on the
path), called with ``--model-kwargs '{"name": ...}'``.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from zoo import BY_NAME, ZOO, Species, reference_surface

from landscape import cli
from landscape.engine.directions import random_directions
from landscape.files.surface_files import load_surface

RESOLUTION = 4
RANGE = 0.7
RTOL = 1e-5


def write_data(species: Species, folder: Path) -> Path:
    X, y = species.dataset()
    path = folder / f"{species.name}.npz"
    np.savez(path, X=X.numpy(), y=y.numpy())
    return path


def write_weights(species: Species, folder: Path, kind: str) -> Path:
    state = {k: v.contiguous() for k, v in species.model().state_dict().items()}
    if kind == "safetensors":
        path = folder / f"{species.name}.safetensors"
        save_file(state, path)
    else:
        path = folder / f"{species.name}.pt"
        torch.save(state, path)
    return path


def run_surface(folder: Path, species: Species, model_args: list[str], capsys) -> tuple:
    """``convexify surface`` in this process; (exit code, surface file or None, stderr)."""
    out = folder / f"{species.name}-surface.npz"
    argv = [
        "surface", *model_args, "--data", str(write_data(species, folder)),
        "--loss", species.loss_name, "--resolution", str(RESOLUTION), "--range", str(RANGE),
        "--out", str(out), "--no-progress", "--threads", "1",
    ]  # fmt: skip
    code = cli.main(argv)
    err = capsys.readouterr().err
    return code, (load_surface(out.read_bytes()) if code == 0 else None), err


def expected_surface(species: Species) -> np.ndarray:
    """The loop's surface on the command line's plane: filter-normalised random directions of
    seeds 0 and 1 (``--seed 0``), biases zeroed, over ``[-RANGE, RANGE]^2``."""
    model = species.model()
    X, y = species.dataset()
    d1, d2 = random_directions(model, 0), random_directions(model, 1)
    grid = np.linspace(-RANGE, RANGE, RESOLUTION)
    return reference_surface(model, species.loss, X, y, d1, d2, grid, grid)


def factory_args(species: Species, weights: Path) -> list[str]:
    kwargs = json.dumps({"name": species.name})
    return ["--model", "zoo:build", "--model-kwargs", kwargs, "--weights", str(weights)]


@pytest.mark.parametrize("kind", ["safetensors", "state_dict"])
@pytest.mark.parametrize("species", ZOO, ids=lambda s: s.name)
def test_factory_and_weights_give_the_loop_surface(species, kind, tmp_path, capsys) -> None:
    weights = write_weights(species, tmp_path, kind)
    code, surface, err = run_surface(tmp_path, species, factory_args(species, weights), capsys)
    assert code == 0, err
    np.testing.assert_allclose(surface.loss, expected_surface(species), rtol=RTOL)
    meta = surface.metadata
    assert meta["model_format"] == "factory"
    assert meta["model_factory"] == "zoo:build"
    assert meta["model_kwargs"] == {"name": species.name}
    assert meta["weights_format"] == kind
    import hashlib

    assert meta["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert meta["inputs"] == ("integer" if species.name == "causal_lm" else "floating point")
    if species.recurrent:
        assert meta["engine_path"].startswith("loop (vmap has no batching rule"), meta
    else:
        assert meta["engine_path"].startswith("vmap"), meta


@pytest.mark.slow  # torch.export: about 35 s for the ten
@pytest.mark.parametrize("species", ZOO, ids=lambda s: s.name)
def test_pt2_with_a_dynamic_batch_gives_the_loop_surface(species, tmp_path, capsys) -> None:
    model = species.model()
    X, _ = species.dataset()
    program = torch.export.export(model, (X,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = tmp_path / f"{species.name}.pt2"
    torch.export.save(program, path)
    code, surface, err = run_surface(tmp_path, species, ["--model", str(path)], capsys)
    assert code == 0, err
    assert surface.metadata["model_format"] == "pt2"
    np.testing.assert_allclose(surface.loss, expected_surface(species), rtol=RTOL)


def test_pt2_with_a_fixed_batch_is_refused_with_a_reason(tmp_path, capsys) -> None:
    species = BY_NAME["lenet"]
    X, _ = species.dataset()
    path = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(species.model(), (X,)), path)
    code, _, err = run_surface(tmp_path, species, ["--model", str(path)], capsys)
    assert code == 2
    assert "convexify: error: model cannot run the data" in err


class Payload:
    """An object whose unpickling would create the file ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.makedirs, (self.marker,))


def test_a_pickled_payload_in_a_weights_file_is_refused_and_nothing_runs(tmp_path, capsys) -> None:
    species = BY_NAME["lenet"]
    marker = tmp_path / "payload-ran"
    state = dict(species.model().state_dict())
    state["extra"] = Payload(str(marker))  # type: ignore[assignment]
    weights = tmp_path / "poisoned.pt"
    torch.save(state, weights)
    code, _, err = run_surface(tmp_path, species, factory_args(species, weights), capsys)
    assert code == 2
    assert "convexify: error: weights file poisoned.pt is neither safetensors nor" in err
    assert "weights_only" in err
    assert not marker.exists()
    torch.load(weights, weights_only=False)  # the payload is live: a full unpickler runs it
    assert marker.exists()


def test_weights_that_do_not_fit_are_named(tmp_path, capsys) -> None:
    species = BY_NAME["lenet"]
    state = dict(species.model().state_dict())
    del state["fc2.bias"]
    state["conv1.weight"] = torch.zeros(6, 1, 5, 5)
    state["stray"] = torch.zeros(2)
    weights = tmp_path / "wrong.safetensors"
    save_file(state, weights)
    code, _, err = run_surface(tmp_path, species, factory_args(species, weights), capsys)
    assert code == 2
    assert "weights file wrong.safetensors does not fit the model" in err
    assert "missing keys: fc2.bias" in err
    assert "unexpected keys: stray" in err
    assert "shape mismatches: conv1.weight (file (6, 1, 5, 5), model (6, 1, 3, 3))" in err


@pytest.mark.parametrize(
    ("model_args", "message"),
    [
        (["--model", "zoo:no_such_factory"], "model factory zoo:no_such_factory: zoo has no"),
        (["--model", "no_such_package.models:build"], "cannot import no_such_package.models"),
        (["--model", "zoo:cross_entropy"], "raised TypeError"),
        (["--model", "zoo:build", "--model-kwargs", "[1]"], "model-kwargs must be a JSON object"),
        (["--model", "zoo:N_SAMPLES"], "zoo has no function N_SAMPLES"),
    ],
)
def test_factories_that_cannot_build_a_model_are_refused(
    model_args, message, tmp_path, capsys
) -> None:
    code, _, err = run_surface(tmp_path, BY_NAME["lenet"], model_args, capsys)
    assert code == 2
    assert err.startswith("convexify: error:") and message in err, err


def test_a_factory_returning_no_module_is_refused(tmp_path, capsys, monkeypatch) -> None:
    """The factory is found in the current folder (not on sys.path), as the script needs."""
    (tmp_path / "not_a_model.py").write_text("def build():\n    return 42\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_surface(tmp_path, BY_NAME["lenet"], ["--model", "not_a_model:build"], capsys)
    assert code == 2
    assert "must return a torch.nn.Module, got int" in err


def test_torchscript_warns_that_it_is_deprecated(tmp_path, capsys) -> None:
    species = BY_NAME["lenet"]
    X, _ = species.dataset()
    path = tmp_path / "lenet.torchscript"
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(species.model(), X[:2]), buffer)
    path.write_bytes(buffer.getvalue())
    code, surface, err = run_surface(tmp_path, species, ["--model", str(path)], capsys)
    assert code == 0, err
    assert "warning: TorchScript is deprecated upstream" in err
    np.testing.assert_allclose(surface.loss, expected_surface(species), rtol=RTOL)


def test_help_says_the_factory_is_your_own_code_run() -> None:
    parser = cli.build_parser()
    surface = parser._subparsers._group_actions[0].choices["surface"]  # type: ignore[union-attr]
    text = surface.format_help()
    assert "IMPORTED AND RUN from your own code" in text
    assert "weights_only=True" in text
    assert "TorchScript (torch.jit.save): deprecated upstream" in text


@pytest.mark.parametrize("name", ["causal_lm", "lstm"])
def test_slices_and_curvature_run_on_token_ids_and_recurrent_nets(name, tmp_path, capsys) -> None:
    """1-D slices equal the loop's line; the curvature map at the centre equals the Python
    door's Lanczos evidence (integer inputs, (n, T) targets, attention, LSTM)."""
    species = BY_NAME[name]
    weights = write_weights(species, tmp_path, "safetensors")
    extra = ["--slices", "3", "--curvature", "3", "--lanczos", "8"]
    code, surface, err = run_surface(
        tmp_path, species, [*factory_args(species, weights), *extra], capsys
    )
    assert code == 0, err
    model = species.model()
    X, y = species.dataset()
    d1 = random_directions(model, 0)
    zero = {k: torch.zeros_like(t) for k, t in d1.items()}
    ts = np.linspace(-RANGE, RANGE, 3)
    line = reference_surface(model, species.loss, X, y, d1, zero, ts, [0.0])[:, 0]
    np.testing.assert_allclose(surface.slice_d1, line, rtol=RTOL)
    from landscape.engine.curvature import curvature_evidence
    from landscape.engine.problem import Problem

    evidence = curvature_evidence(Problem(model, species.loss, X, y), max_iterations=8, seed=0)
    assert surface.lambda_max[1, 1] == pytest.approx(evidence.lambda_max, rel=1e-4)
    assert surface.lambda_min[1, 1] == pytest.approx(evidence.lambda_min, rel=1e-4, abs=1e-6)
