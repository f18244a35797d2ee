"""Browser tests: the real app, served by `streamlit run`, driven by headless Chromium.

Every page of the navigation opens without an error element; every study page draws at least one
Plotly chart; moving the page's first slider with the keyboard changes a chart. Without
/usr/bin/chromium these tests skip locally, and fail under CI (CI=true), where .ci/run installs it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ui.catalogue import HOME, STUDIES

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
RUN_TIMEOUT_MS = 180_000

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run must install Debian's chromium")
    pytest.skip(
        f"{CHROMIUM} is not installed (apt-get install -y chromium)", allow_module_level=True
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
    else:
        process.kill()
        raise RuntimeError(f"streamlit did not start: {process.stdout.read()}")
    yield url
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


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
    tab.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]')
    tab.wait_for_selector('[data-test-script-state="notRunning"]', state="attached")
    tab.wait_for_timeout(300)
    tab.wait_for_selector('[data-test-script-state="notRunning"]', state="attached")


def error_texts(tab) -> list[str]:
    selector = '[data-testid="stException"], [data-testid="stAlertContentError"]'
    return [element.inner_text() for element in tab.query_selector_all(selector)]


def chart_data(tab) -> str:
    return tab.evaluate(
        "() => JSON.stringify(Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".map(el => el.data))"
    )


def test_deep_link_goes_through_the_router(server, page) -> None:
    """A study opened first by its URL still gets the router's sidebar (device and seed)."""
    entry = STUDIES[0]
    page.goto(f"{server}/{entry.url_path}")
    wait_for_run(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert sidebar.get_by_text("Device").count() >= 1
    assert sidebar.get_by_text("Seed").count() >= 1


def test_home_lists_every_study(server, page) -> None:
    page.goto(server)
    wait_for_run(page)
    assert not error_texts(page)
    for entry in STUDIES:
        assert page.locator('[data-testid="stPageLink"]').get_by_text(entry.title).count() >= 1


@pytest.mark.parametrize("entry", STUDIES, ids=[e.url_path for e in STUDIES])
def test_study_page_renders_and_its_first_slider_changes_a_chart(server, page, entry) -> None:
    page.goto(f"{server}/{entry.url_path}")
    wait_for_run(page)
    page.wait_for_selector(".js-plotly-plot")
    assert not error_texts(page), error_texts(page)
    before = chart_data(page)
    assert json.loads(before), "no Plotly chart on the page"

    slider = page.locator(
        '[data-testid="stMain"] [data-testid="stSlider"] :is([role="slider"], input[type="range"])'
    ).first
    slider.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "(before) => JSON.stringify(Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".map(el => el.data)) !== before",
        arg=before,
    )
    wait_for_run(page)
    assert not error_texts(page), error_texts(page)


def test_home_page_has_no_error(server, page) -> None:
    page.goto(f"{server}/{HOME.url_path}")
    wait_for_run(page)
    assert not error_texts(page)
