"""Protocol students: Streamlit sessions that speak the app's own websocket protocol and draw
nothing (`loadtests/classroom.py --browsers K`).

In a class each student's browser runs on the student's own machine; the benchmark's machine
has the server's two cores only. A protocol student loads the server as a browser student
does, without a browser's rendering: it opens the page over HTTP (the page, the health and
host-config checks, the chart component's ``plotly.min.js``, and on its first open the static
files the teacher's browser fetched), connects to ``/_stcore/stream`` and exchanges
``streamlit.proto`` messages there as Streamlit's frontend does:

- every rerun carries the widget states of every widget on the page, each the value the
  browser holds (its own, else the element's default, or the value the script set), the page's
  query string (a bound widget's value written into it as the frontend writes it, defaults
  removed), the page script hash and the hashes of the elements it holds;
- elements sent as references (``ref_hash``) are read from that held cache, which forgets an
  element after ``maxCachedMessageAge`` runs without it, as the browser's does;
- a slider moved by arrow presses asks for every value on the way, one rerun per press,
  snapped to the slider's step as the frontend's slider snaps it, the presses spaced as the
  benchmark's browser students' were (`PRESS_GAPS_S`);
- opening the next study sends the new page's script hash with the sidebar's widgets only (the
  browser's page change); fragments that ask to be rerun every few seconds are rerun.

It times a move from its last press to the ``script_finished`` of the first full run to finish
after the server took that press's request (the server's time plus the network, no drawing:
`Session.last_rerun` tells the last press's run from an earlier press's run that the server
finished before it read the last request), and classifies it as the browser student does:
``preset`` when that run shows the preset notice, ``fresh`` when a progress bar came during the
move, else ``cached``. The server does not send a slider's value back (its element carries the
default unless the script set the value), so `ProtocolStudent.check` checks the answer by its
chart: drawn, changed by the move, and equal to every other answer for the same link, study
and value.

Where it differs from the browser (read from a Chromium's websocket frames and requests on this
app, Streamlit 1.67): the browser also fetches some 65 small script chunks as elements first
appear and two 404 probes per page load, which this client does not; it fetches plotly.min.js
after the first run, not while it draws; and the browser's quick key presses sometimes reach
the server as fewer reruns (two presses, one rerun), where this client sends one per press;
and after the last request of a step this client sends an ordering probe (``set_run_on_save``
on, then off: two small messages that the browser sends only from its menu).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.typing import Origin, Subprotocol

from loadtests.protocol import (
    PRESS_GAPS_S,
    STREAM_PATH,
    arrow_values,
    check_streamlit,
    fetch,
    js_number,
    page_html,
    plotly_url,
    static_files,
)
from loadtests.session import Session


class MismatchDump:
    """Evidence of the checks' mismatches (``classroom.py --dump-mismatches DIR``): the figure
    of the first answer for each (link, study, value) is kept with what asked for it (the
    student, the answer's kind, the query string, every widget's state); each mismatch writes
    both figures and both askings into a folder of its own under ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.first: dict[tuple[str, str, float], tuple[bytes, dict[str, Any]]] = {}
        self.written = 0
        self.origin = time.monotonic()

    def write(self, key: tuple[str, str, float], figure: bytes, asked: dict[str, Any]) -> Path:
        """``first.json``, ``this.json`` (the two figures) and ``asked.json`` for a mismatch of
        ``key``; the folder written."""
        self.written += 1
        link, path, value = key
        folder = self.folder / f"{self.written:03d}_{path}_{js_number(value)}"
        folder.mkdir(parents=True, exist_ok=True)
        first, first_asked = self.first.get(key, (b"", {}))
        (folder / "first.json").write_bytes(first)
        (folder / "this.json").write_bytes(figure)
        record = {"link": link, "path": path, "value": value, "first": first_asked}
        (folder / "asked.json").write_text(json.dumps({**record, "this": asked}, indent=1))
        return folder


@dataclass
class Move:
    """A protocol student's move: its kind, seconds from the last press to the answering run's
    end, the errors that run showed, and `ProtocolStudent.check`'s verdict."""

    kind: str
    seconds: float
    errors: list[str]
    check: str


class ProtocolStudent:
    """A student without a browser: opens studies and moves sliders over a `Session`, its arrow
    presses ``press_gaps`` (low, high) seconds apart, uniformly drawn.

    ``answers`` is shared by the class: the digest of each study's chart per (link, study,
    value), to check that an answer shows the value asked (`check`)."""

    def __init__(
        self,
        base: str,
        answers: dict[tuple[str, str, float], str],
        press_gaps: tuple[float, float] = PRESS_GAPS_S,
        dump: MismatchDump | None = None,
    ) -> None:
        check_streamlit()
        self.base = base
        self.answers = answers
        self.dump = dump
        self.press_gaps = press_gaps
        self.rng = random.Random()
        self.session: Session | None = None
        self.listener: asyncio.Task | None = None
        self.link = ""  # the lap's link (its seed): answers differ between links
        self.path = ""
        self.fetched_static = False
        self.problems: list[str] = []  # of its sessions closed so far (`Session.problems`)
        self.references = 0  # of its sessions closed so far (`Session.references`)
        self.caches: list[tuple[float, float]] = []  # of its sessions closed (`Session.caches`)

    async def open(self, path: str, query: str) -> float:
        """Open ``path?query`` as a page load: the page over HTTP, a new websocket session, its
        first run; seconds until that run ended."""
        await self.close()
        started = time.monotonic()
        await self._load_page(f"{self.base}/{path}?{query}")
        stream = self.base.replace("http", "ws", 1) + "/" + STREAM_PATH
        socket = await connect(
            stream, subprotocols=[Subprotocol("streamlit")], max_size=None, origin=Origin(self.base)
        )
        self.session = Session(socket, self.base, path, query)
        self.listener = asyncio.create_task(self.session.listen())
        self.link, self.path = query, path
        self.session.expect()
        await self.session.last_rerun(page_name=path)
        answer = await self.session.answered()
        await self._load_plotly()
        return answer.since(started)

    async def _load_page(self, url: str) -> None:
        """The page's HTML, the health and host-config checks, and on the student's first
        open the files the HTML names (later opens find them in the browser's cache)."""
        text = await asyncio.to_thread(page_html, url)
        urls = [f"{self.base}/_stcore/health", f"{self.base}/_stcore/host-config"]
        if not self.fetched_static:
            urls += [f"{self.base}/{name}" for name in static_files(text)]
            self.fetched_static = True
        await asyncio.gather(*(asyncio.to_thread(fetch, u) for u in urls))

    async def _load_plotly(self) -> None:
        """The chart component's plotly.min.js, fetched anew by the browser at every page load."""
        for element in self._open_session().charts.values():
            url = plotly_url(element)
            if url:
                await asyncio.to_thread(fetch, f"{self.base}/{url}")
                return

    async def next_study(self, path: str) -> float:
        """The sidebar's link to ``path``; seconds until the new page's run ended."""
        session = self._open_session()
        started = time.monotonic()
        await session.open_page(path)
        self.path = path
        answer = await session.answered()
        return answer.since(started)

    def _open_session(self) -> Session:
        """The session of the open study."""
        if self.session is None:
            raise RuntimeError("no study is open")
        return self.session

    async def move(self, slider_key: str, chart: str, presses: int) -> Move:
        """Move the slider ``slider_key`` by ``presses`` arrow presses (one rerun each, the
        values the browser's slider asks for); the move as the answering run shows it."""
        session = self._open_session()
        slider = session.slider(slider_key)
        start = session.slider_value(slider)
        before = session.answer.charts.get(chart)
        if before is not None and (self.link, self.path, start) not in self.answers:
            self.answers[self.link, self.path, start] = before
            chart_before = (before, session.answer.figures[chart])
            self._dumped("new", start, chart_before, "before a move")
        values = arrow_values(slider, start, presses)
        session.expect()
        for index, value in enumerate(values):
            if index:
                await asyncio.sleep(self.rng.uniform(*self.press_gaps))
            session.press(slider, value)
            if index < len(values) - 1:
                await session.rerun()
        sent = time.monotonic()
        await session.last_rerun()
        answer = await session.answered()
        kind = "preset" if answer.preset else "fresh" if answer.progress else "cached"
        check = self.check(before, answer.charts.get(chart), values[-1])
        after = (answer.charts.get(chart), answer.figures.get(chart, b""))
        self._dumped(check, values[-1], after, kind, values)
        return Move(kind, answer.since(sent), list(answer.errors), check)

    def check(self, before: str | None, after: str | None, value: float) -> str:
        """Whether the answer shows the value asked: ``no chart`` when the run did not draw the
        study's chart, ``unchanged`` when its figure is the one before the move, ``mismatch``
        when it differs from another answer for this value (this link, this study), else
        ``same`` (it equals one) or ``new`` (the first answer for the value)."""
        if after is None:
            return "no chart"
        if after == before:
            return "unchanged"
        key = (self.link, self.path, value)
        if key not in self.answers:
            self.answers[key] = after
            return "new"
        return "same" if self.answers[key] == after else "mismatch"

    def _dumped(
        self,
        check: str,
        value: float,
        chart: tuple[str | None, bytes],
        kind: str,
        pressed: Iterable[float] = (),
    ) -> None:
        """With a `MismatchDump`: the first answer for a value kept, a mismatch written.
        ``chart``: the answer's chart (its digest, its figure); what asked for it is noted
        with it: the values pressed, the widget states, the values whose first answer it
        equals."""
        if self.dump is None or check not in ("new", "mismatch"):
            return
        session = self._open_session()
        digest, figure = chart
        key = (self.link, self.path, value)
        asked = {
            "student": id(self),
            "kind": kind,
            "time": time.time(),
            "pressed": list(pressed),
            "runs started": session.answer.started,
            "events": [(round(t - self.dump.origin, 3), what) for t, what in session.answer.events],
            "query": session.query,
            "widgets": [str(state) for state in session.widgets.values()],
            "equals first answer for": sorted(
                v
                for (link, path, v), d in self.answers.items()
                if (link, path) == key[:2] and d == digest
            ),
        }
        if check == "new":
            self.dump.first.setdefault(key, (figure, asked))
        else:
            self.dump.write(key, figure, asked)

    async def close(self) -> None:
        """Leave: close the websocket (the server ends the session), stop listening."""
        if self.session is not None:
            self.session.stop_fragments()
            await self.session.socket.close()
            self.problems += self.session.problems
            self.references += self.session.references
            self.caches += self.session.caches
        if self.listener is not None:
            await asyncio.gather(self.listener, return_exceptions=True)
        self.session, self.listener = None, None
