"""Writing the presets: ``python -m landscape precompute [study ...]``.

Runs each study's ``PRESETS`` on the CPU (inside `presets.afresh`: a preset is never built from
an older preset) and writes one NPZ per preset into ``assets/presets/`` plus ``index.json``, whose
entries hold the study, the name, the configuration, the file, the code fingerprint
(`code_fingerprint`: what the result is a function of, besides the configuration) and, for the
record only, the stack that computed it (`landscape.server.numerics.computed_with`). A study with
``training_key``/``training_state`` also gets one training file per distinct training key
(see `landscape.files.presets`).

This module runs the studies, so it sits above them, beside ``landscape/__main__.py``.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import io
import json
import tokenize
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from landscape.files import presets, results
from landscape.server import numerics

STUDIES_PACKAGE = "landscape.studies"


def study_sources(module_name: str) -> list[Path]:
    """The source files a study's results come from, within its own folder: the study module
    and the modules of its folder it imports, directly or through each other (its ``figures``
    only when the study module imports them), sorted by name."""
    folder = module_name.rsplit(".", 1)[0]
    if not folder.startswith(STUDIES_PACKAGE + "."):
        raise ValueError(f"{module_name!r} is not a module of {STUDIES_PACKAGE}")
    found: dict[str, Path] = {}
    pending = [module_name]
    while pending:
        name = pending.pop()
        path = _source_of(name)
        if name in found or path is None:
            continue
        found[name] = path
        pending.extend(_imported_in_folder(path, folder))
    if module_name not in found:
        raise ValueError(f"no source file for {module_name!r}")
    return [found[name] for name in sorted(found)]


def _studies_root() -> Path:
    return Path(importlib.import_module(STUDIES_PACKAGE).__file__ or "").parent


def _source_of(module_name: str) -> Path | None:
    """The ``.py`` file of a module under `STUDIES_PACKAGE` (``a/b.py`` or ``a/b/__init__.py``),
    or None when ``module_name`` names no file (e.g. a class imported from a module)."""
    parts = module_name.split(".")[len(STUDIES_PACKAGE.split(".")) :]
    base = _studies_root().joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported_in_folder(path: Path, folder: str) -> set[str]:
    """Modules under the package ``folder`` that ``path`` imports (``from a import b`` gives
    ``a`` and, where it is a module, ``a.b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith(folder + ".")}


def code_fingerprint(module_name: str) -> str:
    """``sha256:<hex>`` of the study's `study_sources` (paths relative to the studies package,
    and `code_text`: the code without comments, docstrings and blank lines): the code's inputs,
    the same on every machine, operating system and Python. Its ``Config`` defaults and
    ``PRESETS`` are in there; a comment or a docstring edited is not."""
    digest = hashlib.sha256()
    root = _studies_root()
    for path in study_sources(module_name):
        text = code_text(path.read_bytes().decode("utf-8"))
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(text.encode()).hexdigest().encode() + b"\n")
    return f"sha256:{digest.hexdigest()}"


def code_text(source: str) -> str:
    """``source`` without its comments (`tokenize`'s COMMENT tokens), its docstrings (`ast`:
    a string constant that opens a module, class or function body), trailing spaces and blank
    lines, with ``\n`` line endings. Both positions come from parsers that read them alike on
    every Python version (3.12's new f-string tokens do not move a comment)."""
    lines = source.replace("\r\n", "\n").split("\n")
    cut: list[tuple[int, int, int, int]] = []  # first line (from 1), column, last line, column
    for token in tokenize.generate_tokens(io.StringIO("\n".join(lines)).readline):
        if token.type == tokenize.COMMENT:
            cut.append((*token.start, *token.end))
    for node in ast.walk(ast.parse("\n".join(lines))):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = body[0] if body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                if isinstance(first.value.value, str) and first.end_lineno is not None:
                    start = _characters(lines[first.lineno - 1], first.col_offset)
                    end = _characters(lines[first.end_lineno - 1], first.end_col_offset or 0)
                    cut.append((first.lineno, start, first.end_lineno, end))
    for start_line, start_col, end_line, end_col in sorted(cut, reverse=True):
        head, tail = lines[start_line - 1][:start_col], lines[end_line - 1][end_col:]
        lines[start_line - 1 : end_line] = [head + tail]
    return "\n".join(line.rstrip() for line in lines if line.strip()) + "\n"


def _characters(line: str, offset: int) -> int:
    """The character column of `ast`'s UTF-8 byte offset ``offset`` in ``line``."""
    return len(line.encode()[:offset].decode())


def precompute(
    modules: list[str],
    directory: Path = presets.PRESET_DIR,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run the presets of the study ``modules`` on the CPU, write their NPZ files (and their
    trainings', `_store_training`) into ``directory`` and update ``index.json``, keeping the
    other studies' entries."""
    directory.mkdir(parents=True, exist_ok=True)
    index_path = directory / presets.INDEX
    kept = json.loads(index_path.read_text()) if index_path.exists() else []
    index = [entry for entry in kept if entry["study"] not in modules]
    for module_name in modules:
        module = importlib.import_module(module_name)
        fingerprint = code_fingerprint(module_name)
        trainings: dict[str, str] = {}  # training key -> its file, for this study
        for name, config in presets.presets_of(module_name).items():
            config = dataclasses.replace(config, device="cpu")
            log(f"{module_name}: {name}")
            with presets.afresh():
                result = module.run(config)
            stem = f"{module_name.split('.')[-1]}__{name}"
            (directory / f"{stem}.npz").write_bytes(results.result_to_npz_bytes(result))
            entry = {
                "study": module_name,
                "name": name,
                "file": f"{stem}.npz",
                "config": results.config_to_dict(config),
                "code": fingerprint,
                "computed_with": numerics.computed_with(),
            }
            if hasattr(module, "training_state"):
                entry["training"] = _store_training(module, config, stem, directory, trainings)
            index.append(entry)
    index_path.write_text(json.dumps(index, indent=1) + "\n")
    presets.forget()
    return index


def _store_training(
    module: Any, config: Any, stem: str, directory: Path, written: dict[str, str]
) -> str:
    """The file of ``config``'s training state (``module.training_state``, computed afresh),
    written as ``<stem>__training.npz`` unless ``written`` (training key -> file) holds its key."""
    key = presets.index_key(module.__name__, module.training_key(config))
    if key not in written:
        with presets.afresh():
            state = module.training_state(config)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **state)
        written[key] = f"{stem}__training.npz"
        (directory / written[key]).write_bytes(buffer.getvalue())
    return written[key]
