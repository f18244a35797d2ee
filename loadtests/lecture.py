"""The lecture a class follows: the studies, their headline sliders and moves, and the targets
the class is held to.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

MOVE_TIMEOUT_S = 300.0


class Study(NamedTuple):
    """One study of the lecture: its page, its headline slider, the arrow presses of each move
    (they end where they started, so the last move asks for the lap's start again), and the
    chart the slider changes, which the student keeps in view while moving it."""

    path: str
    slider: str
    presses: list[int]
    chart: str


LECTURE: list[Study] = [
    Study("linear_duality", "lin_gamma", [10, 10, -20], "linear_gamma_sweep"),
    Study("shallow_relu", "shallow_relu_beta", [1, 1, -2], "shallow_relu_optimality_gap"),
    Study("width", "width_m", [16, -16], "width_convergence"),
    Study("branches", "branches_shown", [1, -1], "branches_surface_3d"),
    Study("landscape_lab", "landscape_lab_resolution", [5, -5], "lab_surface"),
]


KINDS = ("preset", "cached", "fresh")


FAST_TARGET_S = 3.0  # p95 for preset and cached moves (issue 17)


FRESH_TARGET_S = 10.0  # p95 for fresh moves


#: A cache's line in the about box: its name (words), then bytes against the ceiling.
CACHE_LINE = r"(\w[\w ]*): ([\d.]+ of [\d.]+ MiB \(\d+ held, \d+ evicted\))"


FLAT_PERCENT = 5.0  # memory change over the last half that still counts as flat


CACHE_VARIABLES = {  # --NAME-cache-mb: the server's ceiling for that cache
    "result": "CONVEXIFY_RESULT_CACHE_MB",
    "figure": "CONVEXIFY_FIGURE_CACHE_MB",
    "preset": "CONVEXIFY_PRESET_CACHE_MB",
    "parts": "CONVEXIFY_PARTS_CACHE_MB",
}


ENVELOPE_SECONDS = 60.0  # the window whose lowest memory sample is taken as between computations


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` (NumPy's linear interpolation); NaN when empty."""
    return float(np.percentile(values, q)) if values else float("nan")
