"""Saving and loading results: NPZ, CSV and run files round-trip; bad run files are refused."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile

import numpy as np
import pytest

from landscape.files import results
from landscape.studies.linear_duality import linear_duality as study
from landscape.studies.width import width

CONFIG = study.Config(steps=10, restarts=1, init_scales=(0.3,), slice_resolution=5, sweep_points=5)


@pytest.fixture(scope="module")
def result() -> study.Result:
    return study.run(CONFIG)


def assert_same_result(a, b) -> None:
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == np.asarray(y).dtype, field.name
            np.testing.assert_array_equal(x, y, err_msg=field.name)
        else:
            assert x == y or (np.isnan(x) and np.isnan(y)), field.name


def test_npz_round_trip(result) -> None:
    data = results.result_to_npz_bytes(result)
    assert_same_result(result, results.result_from_npz_bytes(study.Result, data))


def test_run_file_round_trip(result) -> None:
    text = results.run_file(study.__name__, CONFIG, result)
    document = json.loads(text)
    assert document["versions"]["numpy"] == np.__version__
    config, loaded = results.load_run_file(text.encode(), study)
    assert config == CONFIG
    assert_same_result(result, loaded)


def test_csv_lists_every_value(result) -> None:
    rows = results.result_to_csv(result).splitlines()
    assert rows[0] == "field,index,value"
    expected = sum(max(np.asarray(v).size, 1) for v in results.result_to_arrays(result).values())
    assert len(rows) - 1 == expected
    gap_row = next(r for r in rows if r.startswith("gap,,"))
    assert float(gap_row.split(",")[2]) == result.gap


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not valid JSON"),
        (b'{"format": "other"}', "format"),
        (b'{"format": "convexify-run/1", "study": "os.path"}', "not for this page"),
    ],
)
def test_bad_run_files_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        results.load_run_file(data, study)


def test_run_file_for_another_page_is_refused(result) -> None:
    text = results.run_file(study.__name__, CONFIG, result)
    with pytest.raises(ValueError, match="not for this page"):
        results.load_run_file(text, width)


def test_run_file_with_bad_configuration_is_refused(result) -> None:
    document = json.loads(results.run_file(study.__name__, CONFIG, result))
    document["config"]["depth"] = 1
    with pytest.raises(ValueError, match="depth H"):
        results.load_run_file(json.dumps(document), study)
    document["config"]["surprise"] = 1
    with pytest.raises(ValueError, match="unknown configuration fields"):
        results.load_run_file(json.dumps(document), study)


def _npz_of(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_npy_headers_are_read_without_the_ast_module(monkeypatch) -> None:
    """NumPy's header reader uses ast.literal_eval, which is not thread-safe on CPython 3.11
    (a preset read in the background broke a page being compiled); ours reads every header
    NumPy writes, with the same arrays, and never evaluates Python."""
    import ast

    arrays = {
        "scalar": np.array(2.5),
        "vector": np.arange(5, dtype=np.int64),
        "matrix": np.arange(12, dtype=np.float32).reshape(3, 4),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "flags": np.array([True, False]),
        "empty": np.zeros((0, 3)),
        "integers": np.arange(3, dtype=np.int32),
    }
    data = _npz_of(**arrays)
    expected = dict(np.load(io.BytesIO(data)))

    def no_parsing(*args, **kwargs):
        raise AssertionError("ast.literal_eval called while reading an NPZ archive")

    assert np.load(io.BytesIO(data))["vector"].size  # NumPy's reader does use it:
    monkeypatch.setattr(ast, "literal_eval", no_parsing)
    with pytest.raises(AssertionError, match="literal_eval"):
        dict(np.load(io.BytesIO(data)))
    loaded = results.npz_arrays(data)
    assert loaded.keys() == expected.keys()
    for name, array in expected.items():
        assert loaded[name].dtype == array.dtype, name
        np.testing.assert_array_equal(loaded[name], array)
        assert loaded[name].shape == array.shape


def test_a_version_2_npy_header_is_read() -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.arange(4.0), version=(2, 0))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("x.npy", buffer.getvalue())
    np.testing.assert_array_equal(results.npz_arrays(archive.getvalue())["x"], np.arange(4.0))


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"{'descr': '<f8', 'shape': (2,), }", "not written by NumPy"),
        (b"{'descr': 'nonsense', 'fortran_order': False, 'shape': (2,), }", "not understood"),
        (b"{'descr': '<f8', 'fortran_order': False, 'shape': (__import__('os'),), }", "NumPy"),
    ],
)
def test_a_forged_npy_header_is_refused_naming_the_member(header: bytes, message: str) -> None:
    padded = header + b" " * (63 - len(header) % 64) + b"\n"
    member = b"\x93NUMPY\x01\x00" + len(padded).to_bytes(2, "little") + padded + bytes(16)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("forged.npy", member)
    with pytest.raises(ValueError, match=f"'forged'.*{message}"):
        results.npz_arrays(archive.getvalue())
