"""Benchmark: the browser's CPU per rerun, page by page (what a class costs the students' machines,
and what limits `loadtests/classroom.py` when its browsers share the server's cores).

One headless Chromium page opens each study of the lecture (`classroom.LECTURE`) and measures
two kinds of rerun, several times each:

    baseline  the script rerun by Streamlit's "r" key: the same page again, no chart changes
    move      the page's headline slider moved one step with an arrow key, and back

as the CPU seconds of all of Chromium's processes (renderer, GPU and browser processes, read
from /proc) and, within them, the renderer's main-thread busy time (Chrome's ``TaskDuration``
metric, through the DevTools protocol); medians per page. The charts a move changes are drawn
again by Plotly; the rest is Streamlit drawing its elements (markdown, typeset mathematics,
metrics).

Two checkouts are measured in the same run, one after the other, each with its own server and
browser: ``--before`` (a `git worktree` of that revision; default 07cf3f7, where every chart was
an ``st.plotly_chart``, rebuilt whenever its figure changed) and this checkout; the last column
is the ratio of their moves' CPU. ``--before ''`` measures this checkout only.

    python loadtests/browser_cost.py [--repeats 6] [--before REV]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.app_server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CONNECTED,
    NOT_RUNNING,
    ROOT,
    AppServer,
    worktree,
)
from loadtests.lecture import LECTURE, Study
from loadtests.machine import cpu_seconds

SETTLE_MS = 1200  # after a run: the browser finishes drawing (charts draw after the run ends)
DEFAULT_BEFORE = "07cf3f7"


def busy_seconds(cdp) -> float:
    """The renderer main thread's busy time so far (``TaskDuration``), in seconds."""
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return next(m["value"] for m in metrics if m["name"] == "TaskDuration")


def chromium_seconds() -> float:
    """CPU seconds (user and system) of every Chromium process on this machine so far."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        try:
            program = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:  # not a process, or it ended meanwhile
            continue
        if "chrom" in Path(program).name:
            seconds = cpu_seconds(int(entry.name))
            total += 0.0 if math.isnan(seconds) else seconds  # nan: it ended meanwhile
    return total


def settle(page) -> None:
    page.wait_for_selector(CONNECTED)
    page.wait_for_selector(NOT_RUNNING, state="attached")
    page.wait_for_timeout(SETTLE_MS)


def measured(page, cdp, press: str) -> tuple[float, float]:
    """Chromium's CPU seconds and the main thread's busy seconds from pressing ``press`` until
    the page has settled."""
    before, busy = chromium_seconds(), busy_seconds(cdp)
    page.keyboard.press(press)
    settle(page)
    return chromium_seconds() - before, busy_seconds(cdp) - busy


def page_costs(page, cdp, base: str, study: Study, repeats: int) -> dict[str, float]:
    """Median seconds of a plain rerun and of a one-step move of the study's slider, the chart
    it changes in view (as a student watches it)."""
    page.goto(f"{base}/{study.path}?seed=0")
    page.wait_for_selector(".js-plotly-plot")
    settle(page)
    plain = []
    for _ in range(repeats):
        page.locator("h1").first.click()  # focus on the page, not on a widget: "r" reruns
        plain.append(measured(page, cdp, "r"))
    page.locator(f'.st-key-{study.slider} input[type="range"]').first.focus()
    page.locator(f".st-key-chart_{study.chart}").scroll_into_view_if_needed()
    settle(page)  # the scroll's own drawing is not counted in the moves
    moves = [
        measured(page, cdp, "ArrowRight" if k % 2 == 0 else "ArrowLeft") for k in range(repeats)
    ]
    return {
        "rerun": statistics.median(cpu for cpu, _ in plain),
        "move": statistics.median(cpu for cpu, _ in moves),
        "rerun_main": statistics.median(busy for _, busy in plain),
        "move_main": statistics.median(busy for _, busy in moves),
    }


def measure(root: Path, repeats: int) -> dict[str, dict[str, float]]:
    """Every lecture page's costs, for the app of the checkout at ``root``."""
    from playwright.sync_api import sync_playwright

    env = {"CONVEXIFY_TORCH_THREADS": "1"}
    with AppServer(env, root=root) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, "--disable-3d-apis"]
        )
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(300_000)
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        for path, *_ in LECTURE:  # the server's first run of each page imports its modules
            page.goto(f"{server.url}/{path}?seed=0")
            page.wait_for_selector(".js-plotly-plot")
            settle(page)
        costs = {study.path: page_costs(page, cdp, server.url, study, repeats) for study in LECTURE}
        browser.close()
    return costs


def measured_before(revision: str, repeats: int) -> dict[str, dict[str, float]]:
    """`measure` run in a separate process on a worktree of ``revision``."""
    with worktree(revision) as root:
        command = [sys.executable, __file__, "--measure", str(root), "--repeats", str(repeats)]
        done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(after: dict[str, dict[str, float]], before: dict[str, dict[str, float]]) -> None:
    print(
        f"{'page':16} {'rerun':>6} {'move':>6} {'(main thread)':>14}"
        + (f" {'before: move':>13} {'after/before':>12}" if before else "")
    )
    for path, cost in after.items():
        row = (
            f"{path:16} {cost['rerun']:5.2f}s {cost['move']:5.2f}s"
            f" {cost['rerun_main']:6.2f}s {cost['move_main']:5.2f}s"
        )
        if path in before:
            was = before[path]["move"]
            row += f" {was:12.2f}s {cost['move'] / was:12.2f}"
        print(row)
    print("(median CPU seconds per rerun of all Chromium's processes, one tab; main thread: its")
    print(" renderer's main thread alone)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6, help="reruns of each kind per page")
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="git revision of 'before'")
    parser.add_argument("--measure", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.repeats)))
        return
    before = {}
    if args.before:
        print(f"before: {args.before}", file=sys.stderr)
        before = measured_before(args.before, args.repeats)
    print("after: this checkout", file=sys.stderr)
    report(measure(ROOT, args.repeats), before)


if __name__ == "__main__":
    main()
