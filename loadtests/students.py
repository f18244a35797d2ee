"""The class's actors: the teacher who paces the lecture, browser students (Playwright pages)
and protocol students (`loadtests.protocol_student`), and the record of what each one saw.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

from benchmarks.app_server import (
    CONNECTED,
    ERRORS,
    NOT_RUNNING,
)
from loadtests.lecture import KINDS, LECTURE, MOVE_TIMEOUT_S, Study, percentile
from loadtests.protocol_student import MismatchDump, ProtocolStudent

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


CHANGED_JS = f"""() => {{
    const els = {CHARTS_JS};
    if (!window.__refs) return false;
    return els.some((el, i) => el.data && (i >= window.__refs.length || (
        el.data !== window.__refs[i] && JSON.stringify(el.data) !== window.__sigs[i])));
}}"""


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
    if await page.get_by_text("Precomputed for the lecture's settings").count():
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
    """A protocol student (`loadtests.protocol_student`), recorded as a browser student is:
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
