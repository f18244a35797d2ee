"""The stored presets load, are current for the code, and are the results of their configurations.

Every server serves the same stored files, so every student sees the same figures; what a
machine computes anew may differ from them in the last bits (another processor, BLAS or torch
build), and float32 training amplifies that. So nothing here is compared bit for bit, and
nothing depends on the machine:

- *loads*: each file reads back through the study's result schema, its configuration is the
  study's ``PRESETS`` entry, and the folder holds the listed files only;
- *current*: each entry carries the fingerprint of the code it came from
  (`landscape.precompute.code_fingerprint`: the study's source files, its ``Config`` defaults
  and ``PRESETS`` among them), equal to the code's now;
- *the result of its configuration*: the quantities that every machine computes alike (convex
  optima, duals, Gram matrices, closed forms) are recomputed to their tolerances, and every
  preset satisfies what its page claims of it (`tests/preset_claims.py`).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from landscape import precompute, studies
from landscape.files import presets, results
from landscape.server import numerics
from landscape.studies.lab import training as lab_training
from tests.preset_claims import CHECKS, CORRUPTIONS

ENTRIES = list(presets.entries())
# the ladders of headline values (issue 13) are many presets: recomputing them all is slow
LADDER = re.compile(r"^(gamma|beta|up_to|span|resolution|m|H)_")


def _id(entry: dict) -> str:
    return f"{entry['study']}:{entry['name']}"


def _config(entry: dict):
    module = importlib.import_module(entry["study"])
    return module, results.config_from_dict(module.Config, entry["config"])


def test_every_study_preset_is_stored() -> None:
    stored = {(e["study"], e["name"]) for e in ENTRIES}
    for module_name in studies.study_modules():
        for name in presets.presets_of(module_name):
            assert (module_name, name) in stored, (
                f"run: python -m landscape precompute {module_name}"
            )


def test_every_stored_file_is_in_the_index() -> None:
    """The preset folder holds the listed files only (presets and their trainings), and every
    preset of a study that stores its training (``training_state``) names its training file."""
    listed = {e["file"] for e in ENTRIES} | {e["training"] for e in ENTRIES if "training" in e}
    assert {path.name for path in presets.PRESET_DIR.glob("*.npz")} == listed
    for entry in ENTRIES:
        if hasattr(importlib.import_module(entry["study"]), "training_state"):
            assert "training" in entry, f"{_id(entry)}: precompute"


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_preset_loads_through_the_schema(entry: dict) -> None:
    """The file reads back without unpickling and fits the study's result schema (kinds,
    shapes against the configuration, finiteness); its configuration validates and is the
    study's ``PRESETS`` entry (the device aside: presets are computed on the CPU)."""
    module, config = _config(entry)
    config.validate()
    assert config == dataclasses.replace(
        presets.presets_of(entry["study"])[entry["name"]], device="cpu"
    ), "the study's PRESETS changed: python -m landscape precompute"
    data = (presets.PRESET_DIR / entry["file"]).read_bytes()
    checked = results.result_from_npz_bytes(module.Result, data, study=module)
    looked_up = presets.lookup(entry["study"], config)
    assert isinstance(looked_up, module.Result)
    for field in dataclasses.fields(checked):
        np.testing.assert_array_equal(getattr(looked_up, field.name), getattr(checked, field.name))


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_preset_is_current_for_the_code(entry: dict) -> None:
    assert entry.get("code") == precompute.code_fingerprint(entry["study"]), (
        f"{_id(entry)} was computed from other code of its study: "
        f"python -m landscape precompute {entry['study']}"
    )


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_preset_holds_its_claims(entry: dict) -> None:
    module, config = _config(entry)
    CHECKS[entry["study"]].claims(presets.lookup(entry["study"], config), config)


@pytest.mark.parametrize("module_name", sorted(CHECKS))
def test_the_claims_catch_a_wrong_value(module_name: str) -> None:
    """The default preset with one value made wrong (`CORRUPTIONS`) fails its study's claims."""
    module = importlib.import_module(module_name)
    config = dataclasses.replace(module.Config(), device="cpu")
    wrong = copy.deepcopy(presets.lookup(module_name, config))
    CORRUPTIONS[module_name](wrong)
    with pytest.raises(AssertionError):
        CHECKS[module_name].claims(wrong, config)


def _recomputed(entry: dict) -> list:
    marks = [pytest.mark.slow] if LADDER.match(entry["name"]) else []
    return [pytest.param(entry, marks=marks, id=_id(entry))]


@pytest.mark.parametrize(
    "entry",
    [p for e in ENTRIES if CHECKS[e["study"]].recomputed for p in _recomputed(e)],
)
def test_preset_is_the_result_of_its_configuration(entry: dict) -> None:
    """Run anew (nothing taken from the presets), the stable quantities agree to their
    tolerances and every integer, boolean and text field is equal; trained outcomes are left
    to the claims, and timings aside."""
    module, config = _config(entry)
    check = CHECKS[entry["study"]]
    stored = presets.lookup(entry["study"], config)
    with presets.afresh():
        fresh = module.run(config)
    for field in dataclasses.fields(fresh):
        name = field.name
        if name.endswith("_seconds") or name in check.trained:
            continue
        a, b = np.asarray(getattr(stored, name)), np.asarray(getattr(fresh, name))
        if name in check.stable:
            np.testing.assert_allclose(a, b, rtol=check.stable[name], atol=check.atol, err_msg=name)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("module_name", sorted(CHECKS))
def test_every_result_field_is_classified(module_name: str) -> None:
    """Each float field of a recomputed study is stable (with a tolerance) or trained (claims
    only); a field named in either exists. A new field is so placed on purpose."""
    module = importlib.import_module(module_name)
    check = CHECKS[module_name]
    names = {f.name for f in dataclasses.fields(module.Result)}
    assert set(check.stable) <= names and check.trained <= names
    assert not set(check.stable) & check.trained
    if not check.recomputed:
        return
    default = presets.lookup(module_name, dataclasses.replace(module.Config(), device="cpu"))
    for name in names - set(check.stable) - check.trained:
        if not name.endswith("_seconds"):
            kind = np.asarray(getattr(default, name)).dtype.kind
            assert kind != "f", f"{module_name}.Result.{name}: stable or trained?"


def test_every_study_has_its_checks() -> None:
    assert set(studies.study_modules()) == set(CHECKS), "add the study to tests/preset_claims.py"


TRAININGS = {e["training"]: e for e in ENTRIES if "training" in e}  # file -> an entry of its key


@pytest.mark.slow
@pytest.mark.parametrize("file", sorted(TRAININGS))
def test_stored_training_starts_at_the_seed_and_lowers_the_loss(file: str) -> None:
    """A stored training (one file per training key) is found by every preset of its key, holds
    every model's whole state, starts (its first checkpoint) at the model this code builds from
    the seed, and lowered the loss. (Training it anew is not compared: float32 training on
    another processor ends elsewhere; the presets are what every student sees.)"""
    entry = TRAININGS[file]
    module, config = _config(entry)
    key = module.training_key(config)
    stored = presets.stored_training(entry["study"], key)
    assert stored is not None, f"{file} is not readable"
    with presets.afresh():
        assert presets.stored_training(entry["study"], key) is None
    for other in ENTRIES:
        if other.get("training") == file:
            assert module.training_key(_config(other)[1]) == key, other["name"]
    data = lab_training.prepare_data(key)
    model = lab_training.build_model(key, data.X, data.y, data.task, data.outputs, key.seed)
    for name, tensor in model.state_dict().items():
        assert stored[f"model/{name}"].shape[1:] == tuple(tensor.shape), name
    for name, parameter in model.named_parameters():
        first = stored[f"trajectory/{name}"][0]
        np.testing.assert_allclose(first, parameter.detach().numpy(), rtol=1e-6, atol=1e-7)
    history = stored["history"]
    assert np.all(np.isfinite(history)) and history[-1] < history[0]


def test_lookup_ignores_the_device_and_misses_other_configs() -> None:
    entry = ENTRIES[0]
    _, config = _config(entry)
    assert presets.lookup(entry["study"], dataclasses.replace(config, device="cuda")) is not None
    assert presets.lookup(entry["study"], dataclasses.replace(config, seed=config.seed + 1)) is None


def test_lookup_finds_a_preset_through_float_rounding() -> None:
    """A slider value reached by adding steps (``0.05`` fifteen times: 0.7500000000000001) opens
    the preset stored at 0.75. (Added one by one: ``sum`` rounds exactly since Python 3.12.)"""
    from landscape.studies.linear_duality import linear_duality

    gamma_ratio = 0.0
    for _ in range(15):
        gamma_ratio += 0.05
    config = linear_duality.Config(gamma_ratio=gamma_ratio)
    assert config.gamma_ratio != 0.75
    assert presets.lookup(linear_duality.__name__, config) is not None
    assert presets.lookup(linear_duality.__name__, linear_duality.Config(gamma_ratio=0.8)) is None


# --- the fingerprint is of the code, not of the machine -------------------------------------

STUDY = "landscape.studies.linear_duality.linear_duality"


def test_the_fingerprint_reads_the_study_and_what_it_imports_of_its_folder() -> None:
    names = [path.name for path in precompute.study_sources(STUDY)]
    assert names == ["linear_duality.py", "linear_net.py"]  # not figures.py: no result of it
    assert precompute.code_fingerprint(STUDY).startswith("sha256:")
    fingerprints = {precompute.code_fingerprint(m) for m in studies.study_modules()}
    assert len(fingerprints) == len(studies.study_modules())


def test_the_fingerprint_follows_the_code_not_its_comments(tmp_path, monkeypatch) -> None:
    """On a copy of the studies: Windows line endings (a checkout with ``core.autocrlf``), a
    comment and a docstring edited leave the fingerprint; a changed default does not."""
    root = tmp_path / "studies"
    shutil.copytree(precompute._studies_root(), root)
    monkeypatch.setattr(precompute, "_studies_root", lambda: root)
    before = precompute.code_fingerprint(STUDY)
    net = root / "linear_duality" / "linear_net.py"
    net.write_bytes(net.read_bytes().replace(b"\n", b"\r\n") + b"# a comment\r\n")
    study = root / "linear_duality" / "linear_duality.py"
    text = study.read_text()
    study.write_text(text.replace('"""', '"""Edited. ', 1))
    assert precompute.code_fingerprint(STUDY) == before
    assert "    gamma_ratio: float = " in text
    study.write_text(text.replace("    gamma_ratio: float = ", "    gamma_ratio: float = 2 * ", 1))
    assert precompute.code_fingerprint(STUDY) != before


def test_code_text_drops_comments_and_docstrings_only() -> None:
    source = (
        '"""Module."""\n'
        "import os  # why\n"
        "\n"
        "def f(x):\n"
        '    """What f is.\n\n    More."""\n'
        '    return f"#{x}"  # a comment\r\n'
    )
    assert precompute.code_text(source) == 'import os\ndef f(x):\n    return f"#{x}"\n'


def test_the_fingerprint_is_the_same_under_other_numerics() -> None:
    """A child process with the precompute's pinned numerics, and one without any, compute the
    same fingerprints as this process: nothing of the machine enters them."""
    here = [precompute.code_fingerprint(m) for m in studies.study_modules()]
    script = (
        "from landscape import precompute, studies; "
        "print(*[precompute.code_fingerprint(m) for m in studies.study_modules()])"
    )
    unpinned = {k: v for k, v in os.environ.items() if k not in numerics.PINNED}
    for environment in (numerics.pinned_environment(), unpinned):
        done = subprocess.run(
            [sys.executable, "-c", script], env=environment, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == here


def test_precompute_writes_the_presets_their_fingerprint_and_the_stack(tmp_path) -> None:
    """`precompute` into another folder: one NPZ per preset that reads back as the study's run,
    and an index entry with the configuration, the code fingerprint and the stack, for the
    record (this process's, pinned or not)."""
    study = "landscape.studies.shallow_relu.single_neuron"
    logged: list[str] = []
    index = precompute.precompute([study], tmp_path, log=logged.append)
    assert [e["name"] for e in index] == list(presets.presets_of(study)) == ["default"]
    entry = index[0]
    assert entry["code"] == precompute.code_fingerprint(study) and logged == [f"{study}: default"]
    assert entry["computed_with"] == numerics.computed_with()
    module, config = _config(entry)
    stored = presets.lookup(study, config, directory=tmp_path)
    with presets.afresh():
        fresh = module.run(config)
    for field in dataclasses.fields(fresh):
        if not field.name.endswith("_seconds"):
            a, b = getattr(stored, field.name), getattr(fresh, field.name)
            np.testing.assert_array_equal(a, b, err_msg=field.name)  # one process: the same bits
