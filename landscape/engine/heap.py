"""The server's heap after a computation: cyclic garbage collected, freed memory given back.

A heavy computation (a 45 x 45 Lab surface on 1,797 digits, a training) allocates and frees
hundreds of MB of temporaries in a worker thread. Two things keep that memory in the process
after the answer is out:

- Cyclic garbage (Plotly figures, autograd graphs, cvxpy problems) waits for Python's oldest
  generation, which runs rarely: ``runner.postScriptGC = false`` (.streamlit/config.toml) stops
  Streamlit's full collection after every script run, which cost 0.2 s of the GIL per rerun.
- glibc's ``malloc`` keeps freed blocks in its arenas (one per thread that allocates) and gives
  a heap's pages back only from its top; a long-lived block above the freed ones pins them. The
  resident memory then ratchets up with every computation.

`HeapRelease` runs ``gc.collect()`` and glibc's ``malloc_trim(0)`` (which returns the free pages
of every arena, not only the top) after a computation, at most once per ``min_interval``
seconds so that a stream of short computations does not pay a full collection each.
`benchmarks/classroom.py` measures the effect on the server's memory over a soak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import gc
import threading
import time
from collections.abc import Callable
from functools import lru_cache


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, Windows, musl)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def trim_available() -> bool:
    """Whether this C library can give freed heap pages back (glibc's ``malloc_trim``)."""
    return _malloc_trim() is not None


def give_back_free_memory() -> bool:
    """``malloc_trim(0)``: every arena's free pages back to the system. True when any page was
    returned; False when none was, or without glibc."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


@dataclasses.dataclass
class ReleaseStats:
    """How often `HeapRelease` ran, and what it found."""

    releases: int = 0
    skipped: int = 0  # asked within ``min_interval`` of the last release
    collected: int = 0  # unreachable objects found by the collections


class HeapRelease:
    """Callable run after each computation: a full collection and ``malloc_trim(0)``, at most
    once per ``min_interval`` seconds (the first call always runs). A call inside the interval
    schedules one release at its end, so the last computation of a burst is released too.
    Thread-safe; a call while another runs returns at once."""

    def __init__(self, min_interval: float = 5.0) -> None:
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval}")
        self.min_interval = float(min_interval)
        self._lock = threading.Lock()
        self._last = -float("inf")
        self._pending: threading.Timer | None = None
        self.stats = ReleaseStats()

    def __call__(self) -> bool:
        """Release now unless one ran less than ``min_interval`` seconds ago: True if it ran."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            wait = self._last + self.min_interval - time.monotonic()
            if wait > 0:
                self.stats.skipped += 1
                self._schedule(wait)
                return False
            self.stats.collected += gc.collect()
            give_back_free_memory()
            self._last = time.monotonic()
            self.stats.releases += 1
            return True
        finally:
            self._lock.release()

    def _schedule(self, seconds: float) -> None:
        """One release ``seconds`` from now, unless one is already scheduled (under the lock)."""
        if self._pending is not None and self._pending.is_alive():
            return
        self._pending = threading.Timer(seconds, self)
        self._pending.daemon = True
        self._pending.start()
