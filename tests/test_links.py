"""Shared links with hostile values: no page breaks, and the page says which parameter of the
link it ignored and why (ui.links). Every bound widget of every page is found by opening the
page (with its optional sections switched on), so a new widget is covered without new code."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from ui import links
from ui.catalogue import HOME, STUDIES
from ui.runner import clear_cache

APP = str(Path(__file__).resolve().parents[1] / "app.py")
KINDS = ("slider", "select_slider", "selectbox", "radio", "multiselect", "number_input")
KINDS += ("text_input", "toggle", "checkbox")
#: Values no bound widget of ours accepts (text widgets aside): each must be reported.
HOSTILE = ["inf", "-inf", "nan", "NaN", "1e309", "9" * 400, "-" + "9" * 400, "abc", "0x10"]
HOSTILE += ["1e-400x", "\u2212 1", "[]", "None", "1,5"]
SECTIONS = {"width": ("width_sweep_on", "width_depth_on"), "branches": ("branches_gap",)}


def open_page(path: str, query: dict[str, str | list[str]] | None = None) -> AppTest:
    clear_cache()
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update(query or {})
    at.run()
    if path != HOME.path:
        at.switch_page(path)
        at.run()
    return at


@cache
def bound_widgets(url_path: str) -> tuple[tuple[str, str], ...]:
    """(key, kind) of every bound widget the page draws, optional sections switched on."""
    entry = next(e for e in [HOME, *STUDIES] if e.url_path == url_path)
    at = open_page(entry.path)
    for key in SECTIONS.get(url_path, ()):
        at.toggle(key=key).set_value(True)
    if url_path in SECTIONS:
        at.run()
    bound = links.bound_keys()
    found = {(w.key, kind) for kind in KINDS for w in at.get(kind) if w.key in bound}
    return tuple(sorted(found))


def warnings_of(at: AppTest) -> str:
    return " ".join(w.value for w in at.warning)


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


# --- the checks themselves, without a page -------------------------------------------------


INT_SLIDER = {"min_value": 16, "max_value": 4096, "value": 256, "step": 16}


@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_integer_slider_accepts_exactly_its_steps(value: int) -> None:
    fits = 16 <= value <= 4096 and value % 16 == 0
    assert (links.problem("slider", INT_SLIDER, str(value)) is None) == fits


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_float_slider_accepts_exactly_finite_values_in_range(value: float) -> None:
    spec = {"min_value": 0.0, "max_value": 0.5, "value": 0.1, "step": 0.05}
    fits = math.isfinite(value) and 0.0 <= value <= 0.5
    assert (links.problem("slider", spec, repr(value)) is None) == fits


@pytest.mark.slow
@given(st.text(max_size=60))
def test_options_accept_exactly_the_formatted_options(text: str) -> None:
    spec = {"options": [0.1, 0.01, 1e-3], "format_func": lambda v: f"{v:g}", "value": 0.01}
    fits = text in ("0.1", "0.01", "0.001")
    assert (links.problem("select_slider", spec, text) is None) == fits


def test_each_kind_names_its_rule() -> None:
    assert "integer in [0, 2147483647]" in links.problem(
        "number_input", {"min_value": 0, "max_value": 2**31 - 1, "value": 0, "step": 1}, "inf"
    )
    assert links.problem("toggle", {"value": False}, "yes") == "it must be true or false"
    assert links.problem("toggle", {"value": False}, "TRUE") is None
    assert "one of: a, b" in links.problem("selectbox", {"options": ["a", "b"]}, "c")
    assert "2 value(s)" in links.problem(
        "slider", {"min_value": 0, "max_value": 9, "value": (1, 2)}, "3"
    )
    assert "at most 1000" in links.problem("text_input", {"max_chars": None}, "x" * 1001)
    assert links.problem("multiselect", {"options": [1, 2, 3]}, ["1", "3"]) is None


def test_install_wraps_every_widget_kind_once() -> None:
    links.install()
    links.install()
    assert set(links.checked_widgets()) >= {"slider", "number_input", "select_slider"}
    import streamlit

    assert getattr(streamlit.slider, "__convexify_links__", False)


# --- through the app -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "query"),
    [
        (HOME.path, {"seed": "inf"}),
        (HOME.path, {"seed": "9" * 400}),
        ("views/landscape_lab.py", {"landscape_lab_sample": "inf"}),
        ("views/branches.py", {"branches_b": "-inf"}),
        ("views/width.py", {"width_m": "4097"}),
        ("views/shallow_relu.py", {"shallow_relu_steps": "nan"}),
        ("views/branches.py", {"branches_largest": "abc"}),
        (HOME.path, {"device": "cuda9"}),
        ("views/linear_duality.py", {"seed": "-1"}),
    ],
)
def test_the_reported_links_open_the_page_and_say_what_was_ignored(path, query) -> None:
    at = open_page(path, query)
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    (key,) = query
    assert f"`{key}=" in warnings_of(at) and "was ignored" in warnings_of(at)
    assert key not in at.query_params  # the bad value left the URL: a reload is clean


@pytest.mark.slow
@pytest.mark.parametrize("entry", STUDIES, ids=[e.url_path for e in STUDIES])
def test_every_bound_widget_of_a_page_at_once(entry) -> None:
    """One link that gives every bound widget (optional sections' too) a hostile value."""
    widgets = bound_widgets(entry.url_path)
    assert len(widgets) >= 5
    query = {key: "inf" for key, kind in widgets if kind != "text_input"}
    query.update({key: "x" * 1001 for key, kind in widgets if kind == "text_input"})
    at = open_page(entry.path, query)
    assert_no_exception(at)
    said = warnings_of(at)
    missing = [key for key in query if f"`{key}=" not in said]
    # widgets of optional sections are not drawn while their toggle (now ignored) is off
    drawn = {w.key for kind in KINDS for w in at.get(kind)}
    assert not [key for key in missing if key in drawn], missing
    assert "compute_on" not in query  # unbound widgets are not link parameters


@pytest.mark.slow
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_hostile_links_never_break_a_page(data) -> None:
    """Random pages, random bound widgets, random hostile values (one or several per key)."""
    entry = data.draw(st.sampled_from(STUDIES), label="page")
    widgets = bound_widgets(entry.url_path)
    chosen = data.draw(
        st.lists(st.sampled_from(widgets), min_size=1, max_size=4, unique=True), label="widgets"
    )
    values = st.sampled_from(HOSTILE) | st.text(
        alphabet=st.characters(blacklist_categories=("Cs",)), min_size=41, max_size=80
    )
    query: dict[str, str | list[str]] = {}
    for key, kind in chosen:
        if kind == "text_input":
            query[key] = "y" * data.draw(st.integers(1001, 3000))
        else:
            drawn = data.draw(st.lists(values, min_size=1, max_size=3), label=key)
            query[key] = drawn[0] if len(drawn) == 1 else drawn
    at = open_page(entry.path, query)
    assert_no_exception(at)
    said = warnings_of(at)
    drawn_keys = {w.key for kind in KINDS for w in at.get(kind)}
    for key in query:
        if key in drawn_keys:
            assert f"`{key}=" in said, (key, query[key], said)


# --- a link never chooses a folder on the server -----------------------------------------------


@pytest.fixture
def folder_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every folder the Branches study's file loaders are asked to read (they read nothing)."""
    from landscape.studies.branches import data

    asked: list[str] = []

    def refuse(directory: str, split: str = "train") -> None:
        asked.append(str(directory))
        raise ValueError("test: the loader was called")

    monkeypatch.setattr(data, "mnist_from_directory", refuse)
    monkeypatch.setattr(data, "cifar10_from_directory", refuse)
    return asked


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["/etc", "/", "../../root", "C:\\Windows", ""])
@pytest.mark.parametrize("dataset", ["cifar10", "mnist_full"])
def test_a_link_naming_a_server_folder_is_refused_and_says_so(
    monkeypatch: pytest.MonkeyPatch, folder_reads: list[str], folder: str, dataset: str
) -> None:
    monkeypatch.delenv("CONVEXIFY_DATA_DIR", raising=False)
    at = open_page("views/branches.py", {"branches_dir": folder, "branches_data": dataset})
    assert_no_exception(at)
    said = warnings_of(at)
    assert f"`branches_dir={folder}` was ignored" in said
    assert "cannot choose a folder on the server" in said
    assert "branches_dir" not in at.query_params  # gone from the URL: a reload is clean
    assert folder_reads == []  # nothing was read, from the link's folder or any other
    errors = " ".join(e.value for e in at.error)
    assert f"{dataset} is read from the server's data folder" in errors
    assert "this server has none" in errors and "CONVEXIFY_DATA_DIR" in errors
    assert "branches_dir" not in links.bound_keys()  # no widget takes a folder from a link


@pytest.mark.slow
def test_the_data_folder_is_the_operators_setting_whatever_the_link_says(
    monkeypatch: pytest.MonkeyPatch, folder_reads: list[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("CONVEXIFY_DATA_DIR", str(tmp_path))
    at = open_page("views/branches.py", {"branches_dir": "/etc", "branches_data": "cifar10"})
    assert_no_exception(at)
    assert "`branches_dir=/etc` was ignored" in warnings_of(at)
    assert folder_reads == [str(tmp_path)]  # the operator's folder, and only that one
