"""Serving many sessions from one process: single flight and admission control.

Free of Streamlit so that tests drive it with plain threads (its caches are
`landscape.engine.byte_lru`):

- `RunQueue`: at most ``slots`` computations at once (admission control), the others wait in
  first-come order; a request for a key already queued or running joins that computation (single
  flight) instead of starting a second. Each request holds a `Ticket`; a ticket released before
  its answer (the session left, or moved on) stops counting as a waiter, and a computation nobody
  waits for any more is dropped from the queue, or, when running, stopped at its next progress
  report. The queue knows each position and estimates the wait from the durations it has seen.
"""

from __future__ import annotations

import contextvars
import dataclasses
import itertools
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from landscape.engine.progress import Progress


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
        """How many computations may run at once (`set_slots` changes it)."""
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
        """A `QueueStats` snapshot: slots, running and queued computations (queued ones somebody
        still waits for), the longest queue seen, and the counters since the queue was made."""
        with self._lock:
            return QueueStats(
                self._slots,
                len(self._running),
                self._queued_count(),
                self._longest,
                **self._counts,
            )

    def reset_longest(self) -> None:
        """Restart ``longest_queue`` from the number queued now (to measure a new period)."""
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
