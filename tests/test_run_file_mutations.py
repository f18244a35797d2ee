"""Malformed run files: every mutation of a valid run file of every study ends in a ValueError
with a message, or in a (Config, Result) that satisfies the study's schema; never another
exception, and never more memory than the upload limit (landscape.files.results)."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import io
import json
import tracemalloc
import zipfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from landscape import studies
from landscape.files import presets, results, run_file_schema

FIXTURES = Path(__file__).parent / "fixtures" / "run_files"
MODULES = {name.rsplit(".", 1)[-1]: name for name in studies.study_modules()}
MODULES.update(width_sweep="landscape.studies.width.width_sweep")
MODULES.update(depth_sweep="landscape.studies.width.depth_sweep")
MEMORY_LIMIT = results.MAX_RUN_FILE_BYTES  # bytes a load may allocate at its peak


@cache
def fixture(stem: str) -> dict:
    return json.loads((FIXTURES / f"{stem}.json").read_text())


def study(stem: str):
    return importlib.import_module(MODULES[stem])


def load(document_or_text, stem: str):
    """load_run_file under tracemalloc: (outcome, peak bytes); outcome is the pair or the
    ValueError. Any other exception propagates (the test fails)."""
    text = document_or_text
    if not isinstance(text, str | bytes):
        text = json.dumps(text, allow_nan=True)
    tracemalloc.start()
    try:
        outcome = results.load_run_file(text, study(stem))
    except ValueError as error:
        outcome = error
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return outcome, peak


def assert_clear_or_valid(outcome, stem: str) -> None:
    if isinstance(outcome, ValueError):
        message = str(outcome)
        assert 10 <= len(message) <= 600, message
        return
    config, result = outcome
    module = study(stem)
    assert isinstance(config, module.Config) and isinstance(result, module.Result)
    arrays = results.result_to_arrays(result)
    results.check_result(module, config, arrays)  # the schema holds for what was built
    for name, array in arrays.items():
        assert array.dtype.kind in "fiubU", (name, array.dtype)
        assert array.dtype.kind != "U" or array.dtype.itemsize <= 4 * results.MAX_TEXT_CHARS


# --- the schema itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("stem", sorted(MODULES))
def test_every_result_field_is_declared_and_the_fixture_fits(stem: str) -> None:
    module = study(stem)
    schema = run_file_schema.result_schema(module)
    assert set(schema) == {f.name for f in dataclasses.fields(module.Result)}
    assert not run_file_schema.undeclared_fields(module), "declare them in RESULT_SHAPES"
    outcome, peak = load((FIXTURES / f"{stem}.json").read_bytes(), stem)
    assert not isinstance(outcome, ValueError), outcome
    assert peak < MEMORY_LIMIT


def test_every_stored_preset_fits_its_schema() -> None:
    checked = 0
    for entry in presets.entries():
        module = importlib.import_module(entry["study"])
        config = results.config_from_dict(module.Config, entry["config"])
        result = presets.lookup(entry["study"], config)
        results.check_result(module, config, results.result_to_arrays(result))
        checked += 1
    assert checked >= 9


def test_a_shape_that_disagrees_with_the_configuration_is_refused() -> None:
    document = copy.deepcopy(fixture("width"))
    document["result"]["loss"] = document["result"]["loss"][:-1]  # T no longer agrees
    outcome, _ = load(document, "width")
    assert isinstance(outcome, ValueError) and "T = 200 (from 'loss')" in str(outcome)
    document = copy.deepcopy(fixture("branches"))
    document["config"]["resolution"] = 23  # the surfaces were computed at 21
    outcome, _ = load(document, "branches")
    assert isinstance(outcome, ValueError) and "shape" in str(outcome)


# --- the cases found by hand ---------------------------------------------------------------------


def _set(path, value):
    def mutate(document):
        target = document
        for key in path[:-1]:
            if not isinstance(target, dict) or key not in target:
                return document  # an earlier mutation removed or replaced the parent
            target = target[key]
        if not isinstance(target, dict):
            return document
        if value is KeyError:
            target.pop(path[-1], None)  # removing it twice is one removal
        else:
            target[path[-1]] = value(target[path[-1]]) if callable(value) else value
        return document

    return mutate


FIRST_ARRAY = {  # a multi-dimensional field of each study
    "barrier_vs_branches": "barrier_weights",
    "barrier_vs_width": "barrier_none",
    "branch_gap": "primal_restarts",
    "connectivity": "training_loss",
    "branches": "surfaces",
    "budget": "train_loss",
    "exact": "trained",
    "gram_depth": "lambda_min",
    "skips": "surfaces",
    "depth_sweep": "deviation",
    "lab": "surface",
    "linear_duality": "gd_objective",
    "single_neuron": "vanilla_train",
    "two_layer": "histories",
    "width": "gram",
    "width_sweep": "loss",
}


def _first_scalar(document) -> str:
    scalars = [k for k, v in document["result"].items() if isinstance(v, int | float)]
    return scalars[0] if scalars else next(iter(document["result"]))


def _flatten(value):
    return np.asarray(value, dtype=float).ravel().tolist()


KNOWN = {
    "config is a list": _set(("config",), []),
    "config is text": _set(("config",), ""),
    "config is missing": _set(("config",), KeyError),
    "config has an object value": _set(("config", "seed"), {"a": 1}),
    "config seed is huge": _set(("config", "seed"), 10**400),
    "config seed is infinite": _set(("config", "seed"), float("inf")),
    "result is a list": _set(("result",), []),
    "result is missing": _set(("result",), KeyError),
    "dtypes is a list": _set(("dtypes",), []),
    "study is a list": _set(("study",), ["x"]),
    "message is huge text dtype": lambda d: (
        _set(("dtypes", "message"), "U50000000")(d)
        if "message" in d["result"]
        else _set(("dtypes", next(iter(d["result"]))), "U50000000")(d)
    ),
    "object dtype": lambda d: _set(("dtypes", FIRST_ARRAY[d["_stem"]]), "O")(d),
    "unknown dtype": lambda d: _set(("dtypes", FIRST_ARRAY[d["_stem"]]), "float999")(d),
    "emptied array": lambda d: _set(("result", FIRST_ARRAY[d["_stem"]]), [])(d),
    "flattened array": lambda d: _set(("result", FIRST_ARRAY[d["_stem"]]), _flatten)(d),
    "strings in an array": lambda d: _set(("result", FIRST_ARRAY[d["_stem"]]), ["a", "b"])(d),
    "ragged array": lambda d: _set(("result", FIRST_ARRAY[d["_stem"]]), [[1.0], [1.0, 2.0]])(d),
    "2.5 M numbers": lambda d: _set(("result", FIRST_ARRAY[d["_stem"]]), [0.5] * 2_500_000)(d),
    "a null field": lambda d: _set(("result", FIRST_ARRAY[d["_stem"]]), None)(d),
    "a null scalar": lambda d: _set(("result", _first_scalar(d)), None)(d),
    "a missing field": lambda d: _set(("result", FIRST_ARRAY[d["_stem"]]), KeyError)(d),
    "nested scalar": lambda d: _set(("result", FIRST_ARRAY[d["_stem"]]), [[[[[[[1.0]]]]]]])(d),
}


@pytest.mark.parametrize("stem", sorted(MODULES))
@pytest.mark.parametrize("case", sorted(KNOWN))
def test_known_malformed_run_files_end_in_a_clear_message(stem: str, case: str) -> None:
    document = copy.deepcopy(fixture(stem))
    document["_stem"] = stem
    document = KNOWN[case](document)
    document.pop("_stem", None)
    outcome, peak = load(document, stem)
    assert isinstance(outcome, ValueError), (case, outcome)
    assert_clear_or_valid(outcome, stem)
    assert peak < MEMORY_LIMIT, (case, peak)


def test_hundred_thousand_nested_arrays() -> None:
    text = '{"format": "convexify-run/1", "study": "x", "config": ' + "[" * 100_000
    text += "]" * 100_000 + "}"
    outcome, _ = load(text, "width")
    assert isinstance(outcome, ValueError) and "nested" in str(outcome)


# --- random mutations ----------------------------------------------------------------------------

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from([2**63, -(2**63) - 1, 10**400, "U50000000", "O", "float64", "<U4"])
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=12,
)
DTYPES = st.sampled_from(
    [
        "float64",
        "float32",
        "int64",
        "int8",
        "uint64",
        "bool",
        "<U1",
        "<U4",
        "U50000000",
        "O",
        "object",
        "V8",
        "S5",
        "complex128",
        "float128",
        "M8[ns]",
        "m8",
        "datetime64",
        "",
        "int",
    ]
) | st.text(max_size=8)


def _mutations(document: dict):
    """A hypothesis strategy of functions that change one thing of ``document``."""
    fields = sorted(document["result"])
    config_fields = sorted(document["config"])

    def replace_field(name, value):
        return _set(("result", name), value)

    def reshape(name, how):
        def mutate(d):
            if not isinstance(d.get("result"), dict) or name not in d["result"]:  # removed earlier
                return d
            array = np.asarray(d["result"][name], dtype=object)
            if how == "transpose":
                new = array.T
            elif how == "drop_last" and array.ndim and array.shape[0]:
                new = array[:-1]
            elif how == "wrap":
                new = array[None]
            elif how == "duplicate" and array.ndim:
                new = np.concatenate([array, array])
            else:
                new = array.ravel()
            d["result"][name] = new.tolist() if new.ndim else new.item()
            return d

        return mutate

    return st.one_of(
        st.builds(replace_field, st.sampled_from(fields), JSON_VALUES),
        st.builds(
            lambda name, how: reshape(name, how),
            st.sampled_from(fields),
            st.sampled_from(["transpose", "drop_last", "wrap", "duplicate", "flatten"]),
        ),
        st.builds(lambda name, dt: _set(("dtypes", name), dt), st.sampled_from(fields), DTYPES),
        st.builds(lambda name: _set(("result", name), KeyError), st.sampled_from(fields)),
        st.builds(
            lambda name, v: _set(("config", name), v), st.sampled_from(config_fields), JSON_VALUES
        ),
        st.builds(lambda key, v: _set((key,), v), st.sampled_from(sorted(document)), JSON_VALUES),
        st.builds(lambda v: _set(("result", "surprise"), v), JSON_VALUES),
    )


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(MODULES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_mutations_end_in_a_message_or_a_valid_result(stem: str, data) -> None:
    document = copy.deepcopy(fixture(stem))
    for mutate in data.draw(st.lists(_mutations(document), min_size=1, max_size=3)):
        try:
            document = mutate(document)
        except (KeyError, TypeError, IndexError, ValueError):
            pass  # a later mutation of what an earlier one removed or replaced: skip it
    outcome, peak = load(document, stem)
    assert_clear_or_valid(outcome, stem)
    assert peak < MEMORY_LIMIT


# --- archives -----------------------------------------------------------------------------------


def _npz_with(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def test_deflate_bomb_is_refused_by_its_directory_before_decompressing() -> None:
    header = _npy(np.zeros(0))[:128]
    bomb = _npz_with({"loss.npy": header + bytes(200_000_000)})
    assert len(bomb) < 300_000
    tracemalloc.start()
    with pytest.raises(ValueError, match="unpacks to 200.0 MB"):
        results.npz_arrays(bomb)
    assert tracemalloc.get_traced_memory()[1] < 5_000_000
    tracemalloc.stop()


def test_npz_header_claiming_a_huge_array_is_refused() -> None:
    header = np.lib.format.header_data_from_array_1_0(np.zeros(4))
    header["shape"] = (10**13,)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    forged = buffer.getvalue() + bytes(32)
    with pytest.raises(ValueError, match="header claims"):
        results.npz_arrays(_npz_with({"x.npy": forged}))


def test_npz_with_an_object_array_or_a_foreign_member_is_refused() -> None:
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1))
    header["descr"] = "|O"
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    with pytest.raises(ValueError, match="not allowed"):
        results.npz_arrays(_npz_with({"x.npy": buffer.getvalue() + bytes(8)}))
    with pytest.raises(ValueError, match="not a .npy"):
        results.npz_arrays(_npz_with({"evil.pkl": b"cos\nsystem\n"}))
    with pytest.raises(ValueError, match="not an NPZ"):
        results.npz_arrays(b"PK\x03\x04 garbage")


@pytest.mark.parametrize("stem", ["width", "lab", "branches"])
def test_npz_round_trip_through_the_checked_reader(stem: str) -> None:
    module = study(stem)
    _, result = results.load_run_file((FIXTURES / f"{stem}.json").read_bytes(), module)
    data = results.result_to_npz_bytes(result)
    again = results.result_from_npz_bytes(module.Result, data, module)
    for name, array in results.result_to_arrays(result).items():
        np.testing.assert_array_equal(array, results.result_to_arrays(again)[name])


def test_a_field_not_declared_yet_still_loads(monkeypatch) -> None:
    """A Result field someone adds before declaring it gets a permissive spec (the test above
    still asks for the declaration), so run files keep loading meanwhile."""
    module = study("branches")
    shapes = dict(module.RESULT_SHAPES)
    del shapes["surfaces"], shapes["n_samples"]
    monkeypatch.setattr(module, "RESULT_SHAPES", shapes)
    assert run_file_schema.undeclared_fields(module) == ["surfaces", "n_samples"]
    outcome, _ = load(fixture("branches"), "branches")
    assert not isinstance(outcome, ValueError), outcome
    document = copy.deepcopy(fixture("branches"))
    document["result"]["surfaces"] = ["text"]
    outcome, _ = load(document, "branches")
    assert isinstance(outcome, ValueError)
