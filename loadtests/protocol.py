"""Streamlit's websocket protocol as a browser speaks it: the widget states a rerun carries,
a slider's arrow presses snapped to its step as the frontend snaps them, the page's query string,
and the page's files over HTTP.
"""

from __future__ import annotations

import math
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from decimal import Decimal
from importlib import metadata
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState

#: The Streamlit releases (major, minor), first and last, whose websocket protocol and frontend
#: behaviour this client reproduces: it was written against a Chromium's frames on 1.67.
TESTED_STREAMLIT = ((1, 67), (1, 67))


def check_streamlit(version: str | None = None) -> str:
    """``version`` (default: the installed Streamlit's) if it lies in `TESTED_STREAMLIT`; else
    ``RuntimeError`` naming the version and the tested range (the protocol is Streamlit's
    private one: another release may send or expect other messages)."""
    found = metadata.version("streamlit") if version is None else version
    parts = re.match(r"(\d+)\.(\d+)", found)
    release = (int(parts[1]), int(parts[2])) if parts else (0, 0)
    (low, high) = TESTED_STREAMLIT
    if not low <= release <= high:
        tested = f"{low[0]}.{low[1]}" + (f" to {high[0]}.{high[1]}" if high != low else "")
        raise RuntimeError(
            f"the protocol students speak the websocket protocol of Streamlit {tested}, "
            f"but Streamlit {found} is installed: pip install 'streamlit=={high[0]}.{high[1]}.*' "
            "or check the client against this release and widen TESTED_STREAMLIT"
        )
    return found


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
