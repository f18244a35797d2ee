"""The one-way layering: views -> ui -> landscape.studies -> landscape.server / landscape.files ->
landscape.engine (the mathematics) -> solvers. A view imports only `ui` and its own study; a
study never imports another study; the mathematics imports no file format, no server code and no
study; solvers import nothing of ours; only views and ui import streamlit.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "landscape" / "studies"
OURS = ("landscape", "solvers", "ui", "views")
# Each page and the study folder it shows (Home shows none).
PAGE_STUDY = {
    "home": None,
    "linear_duality": "linear_duality",
    "shallow_relu": "shallow_relu",
    "width": "width",
    "branches": "branches",
    "beyond": "beyond",
    "landscape_lab": "lab",
    "connectivity": "connectivity",
}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, by its full dotted name (``from a import b`` gives a.b)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def files(folder: Path) -> list[Path]:
    found = sorted(folder.rglob("*.py"))
    assert found, folder
    return found


def study_of(path: Path) -> str:
    return path.relative_to(STUDIES).parts[0]


def test_every_page_is_mapped_to_its_study() -> None:
    pages = {path.stem for path in (ROOT / "views").glob("*.py")}
    assert pages == set(PAGE_STUDY)
    folders = {path.name for path in STUDIES.iterdir() if path.is_dir() and path.name[0] != "_"}
    assert folders == {s for s in PAGE_STUDY.values() if s}


@pytest.mark.parametrize("page", sorted(PAGE_STUDY))
def test_view_imports_only_ui_and_its_own_study(page: str) -> None:
    own = f"landscape.studies.{PAGE_STUDY[page]}" if PAGE_STUDY[page] else None
    for name in imported_modules(ROOT / "views" / f"{page}.py"):
        if not any(within(name, p) for p in OURS):
            continue
        assert within(name, "ui") or (own and within(name, own)), f"views/{page}.py imports {name}"


def test_studies_never_import_another_study() -> None:
    for path in files(STUDIES):
        if path.parent == STUDIES:
            continue
        own = f"landscape.studies.{study_of(path)}"
        for name in imported_modules(path):
            if within(name, "landscape.studies"):
                assert within(name, own), f"{path.relative_to(ROOT)} imports {name}"
            assert not any(within(name, p) for p in ("ui", "views", "streamlit"))


def test_the_mathematics_imports_no_file_format_no_server_and_no_study() -> None:
    """``landscape/engine`` (the mathematics) imports neither of the other two rooms."""
    bad = ("landscape.files", "landscape.server", "landscape.studies", "ui", "views", "streamlit")
    for path in files(ROOT / "landscape" / "engine"):
        for name in imported_modules(path):
            assert not any(within(name, p) for p in bad), f"{path.relative_to(ROOT)} imports {name}"


# torch's process-wide settings: the thread counts, the global generator, the default dtype.
PROCESS_WIDE = {
    "set_num_threads",
    "set_num_interop_threads",
    "manual_seed",
    "seed",
    "set_default_dtype",
    "use_deterministic_algorithms",
}


def process_wide_calls(source: str) -> list[str]:
    """The calls ``torch.<setting>(...)`` of `PROCESS_WIDE`, and assignments into ``os.environ``,
    in ``source``, in line order (a seeded ``torch.Generator()`` of one's own is not
    process-wide)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id == "torch":
                if node.func.attr in PROCESS_WIDE:
                    found.append((node.lineno, f"torch.{node.func.attr}"))
        if isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Subscript) and "environ" in ast.unparse(target.value):
                    found.append((node.lineno, "os.environ"))
    return [f"{name} (line {line})" for line, name in sorted(found)]


def test_process_wide_calls_are_found() -> None:
    """The finder against a hand-written module: a global seed, a thread count and an environment
    variable are found; a generator of one's own is not."""
    source = (
        "import os, torch\n"
        "torch.set_num_threads(1)\n"
        "g = torch.Generator().manual_seed(0)\n"
        "torch.manual_seed(0)\n"
        "os.environ['X'] = '1'\n"
    )
    assert process_wide_calls(source) == [
        "torch.set_num_threads (line 2)",
        "torch.manual_seed (line 4)",
        "os.environ (line 5)",
    ]


def test_the_mathematics_changes_no_process_wide_state() -> None:
    """``landscape/engine`` sets no thread count, global seed, default dtype or environment
    variable: the server (`landscape.server.threads`, `seeding`) and the command line do."""
    found = {
        str(path.relative_to(ROOT)): calls
        for path in files(ROOT / "landscape" / "engine")
        if (calls := process_wide_calls(path.read_text()))
    }
    assert not found, found


@pytest.mark.parametrize("room", ["files", "server"])
def test_files_and_server_never_import_a_study_or_streamlit(room: str) -> None:
    above = ("landscape.cli", "landscape.precompute", "landscape.__main__")
    bad = ("landscape.studies", *above, "ui", "views", "streamlit")
    for path in files(ROOT / "landscape" / room):
        for name in imported_modules(path):
            assert not any(within(name, p) for p in bad), f"{path.relative_to(ROOT)} imports {name}"


def test_files_never_import_the_server() -> None:
    """``landscape/files`` (what crosses the disk) sits below ``landscape/server`` (what a
    long-running process needs): the presets' and uploads' stores take their byte-bounded cache
    from `landscape.engine.byte_lru`, and precompute, which runs the studies, sits above them."""
    for path in files(ROOT / "landscape" / "files"):
        for name in imported_modules(path):
            assert not within(name, "landscape.server"), f"{path.relative_to(ROOT)} imports {name}"


def test_no_two_modules_of_the_files_room_import_each_other() -> None:
    """No import circle inside ``landscape/files`` (e.g. run files <-> presets): the modules'
    imports of each other form a graph without a cycle."""
    room = ROOT / "landscape" / "files"
    graph = {
        f"landscape.files.{path.stem}": {
            name.rsplit(".", 1)[0] if name.count(".") == 3 else name
            for name in imported_modules(path)
            if within(name, "landscape.files")
        }
        for path in files(room)
        if path.stem != "__init__"
    }
    for start in graph:
        seen, stack = set(), [start]
        while stack:
            for follower in graph.get(stack.pop(), ()):
                assert follower != start, f"{start} imports itself through {sorted(seen)}"
                if follower not in seen:
                    seen.add(follower)
                    stack.append(follower)


def test_solvers_import_nothing_of_ours() -> None:
    for path in files(ROOT / "solvers"):
        for name in imported_modules(path):
            bad = ("landscape", "ui", "views", "streamlit")
            assert not any(within(name, p) for p in bad), f"{path.relative_to(ROOT)} imports {name}"


def test_ui_never_imports_a_view() -> None:
    for path in files(ROOT / "ui"):
        assert not any(within(n, "views") for n in imported_modules(path)), path


# ---------------------------------------------------------------------------------------------
# Function length: a function reads as one step of its caller; longer ones are split into named
# steps. Lines are counted as ast's ``end_lineno - lineno + 1`` (signature, docstring and body).

LINE_LIMIT = 60


def lengths_in(tree: ast.AST, where: str) -> dict[str, int]:
    """``"where::Qual.name"`` -> lines, for every function and method of ``tree``."""
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef) and child.end_lineno is not None:
                    lengths[f"{where}::{name}"] = child.end_lineno - child.lineno + 1
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return lengths


def function_lengths(folders: tuple[str, ...] = OURS) -> dict[str, int]:
    """`lengths_in` over every module under ``folders`` (paths relative to the repository)."""
    lengths: dict[str, int] = {}
    for folder in folders:
        for path in files(ROOT / folder):
            where = path.relative_to(ROOT).as_posix()
            lengths.update(lengths_in(ast.parse(path.read_text(), filename=where), where))
    return lengths


def test_function_lengths_are_counted_from_the_source() -> None:
    """The counter against a hand-counted source: nested functions and methods count too."""
    source = (
        "def outer():\n"
        "    def inner():\n"
        "        return 1\n"
        "    return inner\n"
        "\n"
        "class Box:\n"
        "    @property\n"
        "    def method(self):\n"
        "        x = 1\n"
        "\n"
        "        return x\n"
    )
    assert lengths_in(ast.parse(source), "m.py") == {
        "m.py::outer": 4,
        "m.py::outer.inner": 2,
        "m.py::Box.method": 4,
    }


def test_no_function_is_longer_than_the_limit() -> None:
    too_long = [
        f"{where}: {lines} lines (limit {LINE_LIMIT})"
        for where, lines in sorted(function_lengths().items())
        if lines > LINE_LIMIT
    ]
    assert not too_long, "split these into named steps:\n" + "\n".join(too_long)
