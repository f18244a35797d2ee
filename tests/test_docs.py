"""The documentation site: ``mkdocs build --strict`` passes (a broken link, a missing page or a
docstring that cannot be rendered is a warning, and strict mode fails on any warning), the built
site fetches nothing from another host, and ``mkdocs serve`` (the README's command) serves it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from benchmarks.app_server import free_port

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "mkdocs.yml"
ENV = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about its successor
# Anything the browser loads by itself: scripts, stylesheets, images, fonts.
LOADED = re.compile(
    r"<(?:script|img|iframe|source)\b[^>]*\bsrc=\"([^\"]*)\"|<link\b[^>]*\bhref=\"([^\"]*)\""
)


def mkdocs(*argv: str) -> list[str]:
    return [sys.executable, "-m", "mkdocs", *argv, "--config-file", str(CONFIG)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        mkdocs("build", "--strict", "--site-dir", str(out)),
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return out


@pytest.mark.slow
def test_site_builds_strict_with_every_page(site: Path) -> None:
    for page in ("index", "studies/linear-duality/index", "serving/index", "api/engine/index"):
        assert (site / f"{page}.html").is_file(), page
    assert (site / "javascripts/mathjax/tex-chtml.js").stat().st_size > 100_000
    assert (site / "assets/screenshot.png").is_file()
    # the API pages render the docstrings: a function of the mathematics with its own text
    engine = (site / "api/engine/index.html").read_text()
    assert "landscape.engine.surface.surface_2d" in engine
    assert "Problem" in engine


@pytest.mark.slow
def test_site_fetches_nothing_from_another_host(site: Path) -> None:
    """A classroom may be offline: no page loads a script, style, image or font from elsewhere
    (links a reader clicks are allowed)."""
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 10
    for page in pages:
        for match in LOADED.finditer(page.read_text()):
            url = match.group(1) if match.group(1) is not None else match.group(2)
            tag = match.group(0)
            if url.startswith(("http://", "https://", "//")) and 'rel="canonical"' not in tag:
                pytest.fail(f"{page.relative_to(site)} loads {url}")


@pytest.mark.slow
def test_mkdocs_serve_serves_the_site() -> None:
    """The README's ``mkdocs serve``, on a free port: the home page and a study's guide answer."""
    port = free_port()
    argv = mkdocs("serve", "--strict", "--no-livereload", "--dev-addr", f"127.0.0.1:{port}")
    server = subprocess.Popen(
        argv, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        home = fetch(f"http://127.0.0.1:{port}/", server, deadline=time.monotonic() + 600)
        assert "<title>Convexify</title>" in home
        guide = fetch(f"http://127.0.0.1:{port}/studies/width/", server, time.monotonic() + 60)
        assert "Width" in guide
    finally:
        server.terminate()
        server.wait(timeout=30)


def fetch(url: str, server: subprocess.Popen[str], deadline: float) -> str:
    """The page at ``url`` once the server answers; fails if it exits or ``deadline`` passes."""
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mkdocs serve exited with {server.returncode}:\n{server.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer in time")
