"""The real app for the browser tests and the browser benchmarks: ``streamlit run app.py`` on a
free port, and the headless Chromium that drives it (DESIGN.md, Tests).

    with AppServer({"CONVEXIFY_TORCH_THREADS": "1"}) as server:
        ...  # server.url, server.pid
    print(server.log)  # everything the server printed

tests/test_browser.py and loadtests/classroom.py both start the app here, so they serve it the
same way.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
#: Debian's chromium under Playwright, headless, no sandbox (containers), nothing fetched.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
#: The app's state in the page: connected to its server, and a script run finished.
CONNECTED = '[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
NOT_RUNNING = '[data-test-script-state="notRunning"]'
#: An exception or an error box on the page.
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'


def free_port() -> int:
    """A TCP port nothing listens on now (on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def streamlit_command(port: int) -> list[str]:
    """``streamlit run app.py`` headless on 127.0.0.1:``port``, no file watcher, no telemetry."""
    return [
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


class AppServer:
    """``streamlit run app.py`` on a free port, started and answering its health check.

    ``env`` is added to this process's environment. The server's output goes to a temporary
    file (a pipe nobody reads would fill and block it); `stop` returns it, and ``log`` keeps it.
    Raises ``RuntimeError`` with that output when the server does not answer within
    ``start_timeout`` seconds. ``root`` is the checkout whose ``app.py`` runs (this one by
    default; a benchmark's "before" side passes a worktree of an older commit).
    """

    def __init__(
        self,
        env: dict[str, str] | None = None,
        start_timeout: float = 90.0,
        root: Path = ROOT,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = ""
        self._output = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            streamlit_command(self.port),
            env={**os.environ, **(env or {})},
            cwd=root,
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        log = self.stop()
        raise RuntimeError(f"streamlit did not start within {start_timeout:.0f} s:\n{log}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> str:
        """Stop the server (terminate, then kill after 15 s) and return its output."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._output.closed:
            self._output.seek(0)
            self.log = self._output.read()
            self._output.close()
        return self.log

    def __enter__(self) -> AppServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


@contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """A temporary `git worktree` of this repository at ``revision`` (a benchmark's "before"
    side), removed afterwards."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "before"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(root), revision],
            check=True,
            capture_output=True,
        )
        try:
            yield root
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(root)], check=False
            )
