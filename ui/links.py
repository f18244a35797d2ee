"""Shared links: check every query parameter bound to a widget before the widget reads it.

A widget made with ``bind="query-params"`` seeds its value from the link (``?width_m=512``).
Streamlit converts that text itself, inside the widget call, and some values break the page
(``?seed=inf`` raises ``OverflowError`` in ``int(inf)``); others it drops without a word
(``?width_m=4097``). `install` wraps the widget constructors once, so that every bound widget of
every page is checked against *its own* arguments (type, ``[min_value, max_value]``, step,
options, length) before Streamlit sees the value. A value that does not fit is removed from the
link and the page says which parameter was ignored and why (`begin_page` makes the place where
it says so, at the top of the page). Pages need no code of their own for this.

A link never chooses anything on the server: parameters in `SERVER_ONLY` (once widgets that took
a server folder) are removed from every link before any page runs, and the page says why.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

log = logging.getLogger(__name__)

#: Widget constructors whose bound query parameter is checked here.
WIDGETS = (
    "slider",
    "select_slider",
    "number_input",
    "selectbox",
    "radio",
    "multiselect",
    "pills",
    "segmented_control",
    "toggle",
    "checkbox",
    "text_input",
    "text_area",
)
MAX_TEXT = 1000  # characters of a free-text link parameter without its own max_chars
CARRIED = "_convexify_ignored_link_parameters"  # session state: notices of the last run
MAX_SHOWN = 40  # characters of an ignored value quoted on the page

#: Link parameters that would point the server at something of its own (a folder): never read
#: from a link. The value is the reason the page gives; the setting belongs to the operator.
SERVER_ONLY = {
    "branches_dir": "a link cannot choose a folder on the server. The folder of MNIST and "
    "CIFAR-10 files is the server operator's setting (CONVEXIFY_DATA_DIR, or data_dir under "
    "[convexify] in .streamlit/secrets.toml)",
}

_local = threading.local()
_bound: dict[str, str] = {}  # every bound widget key seen in this process -> its kind
_install_lock = threading.Lock()


@dataclass(frozen=True)
class Ignored:
    """One link parameter that was dropped, with the reason shown on the page."""

    key: str
    value: str
    reason: str

    def message(self) -> str:
        shown = self.value if len(self.value) <= MAX_SHOWN else self.value[:MAX_SHOWN] + "..."
        return f"The link's parameter `{self.key}={shown}` was ignored: {self.reason}."


def _values(raw: str | list[str]) -> list[str]:
    return [raw] if isinstance(raw, str) else list(raw)


def _format_options(arguments: dict[str, Any]) -> list[str]:
    options = arguments.get("options") or []
    format_func = arguments.get("format_func") or str
    return [str(format_func(option)) for option in options]


def _number(text: str, integral: bool, low: Any, high: Any, step: Any) -> str | None:
    """Why ``text`` is not a value of a numeric widget, or None when it is."""
    kind = "an integer" if integral else "a number"
    span = f"in [{low}, {high}]" if low is not None and high is not None else ""
    wanted = f"{kind} {span}".strip()
    if not text.strip():
        return f"it must be {wanted}, got nothing"
    if len(text) > 40:
        return f"it must be {wanted}, got {len(text)} characters"
    try:
        value = float(text)
    except ValueError:
        return f"it must be {wanted}, not text"
    if not math.isfinite(value):
        return f"it must be {wanted}, got a non-finite value"
    if integral:
        try:
            whole = int(text)
        except ValueError:
            if value != int(value):
                return f"it must be {wanted}, got a fraction"
            whole = int(value)
        value = whole
    if low is not None and value < low:
        return f"it must be {wanted}"
    if high is not None and value > high:
        return f"it must be {wanted}"
    if integral and step and low is not None and (value - low) % int(step):
        return f"it must be {wanted} on the slider's steps of {step} from {low}"
    return None


def _is_numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def problem(kind: str, arguments: dict[str, Any], raw: str | list[str]) -> str | None:
    """Why the link value ``raw`` does not fit the widget ``kind`` called with ``arguments``
    (its constructor's bound arguments), or None when it fits.

    Numbers must be finite, inside the widget's ``[min_value, max_value]``, whole for integer
    widgets (and on an integer slider's steps); options must be one of the widget's formatted
    options; booleans ``true``/``false``; text at most ``max_chars`` (or `MAX_TEXT`).
    """
    values = _values(raw)
    if kind in ("slider", "number_input"):
        return _number_problem(kind, arguments, values)
    if kind in ("select_slider", "selectbox", "radio", "multiselect", "pills", "segmented_control"):
        return _option_problem(kind, arguments, values)
    if kind in ("toggle", "checkbox"):
        if len(values) != 1 or values[0].lower() not in ("true", "false"):
            return "it must be true or false"
        return None
    if kind in ("text_input", "text_area"):
        most = arguments.get("max_chars") or MAX_TEXT
        if len(values) != 1 or len(values[0]) > most:
            return f"it must be one text of at most {most} characters"
        return None
    return None


def _number_problem(kind: str, arguments: dict[str, Any], values: list[str]) -> str | None:
    """`problem` for a slider or a number input: finite numbers in range, whole for integer
    widgets, as many as the widget holds (date and time sliders: Streamlit's own parsing)."""
    low, high = arguments.get("min_value"), arguments.get("max_value")
    value, step = arguments.get("value"), arguments.get("step")
    scalars = list(value) if isinstance(value, list | tuple) else [value]
    if isinstance(value, str):  # number_input(value="min")
        scalars = []
    given = [v for v in (low, high, step, *scalars) if v is not None]
    if any(isinstance(v, datetime | date | time) for v in given):
        return None  # date and time sliders: Streamlit's own parsing
    if kind == "slider" and low is None and high is None:
        low, high = (0, 100) if all(isinstance(v, int) for v in given) else (0.0, 1.0)
    integral = all(isinstance(v, int) and not isinstance(v, bool) for v in given)
    expected = 2 if isinstance(value, list | tuple) else 1
    if kind == "slider" and len(values) != expected:
        return f"it needs {expected} value(s), got {len(values)}"
    if kind == "number_input" and len(values) != 1:
        return "it needs one value"
    for text in values:
        why = _number(text, integral, low, high, step if kind == "slider" else None)
        if why:
            return why
    return None


def _option_problem(kind: str, arguments: dict[str, Any], values: list[str]) -> str | None:
    """`problem` for a widget with options: each value one of the formatted options, as many
    as the widget holds (``max_selections`` for a multiselect)."""
    options = _format_options(arguments)
    if kind == "select_slider":
        value = arguments.get("value")
        expected = 2 if isinstance(value, list | tuple) else 1
        if len(values) != expected:
            return f"it needs {expected} value(s), got {len(values)}"
    elif kind in ("selectbox", "radio") and len(values) != 1:
        return "it needs one value"
    bad = [v for v in values if v not in options]
    if bad:
        listed = ", ".join(options[:12]) + (", ..." if len(options) > 12 else "")
        return f"it must be one of: {listed}"
    most = arguments.get("max_selections")
    if kind == "multiselect" and most is not None and len(values) > most:
        return f"at most {most} choices"
    return None


def _query_params() -> Any:
    """Streamlit's QueryParams object of this session (internal API, guarded by the tests)."""
    from streamlit.runtime.state.session_state_proxy import get_session_state

    return get_session_state().query_params()


def _link_value(key: str) -> str | list[str] | None:
    """The value the widget ``key`` would seed from the link, or None."""
    with _query_params() as params:
        return params.get_initial_value(key)


def _drop(key: str) -> None:
    """Remove ``key`` from the link (its seeding value and the browser's URL)."""
    with _query_params() as params:
        params._initial_query_params.pop(key, None)
        params.remove_param(key)


def _report(ignored: Ignored) -> None:
    log.info("%s", ignored.message())
    seen = getattr(_local, "seen", None)
    if seen is not None:
        if ignored.key in seen:
            return
        seen.add(ignored.key)
    try:
        st.session_state.setdefault(CARRIED, []).append(ignored)
    except Exception:  # noqa: BLE001 - no session (bare mode): say it this run only
        pass
    place = getattr(_local, "place", None)
    try:
        (place if place is not None else st).warning(ignored.message(), icon=":material/link_off:")
    except Exception:  # noqa: BLE001 - a stale container: say it where the widget is
        st.warning(ignored.message(), icon=":material/link_off:")


def _checked(kind: str, original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def widget(self: DeltaGenerator, *args: Any, **kwargs: Any) -> Any:
        key = kwargs.get("key")
        if kwargs.get("bind") != "query-params" or key is None:
            return original(self, *args, **kwargs)
        key = str(key)
        _bound.setdefault(key, kind)
        raw = None
        try:
            raw = _link_value(key)
            if raw is not None:
                bound = signature.bind(self, *args, **kwargs)
                bound.apply_defaults()
                why = problem(kind, dict(bound.arguments), raw)
                if why is not None:
                    _drop(key)
                    _report(Ignored(key, ",".join(_values(raw)), why))
                    raw = None
        except (TypeError, ValueError, AttributeError) as error:  # never break the page here
            log.warning("link check of %s skipped: %s", key, error)
        try:
            return original(self, *args, **kwargs)
        except (OverflowError, ValueError, TypeError, IndexError) as error:
            # A value the checks above let through but Streamlit cannot convert: drop it too.
            if raw is None and _link_value(key) is None:
                raise
            value = _link_value(key)
            _drop(key)
            _report(Ignored(key, ",".join(_values(value or raw or "")), f"{error}"))
            return original(self, *args, **kwargs)

    widget.__convexify_links__ = True  # type: ignore[attr-defined]
    return widget


def install() -> None:
    """Wrap the widget constructors (``st.slider``, ``st.sidebar.slider``, ``col.slider``...)
    so that every bound query parameter is checked first. Idempotent; process-wide."""
    with _install_lock:
        main = getattr(st, "_main", None)
        for kind in WIDGETS:
            original = getattr(DeltaGenerator, kind, None)
            if original is None:
                continue
            if not getattr(original, "__convexify_links__", False):
                setattr(DeltaGenerator, kind, _checked(kind, original))
            if main is not None and hasattr(st, kind):
                setattr(st, kind, getattr(main, kind))


def begin_page() -> None:
    """Reserve the place, at the top of the main area, where ignored link parameters are
    listed. Call once per script run, before any widget. A notice stays for the run it arose
    in and the next one (the run that follows a page switch or the first move of a control)."""
    _local.place = st.container()
    carried = st.session_state.get(CARRIED, [])
    st.session_state[CARRIED] = []
    _local.seen = set()
    for ignored in carried:
        _local.place.warning(ignored.message(), icon=":material/link_off:")
        _local.seen.add(ignored.key)
    refuse_server_only()


def refuse_server_only() -> None:
    """Remove every `SERVER_ONLY` parameter from the link, unread, and say so on the page."""
    for key, reason in SERVER_ONLY.items():
        try:
            with _query_params() as params:
                raw = params.get_all(key) if params.has_param(key) else None
                raw = raw or params.get_initial_value(key)
        except (AttributeError, KeyError, RuntimeError) as error:  # no session (bare mode)
            log.warning("link check of %s skipped: %s", key, error)
            continue
        if raw is None:
            continue
        _drop(key)
        _report(Ignored(key, ",".join(_values(raw)), reason))


def bound_keys() -> dict[str, str]:
    """The key and kind of every widget bound to a link parameter drawn so far (any page)."""
    return dict(_bound)


def checked_widgets() -> Sequence[str]:
    """The widget kinds whose link parameters are checked (installed or not)."""
    return tuple(
        kind
        for kind in WIDGETS
        if getattr(getattr(DeltaGenerator, kind, None), "__convexify_links__", False)
    )
