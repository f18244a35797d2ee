"""The Lab page with the two sharpest directions: it renders, states the centre's evidence and
draws the spectral density (a fresh run, not a preset)."""

from __future__ import annotations

import pytest
from test_app_pages import assert_clean, open_page

from tests.drawn_charts import drawn_charts
from ui.catalogue import STUDIES


@pytest.mark.slow
def test_lab_page_with_the_sharpest_directions() -> None:
    entry = next(e for e in STUDIES if "landscape_lab" in e.path)
    at = open_page(entry.path)
    at.slider(key="landscape_lab_curvature").set_value(0)
    at.slider(key="landscape_lab_resolution").set_value(5)
    at.selectbox(key="landscape_lab_directions").set_value("sharpest").run(timeout=300)
    assert_clean(at)
    assert at.selectbox(key="landscape_lab_directions").value == "sharpest"
    stated = [box.value for box in (*at.warning, *at.info, *at.success)]
    assert any("Lanczos" in text or "exact" in text for text in stated), stated
    assert len(drawn_charts(at)) >= 5  # surface, slices, interpolation, density, training


@pytest.mark.slow
def test_a_new_range_shows_the_surface_first_and_the_map_when_it_is_ready() -> None:
    """Off the stored presets, a new range shows the run without its curvature map at once
    (the map's place says it is coming); the map's run starts on the next run of the page (the
    fragment's timer, here a plain rerun) and, once done, the page shows the map and the
    evidence of the full run."""
    import time

    from landscape.studies.lab import lab
    from ui.runner import computed

    entry = next(e for e in STUDIES if "landscape_lab" in e.path)
    at = open_page(entry.path)
    at.slider(key="landscape_lab_curvature").set_value(2)
    at.slider(key="landscape_lab_lanczos").set_value(3)
    at.slider(key="landscape_lab_resolution").set_value(5)
    at.slider(key="landscape_lab_span").set_value(1.3).run(timeout=300)
    assert_clean(at)
    keys = {chart.key for chart in drawn_charts(at)}
    assert "chart_lab_surface" in keys and "chart_lab_curvature" not in keys
    assert any("is being computed" in c.value for c in at.caption)
    full = at.session_state["_lab_map_waiting"]  # the page's own configuration (sidebar's seed)
    assert isinstance(full, lab.Config) and full.span == 1.3 and full.curvature_resolution == 2
    assert computed(lab, full) is None  # not started by the first run
    at.run(timeout=300)  # the fragment's next run: the map's run starts
    deadline = time.monotonic() + 240
    while computed(lab, full) is None and time.monotonic() < deadline:
        at.run(timeout=300)  # keeps asking, as the fragment does every second
        time.sleep(0.5)
    assert computed(lab, full) is not None, "the curvature map's run did not finish"
    at.run(timeout=300)
    assert_clean(at)
    keys = {chart.key for chart in drawn_charts(at)}
    assert "chart_lab_curvature" in keys
    assert not any("is being computed" in c.value for c in at.caption)
