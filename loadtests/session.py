"""One protocol session: a websocket to ``/_stcore/stream``, the elements it holds (and forgets
as the browser does), its widget states and its reruns.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import ClientConnection

from loadtests.protocol import (
    ABOUT_CACHES,
    CONTEXT,
    EARLY,
    ERROR_FORMAT,
    FULL_RUN,
    PRESET_NOTICE,
    TRACEBACK,
    cache_mib,
    component_data,
    moved_state,
    query_text,
    text_of,
    url_value,
    widget_of,
    widget_state,
    with_param,
)


@dataclass
class Held:
    """An element the session holds for later references, as the browser's message cache: the
    message, the run count when it was last sent or referenced, and its fragment."""

    message: bytes
    run: int
    fragment: str


@dataclass
class Answer:
    """What the session saw since `Session.expect`: whether a progress bar came; and of the
    full runs since `Session.last_rerun`, how many started, whether the server has taken that
    request (its `probe` acknowledged: `Session.last_rerun`), when the first full run to finish
    after that ended (monotonic s), its charts, whether it showed the preset notice and which
    errors it showed."""

    started: int = 0
    probe: int = 0  # the ordering probe sent after the last request (`Session.probes`)
    acknowledged: bool = False
    finished: float | None = None
    progress: bool = False
    preset: bool = False
    charts: dict[str, str] = field(default_factory=dict)  # chart key -> digest of its figure
    figures: dict[str, bytes] = field(default_factory=dict)  # chart key -> its figure's data
    errors: list[str] = field(default_factory=list)
    # what happened, in order: (monotonic s, what): requests sent, runs started and finished
    events: list[tuple[float, str]] = field(default_factory=list)

    def since(self, start: float) -> float:
        """Seconds from ``start`` (monotonic) to the answering run's end."""
        return (math.nan if self.finished is None else self.finished) - start


class Session:
    """One browser session of the app, spoken over its websocket (see the module's docstring):
    what the browser holds (widget states, the query string, the page, cached elements) and
    the requests it sends. `listen` reads the server's messages until the socket closes."""

    def __init__(self, socket: ClientConnection, base: str, path: str, query: str) -> None:
        self.socket = socket
        self.base = base
        self.url = f"{base}/{path}"
        self.query = query
        self.page = ""  # the page's script hash, once the server named it
        self.main = ""  # the main script's (app.py) hash
        self.pages: dict[str, str] = {}  # url path -> page script hash (the navigation)
        self.widgets: dict[str, WidgetState] = {}  # by widget id, in the order they came
        self.elements: dict[str, tuple[Element, str]] = {}  # by widget id: element, script
        self.seen: set[str] = set()  # widget ids drawn by the current full run
        self.cache: dict[str, Held] = {}
        self.runs = 0  # script runs finished (the cache's clock)
        self.max_age = 2
        self.answer = Answer()
        self.changed = asyncio.Condition()
        self.fragments: dict[str, tuple[float, asyncio.Task]] = {}
        self.problems: list[str] = []  # where this client could not do what the browser does
        self.charts: dict[str, Element] = {}  # by key: the last chart element of that key
        self.references = 0  # elements the server sent as references to held ones
        self.caches: list[tuple[float, float]] = []  # (monotonic s, MiB held by the caches)
        self.probes = 0  # ordering probes sent (`last_rerun`), and acknowledged by the server
        self.probes_seen = 0
        self.run_on_save = False  # as the server's last session_status_changed said

    async def rerun(self, fragment: str = "", page_name: str = "", auto: bool = False) -> None:
        """Send a rerun request with the browser's state (all its widgets' states)."""
        message = BackMsg()
        state = message.rerun_script
        state.query_string = self.query
        state.widget_states.widgets.extend(self.widgets.values())
        state.page_script_hash = self.page
        state.page_name = page_name
        state.fragment_id = fragment
        state.is_auto_rerun = auto
        state.cached_message_hashes.extend(self.cache)
        for name, value in {**CONTEXT, "url": self.url}.items():
            setattr(state.context_info, name, value)
        self.answer.events.append((time.monotonic(), f"rerun sent {self.query}"))
        await self.socket.send(message.SerializeToString())

    def expect(self) -> None:
        """Start a new `Answer`: what comes after the requests about to be sent."""
        self.answer = Answer()

    async def last_rerun(self, page_name: str = "") -> None:
        """The step's last rerun request, then an ordering probe: only the first full run to
        finish after the server has taken this request answers it (`answered`).

        The server may take a request late (its event loop waits for the GIL while runs
        compute): a run of an earlier press can start after this request was sent and finish
        before the server reads it. The server reads a session's messages in order; with
        ``runner.fastReruns`` (Streamlit's default) taking a rerun request replaces the session's
        ScriptRunner and drops every later message of the old one. The probe turns the
        server's ``runOnSave`` on and off again (its default, off, is restored at once; the
        benchmark's server watches no files): the first ``session_status_changed`` that says
        on is enqueued after the server took the rerun, and a lifecycle message, it is never
        dropped from the outgoing queue. What finishes after it is the new request's run."""
        self.answer.started = 0
        self.answer.finished = None
        self.answer.acknowledged = False
        self.probes += 1
        self.answer.probe = self.probes
        await self.rerun(page_name=page_name)
        for run_on_save in (True, False):
            probe = BackMsg()
            probe.set_run_on_save = run_on_save
            await self.socket.send(probe.SerializeToString())

    def _status(self, run_on_save: bool) -> None:
        """A ``session_status_changed``: a probe is acknowledged when ``runOnSave`` turns on
        (each probe turns it on once: the n-th turn is the n-th probe's)."""
        if run_on_save and not self.run_on_save:
            self.probes_seen += 1
            if self.probes_seen == self.answer.probe:
                self.answer.acknowledged = True
                self.answer.finished = None  # a run that finished before it answers nothing
                self.answer.events.append((time.monotonic(), "request taken"))
        self.run_on_save = run_on_save

    async def open_page(self, path: str) -> None:
        """The sidebar's link to ``path``: the new page with the sidebar's widgets only and the
        query parameters bound to widgets (the browser's page change)."""
        bound = {getattr(w, "query_param_key", "") for w in self._widget_elements()} - {""}
        self.query = query_text((k, v) for k, v in parse_qsl(self.query) if k in bound)
        self.stop_fragments()
        kept = {i for i, (_, script) in self.elements.items() if script == self.main}
        self.widgets = {i: s for i, s in self.widgets.items() if i in kept}
        self.page = self.pages[path]
        self.expect()
        await self.last_rerun()
        self.url = f"{self.base}/{path}"

    def slider(self, key: str) -> Slider:
        """The slider element whose widget key is ``key``."""
        for element, _ in self.elements.values():
            if element.WhichOneof("type") == "slider" and element.slider.id.endswith(f"-{key}"):
                return element.slider
        raise LookupError(f"no slider {key} on the page")

    def slider_value(self, slider: Slider) -> float:
        """The value the browser holds for ``slider`` (an option's index for a select slider)."""
        state = self.widgets[slider.id]
        if slider.type == Slider.Type.SELECT_SLIDER:
            return float(list(slider.options).index(state.string_array_value.data[0]))
        return state.double_array_value.data[0]

    def press(self, slider: Slider, value: float) -> None:
        """The browser's state after an arrow press moved ``slider`` to ``value``: the widget's
        state, and its value in the URL."""
        self.widgets[slider.id] = moved_state(slider, value)
        self.query = with_param(self.query, slider.query_param_key, url_value(slider, value))

    def _widget_elements(self) -> list[Any]:
        """The widgets (their protos) of the elements the browser shows."""
        return [widget_of(e)[1] for e, _ in self.elements.values()]

    async def listen(self) -> None:
        """Read the server's messages and keep the browser's state, until the socket closes."""
        async for data in self.socket:
            if isinstance(data, str):  # Streamlit sends protobufs, in binary frames only
                continue
            message = ForwardMsg()
            message.ParseFromString(data)
            message = self._resolved(message, data)
            async with self.changed:
                self._handle(message)
                self.changed.notify_all()

    def _resolved(self, message: ForwardMsg, data: bytes) -> ForwardMsg:
        """``message``, read from the held elements when it is a reference; holds a cacheable
        one (the browser's ForwardMsg cache)."""
        if message.WhichOneof("type") == "ref_hash":
            held = self.cache.get(message.ref_hash)
            if held is None:
                self.problems.append(f"Cached ForwardMsg MISS [hash={message.ref_hash}]")
                return message
            held.run = self.runs
            self.references += 1
            original = ForwardMsg()
            original.ParseFromString(held.message)
            original.metadata.CopyFrom(message.metadata)
            return original
        if message.metadata.cacheable:
            if message.hash in self.cache:  # sent again in full: used in this run
                self.cache[message.hash].run = self.runs
            else:
                self.cache[message.hash] = Held(data, self.runs, message.delta.fragment_id)
        return message

    def _handle(self, message: ForwardMsg) -> None:
        """Keep what the browser keeps from ``message``."""
        kind = message.WhichOneof("type")
        if kind == "new_session":
            self._new_session(message)
        elif kind == "navigation":
            self.pages = {p.url_pathname: p.page_script_hash for p in message.navigation.app_pages}
            self.page = message.navigation.page_script_hash
        elif kind == "page_info_changed":
            self.query = message.page_info_changed.query_string
        elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
            self._element(message.delta.new_element, message.metadata.active_script_hash)
        elif kind == "script_finished":
            self._finished(message)
        elif kind == "session_status_changed":
            self._status(message.session_status_changed.run_on_save)
        elif kind == "auto_rerun":
            self._auto_rerun(message.auto_rerun.fragment_id, message.auto_rerun.interval)
        elif kind == "stop_auto_rerun":
            self.stop_fragments(message.stop_auto_rerun.fragment_ids)
        elif kind == "session_event" and message.session_event.HasField(
            "script_compilation_exception"
        ):
            self.answer.errors.append("script compilation error")
        elif kind == "page_not_found":
            self.problems.append(f"page not found: {message.page_not_found.page_name}")

    def _new_session(self, message: ForwardMsg) -> None:
        """A run began; a full one starts the page (and the `Answer`'s run) anew."""
        self.main = message.new_session.main_script_hash
        self.max_age = message.new_session.config.max_cached_message_age
        run = f"{message.metadata.run.script_run_id[:8]} {list(message.metadata.run.fragment_ids)}"
        self.answer.events.append((time.monotonic(), f"run started {run}"))
        if not message.metadata.run.fragment_ids:  # a full run (the browser stops its timers)
            self.seen = set()
            self.answer.started += 1
            self.answer.finished = None
            self.answer.preset = False
            self.answer.charts = {}
            self.answer.figures = {}
            self.answer.errors = []
            self.stop_fragments()

    def _element(self, element: Element, script: str) -> None:
        """An element drawn by the script ``script`` (a hash): noted in the `Answer`, and a
        widget's state kept as the browser keeps it."""
        kind, widget = widget_of(element)
        if kind == "progress":
            self.answer.progress = True
        elif kind == "exception":
            self.answer.errors.append(f"exception: {widget.type}: {widget.message}"[:300])
        elif kind == "alert" and widget.format == ERROR_FORMAT:
            self.answer.errors.append(f"error box: {widget.body}"[:300])
        elif kind == "markdown" and PRESET_NOTICE in widget.body:
            self.answer.preset = True
        elif kind == "markdown" and ABOUT_CACHES in widget.body:
            self.caches.append((time.monotonic(), cache_mib(widget.body)))
        elif kind in ("markdown", "code", "text") and TRACEBACK in text_of(widget):
            self.answer.errors.append(f"traceback in a {kind} element")
        elif kind == "bidi_component":
            key = widget.id.rsplit("-", 1)[-1]
            self.charts[key] = element
            self.answer.charts[key] = hashlib.sha1(widget.SerializeToString()).hexdigest()
            self.answer.figures[key] = component_data(widget)
        try:
            state = widget_state(element, self.widgets.get(getattr(widget, "id", "")))
        except ValueError as error:
            self.problems.append(str(error))
            return
        if state is not None:
            self.widgets[state.id] = state
            self.elements[state.id] = (element, script)
            self.seen.add(state.id)

    def _finished(self, message: ForwardMsg) -> None:
        """A run ended: the held elements age; after a full run the `Answer` is complete."""
        status = ForwardMsg.ScriptFinishedStatus.Name(message.script_finished)
        run = message.metadata.run.script_run_id[:8]
        self.answer.events.append((time.monotonic(), f"run finished {run} {status}"))
        if message.script_finished != EARLY:
            self._age_cache(message.metadata.run.fragment_ids)
        if message.script_finished == FULL_RUN:
            # the browser forgets the widgets the run no longer drew
            self.widgets = {i: s for i, s in self.widgets.items() if i in self.seen}
            self.elements = {i: e for i, e in self.elements.items() if i in self.seen}
            if self.answer.acknowledged:
                self.answer.finished = time.monotonic()

    def _age_cache(self, fragments: Iterable[str]) -> None:
        """One more run: forget the held elements unused for more than ``max_age`` runs (after
        a fragment's run, only that fragment's)."""
        self.runs += 1
        fragments = set(fragments)
        for digest, held in list(self.cache.items()):
            if fragments and held.fragment not in fragments:
                continue
            if self.runs - held.run > self.max_age:
                del self.cache[digest]

    def _auto_rerun(self, fragment: str, interval: float) -> None:
        """Rerun ``fragment`` every ``interval`` seconds, as the browser's timer does."""
        if fragment in self.fragments and self.fragments[fragment][0] == interval:
            return
        self.stop_fragments([fragment])
        self.fragments[fragment] = (interval, asyncio.create_task(self._every(fragment, interval)))

    async def _every(self, fragment: str, interval: float) -> None:
        """The timer of `_auto_rerun` (cancelled by `stop_fragments`)."""
        while True:
            await asyncio.sleep(interval)
            await self.rerun(fragment=fragment, auto=True)

    def stop_fragments(self, fragments: Iterable[str] | None = None) -> None:
        """Stop rerunning ``fragments`` (all by default): a full run or a page change began."""
        for fragment in list(self.fragments if fragments is None else fragments):
            if fragment in self.fragments:
                self.fragments.pop(fragment)[1].cancel()

    async def answered(self) -> Answer:
        """Wait until a full run has finished after the server took the last request."""
        async with self.changed:
            await self.changed.wait_for(
                lambda: self.answer.acknowledged and self.answer.finished is not None
            )
        return self.answer
