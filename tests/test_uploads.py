"""Uploads: TorchScript only (pickles refused, never loaded), tables validated, clear messages."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from landscape.engine import uploads
from landscape.engine.nets import mlp

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated


def scripted_bytes(model: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    return buffer.getvalue()


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


def test_torchscript_round_trip() -> None:
    torch.manual_seed(0)
    model = mlp(4, 3, [5])
    loaded = uploads.load_torchscript(scripted_bytes(model))
    x = torch.randn(6, 4)
    torch.testing.assert_close(loaded(x), model(x))


def test_pickled_checkpoints_are_refused_without_unpickling(tmp_path: Path, monkeypatch) -> None:
    marker = tmp_path / "marker.txt"
    buffer = io.BytesIO()
    torch.save({"weights": torch.zeros(2), "payload": Payload(marker)}, buffer)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    with pytest.raises(ValueError, match="torch.save checkpoint is refused"):
        uploads.load_torchscript(buffer.getvalue())
    raw_pickle = pickle.dumps(Payload(marker))
    with pytest.raises(ValueError, match="not a TorchScript archive"):
        uploads.load_torchscript(raw_pickle)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("data", "limit", "message"),
    [
        (b"", uploads.MAX_MODEL_BYTES, "empty"),
        (b"x" * 2048, 1024, "at most"),
        (b"definitely not a model", uploads.MAX_MODEL_BYTES, "not a TorchScript archive"),
    ],
)
def test_bad_model_files(data: bytes, limit: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        uploads.load_torchscript(data, max_bytes=limit)


def test_a_corrupt_archive_is_a_clear_error() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/code/__torch__/model.py", "this is not TorchScript")
        archive.writestr("archive/constants.pkl", b"junk")
    with pytest.raises(ValueError, match="could not be loaded as TorchScript"):
        uploads.load_torchscript(buffer.getvalue())
    truncated = scripted_bytes(mlp(2, 2, [2]))[:-100]
    with pytest.raises(ValueError, match="not a TorchScript archive"):
        uploads.load_torchscript(truncated)


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


def test_other_suffixes_and_garbage() -> None:
    with pytest.raises(ValueError, match=r"\.csv or \.npz"):
        uploads.load_table(b"1,2\n", "data.xlsx")
    with pytest.raises(ValueError, match="not a valid NPZ"):
        uploads.load_table(b"garbage", "data.npz")
    with pytest.raises(ValueError, match="at most"):
        uploads.load_table(b"1,2\n" * 10, "data.csv", max_bytes=8)


def test_store_and_fetch() -> None:
    digest = uploads.store(b"hello")
    assert uploads.fetch(digest) == b"hello"
    for k in range(20):
        uploads.store(f"filler {k}".encode())
    with pytest.raises(ValueError, match="upload the file again"):
        uploads.fetch(digest)
