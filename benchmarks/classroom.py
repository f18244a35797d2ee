"""Benchmark: a class on one server. N sessions follow a lecture script on one app.

Starts ``streamlit run app.py`` (as the browser tests do) and one headless Chromium; each student
is a Playwright browser context, or with ``--browsers K`` only K of them are: the other N - K are
protocol students (`benchmarks.protocol_student`), which speak Streamlit's websocket protocol to
the same server, load it as a browser does (widget states, page changes, held elements, the
page's files over HTTP) and draw nothing. In a class every student's browser runs on the
student's own machine; here N browsers share the server's 2 cores, and their drawing (0.6-1
CPU-s per move each) saturates the machine long before the server does (8 browsers: 1.92 of 2
cores busy, the server 0.29). The K browsers then measure what a student sees while the server
serves N sessions. A lap of the lecture: every student opens the shared link (the
first study, with the lap's seed), then for each study moves its headline slider through the
lecture's values (keyboard arrows, as a student would, with the chart the slider changes
scrolled into view) and opens the next study from the
sidebar. Before the class, the teacher opens each study once (the server's first run of a page
imports its modules; ``--cold`` skips this and lets the class pay it). The teacher paces the
class: a step starts when every student has finished the last one, and each student starts it
after a random 0-2 s. Laps repeat until ``--minutes`` have
passed (the soak stops at the first step after that, even inside the first lap; 0 runs one
lap); lap k uses seed k, so every lap after the first asks for new answers (the caches fill and
must hold their ceilings).

    python benchmarks/classroom.py [--sessions 8] [--minutes 10] [--sweep 2,4,8,12] [--browsers K]

Prints, per kind of move, p50 and p95 seconds from the move (last key press) to the changed
chart: ``preset`` when the page says it shows a precomputed preset (the lecture's ladder values
are presets), ``cached`` when the answer came without a computation (a value asked before, by
this student or another), ``fresh`` when the page showed a run's progress bar (computed for this
move, alone or shared with other students asking at the same time); and for opening a study,
to its first chart. Then the issue's targets, each with PASS or MISS: p95 under 3 s for preset
and cached moves, under 10 s for fresh ones, and the server's memory flat over the last half of
the run (within `FLAT_PERCENT`, by the line fitted to that half's samples: `memory_change`).
Also the longest queue of heavy runs the server saw, the answers it shared between sessions,
the heavy runs it started, each cache's bytes, and the server's resident memory (RSS of the
streamlit process) over time. The moves, opens and latency targets above are the browser
students' (what a student sees). Protocol students are reported apart: p50 and p95 from a
move's last press to the end of the run that answers it (the server's time and the network's,
nothing drawn), classified as the browser classifies (the preset notice, a progress bar); each
answer checked (its chart must differ from the one before the move and equal every other answer
for the same link, study and value: the last move of a study returns to its first value, so
each student checks one against its open; ``--dump-mismatches DIR`` writes both figures of a
mismatch); their error elements and timeouts; and their moves
per kind beside the browser students' (the same lecture, so the same fresh computations asked
for). ``--sweep`` runs one short run per N on a fresh server each and prints the largest N whose
browser students' preset and cached moves keep p95 under 3 s (with ``--browsers K``, K browsers
in each N).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import os
import random
import re
import sys
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.app_server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CONNECTED,
    ERRORS,
    NOT_RUNNING,
    AppServer,
)
from benchmarks.protocol_student import PRESS_GAPS_S, MismatchDump, ProtocolStudent

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

CHARTS_JS = "Array.from(document.querySelectorAll('.js-plotly-plot'))"
REMEMBER_JS = f"""() => {{
    const els = {CHARTS_JS};
    window.__refs = els.map(el => el.data);
    window.__sigs = els.map(el => JSON.stringify(el.data || null));
}}"""
#: Before a move: watch for the runner's progress bar (a computation for this move), and note
#: when the app's script run starts and ends (its ``data-test-script-state``), in ms.
WATCH_MOVE_JS = """() => {
    window.__computing = false;
    window.__runStart = null;
    window.__runEnd = null;
    if (window.__moveWatch) return;
    window.__moveWatch = new MutationObserver(() => {
        if (document.querySelector('[data-testid="stProgress"]')) window.__computing = true;
    });
    window.__moveWatch.observe(document.body, {childList: true, subtree: true});
    const app = document.querySelector('[data-testid="stApp"]');
    new MutationObserver(() => {
        const state = app.getAttribute('data-test-script-state');
        if (state === 'running' && window.__runStart === null) {
            window.__runStart = performance.now();
        } else if (state !== 'running' && window.__runStart !== null && window.__runEnd === null) {
            window.__runEnd = performance.now();
        }
    }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
PRESSED_JS = "() => { window.__pressed = performance.now(); }"
#: After the chart changed: (press -> the server's run starts, that run, run end -> chart), s.
PHASES_JS = """() => {
    const now = performance.now();
    const start = window.__runStart, end = window.__runEnd;
    if (start === null) return null;
    return [(start - window.__pressed) / 1000, ((end === null ? now : end) - start) / 1000,
            (now - (end === null ? now : end)) / 1000];
}"""
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
CHANGED_JS = f"""() => {{
    const els = {CHARTS_JS};
    if (!window.__refs) return false;
    return els.some((el, i) => el.data && (i >= window.__refs.length || (
        el.data !== window.__refs[i] && JSON.stringify(el.data) !== window.__sigs[i])));
}}"""


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time every core of this machine has spent busy so far (``/proc/stat``), in seconds."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (the streamlit server), in MiB."""
    total = 0.0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


class Server(AppServer):
    """The app (`benchmarks.app_server.AppServer`), its memory and CPU time sampled every
    ``every`` seconds."""

    def __init__(self, env: dict[str, str], every: float = 5.0) -> None:
        super().__init__(env, start_timeout=90.0)
        self.started = time.monotonic()
        self.memory: list[tuple[float, float]] = []
        self.cpu: list[tuple[float, float]] = []
        self.machine: list[tuple[float, float]] = []  # every core's busy time
        self._stop = threading.Event()
        self._every = every
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic() - self.started
            self.memory.append((now, rss_mib(self.pid)))
            self.cpu.append((now, cpu_seconds(self.pid)))
            self.machine.append((now, machine_busy_seconds()))
            self._stop.wait(self._every)

    def stop(self) -> str:
        if hasattr(self, "_stop"):
            self._stop.set()
        return super().stop()


@dataclass
class Record:
    moves: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    # per preset or cached move: seconds from the key press to the server's script run starting,
    # of that run (as the browser sees it: sent, run, its elements received), and from its end
    # to the changed chart (negative: the chart changed while the run was still sending)
    phases: list[tuple[float, float, float]] = field(default_factory=list)
    opens: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    errors_on_page: int = 0
    # protocol students only: each move's check of the answer (`ProtocolStudent.check`), what
    # the client could not do as the browser does, and the elements sent as references
    checks: collections.Counter[str] = field(default_factory=collections.Counter)
    problems: list[str] = field(default_factory=list)
    references: int = 0
    # protocol students only: (monotonic s, MiB all caches held) from each about box received
    caches: list[tuple[float, float]] = field(default_factory=list)


async def wait_for_run(page) -> None:
    await page.wait_for_selector(CONNECTED)
    await page.wait_for_selector(NOT_RUNNING, state="attached")


async def error_count(page) -> int:
    return len(await page.query_selector_all(ERRORS))


async def open_study(page, url: str, record: Record) -> None:
    await page.evaluate("() => { window.__refs = []; window.__sigs = []; }")
    started = time.perf_counter()
    try:
        await page.goto(url)
        await page.wait_for_selector(".js-plotly-plot", timeout=MOVE_TIMEOUT_S * 1000)
    except Exception as error:  # noqa: BLE001 - a timeout is a result, recorded
        record.failures.append(f"open {url}: {type(error).__name__}")
        return
    record.opens.append(time.perf_counter() - started)
    await wait_for_run(page)


async def next_study(page, base: str, path: str, record: Record) -> None:
    """Open the next study from the sidebar's navigation (no page reload), as a student does."""
    link = page.locator(f'[data-testid="stSidebarNav"] a[href$="/{path}"]')
    await page.evaluate(REMEMBER_JS)
    started = time.perf_counter()
    if await link.count():
        await link.first.click()
        await page.wait_for_url(f"**/{path}**")
    else:
        await page.goto(f"{base}/{path}")
    try:
        await page.wait_for_function(CHANGED_JS, polling=100, timeout=MOVE_TIMEOUT_S * 1000)
    except Exception as error:  # noqa: BLE001 - a timeout is a result, recorded
        record.failures.append(f"open {page.url}: {type(error).__name__}")
        return
    record.opens.append(time.perf_counter() - started)
    await wait_for_run(page)


async def move(page, study: Study, presses: int, record: Record) -> None:
    """Move the study's slider by ``presses`` arrow keys, the chart it changes in view."""
    key = study.slider
    slider = page.locator(f'.st-key-{key} :is([role="slider"], input[type="range"])').first
    await wait_for_run(page)
    await page.evaluate(REMEMBER_JS)
    await page.evaluate(WATCH_MOVE_JS)
    await slider.focus()
    await page.locator(f".st-key-chart_{study.chart}").scroll_into_view_if_needed()
    arrow = "ArrowRight" if presses > 0 else "ArrowLeft"
    for _ in range(abs(presses)):
        await page.keyboard.press(arrow)
    started = time.perf_counter()
    await page.evaluate(PRESSED_JS)
    try:
        await page.wait_for_function(CHANGED_JS, polling=100, timeout=MOVE_TIMEOUT_S * 1000)
    except Exception as error:  # noqa: BLE001 - a timeout is a result, recorded
        record.failures.append(f"{page.url} {key} {presses:+d}: {type(error).__name__}")
        return
    seconds = time.perf_counter() - started
    phases = await page.evaluate(PHASES_JS)
    await wait_for_run(page)
    if await page.get_by_text("Precomputed preset").count():
        kind = "preset"
    else:
        kind = "fresh" if await page.evaluate("() => window.__computing") else "cached"
    record.moves[kind].append(seconds)
    if phases is not None and kind != "fresh":
        record.phases.append(tuple(phases))
    record.errors_on_page += await error_count(page)


class Teacher:
    """A barrier per lecture step: the class moves on when every student is done."""

    def __init__(self, students: int, deadline: float, records: list[Record]) -> None:
        self.students = students
        self.deadline = deadline
        self.records = records
        self.started = time.monotonic()
        self.arrived = 0
        self.generation = 0
        self.over = False  # decided once per step, for every student alike
        self.condition = asyncio.Condition()

    def _release(self) -> None:
        self.arrived = 0
        self.generation += 1
        self.over = time.monotonic() > self.deadline
        moves = [v for r in self.records for values in r.moves.values() for v in values]
        failures = sum(len(r.failures) for r in self.records)
        print(
            f"  [{time.monotonic() - self.started:5.0f} s] step {self.generation}: "
            f"{len(moves)} moves, p95 so far {percentile(moves, 95):.1f} s, "
            f"timeouts {failures}",
            flush=True,
        )
        self.condition.notify_all()

    async def step(self) -> bool:
        """Wait for the class; True once the soak's time is over."""
        async with self.condition:
            generation = self.generation
            self.arrived += 1
            if self.arrived >= self.students:
                self._release()
            else:
                await self.condition.wait_for(lambda: self.generation != generation)
            return self.over

    async def leave(self) -> None:
        """A student who stops (done, or failed) no longer holds the class back."""
        async with self.condition:
            self.students -= 1
            if self.students > 0 and self.arrived >= self.students:
                self._release()


class BrowserStudent:
    """A student in a Playwright browser context of the benchmark's Chromium."""

    def __init__(self, context, page, base: str) -> None:
        self.context, self.page, self.base = context, page, base

    async def open(self, path: str, lap: int, record: Record) -> None:
        """Open the lap's link to ``path`` (`open_study`)."""
        await open_study(self.page, f"{self.base}/{path}?seed={lap}", record)

    async def next(self, path: str, record: Record) -> None:
        """Open ``path`` from the sidebar (`next_study`)."""
        await next_study(self.page, self.base, path, record)

    async def move(self, study: Study, presses: int, record: Record) -> None:
        """Move the study's slider (`move`)."""
        await move(self.page, study, presses, record)

    async def close(self, record: Record) -> None:
        """Close the tab."""
        await self.context.close()


async def browser_student(browser, base: str) -> BrowserStudent:
    """A new browser context and page (one student's tab)."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(MOVE_TIMEOUT_S * 1000)
    return BrowserStudent(context, page, base)


class ProtocolActor:
    """A protocol student (`benchmarks.protocol_student`), recorded as a browser student is:
    its moves by kind, a step that took longer than `MOVE_TIMEOUT_S` as a failure, the errors
    its answers showed; and each move's check of the answer."""

    def __init__(
        self,
        base: str,
        answers: dict,
        press_gaps: tuple[float, float],
        dump: MismatchDump | None = None,
    ) -> None:
        self.client = ProtocolStudent(base, answers, press_gaps, dump)

    async def open(self, path: str, lap: int, record: Record) -> None:
        """Open the lap's link to ``path`` (`ProtocolStudent.open`)."""
        await self._opened(self.client.open(path, f"seed={lap}"), path, record)

    async def next(self, path: str, record: Record) -> None:
        """Open ``path`` as from the sidebar (`ProtocolStudent.next_study`)."""
        await self._opened(self.client.next_study(path), path, record)

    async def _opened(self, step: Awaitable[float], path: str, record: Record) -> None:
        """Record the seconds of opening ``path`` (to the end of its run), or the timeout."""
        try:
            record.opens.append(await asyncio.wait_for(step, MOVE_TIMEOUT_S))
        except TimeoutError:
            record.failures.append(f"open {path}: TimeoutError")

    async def move(self, study: Study, presses: int, record: Record) -> None:
        """Move the study's slider (`ProtocolStudent.move`); record its kind, time and check."""
        step = self.client.move(study.slider, f"chart_{study.chart}", presses)
        try:
            answer = await asyncio.wait_for(step, MOVE_TIMEOUT_S)
        except TimeoutError:
            record.failures.append(f"{study.path} {study.slider} {presses:+d}: TimeoutError")
            return
        record.moves[answer.kind].append(answer.seconds)
        record.errors_on_page += len(answer.errors)
        record.checks[answer.check] += 1

    async def close(self, record: Record) -> None:
        """Leave; record what the client could not do as a browser, and its references."""
        await self.client.close()
        record.problems.extend(self.client.problems)
        record.references += self.client.references
        record.caches.extend(self.client.caches)


async def student(actor, teacher: Teacher, laps: list[int], one_lap: bool) -> Record:
    """One student (a `BrowserStudent` or a `ProtocolActor`) through the lecture; a soak (not
    ``one_lap``) stops at its deadline."""
    record = Record()
    teacher.records.append(record)
    rng = random.Random()
    lap = 0
    try:
        while not await teacher.step() or (one_lap and lap == 0):
            await asyncio.sleep(rng.uniform(0, 2))
            await actor.open(LECTURE[0].path, lap, record)
            for index, study in enumerate(LECTURE):
                if index > 0:
                    if await teacher.step() and not (one_lap and lap == 0):
                        return record
                    await asyncio.sleep(rng.uniform(0, 2))
                    await actor.next(study.path, record)
                for count in study.presses:
                    if await teacher.step() and not (one_lap and lap == 0):
                        return record
                    await asyncio.sleep(rng.uniform(0, 2))
                    await actor.move(study, count, record)
            lap += 1
            laps.append(lap)
    finally:
        await teacher.leave()
        await actor.close(record)
    return record


async def about_box(browser, base: str) -> str:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    await page.goto(base)
    await wait_for_run(page)
    await page.get_by_text("About this server").first.click()
    await page.wait_for_timeout(500)
    text = await page.locator('[data-testid="stSidebar"]').inner_text()
    await context.close()
    return text


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def warm_up(browser, base: str) -> list[tuple[str, float]]:
    """The teacher opens every study of the lecture once before the class arrives (the server's
    first run of each page imports its modules and loads its preset): seconds per study."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(MOVE_TIMEOUT_S * 1000)
    seconds = []
    for path, *_ in LECTURE:
        started = time.perf_counter()
        await page.goto(f"{base}/{path}?seed=0")
        await page.wait_for_selector(".js-plotly-plot")
        await wait_for_run(page)
        seconds.append((path, time.perf_counter() - started))
    await context.close()
    return seconds


async def class_run(
    sessions: int,
    minutes: float,
    env: dict[str, str],
    webgl: bool,
    warm: bool = True,
    browsers: int | None = None,
    press_gaps: tuple[float, float] = PRESS_GAPS_S,
    dump: MismatchDump | None = None,
) -> dict:
    """One class of ``sessions`` students on a fresh server: the first ``browsers`` of them (all
    by default) browser students, the others protocol students (their arrow presses
    ``press_gaps`` seconds apart: low, high)."""
    from playwright.async_api import async_playwright

    browsers = sessions if browsers is None else min(browsers, sessions)
    server = Server(env)
    warmed: list[tuple[str, float]] = []
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS + ([] if webgl else ["--disable-3d-apis"]),
            )
            if warm:
                warmed = await warm_up(browser, server.url)
            teacher = Teacher(sessions, time.monotonic() + minutes * 60, [])
            laps: list[int] = []
            answers: dict = {}
            if dump is not None:
                dump.first.clear()  # the answers of an earlier run of a sweep
            actors: list[BrowserStudent | ProtocolActor] = [
                await browser_student(browser, server.url) for _ in range(browsers)
            ]
            actors += [
                ProtocolActor(server.url, answers, press_gaps, dump)
                for _ in range(sessions - browsers)
            ]
            started = time.monotonic()
            client_cpu = cpu_seconds(os.getpid())
            records = await asyncio.gather(
                *(student(actor, teacher, laps, minutes <= 0) for actor in actors),
                return_exceptions=True,
            )
            client_cpu = cpu_seconds(os.getpid()) - client_cpu
            elapsed = time.monotonic() - started
            about = await about_box(browser, server.url)
            await browser.close()
    finally:
        log = server.stop()
    crashed = [f"{type(r).__name__}: {r}" for r in records if isinstance(r, BaseException)]
    longest = re.search(r"longest so far (\d+)", about)
    shared = re.search(r"answers shared between sessions: (\d+)", about)
    runs = re.search(r"runs started: (\d+), dropped unwanted: (\d+)", about)
    return {
        "sessions": sessions,
        "browsers": browsers,
        "warmed": warmed,
        "elapsed": elapsed,
        "laps": max(laps) if laps else 0,
        "record": merged(records[:browsers]),
        "protocol": merged(records[browsers:]),
        "client_cpu": client_cpu,
        "crashed": crashed,
        "longest_queue": int(longest.group(1)) if longest else None,
        "shared": int(shared.group(1)) if shared else None,
        "runs": (int(runs.group(1)), int(runs.group(2))) if runs else None,
        "memory": server.memory,
        "server_started": server.started,
        "cpu": server.cpu,
        "machine": server.machine,
        "tracebacks": log.count("Traceback"),
        "log": log,
        "caches": re.findall(CACHE_LINE, about),
    }


def merged(records: list[Record | BaseException]) -> Record:
    """The students' records as one (a student that crashed has none)."""
    total = Record()
    for record in records:
        if isinstance(record, BaseException):
            continue
        for kind, values in record.moves.items():
            total.moves[kind].extend(values)
        total.opens.extend(record.opens)
        total.phases.extend(record.phases)
        total.failures.extend(record.failures)
        total.errors_on_page += record.errors_on_page
        total.checks.update(record.checks)
        total.problems.extend(record.problems)
        total.references += record.references
        total.caches.extend(record.caches)
    return total


def report(result: dict) -> float:
    """Print a class's figures (see the module's docstring); the p95 of the browser students'
    preset and cached moves."""
    record: Record = result["record"]
    protocol: Record = result["protocol"]
    moves_and_opens = sum(
        sum(map(len, r.moves.values())) + len(r.opens) for r in (record, protocol)
    )
    students = f"{result['sessions']} sessions"
    if result["browsers"] < result["sessions"]:
        students += (
            f" ({result['browsers']} in browsers, "
            f"{result['sessions'] - result['browsers']} protocol students)"
        )
    print(
        f"\n== N = {students}, {result['elapsed'] / 60:.1f} min, "
        f"{result['laps']} lap(s) of the lecture"
    )
    if result["warmed"]:
        opened = ", ".join(f"{path} {seconds:.1f} s" for path, seconds in result["warmed"])
        print(f"server warmed up by one session before the class: {opened}")
    else:
        print("cold server: the class's first opens include the server's imports (--cold)")
    print(f"{'':26}{'count':>7}{'p50 s':>9}{'p95 s':>9}{'max s':>9}")
    fast = record.moves["preset"] + record.moves["cached"]
    report_times(record, "chart")
    report_phases(record)
    if result["browsers"] < result["sessions"]:
        report_protocol(result)
    print(
        f"longest queue of heavy runs: {result['longest_queue']}; answers shared between "
        f"sessions (single flight): {result['shared']}"
    )
    if result["runs"] is not None:
        print(
            f"heavy runs the server started (fresh computations): {result['runs'][0]}, "
            f"dropped unwanted: {result['runs'][1]}"
        )
    print(
        f"moves that timed out ({MOVE_TIMEOUT_S:.0f} s): {len(record.failures)}; error elements "
        f"seen: {record.errors_on_page}; tracebacks in the server log: {result['tracebacks']}; "
        f"sessions crashed: {len(result['crashed'])}"
    )
    for name, line in result["caches"]:
        print(f"cache {name}: {line}")
    for line in result["crashed"][:3]:
        print("  crashed:", line[:300])
    if result["tracebacks"]:
        first = result["log"].index("Traceback")
        print("  first traceback in the server log:\n" + result["log"][first : first + 3000])
    cpu = result["cpu"]
    if len(cpu) > 1 and moves_and_opens:
        used = cpu[-1][1] - cpu[0][1]
        span = cpu[-1][0] - cpu[0][0]
        print(
            f"server CPU: {used:.0f} s over {span:.0f} s of wall time "
            f"({used / span:.2f} cores of {os.cpu_count()}); {used / moves_and_opens:.2f} CPU-s "
            f"per student move or study opened (everything the server did, shared runs "
            f"included): a lower bound for a step where all N act at once on an idle machine "
            f"is N x that / cores"
        )
        machine = result["machine"]
        busy = (machine[-1][1] - machine[0][1]) / span
        print(
            f"machine CPU: {busy:.2f} cores busy of {os.cpu_count()}: the server "
            f"{used / span:.2f}, the rest {busy - used / span:.2f} (the students' Chromium, "
            f"Playwright's driver and this script: in a class, the students' own machines)"
        )
    memory = result["memory"]
    if memory:
        step = max(1, len(memory) // 20)
        print("server RSS (MiB) over time:")
        print("  " + "  ".join(f"{t:.0f}s:{m:.0f}" for t, m in memory[::step]))
        half = [m for t, m in memory if t >= memory[-1][0] / 2]
        print(
            f"  last half: min {min(half):.0f}, max {max(half):.0f}, "
            f"first {half[0]:.0f} -> last {half[-1]:.0f} MiB "
            f"(change {half[-1] - half[0]:+.0f} MiB, {100 * (half[-1] - half[0]) / half[0]:+.1f}%)"
        )
    for line in record.failures[:5]:
        print("  timed out:", line)
    caches = sorted((t - result["server_started"], mib) for t, mib in protocol.caches)
    report_targets(record, memory, caches)
    return percentile(fast, 95)


def report_times(record: Record, until: str) -> None:
    """One row per kind of move, all moves, and opening a study: count, p50, p95 and max
    seconds from the move (or the open) to ``until`` ("chart", "run end")."""
    rows = [(f"move -> {until}, {kind}", record.moves[kind]) for kind in KINDS]
    rows += [
        (f"move -> {until}, all", [v for k in KINDS for v in record.moves[k]]),
        (f"open study -> {until}", record.opens),
    ]
    for label, values in rows:
        print(
            f"{label:26}{len(values):7d}{percentile(values, 50):9.2f}"
            f"{percentile(values, 95):9.2f}{max(values, default=float('nan')):9.2f}"
        )


def report_protocol(result: dict) -> None:
    """The protocol students: their moves timed to the end of the answering run (the server's
    time plus the network, nothing drawn), the checks of their answers, and their moves per
    kind beside the browser students' (the same lecture asks the server for as much)."""
    protocol: Record = result["protocol"]
    print(f"protocol students ({result['sessions'] - result['browsers']}), no browser:")
    report_times(protocol, "run end")
    checks = ", ".join(f"{name} {count}" for name, count in sorted(protocol.checks.items()))
    print(
        f"  answers checked (the moved chart against the other answers for that value): "
        f"{checks or 'none'}; timed out: {len(protocol.failures)}; error elements: "
        f"{protocol.errors_on_page}; elements sent as references: {protocol.references}; "
        f"not done as a browser would: {len(protocol.problems)}"
    )
    for line in protocol.problems[:3] + protocol.failures[:3]:
        print("   ", line[:300])
    groups = [("browser", result["record"], result["browsers"])]
    groups.append(("protocol", protocol, result["sessions"] - result["browsers"]))
    per_student = "; ".join(
        f"{name} students " + " / ".join(f"{len(r.moves[k]) / n:.1f} {k}" for k in KINDS)
        for name, r, n in groups
        if n
    )
    print(f"  moves per student: {per_student}")
    print(
        f"  this script's CPU (the protocol students, Playwright's client side): "
        f"{result['client_cpu']:.0f} s"
    )


def report_phases(record: Record) -> None:
    """Where a preset or cached move's time goes: the browser, the server's run, the chart."""
    if not record.phases:
        return
    print("preset and cached moves, where the time goes (p50 / p95 s):")
    labels = (
        "key press -> the server starts the rerun",
        "the rerun (browser's view: run and its elements received)",
        "rerun finished -> chart changed",
    )
    for label, values in zip(labels, zip(*record.phases, strict=True), strict=True):
        p50, p95 = percentile(list(values), 50), percentile(list(values), 95)
        print(f"  {label:58}{p50:7.2f} /{p95:6.2f}")


def report_targets(
    record: Record, memory: list[tuple[float, float]], caches: list[tuple[float, float]]
) -> None:
    """The issue's targets with PASS or MISS (a move that timed out counts as a fresh one);
    with the caches' bytes over time (``caches``: seconds since the server started, MiB), the
    memory outside the caches beside the memory target."""
    fast = record.moves["preset"] + record.moves["cached"]
    timed_out = [MOVE_TIMEOUT_S] * len(record.failures)
    targets = [
        (f"p95 preset and cached moves < {FAST_TARGET_S:.0f} s", percentile(fast, 95), "s"),
        (
            f"p95 fresh moves < {FRESH_TARGET_S:.0f} s",
            percentile(record.moves["fresh"] + timed_out, 95),
            "s",
        ),
    ]
    print("targets (issue 17):")
    for (label, value, unit), limit in zip(targets, (FAST_TARGET_S, FRESH_TARGET_S), strict=True):
        verdict = "no moves" if value != value else ("PASS" if value < limit else "MISS")
        print(f"  {label}: {value:.2f} {unit} -> {verdict}")
    if memory:
        trend, first_to_last = memory_change(memory)
        verdict = "PASS" if abs(trend) <= FLAT_PERCENT else "MISS"
        print(
            f"  memory flat over the last half (within {FLAT_PERCENT:.0f}%): fitted trend "
            f"{trend:+.1f}% (first to last sample {first_to_last:+.1f}%) -> {verdict}"
        )
        first_peak, last_peak = peaks(memory)
        print(
            f"  (memory between computations, the lowest sample per {ENVELOPE_SECONDS:.0f} s: "
            f"fitted trend {floor_trend(memory):+.1f}%; highest sample, with the runs' working "
            f"memory: {first_peak:.0f} MiB in the first half, {last_peak:.0f} MiB in the last)"
        )
        outside = outside_caches(memory, caches)
        if len(last_half(outside)) >= 2:
            # the readings in the last half, or the last one before it when none came there
            held = [mib for t, mib in caches if t >= memory[-1][0] / 2] or [caches[-1][1]]
            trend, first_to_last = memory_change(outside)
            print(
                f"  (the caches' bytes, from the about box the protocol students receive: "
                f"{held[0]:.0f} -> {held[-1]:.0f} MiB over the last half; the memory outside "
                f"the caches, RSS minus those bytes: fitted trend {trend:+.1f}%, first to last "
                f"sample {first_to_last:+.1f}%)"
            )


def memory_change(memory: list[tuple[float, float]], whole: bool = False) -> tuple[float, float]:
    """The server's memory change over the last half of the run (``whole``: over all of
    ``memory``), in percent of its mean there: the least-squares line through the samples (slope
    x the half's duration), which one sample caught during a computation's transient arrays does
    not decide; and the change from the half's first sample to its last."""
    half = memory if whole else last_half(memory)
    times = np.array([t for t, _ in half])
    values = np.array([m for _, m in half])
    mean = float(values.mean())
    if len(half) < 2 or np.ptp(times) == 0:
        return 0.0, 0.0
    slope = float(np.polyfit(times, values, 1)[0])
    trend = 100 * slope * float(np.ptp(times)) / mean
    return trend, 100 * float(values[-1] - values[0]) / float(values[0])


def outside_caches(
    memory: list[tuple[float, float]], caches: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """The (time, MiB) samples of ``memory`` less the caches' bytes last seen before each
    (``caches``: (time, MiB), in time order); samples before the first cache reading are left
    out."""
    times = [t for t, _ in caches]
    outside = []
    for t, mib in memory:
        seen = bisect.bisect_right(times, t)
        if seen:
            outside.append((t, mib - caches[seen - 1][1]))
    return outside


def floor_trend(memory: list[tuple[float, float]]) -> float:
    """The fitted trend over the last half (as `memory_change`) of the lowest sample in each
    `ENVELOPE_SECONDS` window: whether the memory between computations rises, apart from when a
    sample happened to catch a computation's working memory."""
    half = last_half(memory)
    if len(half) < 2:
        return 0.0
    start = half[0][0]
    windows: dict[int, list[tuple[float, float]]] = {}
    for t, m in half:
        windows.setdefault(int((t - start) // ENVELOPE_SECONDS), []).append((t, m))
    return memory_change([min(w, key=lambda s: s[1]) for w in windows.values()], whole=True)[0]


def last_half(memory: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (time, MiB) samples of the run's second half."""
    return [(t, m) for t, m in memory if t >= memory[-1][0] / 2]


def peaks(memory: list[tuple[float, float]]) -> tuple[float, float]:
    """The highest sample of the first half of the run and of the last half, MiB."""
    last = last_half(memory)
    first = memory[: len(memory) - len(last)]
    return max((m for _, m in first), default=float("nan")), max(m for _, m in last)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=8, help="sessions (students)")
    parser.add_argument(
        "--browsers",
        type=int,
        default=None,
        help="how many of the students are browsers (default: all); the others are protocol "
        "students (benchmarks/protocol_student.py), as if their browsers ran elsewhere",
    )
    parser.add_argument(
        "--press-gaps",
        type=lambda text: tuple(float(x) for x in text.split(",")),
        default=PRESS_GAPS_S,
        help="LOW,HIGH: seconds between a protocol student's arrow presses, drawn uniformly "
        "(default: %(default)s, the benchmark's browsers' 10th to 90th percentile)",
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length; 0: one lap")
    parser.add_argument(
        "--sweep", default="", help="comma-separated N: one short run each, fresh server each"
    )
    parser.add_argument(
        "--sweep-minutes", type=float, default=0.0, help="length of each sweep run; 0: one lap"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="CONVEXIFY_TORCH_THREADS of the server"
    )
    for name, variable in CACHE_VARIABLES.items():
        parser.add_argument(
            f"--{name}-cache-mb",
            type=float,
            default=None,
            help=f"the server's {variable} (a small one shows the ceiling at work)",
        )
    parser.add_argument(
        "--webgl",
        action="store_true",
        help="let the benchmark's Chromium draw WebGL (3-D) charts in software; by default it "
        "does not (--disable-3d-apis): students draw them on their own machines, and software "
        "WebGL for N pages would load this machine, not the server",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="no warm-up: the students open the link on a server no session has used yet",
    )
    parser.add_argument(
        "--dump-mismatches",
        type=Path,
        default=None,
        metavar="DIR",
        help="write both figures (and the widget states that asked for them) of each protocol "
        "student's mismatch into DIR",
    )
    args = parser.parse_args()
    dump = MismatchDump(args.dump_mismatches) if args.dump_mismatches else None
    if args.browsers is not None and args.browsers < 0:
        parser.error("--browsers: a count of students, 0 or more")
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    env = {"CONVEXIFY_TORCH_THREADS": str(args.threads)}
    for name, variable in CACHE_VARIABLES.items():
        if (megabytes := getattr(args, f"{name}_cache_mb")) is not None:
            env[variable] = str(megabytes)
    print(
        f"classroom benchmark on {os.cpu_count()} CPU(s), load average "
        f"{os.getloadavg()[0]:.1f} at start; server env {env} plus the caller's"
    )

    def class_report(sessions: int, minutes: float) -> float:
        """One class (`class_run`) with the command line's settings, reported (`report`)."""
        run = class_run(
            sessions,
            minutes,
            env,
            args.webgl,
            not args.cold,
            args.browsers,
            args.press_gaps,
            dump,
        )
        return report(asyncio.run(run))

    if args.sweep:
        best = 0
        for n in [int(x) for x in args.sweep.split(",") if x]:
            if class_report(n, args.sweep_minutes) < FAST_TARGET_S:
                best = max(best, n)
        browsers = "" if args.browsers is None else f" ({args.browsers} of the N in browsers)"
        print(
            f"\nlargest N with p95 of preset and cached moves under {FAST_TARGET_S:.0f} s"
            f"{browsers}: {best or 'none of those tried'}"
        )
    else:
        class_report(args.sessions, args.minutes)
    if dump is not None:
        print(
            f"mismatches dumped (both figures, what asked for each): {dump.written} in "
            f"{dump.folder}"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
