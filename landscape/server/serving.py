"""Serving many sessions from one process: memory bounded in bytes, single flight, admission.

Three pieces, free of Streamlit so that tests drive them with plain threads:

- `estimate_nbytes` and `ByteLRU`: a least-recently-used cache whose ceiling is a number of
  bytes, not of entries. A value's size is estimated from the arrays, bytes and strings it holds
  (a study ``Result`` is NumPy arrays and floats), so one cache can hold many small results or a
  few large ones and never more than its ceiling. `byte_lru_cache` decorates a function with it.
- `RunQueue`: at most ``slots`` computations at once (admission control), the others wait in
  first-come order; a request for a key already queued or running joins that computation (single
  flight) instead of starting a second. Each request holds a `Ticket`; a ticket released before
  its answer (the session left, or moved on) stops counting as a waiter, and a computation nobody
  waits for any more is dropped from the queue, or, when running, stopped at its next progress
  report. The queue knows each position and estimates the wait from the durations it has seen.

Sizes: a NumPy array counts ``arr.nbytes`` plus its header (``sys.getsizeof`` of an empty
array); containers and dataclasses count their items recursively, torch modules their parameters
and buffers, each object once.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import itertools
import math
import os
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import numpy as np

from landscape.engine.progress import Progress

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
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    def discard(self, where: Callable[[K], bool]) -> None:
        """Drop every entry whose key satisfies ``where``."""
        with self._lock:
            for key in [key for key in self._entries if where(key)]:
                self._nbytes -= self._entries.pop(key)[1]

    def stats(self) -> CacheStats:
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


class Cancelled(Exception):
    """Raised inside a computation (at a progress report) once nobody waits for its answer."""


QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"


class _Job:
    """One computation and everyone waiting for it."""

    def __init__(self, number: int, key: Hashable, kind: str, function: Callable[[Progress], Any]):
        self.number = number
        self.key = key
        self.kind = kind
        self.function = function
        self.context = contextvars.copy_context()  # the submitter's (e.g. cluster.compute_on)
        self.state = QUEUED
        self.waiters = 0
        self.owners: set[Hashable] = set()  # the requesters that asked and have not moved on
        self.moved_on = False  # every requester that asked has asked for something else since
        self.orphaned_at: float | None = None
        self.fraction = 0.0
        self.stage = "Queued"
        self.result: Any = None
        self.error: BaseException | None = None
        self.started = 0.0
        self.finished = threading.Event()


@dataclasses.dataclass(frozen=True)
class QueueStats:
    """A snapshot of a `RunQueue`."""

    slots: int
    running: int
    queued: int  # queued computations somebody still waits for
    longest_queue: int  # the most queued at once since the queue was made (or reset)
    started: int
    completed: int
    failed: int
    cancelled: int
    joined: int  # requests answered by a computation already queued or running (single flight)


class Ticket:
    """One request's claim on a computation of a `RunQueue`; ``release`` it when done or gone."""

    def __init__(self, queue: RunQueue, job: _Job) -> None:
        self._queue = queue
        self._job = job
        self._released = False

    @property
    def state(self) -> str:
        """``queued``, ``running``, ``done``, ``failed`` or ``cancelled``."""
        return self._job.state

    @property
    def progress(self) -> tuple[float, str]:
        """The computation's last progress report (fraction in [0, 1], stage)."""
        return self._job.fraction, self._job.stage

    @property
    def waiters(self) -> int:
        """How many requests (this one included, while held) wait for this computation."""
        return self._job.waiters

    def position(self) -> int:
        """1-based place among the queued computations somebody waits for; 0 once started."""
        return self._queue._position(self._job)

    def estimate_seconds(self) -> float | None:
        """Expected seconds until the answer, from the durations seen so far (None: no data)."""
        return self._queue._estimate(self._job)

    def wait(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds; True once the computation has ended (any way)."""
        return self._job.finished.wait(timeout)

    def result(self) -> Any:
        """The answer; re-raises the computation's exception (`Cancelled` if it was dropped)."""
        if not self._job.finished.is_set():
            raise RuntimeError("the computation has not ended: wait() first")
        if self._job.state == DONE:
            return self._job.result
        assert self._job.error is not None
        raise self._job.error

    def release(self) -> None:
        """Stop waiting (idempotent). A computation left with no waiter is dropped when queued,
        and stopped at its next progress report when running, after the queue's grace time."""
        if not self._released:
            self._released = True
            self._queue._release(self._job)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RunQueue:
    """Admission control and single flight for heavy computations.

    ``submit(key, function)`` returns a `Ticket`. When a computation under ``key`` is queued or
    running, the ticket joins it (one computation, every waiter gets its answer or its
    exception); otherwise a new computation joins the end of the queue. ``slots`` worker threads
    take the queue in order, so at most ``slots`` computations run at once. ``function`` is
    called as ``function(progress)`` with ``progress(fraction, stage)``; that call raises
    `Cancelled` when every ticket has been released for longer than ``grace`` seconds (a
    session rerunning with the same request within ``grace`` keeps its computation), or as soon
    as every requester (``owner``) that asked for it has asked for something else
    (`supersede`). It runs in
    a copy of the submitting thread's context variables (so ``cluster.compute_on`` set around
    the request holds inside the computation). ``after_each`` (e.g. `heap.HeapRelease`) is
    called by the worker after every computation has ended, its answer handed over.
    """

    def __init__(
        self,
        slots: int,
        grace: float = 2.0,
        history: int = 20,
        after_each: Callable[[], object] | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        self._slots = int(slots)
        self.grace = float(grace)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: deque[_Job] = deque()
        self._inflight: dict[Hashable, _Job] = {}
        self._running: set[_Job] = set()
        self._durations: dict[str, deque[float]] = {}
        self._history = history
        self._numbers = itertools.count()
        self._workers: list[threading.Thread] = []
        self._longest = 0
        self._counts = dict.fromkeys(("started", "completed", "failed", "cancelled", "joined"), 0)
        self._closed = False
        self._after_each = after_each
        self._grow_workers()

    @property
    def slots(self) -> int:
        return self._slots

    def set_slots(self, slots: int) -> None:
        """Allow ``slots`` computations at once from now on (running ones are not stopped)."""
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        with self._lock:
            self._slots = int(slots)
            self._wake.notify_all()
        self._grow_workers()

    def _grow_workers(self) -> None:
        while len(self._workers) < self._slots:
            worker = threading.Thread(
                target=self._work, name=f"convexify-run-{len(self._workers)}", daemon=True
            )
            self._workers.append(worker)
            worker.start()

    def close(self) -> None:
        """Stop the workers once the running computations end; queued ones are cancelled."""
        with self._lock:
            self._closed = True
            while self._queue:
                self._end(self._queue.popleft(), CANCELLED, Cancelled("the queue was closed"))
            self._wake.notify_all()

    def submit(
        self,
        key: Hashable,
        function: Callable[[Progress], Any],
        kind: str = "",
        owner: Hashable | None = None,
    ) -> Ticket:
        """A ticket for the computation under ``key``: the one in flight, or a new one queued.

        ``owner`` names the requester (a session's place on a page) for `supersede`.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the queue is closed")
            job = self._inflight.get(key)
            if job is not None:
                self._counts["joined"] += 1
            else:
                job = _Job(next(self._numbers), key, kind, function)
                self._inflight[key] = job
                self._queue.append(job)
                self._longest = max(self._longest, self._queued_count())
                self._wake.notify_all()
            job.waiters += 1
            job.orphaned_at = None
            job.moved_on = False
            if owner is not None:
                job.owners.add(owner)
            return Ticket(self, job)

    def supersede(self, owner: Hashable, wanted: Hashable) -> int:
        """``owner`` now asks for ``wanted``: each computation it asked for before is dropped,
        without the grace time, once nobody waits for it and every other requester that asked
        for it has moved on too; returns how many were dropped now.

        A slider moved with the arrow keys asks for every value on its way. The computation of a
        value passed over is released when the next value's rerun stops the script; the grace
        time would keep it running (a rerun of the same request rejoins it), but this session
        asks for another value: it has moved on. A running computation stops at its next
        progress report, a queued one is never started.
        """
        dropped = 0
        with self._lock:
            for job in self._inflight.values():
                if owner not in job.owners or job.key == wanted:
                    continue
                job.owners.discard(owner)
                job.moved_on = not job.owners
                if job.moved_on and job.waiters == 0:
                    job.orphaned_at = -math.inf
                    dropped += 1
        return dropped

    def in_flight(self, key: Hashable) -> bool:
        """Whether a computation under ``key`` is queued or running (a request would join it)."""
        with self._lock:
            return key in self._inflight

    def run(self, key: Hashable, function: Callable[[Progress], Any], kind: str = "") -> Any:
        """Submit and wait: the answer, or the computation's exception."""
        with self.submit(key, function, kind) as ticket:
            ticket.wait()
            return ticket.result()

    def stats(self) -> QueueStats:
        with self._lock:
            return QueueStats(
                self._slots,
                len(self._running),
                self._queued_count(),
                self._longest,
                **self._counts,
            )

    def reset_longest(self) -> None:
        with self._lock:
            self._longest = self._queued_count()

    def mean_seconds(self, kind: str) -> float | None:
        """The mean duration of the last computations of ``kind`` (None before the first)."""
        with self._lock:
            seen = self._durations.get(kind)
            return sum(seen) / len(seen) if seen else None

    # -- internals (under the lock unless said otherwise) -----------------------------------

    def _queued_count(self) -> int:
        return sum(1 for job in self._queue if job.waiters > 0)

    def _position(self, job: _Job) -> int:
        with self._lock:
            if job.state != QUEUED:
                return 0
            place = 0
            for other in self._queue:
                if other.waiters > 0 or other is job:
                    place += 1
                if other is job:
                    return place
            return 0

    def _mean(self, kind: str) -> float | None:
        seen = self._durations.get(kind)
        return sum(seen) / len(seen) if seen else None

    def _estimate(self, job: _Job) -> float | None:
        """Seconds to the answer: the slots drain the work ahead (running jobs' remaining time
        and the queued jobs before ``job``) in parallel, then ``job`` itself runs.

        ``wait = (sum of remaining work ahead) / slots + own duration``, each duration the mean
        of its kind's recent computations (unknown kinds take the mean of all known ones).
        """
        with self._lock:
            if job.state not in (QUEUED, RUNNING):
                return 0.0
            known = [d for seen in self._durations.values() for d in seen]
            fallback = sum(known) / len(known) if known else None

            def duration(other: _Job) -> float | None:
                mean = self._mean(other.kind)
                return mean if mean is not None else fallback

            now = time.monotonic()
            if job.state == RUNNING:
                own = duration(job)
                return None if own is None else max(own - (now - job.started), 0.0)
            ahead = 0.0
            for other in self._running:
                d = duration(other)
                if d is None:
                    return None
                ahead += max(d - (now - other.started), 0.0)
            for other in self._queue:
                if other is job:
                    break
                if other.waiters > 0:
                    d = duration(other)
                    if d is None:
                        return None
                    ahead += d
            own = duration(job)
            return None if own is None else ahead / self._slots + own

    def _release(self, job: _Job) -> None:
        with self._lock:
            job.waiters -= 1
            if job.waiters == 0 and not job.finished.is_set():
                job.orphaned_at = -math.inf if job.moved_on else time.monotonic()

    def _abandoned(self, job: _Job) -> bool:
        return (
            job.waiters == 0
            and job.orphaned_at is not None
            and time.monotonic() - job.orphaned_at >= self.grace
        )

    def _end(self, job: _Job, state: str, error: BaseException | None = None) -> None:
        job.state = state
        job.error = error
        job.function = _spent
        job.context = contextvars.Context()
        if self._inflight.get(job.key) is job:
            del self._inflight[job.key]
        self._running.discard(job)
        self._counts[{DONE: "completed", FAILED: "failed", CANCELLED: "cancelled"}[state]] += 1
        job.finished.set()

    def _next_job(self) -> _Job | None:
        """The first queued job not abandoned (abandoned ones on the way are cancelled).

        A job released by every waiter less than ``grace`` seconds ago still runs: its session
        may be rerunning and about to ask again; it is stopped at a progress report otherwise.
        """
        while self._queue:
            job = self._queue.popleft()
            if self._abandoned(job):
                self._end(job, CANCELLED, Cancelled("nobody waits for this computation"))
                continue
            return job
        return None

    def _work(self) -> None:
        index = int(threading.current_thread().name.rsplit("-", 1)[-1])
        while True:
            with self._lock:
                while True:
                    if self._closed and not self._queue:
                        return
                    if index < self._slots and len(self._running) < self._slots:
                        job = self._next_job()
                        if job is not None:
                            break
                    self._wake.wait()
                job.state = RUNNING
                job.stage = "Starting"
                job.started = time.monotonic()
                self._running.add(job)
                self._counts["started"] += 1
                function = job.function
                context = job.context

            def progress(fraction: float, stage: str, job: _Job = job) -> None:
                job.fraction = min(max(float(fraction), 0.0), 1.0)
                job.stage = str(stage)
                if self._abandoned(job):
                    raise Cancelled("nobody waits for this computation")

            result: Any = None
            try:
                result = context.run(function, progress)
            except BaseException as error:  # noqa: BLE001 - handed to every waiter, never lost
                with self._lock:
                    state = CANCELLED if isinstance(error, Cancelled) else FAILED
                    self._end(job, state, error)
                    self._wake.notify_all()
            else:
                with self._lock:
                    seen = self._durations.setdefault(job.kind, deque(maxlen=self._history))
                    seen.append(time.monotonic() - job.started)
                    job.result = result
                    self._end(job, DONE)
                    self._wake.notify_all()
            del function, context, result, progress, job  # nothing kept of a finished one
            if self._after_each is not None:
                self._after_each()


def _spent(progress: Progress) -> Any:  # pragma: no cover - never called
    raise RuntimeError("a computation runs once")


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)
