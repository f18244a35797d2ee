"""The pages' long prose, kept out of the widget code: one Markdown file per page,
``views/text/<page>.md``, cut into named sections by ``<!-- section: name -->`` lines.

Inside a section, ``$...$`` is typeset by Streamlit's Markdown; a fenced block marked ``latex``
is drawn with ``st.latex``; ``{{name}}`` is replaced by the value passed for ``name`` (LaTeX's
single braces are left alone).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import streamlit as st

TEXT_DIR = Path(__file__).resolve().parents[1] / "views" / "text"
SECTION = re.compile(r"^<!-- section: ([a-z0-9_]+) -->[ \t]*$", re.MULTILINE)
LATEX_BLOCK = re.compile(r"^```latex\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
PLACEHOLDER = re.compile(r"\{\{([a-z0-9_]+)\}\}")


@lru_cache(maxsize=32)
def sections(page: str, directory: Path = TEXT_DIR) -> dict[str, str]:
    """The sections of ``views/text/<page>.md``: name -> text (stripped), in file order."""
    text = (directory / f"{page}.md").read_text(encoding="utf-8")
    parts = SECTION.split(text)
    names, bodies = parts[1::2], parts[2::2]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"{page}.md: section names must be unique, got {sorted(duplicates)} twice")
    return {name: body.strip() for name, body in zip(names, bodies, strict=True)}


def prose(page: str, name: str, **values: object) -> str:
    """Section ``name`` of the page's text with its ``{{placeholders}}`` filled in.

    ``ValueError`` names a missing section or a placeholder without a value.
    """
    found = sections(page)
    if name not in found:
        raise ValueError(f"section must be one of {sorted(found)} in {page}.md, got {name!r}")

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise ValueError(f"{page}.md, section {name}: no value given for {{{{{key}}}}}")
        return str(values[key])

    return PLACEHOLDER.sub(fill, found[name])


def blocks(text: str) -> list[tuple[str, str]]:
    """``text`` cut into ``("markdown", ...)`` and ``("latex", ...)`` blocks, in order."""
    out: list[tuple[str, str]] = []
    position = 0
    for match in LATEX_BLOCK.finditer(text):
        before = text[position : match.start()].strip()
        if before:
            out.append(("markdown", before))
        out.append(("latex", match.group(1).strip()))
        position = match.end()
    rest = text[position:].strip()
    if rest:
        out.append(("markdown", rest))
    return out


def show_prose(page: str, name: str, **values: object) -> None:
    """Draw section ``name`` of ``views/text/<page>.md``: Markdown, and ``st.latex`` blocks."""
    for kind, body in blocks(prose(page, name, **values)):
        if kind == "latex":
            st.latex(body)
        else:
            st.markdown(body)


def caption(page: str, name: str, **values: object) -> None:
    """Section ``name`` as a caption (small type under a figure)."""
    st.caption(prose(page, name, **values))
