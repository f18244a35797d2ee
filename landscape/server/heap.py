"""The process's heap: glibc's thresholds, chosen once per process, and the server's release of
freed memory after a computation.

Two uses want different thresholds. The command line and the benchmarks evaluate large surfaces
in chunks, freeing and re-allocating blocks of the same few MiB; `tune_for_chunked_work` keeps
those blocks on the heap. A server holds many sessions' caches for hours; `keep_glibc_thresholds`
(called by the dashboard before its first computation) leaves glibc's own dynamic thresholds, so
that a freed block above them goes back to the system. Whichever is called first holds for the
process (a threshold once set cannot be given back to glibc's dynamic rule).

In the server, a heavy computation (a large Lab surface, a training) allocates and frees
hundreds of MB of temporaries in a worker thread. Two things keep that memory in the
process after the answer is out:

- Cyclic garbage (Plotly figures, autograd graphs, cvxpy problems) waits for Python's oldest
  generation, which runs rarely: ``runner.postScriptGC = false`` (.streamlit/config.toml) stops
  Streamlit's full collection after every script run, which holds the GIL on every rerun.
- glibc's ``malloc`` keeps freed blocks in its arenas (one per thread that allocates) and gives
  a heap's pages back only from its top; a long-lived block above the freed ones pins them. The
  resident memory then ratchets up with every computation.

`HeapRelease` runs ``gc.collect()`` and glibc's ``malloc_trim(0)`` (which returns the free pages
of every arena, not only the top) after a computation, at most once per ``min_interval``
seconds so that a stream of short computations does not pay a full collection each.
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

MiB = 2**20
CHUNKED_WORK = "tuned for chunked work"
GLIBC_OWN = "glibc's own"


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    """The C library, or None where it cannot be found or loaded."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, Windows, musl)."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


@lru_cache(maxsize=1)
def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, or None where the C library has none."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


_thresholds: list[str] = []  # the process's choice, once made: CHUNKED_WORK or GLIBC_OWN
_thresholds_lock = threading.Lock()


def _choose_thresholds(choice: str) -> str:
    """Record ``choice`` (and apply it) unless one was made before; the choice in force."""
    with _thresholds_lock:
        if not _thresholds:
            _thresholds.append(choice)
            if choice == CHUNKED_WORK:
                _set_chunked_work_thresholds()
        return _thresholds[0]


def _set_chunked_work_thresholds() -> None:
    """``M_MMAP_THRESHOLD`` 32 MiB (glibc's maximum) and ``M_TRIM_THRESHOLD`` 256 MiB."""
    mallopt = _mallopt()
    if mallopt is not None:
        m_trim_threshold, m_mmap_threshold = -1, -3
        mallopt(m_trim_threshold, 256 * MiB)
        mallopt(m_mmap_threshold, 32 * MiB)


def tune_for_chunked_work() -> bool:
    """Let glibc reuse freed memory instead of returning it to the system, unless the process
    chose glibc's own thresholds first (`keep_glibc_thresholds`); True when tuned.

    Chunked evaluation frees and re-allocates blocks of the same few MiB again and again; with
    glibc's defaults each of those allocations starts as a fresh ``mmap`` whose pages all fault
    on first touch, which can cost more than the arithmetic. Allocations up to 32 MiB are then
    served from the heap and up to 256 MiB of free heap is kept. A no-op off glibc.
    """
    return _choose_thresholds(CHUNKED_WORK) == CHUNKED_WORK and _mallopt() is not None


def keep_glibc_thresholds() -> bool:
    """The server's choice: glibc's own dynamic thresholds for this process. A block larger than
    any mapped block freed so far (and than 32 MiB, always) gets a mapping of its own, given back
    when freed; the heap keeps at most twice that threshold free at its top. True when in force;
    False when the engine tuned the process first (call this before the first computation)."""
    return _choose_thresholds(GLIBC_OWN) == GLIBC_OWN


def thresholds() -> str | None:
    """The thresholds this process chose (`CHUNKED_WORK`, `GLIBC_OWN`), None before either."""
    with _thresholds_lock:
        return _thresholds[0] if _thresholds else None


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
