"""How a long computation reports how far it has got.

A `Progress` is called with the fraction done, in [0, 1], and the current stage in words, e.g.
``progress(0.45, "Loss surface")``; the pages turn the calls into a progress bar. Every study's
``run(config, progress=None)`` and every engine function that takes ``progress`` uses this type.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], None]


def silent(fraction: float, stage: str) -> None:
    """The `Progress` that reports nothing (for ``progress=None``)."""
