"""Benchmark: a class on one server. N sessions follow a lecture script on one app.

Starts ``streamlit run app.py`` (as the browser tests do) and one headless Chromium; each student
is a Playwright browser context, or with ``--browsers K`` only K of them are: the other N - K are
protocol students (`loadtests.protocol_student`), which speak Streamlit's websocket protocol to
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

    python loadtests/classroom.py [--sessions 8] [--minutes 10] [--sweep 2,4,8,12] [--browsers K]

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
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.app_server import (
    CHROMIUM,
    CHROMIUM_ARGS,
)
from loadtests.lecture import CACHE_LINE, CACHE_VARIABLES, FAST_TARGET_S, LECTURE, MOVE_TIMEOUT_S
from loadtests.machine import Server, cpu_seconds
from loadtests.protocol import check_streamlit
from loadtests.protocol_student import PRESS_GAPS_S, MismatchDump
from loadtests.reports import merged, report
from loadtests.students import (
    BrowserStudent,
    ProtocolActor,
    Teacher,
    about_box,
    browser_student,
    student,
    wait_for_run,
)


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


async def class_of(
    browser, url: str, sessions: int, browsers: int, press_gaps: tuple[float, float], dump
) -> list[BrowserStudent | ProtocolActor]:
    """The students: ``browsers`` browser students, then protocol students sharing one table of
    answers (each checks its answers against the others')."""
    answers: dict = {}
    if dump is not None:
        dump.first.clear()  # the answers of an earlier run of a sweep
    actors: list[BrowserStudent | ProtocolActor] = [
        await browser_student(browser, url) for _ in range(browsers)
    ]
    actors += [ProtocolActor(url, answers, press_gaps, dump) for _ in range(sessions - browsers)]
    return actors


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
            actors = await class_of(browser, server.url, sessions, browsers, press_gaps, dump)
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
    return {
        "sessions": sessions,
        "browsers": browsers,
        "warmed": warmed,
        "elapsed": elapsed,
        "laps": max(laps) if laps else 0,
        "record": merged(records[:browsers]),
        "protocol": merged(records[browsers:]),
        "client_cpu": client_cpu,
        "crashed": [f"{type(r).__name__}: {r}" for r in records if isinstance(r, BaseException)],
        **server_summary(server, log, about),
    }


def server_summary(server: Server, log: str, about: str) -> dict:
    """What the server said of the class: its about box's queue, shared answers, runs and
    caches, its memory and CPU samples, and the tracebacks in its log."""
    longest = re.search(r"longest so far (\d+)", about)
    shared = re.search(r"answers shared between sessions: (\d+)", about)
    runs = re.search(r"runs started: (\d+), dropped unwanted: (\d+)", about)
    return {
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


def arguments() -> argparse.ArgumentParser:
    """The command line's options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=8, help="sessions (students)")
    parser.add_argument(
        "--browsers",
        type=int,
        default=None,
        help="how many of the students are browsers (default: all); the others are protocol "
        "students (loadtests/protocol_student.py), as if their browsers ran elsewhere",
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
    return parser


def main() -> None:
    check_streamlit()
    parser = arguments()
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
