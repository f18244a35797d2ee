"""Plotly figure builders: pure functions Result -> go.Figure, one module per study."""

import numpy as np
from numpy.typing import ArrayLike


def float32(a: ArrayLike) -> np.ndarray:
    """``a`` as float32, the precision every figure sends to the browser (half the JSON)."""
    return np.asarray(a, dtype=np.float32)
