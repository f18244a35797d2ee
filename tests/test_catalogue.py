"""The navigation follows the seed: sections in order, lecture mode's slides in that order."""

from __future__ import annotations

from ui import catalogue


def test_sections_follow_the_seed() -> None:
    groups = catalogue.by_section()
    assert list(groups) == list(catalogue.SECTIONS)
    titles = {name: [e.title for e in entries] for name, entries in groups.items()}
    assert titles["The objective"][:2] == ["Linear duality", "Shallow ReLU"]
    assert titles["The architecture"][:2] == ["Width", "Branches"]
    assert "Beyond the seed" in titles["Beyond the seed"]
    assert "Landscape Lab" in titles["The tools"]
    numbered = [e.seed_section for entries in groups.values() for e in entries if e.seed_section]
    assert numbered == sorted(numbered)


def test_slides_walk_the_sections_in_order() -> None:
    slides = catalogue.slide_order()
    assert slides[0] is catalogue.HOME
    flat = [e for entries in catalogue.by_section().values() for e in entries]
    assert slides[1:] == flat
    assert sorted(e.url_path for e in flat) == sorted(e.url_path for e in catalogue.STUDIES)
