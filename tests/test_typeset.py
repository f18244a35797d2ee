"""Mathematics on the pages is typeset: no ASCII formula (``sigma_min``, ``K^(H)``,
``lambda_min``, ``gamma / ...``) is left in a label, metric, caption or explanation outside
``$...$``. Also the prose files: every section a page asks for exists and renders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ui import prose
from ui.catalogue import STUDIES
from ui.runner import clear_cache

APP = str(Path(__file__).resolve().parents[1] / "app.py")
MATH = re.compile(r"\$\$.*?\$\$|\$[^$]*\$", re.DOTALL)
ASCII_FORMULA = re.compile(
    r"sigma_|lambda_|\bK\^\(|\^\(|\bgamma\s*/|\bgamma\s*<|Ytil|\bL_r\b|\bd_min\b|\bm\*|\|\||"
    r"\bbeta/|\b1/I\b|sum_i|>=|<="
)
LABELLED = (
    "slider",
    "select_slider",
    "selectbox",
    "radio",
    "multiselect",
    "number_input",
    "text_input",
    "toggle",
    "checkbox",
    "metric",
    "expander",
)


def ascii_formulas(text: str) -> list[str]:
    """The ASCII formulas left in ``text`` once its ``$...$`` mathematics is removed."""
    return ASCII_FORMULA.findall(MATH.sub(" ", text))


def test_the_scan_finds_ascii_and_spares_latex() -> None:
    assert ascii_formulas("gamma / sigma_min(Ytilde)")
    assert ascii_formulas("K^(H) and lambda_min")
    assert not ascii_formulas(r"$\gamma/\sigma_{\min}(\tilde Y)$ and $K^{(H)}$, $\lambda_{\min}$")
    assert not ascii_formulas(r"$\frac{1}{I}\sum_i f_i$ costs $O(m^2)$")


@pytest.mark.parametrize("entry", STUDIES, ids=[e.url_path for e in STUDIES])
def test_page_text_is_typeset(entry) -> None:
    clear_cache()
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(entry.path)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    found = []
    for kind in LABELLED:
        for element in at.get(kind):
            found += [(kind, element.label, f) for f in ascii_formulas(element.label)]
    for kind in ("caption", "markdown", "subheader", "header", "title", "success", "info"):
        for element in at.get(kind):
            text = str(element.value)
            found += [(kind, text[:60], f) for f in ascii_formulas(text)]
    assert not found, found


def test_every_prose_file_parses_and_fills_its_placeholders() -> None:
    for path in sorted(prose.TEXT_DIR.glob("*.md")):
        sections = prose.sections(path.stem)
        assert sections, path
        for name, text in sections.items():
            for kind, body in prose.blocks(text):
                assert body.strip(), (path.name, name, kind)


def test_prose_names_a_missing_section_or_value() -> None:
    with pytest.raises(ValueError, match="section must be one of"):
        prose.prose("linear_duality", "no_such_section")
    with pytest.raises(ValueError, match="no value given"):
        prose.prose("linear_duality", "sweep_caption")


def test_latex_blocks_are_cut_out_of_markdown() -> None:
    text = "before $x$\n\n```latex\n\\frac{1}{I}\n```\n\nafter"
    assert prose.blocks(text) == [
        ("markdown", "before $x$"),
        ("latex", "\\frac{1}{I}"),
        ("markdown", "after"),
    ]
