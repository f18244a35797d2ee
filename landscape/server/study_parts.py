"""What the studies keep between runs, in one cache bounded in bytes.

A moved slider often needs a part of an earlier run again: Linear duality's gamma-free sweep
(`linear_duality.problem`), the Lab's trainings, curvature, slices and Hessians, Branches' (depth,
I) slices, its convex optima and its restarts. Each study keeps those parts here under a table
name of its own, instead of in module dictionaries bounded by a count of entries (one Lab
training of a large upload weighs more than a hundred small ones): one least-recently-used cache
of at most ``CONVEXIFY_PARTS_CACHE_MB`` MiB (default 64), each part's size estimated from the
arrays, tensors and modules it holds (`byte_lru.estimate_nbytes`), shown with the other caches in
the sidebar's *About this server*. A part evicted is computed again when it is next asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from landscape.engine import byte_lru

V = TypeVar("V")

VARIABLE = "CONVEXIFY_PARTS_CACHE_MB"
DEFAULT_MB = 64

_parts: byte_lru.ByteLRU[tuple[str, Hashable], Any] = byte_lru.ByteLRU(
    byte_lru.EnvCeiling(VARIABLE, DEFAULT_MB), name="Study parts"
)


def kept(table: str, key: Hashable, default: Any = None) -> Any:
    """The part kept under ``key`` in ``table`` (now the most recently used), else ``default``."""
    return _parts.get((table, key), default)


def holds(table: str, key: Hashable) -> bool:
    """Whether ``table`` keeps a part under ``key`` (its place in the order is not changed)."""
    return (table, key) in _parts


def keep(table: str, key: Hashable, value: Any) -> None:
    """Keep ``value`` under ``key`` in ``table``, the least recently used parts out above the
    ceiling (a part larger than the whole ceiling is not kept)."""
    _parts.put((table, key), value)


def forget(table: str) -> None:
    """Drop every part of ``table`` (tests start afresh)."""
    _parts.discard(lambda entry: entry[0] == table)


def kept_function(table: str) -> Callable[[Callable[..., V]], Any]:
    """Memoise a function of hashable arguments in ``table`` (`byte_lru.memoised`), like
    ``functools.lru_cache`` but within the shared ceiling. The wrapper has ``cache_clear()``
    (`forget` its table)."""

    def decorate(function: Callable[..., V]) -> Any:
        wrapper = byte_lru.memoised(function, _parts, prefix=(table,))
        wrapper.cache_clear = lambda: forget(table)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def stats() -> byte_lru.CacheStats:
    """The parts' entries and bytes against the ceiling, for the about box."""
    return _parts.stats()
