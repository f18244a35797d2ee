"""AppTest: every page of the navigation renders with its defaults, with no exception and no
error element. New pages are covered by adding them to `ui.catalogue`."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.drawn_charts import drawn_charts
from ui.catalogue import HOME, STUDIES
from ui.runner import clear_cache

ALL_PAGES = [HOME, *STUDIES]
APP = str(Path(__file__).resolve().parents[1] / "app.py")


def open_page(path: str) -> AppTest:
    clear_cache()
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    if path != HOME.path:
        at.switch_page(path)
        at.run()
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.slow
@pytest.mark.parametrize("entry", ALL_PAGES, ids=[e.url_path for e in ALL_PAGES])
def test_page_renders_with_defaults(entry) -> None:
    at = open_page(entry.path)
    assert_clean(at)
    if entry is not HOME:
        assert drawn_charts(at), f"{entry.title} shows no Plotly chart"


@pytest.mark.slow
def test_home_links_every_study() -> None:
    at = open_page(HOME.path)
    links = at.get("page_link")
    assert len(links) == len(STUDIES)


@pytest.mark.slow
@pytest.mark.parametrize("entry", STUDIES, ids=[e.url_path for e in STUDIES])
def test_moving_the_first_slider_and_back_is_clean(entry) -> None:
    """A new value computes afresh; returning to the old one is served from the cache."""
    at = open_page(entry.path)
    slider = at.slider[0]
    original = slider.value
    options = getattr(slider, "options", None)
    if options:  # select_slider: step to the neighbouring option
        index = list(options).index(str(original)) if str(original) in options else 0
        moved = options[(index + 1) % len(options)]
    else:
        step = slider.step or 1
        moved = original + step if original + step <= slider.max else original - step
    slider.set_value(moved).run()
    assert_clean(at)
    at.slider[0].set_value(original).run()
    assert_clean(at)
    assert drawn_charts(at)


WIDGET_KINDS = (
    "slider",
    "select_slider",
    "selectbox",
    "radio",
    "multiselect",
    "number_input",
    "text_input",
    "toggle",
    "checkbox",
)


@pytest.mark.slow
@pytest.mark.parametrize("entry", STUDIES, ids=[e.url_path for e in STUDIES])
def test_page_explains_itself_and_opens_on_a_preset(entry) -> None:
    """Every control has a help text; the page says what it shows and states its theorem; with
    its defaults it opens on a stored preset instead of computing."""
    at = open_page(entry.path)
    for kind in WIDGET_KINDS:
        for widget in at.get(kind):
            assert widget.help, f"{entry.title}: {kind} {widget.label!r} has no help text"
    texts = " ".join(m.value for m in [*at.markdown, *at.subheader])
    assert "What you are seeing" in texts, f"{entry.title} lacks 'What you are seeing'"
    theorems = [e for e in at.expander if e.label.startswith("The theorem")]
    assert theorems, f"{entry.title}: no 'The theorem' expander"
    assert at.latex, f"{entry.title}: the theorem has no formula (st.latex)"
    captions = " ".join(c.value for c in at.caption)
    assert "Precomputed for the lecture's settings" in captions, (
        f"{entry.title} did not open on a preset"
    )
