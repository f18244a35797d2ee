"""Saving and loading results: NPZ, CSV and run files round-trip; bad run files are refused."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from landscape.engine import results
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
