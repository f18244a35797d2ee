"""The runner across sessions (AppTest, each session in its own thread): two sessions asking for
the same configuration at once share one computation; an answer already computed does not wait
behind a computation that fills every slot; the settings read from the environment."""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
import types

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from landscape.engine import byte_lru
from landscape.server import threads as thread_settings
from ui import export, runner

FAKE = "convexify_fake_study"
WAIT = 60.0


@dataclasses.dataclass(frozen=True)
class Config:
    value: float = 1.0
    device: str = "cpu"

    def validate(self) -> None:
        if self.value < 0:
            raise ValueError(f"value must be >= 0, got {self.value}")


@dataclasses.dataclass
class Result:
    values: np.ndarray


def page() -> None:
    import sys

    import streamlit as st

    from ui.runner import poll_study, run_study

    study = sys.modules["convexify_fake_study"]
    value = float(st.query_params.get("value", "1.0"))
    if st.query_params.get("poll"):  # start it and leave, as a rerun stopped midway does
        poll_study(study, study.Config(value=value))
        return
    result = run_study(study, study.Config(value=value))
    if result is not None:
        st.markdown(f"answer {float(result.values.sum()):g}")


@pytest.fixture
def fake_study(monkeypatch):
    module = types.ModuleType(FAKE)
    module.Config = Config
    module.Result = Result
    module.calls = []
    module.gates = {}
    module.reporting = set()  # values whose run reports progress until it is dropped
    module.reports = []

    def run(config: Config, progress=None) -> Result:
        module.calls.append(config.value)
        while config.value in module.reporting and len(module.reports) < 60_000:
            module.reports.append(config.value)
            progress(0.5, "running")
            time.sleep(0.001)
        gate = module.gates.get(config.value)
        if gate is not None:
            assert gate.wait(WAIT)
        if progress is not None:
            progress(1.0, "done")
        return Result(np.full(4, config.value))

    module.run = run
    monkeypatch.setitem(sys.modules, FAKE, module)
    runner.clear_cache()
    yield module
    for gate in module.gates.values():
        gate.set()
    runner.clear_cache()


def eventually(condition) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def session(value: float, answers: dict, name: str, burst: bool = False) -> threading.Thread:
    """A session asking for ``value``; with ``burst``, as if its previous computation had been
    stopped midway by this rerun (a key held down: `runner.RUN_OPEN` still set)."""

    def target() -> None:
        at = AppTest.from_function(page, default_timeout=WAIT)
        at.query_params["value"] = str(value)
        if burst:
            at.session_state[runner.RUN_OPEN] = True
        at.run()
        answers[name] = ([m.value for m in at.markdown], list(at.exception), list(at.error))

    thread = threading.Thread(target=target)
    thread.start()
    return thread


@pytest.mark.slow
def test_two_sessions_same_configuration_one_computation(fake_study) -> None:
    gate = fake_study.gates[2.5] = threading.Event()
    answers: dict = {}
    joined = runner.run_queue().stats().joined
    first = session(2.5, answers, "first")
    eventually(lambda: fake_study.calls)
    second = session(2.5, answers, "second")
    # the second session joins the computation in flight rather than starting its own
    eventually(lambda: runner.run_queue().stats().joined > joined)
    gate.set()
    first.join(WAIT)
    second.join(WAIT)
    assert fake_study.calls == [2.5]
    for name in ("first", "second"):
        markdown, exceptions, errors = answers[name]
        assert not exceptions and not errors, (exceptions, errors)
        assert "answer 10" in markdown, markdown


@pytest.mark.slow
def test_a_computed_answer_never_waits_behind_a_computation(fake_study) -> None:
    answers: dict = {}
    session(4.0, answers, "warm").join(WAIT)  # computed once, now in the result cache
    assert fake_study.calls == [4.0]
    queue = runner.run_queue()
    gates = []
    for k in range(queue.slots):  # fill every slot with a run that waits for us
        gate = fake_study.gates[100.0 + k] = threading.Event()
        gates.append(gate)
        session(100.0 + k, answers, f"busy{k}")
    eventually(lambda: len(fake_study.calls) == 1 + queue.slots)
    assert queue.stats().running == queue.slots
    cached = session(4.0, answers, "cached")
    cached.join(WAIT)  # answers while every slot is still held
    assert not cached.is_alive()
    assert "answer 16" in answers["cached"][0]
    assert queue.stats().running == queue.slots
    for gate in gates:
        gate.set()


def test_settings_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(runner.MAX_RUNS_VARIABLE, "3")
    assert runner.max_runs() == 3
    monkeypatch.setenv(runner.MAX_RUNS_VARIABLE, "0")
    with pytest.raises(ValueError, match="CONVEXIFY_MAX_RUNS"):
        runner.max_runs()
    monkeypatch.delenv(runner.MAX_RUNS_VARIABLE)
    assert runner.max_runs() >= 1
    for text, threads in (("3", 3), (" ", 0), ("0", 0)):
        monkeypatch.setenv(thread_settings.THREADS_VARIABLE, text)
        assert thread_settings.threads_from_env() == threads
    monkeypatch.setenv(thread_settings.THREADS_VARIABLE, "-2")
    with pytest.raises(ValueError, match="CONVEXIFY_TORCH_THREADS must be a whole number >= 0"):
        thread_settings.threads_from_env()
    monkeypatch.setenv(runner.RESULT_CACHE_VARIABLE, "2")
    assert runner.result_cache_bytes() == 2 * 2**20


def test_waiting_text_shows_position_estimate_and_sharing() -> None:
    from landscape.server.serving import RunQueue

    queue = RunQueue(slots=1)
    queue.run("warm", lambda progress: time.sleep(0.01), kind="study")  # one duration seen
    gate = threading.Event()

    def held(progress):
        progress(0.5, "Training")
        gate.wait(WAIT)

    running = queue.submit("a", held, kind="study")
    eventually(lambda: running.progress[1] == "Training")
    joined = queue.submit("a", held, kind="study")
    first = queue.submit("b", lambda progress: None, kind="study")
    second = queue.submit("c", lambda progress: None, kind="study")
    fraction, text = runner._waiting_text(second, queue)
    assert fraction == 0.0
    assert "position 2 of 2" in text and "1 of 1 runs at once" in text and "about" in text
    fraction, text = runner._waiting_text(running, queue)
    assert fraction == 0.5 and text.startswith("Training (shared with 1 other session)")
    first.release()  # the first in line left: the second moves up
    assert "position 1 of 1" in runner._waiting_text(second, queue)[1]
    gate.set()
    for ticket in (running, joined, second):
        assert ticket.wait(WAIT)
        ticket.release()


@pytest.mark.slow
def test_sidebar_about_box_shows_ceilings_and_runs() -> None:
    from pathlib import Path

    app = str(Path(__file__).resolve().parents[1] / "app.py")
    at = AppTest.from_file(app, default_timeout=WAIT).run()
    assert not at.exception
    about = [e for e in at.sidebar.expander if e.label == "About this server"]
    assert len(about) == 1
    text = " ".join(c.value for c in about[0].caption)
    assert f"of {runner.run_queue().slots}" in text
    for name in ("Results", "Figures", "Presets", "Uploads", "Study parts"):
        assert name in text
    assert f"of {runner.result_cache().max_bytes / 2**20:.1f} MiB" in text


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (runner.MAX_RUNS_VARIABLE, "0", "CONVEXIFY_MAX_RUNS must be an integer >= 1, got '0'"),
        (
            thread_settings.THREADS_VARIABLE,
            "two",
            "CONVEXIFY_TORCH_THREADS must be a whole number >= 0",
        ),
        (export.FIGURE_CACHE_VARIABLE, "-4", "CONVEXIFY_FIGURE_CACHE_MB must be a number of MiB"),
    ],
)
def test_a_server_setting_out_of_range_is_named_on_the_page(
    monkeypatch, variable: str, value: str, message: str
) -> None:
    from pathlib import Path

    monkeypatch.delitem(runner._shared, "queue", raising=False)  # made again, with the setting
    figures = byte_lru.ByteLRU(byte_lru.EnvCeiling(export.FIGURE_CACHE_VARIABLE, 1), name="Figures")
    monkeypatch.setattr(export, "_figures", figures)  # as a fresh server makes it, unread yet
    monkeypatch.setenv(variable, value)
    app = str(Path(__file__).resolve().parents[1] / "app.py")
    at = AppTest.from_file(app, default_timeout=WAIT).run()
    assert not at.exception
    assert message in at.error[0].value
    assert not [e for e in at.sidebar.expander if e.label == "About this server"]  # stopped


def test_a_request_superseded_while_it_settles_never_computes(fake_study, monkeypatch) -> None:
    """A slider moved with the arrow keys asks for every value on its way: a request the
    session replaces within `runner.SETTLE_SECONDS` is stopped before it reaches the queue
    (Streamlit raises StopException at the settle's redraw, as it does when a newer rerun came)."""
    from streamlit.runtime.scriptrunner import StopException

    settled: list[float] = []

    def superseded(bar) -> None:
        settled.append(time.monotonic())
        raise StopException()

    monkeypatch.setattr(runner, "_settle", superseded)
    started = runner.run_queue().stats().started
    answers: dict = {}
    session(7.0, answers, "moving", burst=True).join(WAIT)
    markdown, exceptions, errors = answers["moving"]
    assert settled and not exceptions and not errors
    assert fake_study.calls == []  # nothing computed for a value the student moved past
    assert runner.run_queue().stats().started == started


def test_a_session_asking_for_another_value_drops_its_run_at_once(fake_study, monkeypatch) -> None:
    """A value passed over (its run started, its script stopped by the next press) stops
    computing as soon as the session asks for another value, not after the grace time; another
    session's request leaves it running."""
    queue = runner.run_queue()
    monkeypatch.setattr(queue, "grace", 600.0)  # only the session moving on can drop it
    fake_study.reporting.add(8.0)
    moving = AppTest.from_function(page, default_timeout=WAIT)
    moving.query_params.update(value="8.0", poll="1")
    moving.run()
    eventually(lambda: len(fake_study.reports) > 3)
    cancelled = queue.stats().cancelled
    answers: dict = {}
    session(9.0, answers, "another session").join(WAIT)
    seen = len(fake_study.reports)
    eventually(lambda: len(fake_study.reports) > seen + 3)
    assert queue.stats().cancelled == cancelled  # still running for the session that left it
    del moving.query_params["poll"]
    moving.query_params["value"] = "9.0"
    moving.run()
    assert not moving.exception and "answer 36" in moving.markdown[0].value
    eventually(lambda: queue.stats().cancelled == cancelled + 1)
    assert not queue.in_flight((FAKE, Config(value=8.0)))
    assert fake_study.calls == [8.0, 9.0] and len(fake_study.reports) < 60_000


@pytest.mark.slow
def test_only_a_fresh_computation_settles(fake_study, monkeypatch) -> None:
    """Cached answers and requests joining a computation in flight answer without the pause."""
    settles: list[float] = []
    original = runner._settle

    def counted(bar) -> None:
        settles.append(time.monotonic())
        original(bar)

    monkeypatch.setattr(runner, "_settle", counted)
    gate = fake_study.gates[3.0] = threading.Event()
    answers: dict = {}
    joined = runner.run_queue().stats().joined
    first = session(3.0, answers, "first", burst=True)
    eventually(lambda: fake_study.calls)
    second = session(3.0, answers, "second", burst=True)
    eventually(lambda: runner.run_queue().stats().joined > joined)
    gate.set()
    first.join(WAIT)
    second.join(WAIT)
    session(3.0, answers, "cached", burst=True).join(WAIT)
    assert len(settles) == 1  # the first request only
    assert fake_study.calls == [3.0]
    for name in ("first", "second", "cached"):
        assert "answer 12" in answers[name][0], answers[name]


@pytest.mark.slow
def test_a_single_move_starts_at_once(fake_study, monkeypatch) -> None:
    """A session whose previous computation finished (a drag released, a click, a first visit)
    does not settle: its fresh computation starts at once; one whose previous computation was
    stopped midway does."""
    settles: list[float] = []
    monkeypatch.setattr(runner, "_settle", lambda bar: settles.append(time.monotonic()))
    answers: dict = {}
    session(5.0, answers, "single").join(WAIT)
    assert settles == [] and fake_study.calls == [5.0]
    assert "answer 20" in answers["single"][0], answers["single"]
    session(6.0, answers, "burst", burst=True).join(WAIT)
    assert len(settles) == 1 and fake_study.calls == [5.0, 6.0]
