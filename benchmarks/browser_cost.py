"""Benchmark: the browser's CPU per rerun, page by page (what a class costs the students' machines,
and what limits `benchmarks/classroom.py` when its browsers share the server's cores).

One headless Chromium page opens each study of the lecture (`classroom.LECTURE`) and measures
the renderer's main-thread busy time (Chrome's ``TaskDuration`` metric, through the DevTools
protocol) for two kinds of rerun, several times each, in the same run:

    baseline  the script rerun by Streamlit's "r" key: the same page again, no chart changes
    move      the page's headline slider moved one step with an arrow key, and back

and prints the median seconds of each and their ratio. The charts a move changes are drawn again
by Plotly; the rest is Streamlit drawing its elements (markdown, typeset mathematics, metrics).

    python benchmarks/browser_cost.py [--repeats 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.app_server import CHROMIUM, CHROMIUM_ARGS, CONNECTED, NOT_RUNNING, AppServer
from benchmarks.classroom import LECTURE

SETTLE_MS = 1200  # after a run: the browser finishes drawing (charts draw after the run ends)


def busy_seconds(cdp) -> float:
    """The renderer main thread's busy time so far (``TaskDuration``), in seconds."""
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return next(m["value"] for m in metrics if m["name"] == "TaskDuration")


def settle(page) -> None:
    page.wait_for_selector(CONNECTED)
    page.wait_for_selector(NOT_RUNNING, state="attached")
    page.wait_for_timeout(SETTLE_MS)


def measured(page, cdp, press: str) -> float:
    """Busy seconds from pressing ``press`` until the page has settled."""
    before = busy_seconds(cdp)
    page.keyboard.press(press)
    settle(page)
    return busy_seconds(cdp) - before


def page_costs(page, cdp, base: str, path: str, key: str, repeats: int) -> tuple[float, float]:
    """Median busy seconds of a plain rerun and of a one-step move of ``key`` on ``path``."""
    page.goto(f"{base}/{path}?seed=0")
    page.wait_for_selector(".js-plotly-plot")
    settle(page)
    plain = []
    for _ in range(repeats):
        page.locator("h1").first.click()  # focus on the page, not on a widget: "r" reruns
        plain.append(measured(page, cdp, "r"))
    page.locator(f'.st-key-{key} input[type="range"]').first.focus()
    moves = [
        measured(page, cdp, "ArrowRight" if k % 2 == 0 else "ArrowLeft") for k in range(repeats)
    ]
    return statistics.median(plain), statistics.median(moves)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6, help="reruns of each kind per page")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with AppServer({"CONVEXIFY_TORCH_THREADS": "1"}) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, "--disable-3d-apis"]
        )
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(300_000)
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        for path, _, _ in LECTURE:  # the server's first run of each page imports its modules
            page.goto(f"{server.url}/{path}?seed=0")
            page.wait_for_selector(".js-plotly-plot")
            settle(page)
        print(f"{'page':16} {'rerun (baseline)':>17} {'slider move':>12} {'ratio':>6}")
        for path, key, _ in LECTURE:
            plain, move = page_costs(page, cdp, server.url, path, key, args.repeats)
            print(f"{path:16} {plain:16.2f}s {move:11.2f}s {move / plain:6.1f}")
        browser.close()
    print("(median busy seconds of the browser's main thread per rerun, one tab)")


if __name__ == "__main__":
    main()
