"""The notebooks of examples/ are committed without outputs and collected by the project's
pytest configuration (nbmake executes each one: `python -m pytest examples`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))


def test_there_are_three_notebooks_without_outputs() -> None:
    assert [path.name for path in NOTEBOOKS] == [
        "01_your_own_model.ipynb",
        "02_curvature_and_spectrum.ipynb",
        "03_exact_two_layer_relu.ipynb",
    ]
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


def test_the_project_pytest_configuration_collects_them() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "examples"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for path in NOTEBOOKS:
        assert f"examples/{path.name}" in out.stdout
