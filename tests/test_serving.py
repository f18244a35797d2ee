"""Serving machinery: byte-bounded caches, single flight and the admission queue, driven by
plain threads (no Streamlit)."""

from __future__ import annotations

import contextvars
import dataclasses
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from landscape.engine import byte_lru
from landscape.engine.byte_lru import ByteLRU, byte_lru_cache
from landscape.server import serving
from landscape.server.serving import Cancelled, RunQueue

WAIT = 30.0  # seconds: generous bounds for a loaded machine; no test asserts on speed


def eventually(condition, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


# -- sizes -------------------------------------------------------------------------------------


@dataclasses.dataclass
class FakeResult:
    surface: np.ndarray
    losses: np.ndarray
    gap: float
    name: str


def test_size_of_a_result_is_its_arrays_plus_small_overheads() -> None:
    result = FakeResult(np.zeros((100, 100)), np.zeros(1000, np.float32), 0.5, "abc")
    size = byte_lru.estimate_nbytes(result)
    arrays = 100 * 100 * 8 + 1000 * 4
    assert arrays < size < arrays + 2000
    # an array reached twice is counted once; a view adds only its header
    shared = FakeResult(result.surface, result.surface[:10], 0.5, "abc")
    assert byte_lru.estimate_nbytes(shared) < 100 * 100 * 8 + 2000
    assert byte_lru.estimate_nbytes([b"x" * 5000, "y" * 3000]) >= 8000
    assert byte_lru.estimate_nbytes({"a": np.ones(10)}) >= 80 + sys.getsizeof(np.empty(0))


# -- byte-bounded LRU --------------------------------------------------------------------------


def test_byte_ceiling_evicts_least_recently_used() -> None:
    cache: ByteLRU[str, int] = ByteLRU(100, sizer=lambda value: value, bookkeeping=False)
    assert cache.put("a", 40) and cache.put("b", 40)
    assert cache.get("a") == 40  # a is now the most recently used
    assert cache.put("c", 40)  # 120 > 100: b goes
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.nbytes == 80
    assert not cache.put("huge", 101)  # alone above the ceiling: refused, nothing evicted
    assert cache.nbytes == 80 and "huge" not in cache
    stats = cache.stats()
    assert (stats.evictions, stats.refused, stats.entries) == (1, 1, 2)
    cache.put("a", 90)  # replacing a value counts its new size only
    assert cache.nbytes == 90 and list(cache._entries) == ["a"]
    cache.resize(50)
    assert len(cache) == 0 and cache.nbytes == 0


@settings(max_examples=200, deadline=None)
@given(
    ceiling=st.integers(0, 300),
    operations=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 200), st.booleans())),
)
def test_byte_ceiling_is_never_exceeded(ceiling: int, operations) -> None:
    cache: ByteLRU[int, int] = ByteLRU(ceiling, sizer=lambda value: value, bookkeeping=False)
    model: list[tuple[int, int]] = []  # (key, size), least recently used first
    for key, size, is_get in operations:
        if is_get:
            found = cache.get(key)
            held = dict(model)
            assert found == held.get(key)
            if key in held:
                model.remove((key, held[key]))
                model.append((key, held[key]))
            continue
        model = [(k, s) for k, s in model if k != key]
        stored = cache.put(key, size)
        assert stored == (size <= ceiling)
        if stored:
            model.append((key, size))
            while sum(s for _, s in model) > ceiling:
                model.pop(0)
        assert cache.nbytes <= ceiling
        assert cache.nbytes == sum(s for _, s in model)
        assert list(cache._entries) == [k for k, _ in model]


def test_byte_ceiling_holds_under_threads() -> None:
    cache: ByteLRU[int, np.ndarray] = ByteLRU(50_000)
    worst = []

    def writer(offset: int) -> None:
        for i in range(300):
            cache.put(offset + i % 40, np.zeros(100 + (i * 37) % 900))
            worst.append(cache.nbytes)

    threads = [threading.Thread(target=writer, args=(k * 1000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(worst) <= 50_000
    assert cache.stats().evictions > 0


def test_byte_lru_cache_memoises_within_its_ceiling() -> None:
    calls = []

    @byte_lru_cache(3 * 8500 + 500)
    def load(n: int) -> np.ndarray:
        calls.append(n)
        return np.zeros(1000)  # about 8.4 kB each, the key and the bookkeeping with it: 3 fit

    for n in (1, 2, 1, 3, 1, 4, 2):
        load(n)
    assert calls == [1, 2, 3, 4, 2]  # 1 stayed (recently used), 2 was evicted by 4
    assert load.cache.nbytes <= load.cache.max_bytes
    load.cache_clear()
    load(1)
    assert calls[-1] == 1


@pytest.mark.slow
def test_an_entry_counts_its_key_and_the_caches_bookkeeping() -> None:
    """What the cache itself allocates for many entries (traced by tracemalloc: its table, links
    and ``(value, size)`` tuples; the keys and values exist before) is at most
    `byte_lru.ENTRY_OVERHEAD` an entry, and not far below it; an entry counts its value, its key
    and that overhead."""
    entries = 20_000
    keys = [(f"key {i}", i + 10**6) for i in range(entries)]
    values = [float(i) for i in range(entries)]
    cache: ByteLRU[tuple[str, int], float] = ByteLRU(2**30)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key, value in zip(keys, values, strict=True):
            cache.put(key, value)
        bookkeeping = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 0.7 * entries * byte_lru.ENTRY_OVERHEAD <= bookkeeping
    assert bookkeeping <= entries * byte_lru.ENTRY_OVERHEAD
    assert cache.entry_size(keys[0], values[0]) == (
        sys.getsizeof(values[0]) + byte_lru.estimate_nbytes(keys[0]) + byte_lru.ENTRY_OVERHEAD
    )
    assert cache.nbytes == sum(map(cache.entry_size, keys, values))


def test_a_modules_size_is_its_parameters_and_buffers() -> None:
    import torch
    from torch import nn

    model = nn.Sequential(nn.Linear(100, 50), nn.BatchNorm1d(50))
    tensors = [*model.parameters(), *model.buffers()]
    weights = sum(t.numel() * t.element_size() for t in tensors)
    assert weights <= byte_lru.estimate_nbytes(model) <= weights + 200 * len(tensors) + 1000
    assert byte_lru.estimate_nbytes([model, model]) < weights + 200 * len(tensors) + 1100
    assert byte_lru.estimate_nbytes(torch.zeros(10)) >= 40


def test_ceiling_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("CONVEXIFY_TEST_MB", "1.5")
    assert byte_lru.mebibytes_from_env("CONVEXIFY_TEST_MB", 7) == int(1.5 * 2**20)
    monkeypatch.delenv("CONVEXIFY_TEST_MB")
    assert byte_lru.mebibytes_from_env("CONVEXIFY_TEST_MB", 7) == 7 * 2**20
    for bad in ("-1", "lots", "nan"):
        monkeypatch.setenv("CONVEXIFY_TEST_MB", bad)
        with pytest.raises(ValueError, match="CONVEXIFY_TEST_MB"):
            byte_lru.mebibytes_from_env("CONVEXIFY_TEST_MB", 7)


def test_a_ceiling_from_the_environment_is_read_at_the_first_use(monkeypatch) -> None:
    monkeypatch.setenv("CONVEXIFY_TEST_MB", "lots")
    ceiling = byte_lru.EnvCeiling("CONVEXIFY_TEST_MB", 7)
    cache: ByteLRU[str, bytes] = ByteLRU(ceiling, sizer=len, bookkeeping=False)
    for use in (cache.stats, lambda: cache.put("a", b"x"), lambda: cache.max_bytes):
        with pytest.raises(ValueError, match="CONVEXIFY_TEST_MB must be a number of MiB >= 0"):
            use()
    assert len(cache) == 0
    monkeypatch.setenv("CONVEXIFY_TEST_MB", "0.001")  # 1048 bytes
    assert not cache.put("big", bytes(2000)) and cache.put("small", bytes(1000))
    assert cache.stats().max_bytes == int(0.001 * 2**20) and cache.nbytes == 1000
    monkeypatch.setenv("CONVEXIFY_TEST_MB", "5")  # read once: the first reading holds
    assert cache.max_bytes == int(0.001 * 2**20)


# -- single flight -----------------------------------------------------------------------------


def test_single_flight_two_sessions_one_computation() -> None:
    queue = RunQueue(slots=2)
    runs = []
    release = threading.Event()

    def compute(progress) -> dict:
        runs.append(1)
        release.wait(WAIT)
        return {"answer": 42}

    answers: list[object] = []

    def session() -> None:
        answers.append(queue.run(("study", "config"), compute))

    sessions = [threading.Thread(target=session) for _ in range(2)]
    for thread in sessions:
        thread.start()
    eventually(lambda: queue.stats().joined == 1)
    release.set()
    for thread in sessions:
        thread.join(WAIT)
    assert len(runs) == 1
    assert len(answers) == 2 and answers[0] is answers[1] and answers[0] == {"answer": 42}
    # the key is free again: a later request computes afresh (caching is the cache's job)
    assert queue.run(("study", "config"), compute) == {"answer": 42}
    assert len(runs) == 2


def test_single_flight_hands_the_error_to_every_waiter_and_keeps_serving() -> None:
    queue = RunQueue(slots=1)
    release = threading.Event()

    def fail(progress):
        release.wait(WAIT)
        raise ValueError("gamma must be in [0, 5], got 9")

    first = queue.submit("k", fail)
    second = queue.submit("k", fail)
    release.set()
    for ticket in (first, second):
        assert ticket.wait(WAIT)
        with pytest.raises(ValueError, match="gamma"):
            ticket.result()
        ticket.release()
    assert queue.stats().failed == 1
    assert queue.run("other", lambda progress: 7) == 7  # the worker survived


# -- admission and order -----------------------------------------------------------------------


def test_at_most_slots_computations_at_once() -> None:
    queue = RunQueue(slots=2)
    active = []
    peak = []
    lock = threading.Lock()

    def compute(progress) -> int:
        with lock:
            active.append(1)
            peak.append(len(active))
        time.sleep(0.05)
        with lock:
            active.pop()
        return 1

    tickets = [queue.submit(k, compute) for k in range(6)]
    for ticket in tickets:
        assert ticket.wait(WAIT)
        assert ticket.result() == 1
    assert max(peak) == 2
    assert queue.stats().longest_queue >= 4


def test_queue_runs_in_order_and_reports_positions() -> None:
    queue = RunQueue(slots=1)
    order = []
    gate = threading.Event()

    def job(name: str):
        def compute(progress):
            if name == "a":
                gate.wait(WAIT)
            order.append(name)
            return name

        return compute

    a = queue.submit("a", job("a"))
    eventually(lambda: a.state == serving.RUNNING)
    tickets = {name: queue.submit(name, job(name)) for name in "bcd"}
    assert a.position() == 0
    assert [tickets[name].position() for name in "bcd"] == [1, 2, 3]
    assert queue.stats().queued == 3 and queue.stats().running == 1
    gate.set()
    for ticket in tickets.values():
        assert ticket.wait(WAIT)
    assert order == ["a", "b", "c", "d"]


def test_a_released_ticket_drops_its_queued_work() -> None:
    queue = RunQueue(slots=1, grace=0.0)
    gate = threading.Event()
    ran = []

    def compute(name: str):
        def run(progress):
            if name == "a":
                gate.wait(WAIT)
            ran.append(name)
            return name

        return run

    a = queue.submit("a", compute("a"))
    eventually(lambda: a.state == serving.RUNNING)
    b = queue.submit("b", compute("b"))
    c = queue.submit("c", compute("c"))
    assert c.position() == 2
    b.release()  # the session left: its queued work is dropped
    assert c.position() == 1  # and no longer counts ahead of the others
    assert queue.stats().queued == 1
    gate.set()
    assert c.wait(WAIT) and c.result() == "c"
    assert ran == ["a", "c"]
    assert b.state == serving.CANCELLED
    assert queue.stats().cancelled == 1


def test_a_rerun_within_grace_rejoins_its_queued_work() -> None:
    queue = RunQueue(slots=1, grace=60.0)
    gate = threading.Event()
    a = queue.submit("a", lambda progress: gate.wait(WAIT))
    eventually(lambda: a.state == serving.RUNNING)
    calls = []
    b = queue.submit("b", lambda progress: calls.append(1) or "b")
    b.release()
    again = queue.submit("b", lambda progress: calls.append(2) or "b2")
    assert again.position() == 1
    gate.set()
    assert again.wait(WAIT) and again.result() == "b"
    assert calls == [1]


def test_a_running_computation_nobody_waits_for_stops_at_its_next_report() -> None:
    queue = RunQueue(slots=1, grace=0.0)
    reports = []

    def long_run(progress):
        for step in range(100_000):
            reports.append(step)
            progress(step / 100_000, f"step {step}")
            time.sleep(0.001)
        return "finished"

    ticket = queue.submit("long", long_run)
    eventually(lambda: len(reports) > 3)
    assert ticket.progress[1].startswith("step")
    ticket.release()
    eventually(lambda: ticket.state == serving.CANCELLED)
    assert len(reports) < 100_000
    with pytest.raises(Cancelled):
        ticket.result()
    # the slot is free for the next request
    assert queue.run("next", lambda progress: "ok") == "ok"


def reporting_until_dropped(reports: list[int]):
    """A computation that reports progress every millisecond until it is dropped."""

    def run(progress) -> str:
        for step in range(30_000):
            reports.append(step)
            progress(step / 30_000, f"step {step}")
            time.sleep(0.001)
        return "finished"

    return run


def test_a_requester_asking_for_another_value_drops_its_released_work_at_once() -> None:
    """With a grace time of a minute, only `supersede` can stop these computations early."""
    queue = RunQueue(slots=1, grace=60.0)
    reports: list[int] = []
    passed = queue.submit("value 1", reporting_until_dropped(reports), owner="student")
    eventually(lambda: len(reports) > 3)
    queued = queue.submit("value 2", lambda progress: "never", owner="student")
    passed.release()
    queued.release()
    assert queue.supersede("student", "value 2") == 1  # value 2 is what it asks for now
    assert queued.state == serving.QUEUED
    assert queue.supersede("student", "value 3") == 1
    eventually(lambda: passed.state == serving.CANCELLED and queued.state == serving.CANCELLED)
    assert len(reports) < 30_000
    assert queue.stats().cancelled == 2
    assert queue.run("value 3", lambda progress: "ok") == "ok"  # the slot is free


def test_supersede_keeps_work_another_requester_has_not_moved_on_from() -> None:
    queue = RunQueue(slots=1, grace=60.0)
    reports: list[int] = []
    first = queue.submit("shared value", reporting_until_dropped(reports), owner="student a")
    second = queue.submit("shared value", reporting_until_dropped(reports), owner="student b")
    eventually(lambda: len(reports) > 3)
    first.release()
    second.release()
    assert queue.supersede("student a", "elsewhere") == 0  # student b may rerun for it
    assert queue.supersede("student c", "elsewhere") == 0  # never asked for it
    seen = len(reports)
    eventually(lambda: len(reports) > seen + 3)
    assert first.state == serving.RUNNING
    assert queue.supersede("student b", "elsewhere") == 1
    eventually(lambda: first.state == serving.CANCELLED)


def test_supersede_drops_held_work_only_when_its_last_waiter_leaves() -> None:
    queue = RunQueue(slots=1, grace=60.0)
    reports: list[int] = []
    held = queue.submit("value 1", reporting_until_dropped(reports), owner="student")
    eventually(lambda: len(reports) > 3)
    assert queue.supersede("student", "value 2") == 0  # still waited for: it runs on
    seen = len(reports)
    eventually(lambda: len(reports) > seen + 3)
    assert held.state == serving.RUNNING
    held.release()  # the stopped script lets go: no grace, it moved on already
    eventually(lambda: held.state == serving.CANCELLED)


def test_supersede_spares_the_value_asked_for_and_work_without_a_requester() -> None:
    queue = RunQueue(slots=2, grace=60.0)
    reports: list[int] = []
    prefetched = queue.submit("training", reporting_until_dropped([]))  # a prefetch
    prefetched.release()
    rerun = queue.submit("value 1", reporting_until_dropped(reports), owner="student")
    eventually(lambda: len(reports) > 3)
    rerun.release()
    assert queue.supersede("student", "value 1") == 0  # a rerun asking for the same value
    again = queue.submit("value 1", reporting_until_dropped(reports), owner="student")
    assert queue.supersede("student", "value 2") == 0  # ``again`` still waits for it
    seen = len(reports)
    eventually(lambda: len(reports) > seen + 3)
    assert prefetched.state == again.state == serving.RUNNING
    again.release()
    eventually(lambda: again.state == serving.CANCELLED)
    assert prefetched.state == serving.RUNNING  # nobody's value: only the grace time drops it
    queue.grace = 0.0
    eventually(lambda: prefetched.state == serving.CANCELLED)


def test_estimate_grows_with_the_position() -> None:
    queue = RunQueue(slots=1)
    for k in range(3):
        queue.run(("warm", k), lambda progress: time.sleep(0.02), kind="study")
    mean = queue.mean_seconds("study")
    assert mean is not None and mean >= 0.02
    gate = threading.Event()
    a = queue.submit("a", lambda progress: gate.wait(WAIT), kind="study")
    eventually(lambda: a.state == serving.RUNNING)
    b = queue.submit("b", lambda progress: None, kind="study")
    c = queue.submit("c", lambda progress: None, kind="study")
    eb, ec = b.estimate_seconds(), c.estimate_seconds()
    assert eb is not None and ec is not None
    assert ec == pytest.approx(eb + mean, rel=0.2)  # one more computation ahead of c
    gate.set()
    for ticket in (a, b, c):
        ticket.wait(WAIT)
    assert c.estimate_seconds() == 0.0


WHERE: contextvars.ContextVar[str] = contextvars.ContextVar("where", default="here")


def test_a_computation_sees_the_context_of_its_request() -> None:
    """``cluster.compute_on`` is a context variable: set around a request, it must hold in the
    worker thread that runs the computation."""
    queue = RunQueue(slots=1)
    token = WHERE.set("ray://cluster:10001")
    try:
        assert queue.run("where", lambda progress: WHERE.get()) == "ray://cluster:10001"
    finally:
        WHERE.reset(token)
    assert queue.run("where again", lambda progress: WHERE.get()) == "here"


def test_bad_slots_are_refused() -> None:
    with pytest.raises(ValueError, match="slots"):
        RunQueue(slots=0)


def test_after_each_runs_once_per_computation_after_its_answer() -> None:
    seen: list[tuple[int, bool]] = []  # (computations ended so far, the last ticket answered)
    tickets: list[serving.Ticket] = []

    def after() -> None:
        seen.append((queue.stats().completed + queue.stats().failed, tickets[-1].wait(0)))

    def fail(progress) -> int:
        raise ValueError("no answer")

    queue = RunQueue(1, after_each=after)
    try:
        for key, function in (("a", lambda progress: 1), ("b", fail), ("c", lambda progress: 3)):
            with queue.submit(key, function) as ticket:
                tickets.append(ticket)
                ticket.wait(WAIT)
                eventually(lambda: len(seen) == len(tickets))
        assert seen == [(1, True), (2, True), (3, True)]  # failures included, answers first
        assert tickets[0].result() == 1 and tickets[2].result() == 3
    finally:
        queue.close()
