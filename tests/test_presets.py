"""The stored presets are current: each one, recomputed now, gives the same numbers.

Bit for bit up to 1e-6, which float32 training on two processors reaches only when both take the
same code paths: the presets are computed, and recomputed here, under pinned numerics
(`landscape.server.numerics`, set by tests/conftest.py before torch and NumPy load)."""

from __future__ import annotations

import dataclasses
import importlib
import re

import numpy as np
import pytest
import threadpoolctl
import torch

from landscape import studies
from landscape.files import presets, results
from landscape.server import numerics

ENTRIES = list(presets.entries())
# the ladders of headline values (issue 13) are many presets: recomputing them all is slow
LADDER = re.compile(r"^(gamma|beta|up_to|span|resolution|m|H)_")


def _marks(entry: dict) -> list:
    return [pytest.mark.slow] if LADDER.match(entry["name"]) else []


def test_the_pinned_numerics_hold_in_this_process() -> None:
    assert numerics.is_pinned()
    assert torch.backends.cpu.get_cpu_capability() == "AVX2"
    assert torch.get_num_threads() == 1
    blas = [pool for pool in threadpoolctl.threadpool_info() if pool["internal_api"] == "openblas"]
    assert blas, "NumPy's OpenBLAS not found"
    assert all(pool["architecture"] == "Haswell" for pool in blas), blas


def test_presets_were_computed_under_the_pinned_numerics() -> None:
    for entry in ENTRIES:
        assert entry.get("numerics") == numerics.fingerprint(), (
            f"{entry['study']}:{entry['name']} was computed under other numerics: "
            "python -m landscape precompute"
        )


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
            assert "training" in entry, f"{entry['study']}:{entry['name']}: precompute"


TRAININGS = {e["training"]: e for e in ENTRIES if "training" in e}  # file -> an entry of its key


@pytest.mark.slow
@pytest.mark.parametrize("file", sorted(TRAININGS))
def test_stored_training_is_current(file: str) -> None:
    """A stored training (one file per training key of a study's presets) was written under the
    pinned numerics and holds the arrays of the same training run now (``training_state``
    inside `presets.afresh`), to the presets' tolerance; every preset of its key finds it."""
    entry = TRAININGS[file]
    assert entry.get("numerics") == numerics.fingerprint(), "python -m landscape precompute"
    module = importlib.import_module(entry["study"])
    key = module.training_key(results.config_from_dict(module.Config, entry["config"]))
    stored = presets.stored_training(entry["study"], key)
    assert stored is not None, f"{file} is not readable"
    with presets.afresh():
        assert presets.stored_training(entry["study"], key) is None
        fresh = module.training_state(key)
    assert stored.keys() == fresh.keys()
    for name, array in fresh.items():
        assert stored[name].dtype == array.dtype, name
        np.testing.assert_allclose(stored[name], array, rtol=1e-6, atol=1e-9, err_msg=name)
    for other in ENTRIES:
        if other.get("training") == file:
            config = results.config_from_dict(module.Config, other["config"])
            assert module.training_key(config) == key, other["name"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "entry",
    [pytest.param(e, marks=_marks(e), id=f"{e['study']}:{e['name']}") for e in ENTRIES],
)
def test_preset_is_current(entry) -> None:
    module = importlib.import_module(entry["study"])
    config = results.config_from_dict(module.Config, entry["config"])
    assert config == dataclasses.replace(
        presets.presets_of(entry["study"])[entry["name"]], device="cpu"
    ), "the study's PRESETS changed: precompute"
    stored = presets.lookup(entry["study"], config)
    with presets.afresh():  # no part of the fresh run may come from the stored presets
        fresh = module.run(config)
    for field in dataclasses.fields(fresh):
        if field.name.endswith("_seconds"):  # wall-clock timings differ from run to run
            continue
        a, b = getattr(stored, field.name), getattr(fresh, field.name)
        if isinstance(b, np.ndarray) and b.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, err_msg=field.name)
        elif isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=field.name)
        elif isinstance(b, float):
            assert a == pytest.approx(b, rel=1e-6, abs=1e-9, nan_ok=True), field.name
        else:
            assert a == b, field.name


def test_lookup_ignores_the_device_and_misses_other_configs() -> None:
    entry = ENTRIES[0]
    module = importlib.import_module(entry["study"])
    config = results.config_from_dict(module.Config, entry["config"])
    assert presets.lookup(entry["study"], dataclasses.replace(config, device="cuda")) is not None
    assert presets.lookup(entry["study"], dataclasses.replace(config, seed=config.seed + 1)) is None


def test_lookup_finds_a_preset_through_float_rounding() -> None:
    """A slider value reached by adding steps (``0.05`` fifteen times: 0.7500000000000001) opens
    the preset stored at 0.75."""
    from landscape.studies.linear_duality import linear_duality

    config = linear_duality.Config(gamma_ratio=sum([0.05] * 15))
    assert config.gamma_ratio != 0.75
    assert presets.lookup(linear_duality.__name__, config) is not None
    assert presets.lookup(linear_duality.__name__, linear_duality.Config(gamma_ratio=0.8)) is None
