"""Every command in the README is run by a test, as written there.

- The ``python`` block (the library's quickstart) runs here verbatim, in an empty folder.
- Each ``bash`` command line is one of: the test command, which must be `.ci/run`'s last command
  byte for byte (CI runs it); the set-up command, the same install without the dev extra followed
  by the ``streamlit run app.py`` that the browser tests start (`benchmarks.app_server`);
  ``mkdocs serve``, run by tests/test_docs.py; or a ``convexify`` command, run here for real on a
  small ONNX model and data set. A line that is none of these fails.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from benchmarks.app_server import streamlit_command
from landscape.files import surface_files
from tests.test_scale import onnx_mlp

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
RUN_COMMAND = "python -m pip install -c constraints.txt -e . && streamlit run app.py"
SERVED_BY_TEST_DOCS = "mkdocs serve"


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README) if lang == language]


def command_lines() -> list[str]:
    """The README's bash command lines, continuation lines joined, comments dropped."""
    lines = []
    for body in blocks("bash"):
        for line in body.replace("\\\n", " ").splitlines():
            line = " ".join(line.split("#")[0].split())
            if line:
                lines.append(line)
    return lines


def ci_command() -> str:
    """`.ci/run`'s last command: what CI runs."""
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    return lines[-1]


def test_the_readme_is_short_and_its_test_command_is_what_ci_runs() -> None:
    assert len(README.splitlines()) < 200
    commands = command_lines()
    assert ci_command() in commands, (ci_command(), commands)
    assert RUN_COMMAND in commands


def test_the_run_command_is_ci_install_without_the_dev_extra_then_the_browser_tests_app() -> None:
    install, app = RUN_COMMAND.split(" && ")
    ci_install, _ = ci_command().split(" && ")
    assert ci_install == install.replace(" -e .", ' -e ".[dev]"')
    assert app.split() == ["streamlit", "run", "app.py"]
    assert streamlit_command(8501)[2:5] == app.split()  # after `python -m`


def test_every_command_line_is_run_by_a_test() -> None:
    known = {ci_command(), RUN_COMMAND, SERVED_BY_TEST_DOCS}
    for line in command_lines():
        assert line in known or line.startswith("convexify "), f"not run by any test: {line}"
    assert any(line.startswith("convexify ") for line in command_lines())


@pytest.mark.slow
def test_the_quickstart_runs_verbatim(tmp_path: Path) -> None:
    (quickstart,) = blocks("python")
    done = subprocess.run(
        [sys.executable, "-c", quickstart], cwd=tmp_path, env=child_env(),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("(21, 21)"), done.stdout
    assert (tmp_path / "surface.html").stat().st_size > 10_000


@pytest.mark.slow
def test_the_command_lines_run(tmp_path: Path) -> None:
    """Each ``convexify`` line as written, in a folder holding the files it names."""
    # the installed `convexify` is `landscape.cli:main`, what `python -m landscape.cli` runs
    assert 'convexify = "landscape.cli:main"' in (ROOT / "pyproject.toml").read_text()
    write_model_and_data(tmp_path)
    for line in (line for line in command_lines() if line.startswith("convexify ")):
        argv = [sys.executable, "-m", "landscape.cli", *shlex.split(line)[1:]]
        done = subprocess.run(
            argv, cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        if "--help" in argv:
            assert "--model" in done.stdout
    check_outputs(tmp_path)


def write_model_and_data(folder: Path) -> None:
    """``model.onnx``: an MLP 64-16-10 (tanh) on scikit-learn's digits, ``data.npz``: X, y."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 10))
    (folder / "model.onnx").write_bytes(onnx_mlp(model))
    X, y = load_digits(return_X_y=True)
    np.savez(folder / "data.npz", X=(X / 16).astype(np.float32), y=y.astype(np.int64))


def check_outputs(folder: Path) -> None:
    """What the README's lines promise: a surface file the Lab opens, a study's run file."""
    for line in command_lines():
        argv = shlex.split(line)
        if argv[:2] == ["convexify", "surface"] and "--out" in argv:
            stored = surface_files.load_surface(
                (folder / argv[argv.index("--out") + 1]).read_bytes()
            )
            resolution = int(argv[argv.index("--resolution") + 1])
            assert stored.loss.shape == (resolution, resolution)
            assert np.isfinite(stored.loss).all()
        if argv[:2] == ["convexify", "sweep"]:
            run_file = json.loads((folder / argv[argv.index("--out") + 1]).read_text())
            assert run_file["study"].startswith("landscape.studies.")


def child_env() -> dict[str, str]:
    """This checkout first on the path (the subprocess imports it, not another install)."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}
