"""Every public name the API reference renders has a docstring.

The walk follows what mkdocstrings renders with this repository's options, read from the files
themselves: each ``::: dotted.name`` line of ``docs/api/*.md`` (with its own ``show_submodules``),
the handler's ``filters`` in ``mkdocs.yml`` (``!^_``: a name starting with ``_`` is skipped, dunder
methods such as ``__init__`` included, so the class docstring covers them). A module renders its
submodules (when ``show_submodules``), the functions and classes it defines, and the names in its
``__all__`` (followed through ``from x import y`` to the module that defines them); a class renders
its own methods, properties and nested classes, not inherited ones. Data attributes (dataclass
fields, constants) are left out. Read from the sources with ``ast``: nothing is imported, so the
test is fast and sees exactly the text mkdocstrings reads.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
API_PAGES = sorted((ROOT / "docs" / "api").glob("*.md"))
Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def handler_options() -> dict:
    """The python handler's global ``options`` in mkdocs.yml."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    for plugin in config["plugins"]:
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            return plugin["mkdocstrings"]["handlers"]["python"]["options"]
    raise AssertionError("mkdocs.yml configures no mkdocstrings plugin")


def rendered_roots() -> list[tuple[str, bool]]:
    """``(module, show_submodules)`` for each ``::: module`` block of the API pages."""
    default = bool(handler_options().get("show_submodules", False))
    roots: list[tuple[str, bool]] = []
    for page in API_PAGES:
        blocks = re.split(r"^::: ", page.read_text(), flags=re.M)[1:]
        for block in blocks:
            name, _, rest = block.partition("\n")
            found = re.search(r"^\s+show_submodules:\s*(true|false)", rest, flags=re.M)
            roots.append((name.strip(), found.group(1) == "true" if found else default))
    return roots


def kept(name: str) -> bool:
    """Whether the handler's filters keep ``name`` (the last matching filter decides)."""
    keep = True
    for pattern in handler_options().get("filters", []):
        negate = pattern.startswith("!")
        if re.search(pattern[1:] if negate else pattern, name):
            keep = not negate
    return keep


def module_path(module: str) -> Path:
    """The source file of ``module``: ``a/b.py`` or ``a/b/__init__.py``."""
    base = ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements of ``body``, looking into ``if``/``try`` blocks as the loader does."""
    for node in body:
        if isinstance(node, ast.If):
            yield from top_level(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            yield from top_level(node.body + node.orelse + node.finalbody)
        else:
            yield node


def definitions(body: list[ast.stmt]) -> dict[str, Definition]:
    """Functions and classes defined in ``body`` by name (the first definition of a name: a
    property's getter, not its setter)."""
    found: dict[str, Definition] = {}
    for node in top_level(body):
        if isinstance(node, Definition) and node.name not in found:
            found[node.name] = node
    return found


def exported(tree: ast.Module) -> list[str]:
    """The names in the module's ``__all__`` (empty without one)."""
    for node in top_level(tree.body):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                return list(ast.literal_eval(node.value))
    return []


def imported_from(tree: ast.Module, name: str) -> str | None:
    """The module ``name`` is imported from in ``tree`` (``from x import name``), else None."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if any((alias.asname or alias.name) == name for alias in node.names):
                return node.module
    return None


def resolve(module: str, name: str) -> Definition | None:
    """The definition of ``module.name``, following re-exports; None for a data attribute (an
    assignment), which is left out like the module's own constants."""
    tree = ast.parse(module_path(module).read_text())
    local = definitions(tree.body)
    if name in local:
        return local[name]
    source = imported_from(tree, name)
    return None if source is None else resolve(source, name)


def undocumented(path: str, node: ast.AST) -> Iterator[str]:
    """``path`` (when ``node`` has no docstring) and, for a class, its undocumented members."""
    assert isinstance(node, ast.Module | Definition)
    if not (ast.get_docstring(node) or "").strip():
        yield path
    if isinstance(node, ast.ClassDef):
        for name, member in definitions(node.body).items():
            if kept(name):
                yield from undocumented(f"{path}.{name}", member)


def walk(module: str, show_submodules: bool) -> Iterator[str]:
    """Every rendered name under ``module`` that has no docstring."""
    file = module_path(module)
    tree = ast.parse(file.read_text(), filename=str(file))
    if not (ast.get_docstring(tree) or "").strip():
        yield module
    members = {name: node for name, node in definitions(tree.body).items() if kept(name)}
    for name in exported(tree):
        definition = resolve(module, name) if kept(name) and name not in members else None
        if definition is not None:
            members[name] = definition
    for name, node in members.items():
        yield from undocumented(f"{module}.{name}", node)
    if show_submodules and file.name == "__init__.py":
        for child in sorted(file.parent.iterdir()):
            name = child.stem if child.suffix == ".py" else child.name
            is_package = child.is_dir() and (child / "__init__.py").exists()
            if kept(name) and (is_package or (child.suffix == ".py" and name != "__init__")):
                yield from walk(f"{module}.{name}", show_submodules)


def test_the_api_pages_render_modules() -> None:
    roots = rendered_roots()
    assert roots, "docs/api/*.md has no ::: block"
    assert all(module_path(name).exists() for name, _ in roots), roots


def test_every_rendered_public_name_has_a_docstring() -> None:
    missing = sorted({name for root, subs in rendered_roots() for name in walk(root, subs)})
    assert not missing, f"{len(missing)} rendered public names have no docstring:\n" + "\n".join(
        missing
    )


def test_the_walk_finds_a_missing_docstring() -> None:
    """The walk itself sees a method without a docstring (the check above can fail)."""
    source = ["class A:", '    """A."""', "    def f(self): pass", "    def _g(self): pass"]
    tree = ast.parse("\n".join(source))
    assert list(undocumented("m.A", tree.body[0])) == ["m.A.f"]
