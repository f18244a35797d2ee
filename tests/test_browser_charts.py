"""Every chart as a reader sees it, in the real browser (the app served by `streamlit run`, headless
Chromium; see tests/test_browser.py): for each drawn chart of each study page, in the light and
the dark theme,

- every plot area shows more than one colour (a contour map drawn in Streamlit's placeholder
  colours, or in a colour scale that plotly.js dropped, was a black square);
- every colour axis a trace names is the one plotly.js used (plotly.js drops the link of traces
  it finds incompatible, and each then draws a scale and a colour bar of its own);
- no two colour bars overlap (two bars drawn on one place read as doubled labels: "1.1 1.1"),
  and each bar's tick labels are distinct;
- no log axis is labelled with SI prefixes ("100µ", "10n"): powers of ten;
- no button's label is cut short ("H…" for "HTML" in a narrow column);

and no page asks any host but the app's own server for anything (an offline classroom).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from benchmarks.app_server import CHROMIUM, CHROMIUM_ARGS, AppServer
from tests.test_browser import RUN_TIMEOUT_MS, error_texts, wait_for_run
from ui.catalogue import STUDIES

pytestmark = pytest.mark.browser

#: A pixel's colour, 3 bits a channel: shades that a reader cannot tell apart are one colour.
COARSE = 5
#: A colour counts when it covers at least this share of the plot area (not a stray pixel).
VISIBLE_SHARE = 0.002
#: A tick label that ends in an SI prefix: "100µ", "10n", "1p", "2k".
SI_LABEL = re.compile(r"^[−-]?[\d.]+\s*[yzafpnµμumkMGTPEZY]$")

#: What each chart shows, read from plotly.js's own state and the drawn SVG.
CHARTS_JS = """() => Array.from(document.querySelectorAll("div.convexify-chart.js-plotly-plot"),
  (g) => {
    const size = g._fullLayout._size;
    const areas = [];
    for (const [name, axis] of Object.entries(g._fullLayout)) {
      if (!/^xaxis\\d*$/.test(name)) continue;
      for (const id of axis._subplotsWith || []) {
        const plot = g._fullLayout._plots[id];
        if (plot) areas.push({ name: id, x: plot.xaxis._offset, y: plot.yaxis._offset,
                               w: plot.xaxis._length, h: plot.yaxis._length });
      }
    }
    for (const [name, scene] of Object.entries(g._fullLayout)) {
      if (!/^scene\\d*$/.test(name)) continue;
      const d = scene.domain;
      areas.push({ name, x: size.l + d.x[0] * size.w, y: size.t + (1 - d.y[1]) * size.h,
                   w: (d.x[1] - d.x[0]) * size.w, h: (d.y[1] - d.y[0]) * size.h });
    }
    const bars = Array.from(g.querySelectorAll(".colorbar"), (bar) => {
      const r = bar.getBoundingClientRect();
      return { labels: Array.from(bar.querySelectorAll(".cbaxis text"), (t) => t.textContent),
               box: [r.left, r.top, r.right, r.bottom] };
    });
    const logAxes = Object.entries(g._fullLayout)
      .filter(([name, axis]) => /^[xy]axis\\d*$/.test(name) && axis.type === "log")
      .map(([name]) => [name, Array.from(
        g.querySelectorAll(`.${name.replace("axis", "")}tick text`), (t) => t.textContent)]);
    const links = g.data.map((trace, k) => [trace.coloraxis ?? null,
                                            g._fullData[k]?.coloraxis ?? null]);
    return { key: g.closest("[class*='st-key-']")?.className.match(/st-key-(\\S+)/)?.[1] ?? "?",
             areas, bars, logAxes, links };
  })"""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with AppServer({"CONVEXIFY_TORCH_THREADS": "1"}, start_timeout=60) as app:
        yield app.url


@pytest.fixture(scope="module")
def hosts_asked() -> set[str]:
    """Every host any page of this module asked for something (filled by `pages`)."""
    return set()


@pytest.fixture(scope="module")
def tab(server, hosts_asked) -> Iterator[object]:
    """One tab for every page, logging the host of every request it makes."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(RUN_TIMEOUT_MS)
        page.on("request", lambda request: hosts_asked.add(served_by(request.url)))
        yield page
        browser.close()


def served_by(url: str) -> str:
    """The host and port a request goes to; "" for what the page holds itself (data:, blob:)."""
    parts = urlsplit(url)
    return parts.netloc if parts.scheme in ("http", "https", "ws", "wss") else ""


def open_study(tab, url: str) -> None:
    """Open the page, open its closed expanders (charts in them are drawn but not shown), and
    wait until every chart component has drawn its chart."""
    tab.goto(url)
    wait_for_run(tab)
    for summary in tab.query_selector_all('[data-testid="stMain"] details:not([open]) > summary'):
        summary.click()
    tab.wait_for_selector("div.convexify-chart")
    tab.wait_for_function(
        "() => Array.from(document.querySelectorAll('div.convexify-chart'))"
        ".every(c => c.querySelector('.main-svg'))"
    )
    tab.mouse.move(0, 0)  # no hover label or mode bar over a plot area
    tab.wait_for_timeout(300)  # WebGL scenes draw on the next frame


def visible_colours(pixels) -> int:
    """How many coarse colours each cover at least `VISIBLE_SHARE` of an RGB image."""
    coarse = pixels.convert("RGB").point(lambda v: v >> COARSE)
    counts = coarse.getcolors(maxcolors=1 << 16) or []
    total = pixels.width * pixels.height
    return sum(1 for count, _ in counts if count >= VISIBLE_SHARE * total)


def overlapping(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def chart_defects(element, chart: dict) -> list[str]:
    """What is wrong with one drawn chart (empty when nothing is): ``element`` its
    ``div.convexify-chart``, ``chart`` what `CHARTS_JS` read of it."""
    from PIL import Image

    key, found = chart["key"], []
    shot = Image.open(io.BytesIO(element.screenshot()))  # plot areas: offsets in this box
    for area in chart["areas"]:
        box = (area["x"], area["y"], area["x"] + area["w"], area["y"] + area["h"])
        if visible_colours(shot.crop(tuple(round(v) for v in box))) < 2:
            found.append(f"{key}: plot area {area['name']} is a single colour")
    for k, (asked, used) in enumerate(chart["links"]):
        if asked != used:
            found.append(f"{key}: trace {k} names colour axis {asked}, plotly.js used {used}")
    bars = chart["bars"]
    for i, bar in enumerate(bars):
        if len(set(bar["labels"])) != len(bar["labels"]):
            found.append(f"{key}: colour bar {i} repeats labels {bar['labels']}")
        if any(overlapping(bar["box"], other["box"]) for other in bars[i + 1 :]):
            found.append(f"{key}: colour bar {i} is drawn over another")
    for name, labels in chart["logAxes"]:
        prefixed = [label for label in labels if SI_LABEL.match(label.replace("\u200b", ""))]
        if prefixed:
            found.append(f"{key}: log axis {name} in SI prefixes {prefixed}")
    return found


#: Whether every chart is drawn in its page's text colour (the theme the page shows now).
IN_PAGE_COLOURS = """() => Array.from(document.querySelectorAll("div.convexify-chart"))
  .every((g) => g._fullLayout?.font.color === getComputedStyle(g.parentElement).color)"""
MAIN_COLOUR = """() => getComputedStyle(document.querySelector('[data-testid="stMain"]')).color"""


def defects_shown(tab) -> list[str]:
    """The defects of every chart on the page as it is drawn now."""
    charts = tab.evaluate(CHARTS_JS)
    elements = tab.query_selector_all("div.convexify-chart.js-plotly-plot")
    assert charts and len(charts) == len(elements)
    return [
        defect
        for element, chart in zip(elements, charts, strict=True)
        for defect in chart_defects(element, chart)
    ]


#: The label of every shown button of the main area that its box cuts (an ellipsis or a clip).
CUT_LABELS_JS = """() => Array.from(document.querySelectorAll('[data-testid="stMain"] button'))
  .filter((button) => button.offsetParent !== null)
  .flatMap((button) => Array.from(button.querySelectorAll("*"))
    .filter((e) => e.textContent.trim() && e.scrollWidth > e.clientWidth + 1)
    .map((e) => e.textContent.trim()))"""


@pytest.mark.parametrize("entry", STUDIES, ids=[e.url_path for e in STUDIES])
def test_every_chart_reads_as_its_figure_means(server, tab, entry) -> None:
    """In the light theme, then in the dark one (the browser's colour scheme, which Streamlit
    follows: the charts are drawn again in the page's new colours)."""
    tab.emulate_media(color_scheme="light")
    open_study(tab, f"{server}/{entry.url_path}")
    assert not error_texts(tab), error_texts(tab)
    assert not tab.evaluate(CUT_LABELS_JS), tab.evaluate(CUT_LABELS_JS)
    defects = {"light": defects_shown(tab)}
    light = tab.evaluate(MAIN_COLOUR)
    tab.emulate_media(color_scheme="dark")
    tab.wait_for_function(f"(light) => ({MAIN_COLOUR})() !== light", arg=light)
    tab.wait_for_function(IN_PAGE_COLOURS)
    tab.wait_for_timeout(300)
    defects["dark"] = defects_shown(tab)
    assert not any(defects.values()), defects


def test_no_page_asks_another_host(server, tab, hosts_asked) -> None:
    """Run after the pages above (pytest keeps the file's order): everything every page asked
    for, the favicon and plotly.js included, came from the app's own server."""
    if not hosts_asked:  # this test alone: open every page once
        for entry in STUDIES:
            open_study(tab, f"{server}/{entry.url_path}")
    assert hosts_asked - {""} == {urlsplit(server).netloc}, hosts_asked
