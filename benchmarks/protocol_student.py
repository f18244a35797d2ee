"""Protocol students: Streamlit sessions that speak the app's own websocket protocol and draw
nothing (`benchmarks/classroom.py --browsers K`).

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
import hashlib
import json
import math
import random
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

STREAM_PATH = "_stcore/stream"
#: Seconds between two arrow presses, drawn uniformly from this range (by default): the 10th and
#: 90th percentiles of the spacing of the reruns that the benchmark's browser students' key
#: presses sent in a lap of two browser students (median 0.19 s; a lone browser on an idle
#: server sent them 0.06-0.07 s apart). The pace decides how far the runs of the values passed
#: on the way get before the next press stops them (a pause over the runner's 0.5 s settle lets
#: one start a computation).
PRESS_GAPS_S = (0.07, 0.53)
#: What Chromium asks for: the server compresses ``plotly.min.js`` (4.8 MB) for every open.
ACCEPT_ENCODING = "gzip, deflate, br, zstd"
#: The browser's ``contextInfo`` of a headless Chromium in this benchmark (its URL added).
CONTEXT = {
    "timezone": "UTC",
    "timezone_offset": 0,
    "locale": "en-US",
    "is_embedded": False,
    "color_scheme": "light",
}
EARLY = ForwardMsg.ScriptFinishedStatus.FINISHED_EARLY_FOR_RERUN
FULL_RUN = ForwardMsg.ScriptFinishedStatus.FINISHED_SUCCESSFULLY
#: Elements that carry an id but hold no widget state in the browser (a button's click is a
#: trigger, sent once; a chart or a component without state sends nothing).
STATELESS = {"button", "download_button", "bidi_component", "plotly_chart", "link_button"}
PRESET_NOTICE = "Precomputed for the lecture's settings"
ERROR_FORMAT = Alert.Format.ERROR  # an ``st.error`` box, counted like the browsers' ERRORS
TRACEBACK = "Traceback (most recent call last)"
ABOUT_CACHES = "Memory ceilings ("  # the sidebar's about box: each cache's bytes (ui/sidebar.py)
CACHE_HELD = re.compile(r"\*\*([\d.]+) of [\d.]+ MiB\*\*")


def cache_mib(about: str) -> float:
    """The MiB every cache holds, summed over the lines of the about box's caption ``about``."""
    return sum(float(held) for held in CACHE_HELD.findall(about))


def js_number(value: float) -> str:
    """``String(value)`` in JavaScript: how the frontend writes a number into the URL."""
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if 1e-6 <= abs(value) < 1e21:
        return format(Decimal(text), "f")
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent):+d}"


def step_precision(step: float) -> int:
    """The frontend slider's precision of ``step``, as it counts it from ``String(step)``."""
    text = js_number(step)
    if "e-" in text:
        return abs(math.floor(math.log10(abs(step)))) + text.index("e-")
    return len(text) - text.index(".") if "." in text else 0


def round_to_step(value: float, step: float) -> float:
    """``value`` rounded to `step_precision` decimals (JavaScript's ``Math.round``: half up)."""
    precision = step_precision(step)
    if precision == 0:
        return value
    scale = 10**precision
    return math.floor(value * scale + 0.5) / scale


def snap_to_step(value: float, low: float, high: float, step: float) -> float:
    """The frontend slider's ``snapValueToStep``: ``value`` on the step grid from ``low``,
    inside ``[low, high]``."""
    remainder = math.fmod(value - low, step)  # JavaScript's %: the sign of the dividend
    if abs(remainder) * 2 >= step:
        snapped = value + math.copysign(step - abs(remainder), remainder)
    else:
        snapped = value - remainder
    snapped = round_to_step(snapped, step)
    if snapped < low:
        snapped = low
    elif snapped > high:
        snapped = low + math.floor(round_to_step((high - low) / step, step)) * step
    return round_to_step(snapped, step)


def arrow_values(slider: Slider, start: float, presses: int) -> list[float]:
    """The values ``presses`` arrow keys ask for from ``start`` (right when positive), one per
    press, as the frontend's slider steps and snaps them (a select slider steps its options)."""
    step, low, high = slider.step, slider.min, slider.max
    values = []
    for _ in range(abs(presses)):
        start = snap_to_step(start + (step if presses > 0 else -step), low, high, step)
        values.append(start)
    return values


def _slider_value(widget: Slider, state: WidgetState, values: Iterable[float]) -> None:
    """A slider's ``values`` as its state: numbers, or a select slider's options at them."""
    if widget.type == Slider.Type.SELECT_SLIDER:
        state.string_array_value.data.extend(widget.options[int(i)] for i in values)
    else:
        state.double_array_value.data.extend(values)


def _slider(widget: Slider, state: WidgetState) -> None:
    """A slider (or select slider): its default, or the value the script set."""
    _slider_value(widget, state, widget.value if widget.set_value else widget.default)


def _choice(widget: Any, state: WidgetState) -> None:
    """A selectbox or radio: the option at its default index, or the value the script set."""
    if widget.set_value:
        state.string_value = widget.raw_value
    elif widget.HasField("default"):
        state.string_value = widget.options[widget.default]


def _multiselect(widget: Any, state: WidgetState) -> None:
    """A multiselect: the options at its default indices, or the values the script set."""
    chosen = widget.raw_values if widget.set_value else [widget.options[i] for i in widget.default]
    state.string_array_value.data.extend(chosen)


def _checkbox(widget: Any, state: WidgetState) -> None:
    """A checkbox or toggle."""
    state.bool_value = widget.value if widget.set_value else widget.default


def _number(widget: Any, state: WidgetState) -> None:
    """A number input: an int or a float, as its data type says."""
    value = widget.value if widget.set_value else widget.default
    if widget.data_type == widget.DataType.INT:
        state.int_value = int(value)
    else:
        state.double_value = value


def _text(widget: Any, state: WidgetState) -> None:
    """A text input or area."""
    state.string_value = widget.value if widget.set_value else widget.default


def _uploader(_widget: Any, state: WidgetState) -> None:
    """A file uploader without files: an empty state."""
    state.file_uploader_state_value.SetInParent()


#: How the browser fills a widget's state from its element, per element type.
FILL: dict[str, Callable[..., None]] = {
    "slider": _slider,
    "selectbox": _choice,
    "radio": _choice,
    "multiselect": _multiselect,
    "checkbox": _checkbox,
    "number_input": _number,
    "text_input": _text,
    "text_area": _text,
    "file_uploader": _uploader,
}


def widget_of(element: Element) -> tuple[str, Any]:
    """An element's type (``slider``, ``markdown``, ...) and its proto of that type."""
    kind = element.WhichOneof("type") or ""
    return kind, getattr(element, kind) if kind else None


def widget_state(element: Element, held: WidgetState | None) -> WidgetState | None:
    """The state the browser keeps for ``element``: ``held`` (the value it had, the student's
    own) unless the script set the value, else the value the element carries (its default or
    the value set). None for an element without state (text, a chart, a button).

    Raises ``ValueError`` for a widget type this client cannot fill: its rerun would not be the
    browser's."""
    kind, widget = widget_of(element)
    if kind in STATELESS or not getattr(widget, "id", ""):
        return None
    if kind not in FILL:
        raise ValueError(f"no browser state known for a {kind} widget ({widget.id})")
    if held is not None and not getattr(widget, "set_value", False):
        return held
    state = WidgetState(id=widget.id)
    FILL[kind](widget, state)
    return state


def component_data(widget: Any) -> bytes:
    """The data a component element carries (a chart's figure JSON), as bytes."""
    kind = widget.WhichOneof("data")
    data = getattr(widget, kind) if kind else b""
    return data if isinstance(data, bytes) else str(data).encode()


def text_of(widget: Any) -> str:
    """The text of a markdown, text or code element."""
    return str(getattr(widget, "body", "") or getattr(widget, "code_text", ""))


def query_text(params: Iterable[tuple[str, str]]) -> str:
    """A query string as the frontend writes it: keys sorted, spaces as ``+``."""
    return urlencode(sorted(params), quote_via=quote).replace("%20", "+")


def with_param(query: str, key: str, value: str | None) -> str:
    """``query`` with ``key`` set to ``value`` (removed for None): a bound widget's value written
    into the URL."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    if value is None:
        params.pop(key, None)
    else:
        params[key] = value
    return query_text(params.items())


def moved_state(slider: Slider, value: float) -> WidgetState:
    """The widget state a browser sends for ``slider`` moved to ``value`` (an option's index for
    a select slider)."""
    state = WidgetState(id=slider.id)
    _slider_value(slider, state, [value])
    return state


def url_value(slider: Slider, value: float) -> str | None:
    """What the frontend writes into the URL for ``slider`` at ``value``: None at its default
    (the parameter is removed)."""
    if slider.type == Slider.Type.SELECT_SLIDER:
        text = slider.options[int(value)]
        return None if int(value) == int(slider.default[0]) else text
    return None if js_number(value) == js_number(slider.default[0]) else js_number(value)


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


def fetch(url: str) -> int:
    """GET ``url`` as the browser does (compressed if the server compresses); bytes read."""
    request = urllib.request.Request(url, headers={"Accept-Encoding": ACCEPT_ENCODING})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return len(answer.read())
    except urllib.error.HTTPError as error:  # a 404 is an answer too (the browser probes)
        return len(error.read())


def page_html(url: str) -> str:
    """The page at ``url`` (the app's index.html)."""
    with urllib.request.urlopen(url, timeout=60) as answer:
        return answer.read().decode()


def static_files(html: str) -> list[str]:
    """The files the app's page names (its script, preloaded modules, style sheet, icon)."""
    return sorted(set(re.findall(r'(?:src|href)="\./((?:static/|favicon)[^"]+)"', html)))


def plotly_url(element: Element) -> str | None:
    """The chart component's plotly.js, which its JavaScript loads (relative to the page)."""
    found = re.search(r"PLOTLY_URL = '([^']+)'", element.bidi_component.js_content)
    return found.group(1) if found else None


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
