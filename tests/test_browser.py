"""Browser tests: the real app, served by `streamlit run`, driven by headless Chromium.

Every page of the navigation opens without an error element; every study page draws at least one
Plotly chart; moving the page's first slider with the keyboard changes a chart. Without
/usr/bin/chromium these tests skip locally, and fail under CI (CI=true), where .ci/run installs it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.app_server import CHROMIUM, CHROMIUM_ARGS, CONNECTED, NOT_RUNNING, AppServer
from ui.catalogue import STUDIES

pytestmark = pytest.mark.browser

RUN_TIMEOUT_MS = 180_000

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run must install Debian's chromium")
    pytest.skip(
        f"{CHROMIUM} is not installed (apt-get install -y chromium)", allow_module_level=True
    )


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    # one torch thread: pytest runs beside the server on the 2-core CI machine
    with AppServer({"CONVEXIFY_TORCH_THREADS": "1"}, start_timeout=60) as app:
        yield app.url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(RUN_TIMEOUT_MS)
    yield tab
    context.close()


def wait_for_run(tab) -> None:
    """Wait until the app is connected and its script run has finished."""
    tab.wait_for_selector(CONNECTED)
    tab.wait_for_selector(NOT_RUNNING, state="attached")
    tab.wait_for_timeout(300)
    tab.wait_for_selector(NOT_RUNNING, state="attached")


def error_texts(tab) -> list[str]:
    selector = '[data-testid="stException"], [data-testid="stAlertContentError"], [role="dialog"]'
    return [element.inner_text() for element in tab.query_selector_all(selector)]


CHARTS_DRAWN_JS = (
    "JSON.stringify(Array.from(document.querySelectorAll('.js-plotly-plot'))"
    ".map(el => [el.data, (el.layout || {}).shapes, (el.layout || {}).annotations]))"
)


def chart_data(tab) -> str:
    return tab.evaluate(
        "() => JSON.stringify(Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".map(el => el.data))"
    )


def charts_drawn(tab) -> str:
    """Every chart's traces and the lines and notes drawn over them (a control may move only a
    line: Beyond's target)."""
    return tab.evaluate(f"() => {CHARTS_DRAWN_JS}")


def test_deep_link_goes_through_the_router(server, page) -> None:
    """A study opened first by its URL still gets the router's sidebar (device and seed)."""
    entry = STUDIES[0]
    page.goto(f"{server}/{entry.url_path}")
    wait_for_run(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    for label in ("Device", "Seed", "Lecture mode"):
        sidebar.get_by_text(label, exact=True).wait_for(timeout=20_000)
    assert not error_texts(page), error_texts(page)


def test_home_lists_every_study(server, page) -> None:
    page.goto(server)
    wait_for_run(page)
    assert not error_texts(page)
    links = page.locator('[data-testid="stPageLink"]')
    for entry in STUDIES:  # waits: under load the links can draw after the run has ended
        links.get_by_text(entry.title).first.wait_for(timeout=20_000)


@pytest.mark.parametrize("entry", STUDIES, ids=[e.url_path for e in STUDIES])
def test_study_page_renders_and_its_first_slider_changes_a_chart(server, page, entry) -> None:
    page.goto(f"{server}/{entry.url_path}")
    wait_for_run(page)
    page.wait_for_selector(".js-plotly-plot")
    assert not error_texts(page), error_texts(page)
    before = charts_drawn(page)
    assert json.loads(before), "no Plotly chart on the page"

    slider = page.locator(
        '[data-testid="stMain"] [data-testid="stSlider"] :is([role="slider"], input[type="range"])'
    ).first
    slider.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"(before) => {CHARTS_DRAWN_JS} !== before", arg=before)
    wait_for_run(page)
    assert not error_texts(page), error_texts(page)


def test_a_moved_slider_updates_its_chart_in_place(server, page) -> None:
    """A chart whose figure changes is updated where it stands (ui.charts: Plotly.react on the
    same element), not removed and built anew: the element shown before the move is the one
    showing the new figure. (With st.plotly_chart the old element left the page.)"""
    page.goto(f"{server}/linear_duality")
    wait_for_run(page)
    page.wait_for_selector(".js-plotly-plot")
    chart = page.locator(".js-plotly-plot").first.element_handle()
    before = chart.evaluate("el => JSON.stringify(el.data)")
    page.locator('.st-key-lin_gamma :is([role="slider"], input[type="range"])').first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "([el, before]) => !el.isConnected || JSON.stringify(el.data) !== before",
        arg=[chart, before],
    )
    wait_for_run(page)
    assert chart.evaluate("el => el.isConnected"), "the chart was removed and drawn anew"
    assert chart.evaluate("el => JSON.stringify(el.data)") != before
    assert not error_texts(page), error_texts(page)


def test_charts_follow_the_pages_theme(server, page) -> None:
    """A browser switched to a dark colour scheme (Streamlit follows it) redraws the charts
    already drawn in the page's light text colour (before, they kept the dark text on the dark
    page: their figures had not changed)."""
    fonts = (
        "() => Array.from(document.querySelectorAll('.js-plotly-plot'),"
        " g => g._fullLayout.font.color)"
    )
    page.goto(f"{server}/linear_duality")
    wait_for_run(page)
    page.wait_for_selector(".js-plotly-plot")
    text = page.evaluate("() => getComputedStyle(document.querySelector('h1')).color")
    assert set(page.evaluate(fonts)) == {text}
    page.emulate_media(color_scheme="dark")
    page.wait_for_function(
        "(light) => getComputedStyle(document.querySelector('h1')).color !== light", arg=text
    )
    dark = page.evaluate("() => getComputedStyle(document.querySelector('h1')).color")
    page.wait_for_function(f"(dark) => ({fonts})().every(c => c === dark)", arg=dark)
    page.emulate_media(color_scheme="light")


SLIDER_INPUTS = '[data-testid="stMain"] [data-testid="stSlider"] input[type="range"]'


def test_link_with_parameters_restores_the_controls(server, page) -> None:
    page.goto(f"{server}/linear_duality?lin_gamma=1.5&lin_depth=4&seed=3")
    wait_for_run(page)
    labels = [r"$\gamma/\sigma_{\min}(\tilde Y)$", "depth $H$"]
    page.wait_for_function(
        f"labels => labels.every(l => Array.from(document.querySelectorAll({SLIDER_INPUTS!r}))"
        ".some(e => e.getAttribute('aria-label') === l))",
        arg=labels,
    )
    ranges = page.locator(SLIDER_INPUTS)
    values = ranges.evaluate_all("els => els.map(e => [e.getAttribute('aria-label'), e.value])")
    assert [r"$\gamma/\sigma_{\min}(\tilde Y)$", "1.5"] in values, values
    assert ["depth $H$", "4"] in values, values
    seed = page.locator('[data-testid="stSidebar"] [data-testid="stNumberInputField"]')
    seed.wait_for(state="attached")
    assert seed.input_value() == "3"
    assert not error_texts(page), error_texts(page)


def test_presets_open_without_recomputation(server, page) -> None:
    page.goto(f"{server}/linear_duality")
    wait_for_run(page)
    assert page.get_by_text("Precomputed for the lecture's settings").count() == 1
    assert page.locator('[data-testid="stProgress"]').count() == 0


def test_exports_download_files_that_load_back(server, page, tmp_path) -> None:
    from landscape.files import results
    from landscape.studies.linear_duality import linear_duality

    page.goto(f"{server}/linear_duality")
    wait_for_run(page)
    page.get_by_text("Export this run, or load a saved run file").click()
    with page.expect_download() as run_download:
        page.get_by_role("button", name="Run file (JSON)", exact=True).click()
    path = tmp_path / "run.json"
    run_download.value.save_as(path)
    config, result = results.load_run_file(path.read_bytes(), linear_duality)
    assert config.depth == linear_duality.Config().depth
    assert abs(result.gap) <= 1e-8 * abs(result.dual)

    with page.expect_download() as npz_download:
        page.get_by_role("button", name="Data (NPZ)", exact=True).click()
    npz = tmp_path / "data.npz"
    npz_download.value.save_as(npz)
    loaded = results.result_from_npz_bytes(linear_duality.Result, npz.read_bytes())
    assert loaded.dual == result.dual

    with page.expect_download() as html_download:
        page.get_by_role("button", name="HTML", exact=True).first.click()
    html = tmp_path / "figure.html"
    html_download.value.save_as(html)
    assert "plotly" in html.read_text().lower()

    with page.expect_download(timeout=120_000) as png_download:  # kaleido starts Chromium
        page.get_by_role("button", name="PNG", exact=True).first.click()
    png = tmp_path / "figure.png"
    png_download.value.save_as(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the run file loads back into the page
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
    page.get_by_text("Showing the run file").wait_for()
    wait_for_run(page)
    assert not error_texts(page), error_texts(page)


def test_lecture_mode_walks_through_the_studies(server, page) -> None:
    page.goto(f"{server}/?lecture=true")
    wait_for_run(page)
    next_link = page.locator('[data-testid="stPageLink"]').get_by_text(f"Next: {STUDIES[0].title}")
    next_link.click()
    page.wait_for_url(f"**/{STUDIES[0].url_path}**")
    wait_for_run(page)
    assert page.get_by_text("Slide 2 of").count() == 1
    assert not error_texts(page), error_texts(page)


def test_lab_opens_a_computed_surface(server, page, tmp_path) -> None:
    """A surface computed headless by ``convexify surface`` opens in the Lab's figures."""
    import numpy as np
    import torch

    from landscape import cli
    from landscape.engine.nets import mlp

    torch.manual_seed(0)
    model = mlp(4, 3, [6], "tanh").eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (torch.zeros(4, 4),), dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "model.pt2")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", X=rng.standard_normal((50, 4)), y=rng.integers(0, 3, 50))
    surface = tmp_path / "surface.npz"
    argv = ["surface", "--model", str(tmp_path / "model.pt2"), "--data"]
    argv += [str(tmp_path / "data.npz"), "--loss", "cross_entropy", "--resolution", "11"]
    argv += ["--slices", "9", "--out", str(surface), "--no-progress", "--threads", "1"]
    assert cli.main(argv) == 0

    page.goto(f"{server}/landscape_lab")
    wait_for_run(page)
    box = page.get_by_test_id("stExpander").filter(has_text="Open a computed surface")
    box.get_by_text("Open a computed surface").click()
    box.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(surface))
    page.get_by_text("Showing the computed surface surface.npz").wait_for()
    wait_for_run(page)
    assert not error_texts(page), error_texts(page)
    assert page.get_by_text("model.pt2").count() >= 1
    charts = json.loads(chart_data(page))
    assert len(charts) >= 2  # the surface with its contours, and the slices
    types = {trace.get("type") for chart in charts for trace in chart}
    assert "surface" in types and "contour" in types, types


def _bomb_npz(path: Path, unpacked: int) -> None:
    """An NPZ whose member ``X.npy`` unpacks to ``unpacked`` bytes of zeros (a deflate bomb),
    written in chunks so the test never holds it."""
    import io
    import zipfile

    import numpy as np

    header = io.BytesIO()
    rows = unpacked // (8 * 4)
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (rows, 4)}
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("X.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            chunk = bytes(2**20)
            for _ in range(unpacked // len(chunk)):
                member.write(chunk)
        stream = io.BytesIO()
        np.save(stream, np.zeros(rows))
        archive.writestr("y.npy", stream.getvalue()[:200])


def _torchscript_with_payload(target: Path, path: Path) -> None:
    """A TorchScript archive whose forward creates ``target`` (torch.from_file, shared=True)."""
    import torch

    class Planted(torch.nn.Module):
        def __init__(self, where: str) -> None:
            super().__init__()
            self.where = where
            self.weight = torch.nn.Parameter(torch.ones(2, 64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            planted = torch.from_file(self.where, True, 16)
            return x @ self.weight.T + 0 * planted.sum()

    torch.jit.save(torch.jit.script(Planted(str(target))), str(path))


def _upload(page, label: str, path: Path) -> None:
    box = page.locator('[data-testid="stFileUploader"]').filter(has_text=label).first
    box.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
    page.wait_for_timeout(500)
    wait_for_run(page)


def _alerts(page) -> str:
    return " ".join(e.inner_text() for e in page.query_selector_all('[data-testid="stAlert"]'))


def _tracebacks(page) -> list[str]:
    return [e.inner_text() for e in page.query_selector_all('[data-testid="stException"]')]


def test_hostile_links_and_files_end_in_messages(server, page, tmp_path) -> None:
    """A link with hostile values, a TorchScript model with a payload (renamed .onnx), an NPZ
    deflate bomb and a malformed run file: each ends in a message on the page, never a
    traceback, and the payload never runs."""
    page.goto(f"{server}/branches?branches_b=-inf&seed=inf&branches_largest=abc")
    wait_for_run(page)
    assert not _tracebacks(page), _tracebacks(page)
    said = _alerts(page)
    for key in ("branches_b", "seed", "branches_largest"):
        assert f"{key}=" in said and "was ignored" in said, said

    page.goto(f"{server}/branches?branches_dir=/etc&branches_data=cifar10")
    wait_for_run(page)
    assert not _tracebacks(page), _tracebacks(page)
    said = _alerts(page)
    assert "branches_dir=/etc was ignored" in said and "cannot choose a folder" in said, said
    assert "this server has none" in said, said
    assert "branches_dir" not in page.url

    page.goto(f"{server}/landscape_lab?landscape_lab_model=upload&landscape_lab_dataset=upload")
    wait_for_run(page)
    target = tmp_path / "planted.bin"
    model = tmp_path / "model.onnx"
    _torchscript_with_payload(target, model)
    _upload(page, "ONNX model", model)
    bomb = tmp_path / "bomb.npz"
    _bomb_npz(bomb, 300 * 2**20)
    assert bomb.stat().st_size < 2 * 2**20
    _upload(page, "Data (CSV or NPZ)", bomb)
    assert not _tracebacks(page), _tracebacks(page)
    said = _alerts(page)
    assert "model.onnx" in said and "bomb.npz" in said, said
    assert not target.exists(), "the uploaded model's code ran"

    page.goto(f"{server}/linear_duality")
    wait_for_run(page)
    page.get_by_text("Export this run, or load a saved run file").click()
    broken = tmp_path / "broken.json"
    document = {
        "format": "convexify-run/1",
        "study": "landscape.studies.linear_duality.linear_duality",
        "config": [],
        "result": {},
    }
    broken.write_text(json.dumps(document))
    _upload(page, "Load a run file", broken)
    assert not _tracebacks(page), _tracebacks(page)
    assert "Could not load broken.json" in _alerts(page), _alerts(page)
    assert "'config' must be an object" in _alerts(page), _alerts(page)


WATCH_RERUNS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    window.__reruns = 0;
    new MutationObserver(() => {
        if (app.getAttribute('data-test-script-state') === 'running') window.__reruns += 1;
    }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


@pytest.mark.parametrize(
    ("url_path", "chart"),
    [("branches", "branches_surface_frames"), ("linear_duality", "linear_gamma_sweep")],
)
def test_figure_slider_answers_in_the_browser_without_a_rerun(server, page, url_path, chart):
    """Dragging a figure's own slider (Plotly frames: the Figure-2 grid across I, the gamma
    marker) changes the figure and runs no script on the server."""
    page.goto(f"{server}/{url_path}")
    wait_for_run(page)
    figure = page.locator(".js-plotly-plot").filter(has=page.locator(".slider-container")).first
    figure.scroll_into_view_if_needed()
    rail = figure.locator(".slider-rail-touch-rect").first
    rail.wait_for()
    before = figure.evaluate("el => JSON.stringify(el.data)")
    page.evaluate(WATCH_RERUNS)
    box = rail.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.9 * box["width"], box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    page.wait_for_function(
        "([el, before]) => JSON.stringify(el.data) !== before",
        arg=[figure.element_handle(), before],
    )
    page.wait_for_timeout(500)
    assert page.evaluate("window.__reruns") == 0
    assert page.locator('[data-test-script-state="notRunning"]').count() == 1
    assert not error_texts(page), error_texts(page)


def test_every_connectivity_figure_draws_with_its_sweeps_on(server, page) -> None:
    """The Connectivity page with both sweeps switched on by its link (their defaults are
    presets): the paths, the barriers, the plane and both sweeps are drawn, with no error."""
    page.goto(f"{server}/connectivity?conn_sweep_width=true&conn_sweep_branches=true")
    wait_for_run(page)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 5")
    assert not error_texts(page), error_texts(page)
    drawn = json.loads(chart_data(page))
    assert len(drawn) == 5 and all(traces for traces in drawn), [len(t) for t in drawn]
