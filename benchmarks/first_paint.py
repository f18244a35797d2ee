"""Benchmark: where the time goes between a first visit and its first chart (first paint).

A fresh browser context (an empty HTTP cache: a student's first visit) opens each page of
`PAGES` and records, in milliseconds from the navigation's start (the page's own clock,
``performance.now()``, read by a script installed before the page loads):

    connected   the app's websocket is up (``data-test-connection-state="CONNECTED"``)
    script end  the page's first script run has finished (``data-test-script-state`` turns
                ``notRunning`` after ``running``)
    chart box   the first chart component's element is on the page (``div.convexify-chart``)
    js fetch    plotly.min.js's request starts .. its response ends (Resource Timing), and the
                bytes sent (compressed or not)
    js ready    plotly.js has run (``window.Plotly`` is assigned)
    first plot  the first chart's SVG is drawn (``.js-plotly-plot .main-svg``)
    all plots   every chart component on the page shows its SVG

Two checkouts are measured in the same run, each with its own server and browser: ``--before``
(a `git worktree` of that revision) and this checkout. Each page is opened once to warm its
server (the first run of a page imports its modules), then ``--repeats`` times measured; the
table gives medians.

    python benchmarks/first_paint.py [--repeats 5] [--before REV] [--pages PATH ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

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

#: Pages opened on their presets, and one computed afresh on every visit (a link with a seed of
#: its own: the script computes for a while before its first chart).
PAGES = ("linear_duality", "width", "landscape_lab", "width?seed={visit}")
DEFAULT_BEFORE = "88c6aaa"
SETTLE_MS = 2500  # after the run ends, time for every chart of the page to be drawn

#: Installed before the page's own scripts: records the moments of the table above.
RECORDER = """
window.__paint = {};
const mark = (name) => { if (!(name in window.__paint)) window.__paint[name] = performance.now(); };
let ran = false;
Object.defineProperty(window, "Plotly", {
  configurable: true,
  set(value) {
    mark("js_ready");
    Object.defineProperty(window, "Plotly", { value, writable: true, configurable: true });
  },
});
new MutationObserver(() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (app?.dataset.testConnectionState === "CONNECTED") mark("connected");
  const state = document.querySelector("[data-test-script-state]")?.dataset.testScriptState;
  if (state === "running") ran = true;
  if (ran && state === "notRunning") mark("script_end");
  const boxes = document.querySelectorAll("div.convexify-chart");
  if (boxes.length) mark("chart_box");
  const drawn = document.querySelectorAll("div.convexify-chart .main-svg").length;
  if (drawn) mark("first_plot");
  if (drawn && ran && state === "notRunning") {
    const charts = new Set(Array.from(document.querySelectorAll("div.convexify-chart .main-svg"),
                                      (svg) => svg.closest("div.convexify-chart")));
    if (charts.size === boxes.length) window.__paint.all_plots = performance.now();
  }
}).observe(document, { subtree: true, childList: true, attributes: true });
"""

READ = """() => {
  const js = performance.getEntriesByType("resource").find((e) => e.name.endsWith("plotly.min.js"));
  return { ...window.__paint, js_start: js?.startTime, js_end: js?.responseEnd,
           js_bytes: js?.transferSize, js_body: js?.decodedBodySize,
           requests: performance.getEntriesByType("resource").length };
}"""

COLUMNS = (
    ("connected", "connected"),
    ("script_end", "script end"),
    ("chart_box", "chart box"),
    ("js_start", "js start"),
    ("js_end", "js end"),
    ("js_ready", "js ready"),
    ("first_plot", "1st plot"),
    ("all_plots", "all plots"),
)


def visit(browser: Any, url: str) -> dict[str, float]:
    """One first visit of ``url`` in a fresh context: the recorded moments (ms)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(300_000)
    page.add_init_script(RECORDER)
    page.goto(url)
    page.wait_for_selector(CONNECTED)
    page.wait_for_selector(NOT_RUNNING, state="attached")
    page.wait_for_selector(".js-plotly-plot .main-svg")
    page.wait_for_timeout(SETTLE_MS)
    moments = page.evaluate(READ)
    context.close()
    return moments


def measure(root: Path, repeats: int, pages: list[str]) -> dict[str, dict[str, float]]:
    """Median moments per page for the app of the checkout at ``root``."""
    from playwright.sync_api import sync_playwright

    env = {"CONVEXIFY_TORCH_THREADS": "1", "PYTHONPATH": str(root)}
    medians: dict[str, dict[str, float]] = {}
    with AppServer(env, root=root) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        for path in pages:
            url = f"{server.url}/{path}"
            visit(browser, url.format(visit=100))  # warm: the server imports the page's modules
            runs = [visit(browser, url.format(visit=101 + k)) for k in range(repeats)]
            medians[path] = {
                key: statistics.median(run[key] for run in runs if run.get(key) is not None)
                for key in {key for run in runs for key in run}
                if any(run.get(key) is not None for run in runs)
            }
        browser.close()
    return medians


def measured_before(revision: str, repeats: int, pages: list[str]) -> dict[str, dict[str, float]]:
    """`measure` run in a separate process on a worktree of ``revision``."""
    with worktree(revision) as root:
        command = [sys.executable, __file__, "--measure", str(root), "--repeats", str(repeats)]
        command += ["--pages", *pages]
        done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(side: str, moments: dict[str, dict[str, float]]) -> None:
    """One table: a row per page, the median moment of each column in ms."""
    print(f"\n{side}")
    print(f"{'page':16}" + "".join(f"{title:>11}" for _, title in COLUMNS) + f"{'js bytes':>11}")
    for path, row in moments.items():
        cells = "".join(f"{row[key]:11.0f}" if key in row else f"{'-':>11}" for key, _ in COLUMNS)
        print(
            f"{path.replace('?seed={visit}', ' (fresh)'):16}{cells}{row.get('js_bytes', 0):11.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="measured visits per page")
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="git revision of 'before'")
    parser.add_argument("--pages", nargs="+", default=list(PAGES), help="paths of the pages")
    parser.add_argument("--measure", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.repeats, args.pages)))
        return
    if args.before:
        print(f"before: {args.before}", file=sys.stderr)
        report(f"before ({args.before})", measured_before(args.before, args.repeats, args.pages))
    print("after: this checkout", file=sys.stderr)
    report("after (this checkout)", measure(ROOT, args.repeats, args.pages))
    print("(median ms from the navigation's start; a fresh browser context per visit)")


if __name__ == "__main__":
    main()
