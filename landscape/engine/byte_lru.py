"""A least-recently-used cache bounded in bytes, not in entries.

A value's size is estimated from the arrays, bytes and strings it holds (`estimate_nbytes`: a
study ``Result`` is NumPy arrays and floats), so one `ByteLRU` can hold many small values or a
few large ones and never more than its ceiling. `byte_lru_cache` decorates a function with one,
like ``functools.lru_cache``. The run queue's caches (`landscape.server`), the loaded presets'
and the uploads' stores (`landscape.files`) are made of it.

Sizes: a NumPy array counts ``arr.nbytes`` plus its header (``sys.getsizeof`` of an empty
array); containers and dataclasses count their items recursively, torch modules their parameters
and buffers, each object once.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


_ARRAY_HEADER = sys.getsizeof(np.empty(0))


def estimate_nbytes(value: Any) -> int:
    """Bytes that ``value`` keeps alive: arrays' buffers and headers, bytes, strings, numbers,
    and the items of lists, tuples, sets, dicts and dataclasses, each object counted once.

    A NumPy view counts its header plus the object owning its buffer (once, however many views
    share it: a view keeps the whole buffer alive); torch tensors count
    ``numel * element_size``, torch modules their parameters and buffers. Objects of other
    types count ``sys.getsizeof`` (their attributes are not followed).
    """
    seen: set[int] = set()
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, np.ndarray):
            total += _ARRAY_HEADER + (item.nbytes if item.base is None else 0)
            if item.base is not None:
                stack.append(item.base)  # the buffer a view keeps alive, counted once
            if item.dtype == object:
                stack.extend(item.ravel().tolist())
        elif isinstance(item, bytes | bytearray | memoryview | str | int | float | complex):
            total += sys.getsizeof(item)
        elif isinstance(item, dict):
            total += sys.getsizeof(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset | deque):
            total += sys.getsizeof(item)
            stack.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            total += sys.getsizeof(item)
            stack.extend(getattr(item, field.name) for field in dataclasses.fields(item))
        elif hasattr(item, "element_size") and hasattr(item, "numel"):  # a torch tensor
            total += sys.getsizeof(item) + int(item.numel()) * int(item.element_size())
        elif hasattr(item, "parameters") and hasattr(item, "buffers"):  # a torch module
            total += sys.getsizeof(item)
            stack.extend(item.parameters())
            stack.extend(item.buffers())
        else:
            total += sys.getsizeof(item)
    return total


def mebibytes_from_env(variable: str, default: float) -> int:
    """A byte ceiling read from the environment variable ``variable`` in MiB (``default`` MiB
    when unset); ``ValueError`` naming the variable when it is not a number >= 0."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return int(default * 2**20)
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{variable} must be a number of MiB >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{variable} must be a number of MiB >= 0, got {text!r}")
    return int(value * 2**20)


@dataclasses.dataclass(frozen=True)
class EnvCeiling:
    """A byte ceiling read from the environment variable ``variable`` (``default_mb`` MiB when
    unset) when its cache is first used, not when it is made: a module-level cache made at
    import with a wrong setting would fail the import, where the first use can name the setting
    on the page (`ui.sidebar.about_box` uses every cache first)."""

    variable: str
    default_mb: float

    def bytes(self) -> int:
        """The ceiling in bytes: ``int(MiB * 2**20)`` of the variable's value, else of
        ``default_mb`` (``ValueError`` naming the variable when it is not a number >= 0)."""
        return mebibytes_from_env(self.variable, self.default_mb)


@dataclasses.dataclass(frozen=True)
class CacheStats:
    """A snapshot of a `ByteLRU`: entries held, bytes held and the ceiling, and its counters."""

    name: str
    entries: int
    nbytes: int
    max_bytes: int
    hits: int
    misses: int
    evictions: int
    refused: int  # values larger than the whole ceiling, never stored


#: What one entry costs a `ByteLRU` beyond its key and its value: the ordered dict's table slot
#: and link node, the ``(value, size)`` tuple and the size's int (traced with tracemalloc: about
#: 190 bytes on CPython 3.11; tests/test_serving.py measures it).
ENTRY_OVERHEAD = 200


class ByteLRU(Generic[K, V]):
    """A thread-safe least-recently-used cache holding at most ``max_bytes`` bytes.

    ``put`` stores a value under ``key`` at the size ``s = sizer(value) + estimate_nbytes(key)
    + ENTRY_OVERHEAD`` (what the entry keeps alive, the cache's own bookkeeping included) and
    evicts the least recently used entries until the total is at most ``max_bytes``; an entry
    with ``s > max_bytes`` is refused (not stored) so the total never exceeds the ceiling, even
    for a moment. ``bookkeeping=False`` counts ``sizer(value)`` alone (sizes given exactly).
    ``max_bytes`` may be an `EnvCeiling`, read at the first ``put`` or ``stats`` (``ValueError``
    naming the variable there, and at every use after, until the setting is right).
    """

    def __init__(
        self,
        max_bytes: int | EnvCeiling,
        sizer: Callable[[Any], int] = estimate_nbytes,
        name: str = "",
        bookkeeping: bool = True,
    ) -> None:
        self.name = name
        self._ceiling: EnvCeiling | None
        self._max_bytes: int | None  # None until the `EnvCeiling` is read (`_limit`)
        if isinstance(max_bytes, EnvCeiling):
            self._ceiling, self._max_bytes = max_bytes, None
        else:
            self._ceiling, self._max_bytes = None, self._checked(max_bytes)
        self._sizer = sizer
        self._bookkeeping = bookkeeping
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()
        self._hits = self._misses = self._evictions = self._refused = 0

    @staticmethod
    def _checked(max_bytes: int) -> int:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        return int(max_bytes)

    @property
    def max_bytes(self) -> int:
        """The ceiling in bytes (an `EnvCeiling` is read here at the first use)."""
        with self._lock:
            return self._limit()

    def _limit(self) -> int:
        """The ceiling in bytes, read from its `EnvCeiling` at the first call (under the lock)."""
        if self._max_bytes is None:
            assert self._ceiling is not None
            self._max_bytes = self._ceiling.bytes()
        return self._max_bytes

    @property
    def nbytes(self) -> int:
        """Bytes held now (the sum of the stored values' sizes)."""
        return self._nbytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def get(self, key: K, default: Any = None) -> Any:
        """The value stored under ``key`` (now the most recently used), else ``default``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._misses += 1
                return default
            self._entries.move_to_end(key)
            self._hits += 1
            return entry[0]

    def entry_size(self, key: K, value: V) -> int:
        """The bytes ``put(key, value)`` counts for the entry."""
        size = int(self._sizer(value))
        return size + estimate_nbytes(key) + ENTRY_OVERHEAD if self._bookkeeping else size

    def put(self, key: K, value: V) -> bool:
        """Store ``value`` under ``key``; returns False when it alone exceeds the ceiling."""
        size = self.entry_size(key, value)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._nbytes -= old[1]
            if size > self._limit():
                self._refused += 1
                return False
            self._entries[key] = (value, size)
            self._nbytes += size
            self._shrink()
            return True

    def resize(self, max_bytes: int) -> None:
        """Change the ceiling, evicting the least recently used entries above it."""
        with self._lock:
            self._max_bytes = self._checked(max_bytes)
            self._shrink()

    def _shrink(self) -> None:
        while self._nbytes > self._limit():
            _, (_, size) = self._entries.popitem(last=False)
            self._nbytes -= size
            self._evictions += 1

    def clear(self) -> None:
        """Drop every entry (``nbytes`` back to 0; the counters are kept)."""
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    def discard(self, where: Callable[[K], bool]) -> None:
        """Drop every entry whose key satisfies ``where``."""
        with self._lock:
            for key in [key for key in self._entries if where(key)]:
                self._nbytes -= self._entries.pop(key)[1]

    def stats(self) -> CacheStats:
        """A `CacheStats` snapshot: entries, bytes held, the ceiling, hits, misses, evictions
        and refusals since the cache was made."""
        with self._lock:
            return CacheStats(
                self.name,
                len(self._entries),
                self._nbytes,
                self._limit(),
                self._hits,
                self._misses,
                self._evictions,
                self._refused,
            )


def memoised(
    function: Callable[..., V], cache: ByteLRU[Any, Any], prefix: tuple[Hashable, ...] = ()
) -> Callable[..., V]:
    """``function`` of hashable arguments, its values kept in ``cache`` under ``(*prefix,
    args)`` (``args`` alone without a prefix): a cache shared by several functions tells their
    values apart by the prefix."""
    missing = object()

    @functools.wraps(function)
    def wrapper(*args: Hashable) -> V:
        key = (*prefix, args) if prefix else args
        value = cache.get(key, missing)
        if value is missing:
            value = function(*args)
            cache.put(key, value)
        return value

    return wrapper


def byte_lru_cache(
    max_bytes: int | EnvCeiling, sizer: Callable[[Any], int] = estimate_nbytes, name: str = ""
) -> Callable[[Callable[..., V]], Any]:
    """Like ``functools.lru_cache``, bounded in bytes: memoise a function of hashable arguments
    in a `ByteLRU` of its own (`memoised`). The wrapper has ``cache`` (the `ByteLRU`) and
    ``cache_clear()``."""

    def decorate(function: Callable[..., V]) -> Any:
        cache: ByteLRU[Hashable, V] = ByteLRU(max_bytes, sizer, name or function.__name__)
        wrapper = memoised(function, cache)
        wrapper.cache = cache  # type: ignore[attr-defined]
        wrapper.cache_clear = cache.clear  # type: ignore[attr-defined]
        return wrapper

    return decorate
