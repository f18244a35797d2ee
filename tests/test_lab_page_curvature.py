"""The Lab page with the two sharpest directions: it renders, states the centre's evidence and
draws the spectral density (a fresh run, not a preset)."""

from __future__ import annotations

from test_app_pages import assert_clean, open_page

from ui.catalogue import STUDIES


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
    assert len(at.get("plotly_chart")) >= 5  # surface, slices, interpolation, density, training
