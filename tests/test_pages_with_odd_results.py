"""A run file that passes the schema draws its page without a traceback: every number the
schema lets be non-finite is NaN, and the page still renders (it says so or shows 'nan').
The page's own study is served the odd Result through the preset lookup (AppTest runs in this
process), so no file upload is needed."""

from __future__ import annotations

import copy
import importlib
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from landscape.files import presets, results, run_file_schema
from tests.drawn_charts import drawn_charts
from ui.catalogue import STUDIES
from ui.runner import clear_cache

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "run_files"
CASES = [  # (page, fixture, study module, link that shows the study)
    ("linear_duality", "linear_duality", "linear_duality.linear_duality", {}),
    ("branches", "branches", "branches.branches", {}),
    ("branches", "branch_gap", "branches.branch_gap", {"branches_gap": "true"}),
    ("landscape_lab", "lab", "lab.lab", {}),
    ("width", "width", "width.width", {}),
    ("width", "width_sweep", "width.width_sweep", {"width_sweep_on": "true"}),
    ("width", "depth_sweep", "width.depth_sweep", {"width_depth_on": "true"}),
    ("shallow_relu", "single_neuron", "shallow_relu.single_neuron", {}),
    ("shallow_relu", "two_layer", "shallow_relu.two_layer", {}),
    ("connectivity", "connectivity", "connectivity.connectivity", {}),
    (
        "connectivity",
        "barrier_vs_width",
        "connectivity.barrier_vs_width",
        {"conn_sweep_width": "true"},
    ),
    (
        "connectivity",
        "barrier_vs_branches",
        "connectivity.barrier_vs_branches",
        {"conn_sweep_branches": "true"},
    ),
]


def nan_everywhere_allowed(stem: str, module) -> tuple:
    """The fixture with every float the schema does not require finite set to NaN."""
    document = json.loads((FIXTURES / f"{stem}.json").read_text())
    schema = run_file_schema.result_schema(module)
    odd = copy.deepcopy(document)
    for name, spec in schema.items():
        if spec.kind != "f" or spec.finite or name not in odd["result"]:
            continue
        odd["result"][name] = _nan_like(odd["result"][name])
    return results.load_run_file(json.dumps(odd, allow_nan=True), module)


def _nan_like(value):
    if isinstance(value, list):
        return [_nan_like(v) for v in value]
    return float("nan") if isinstance(value, int | float) and not isinstance(value, bool) else value


@pytest.mark.slow
@pytest.mark.parametrize(("page", "stem", "name", "query"), CASES, ids=[c[1] for c in CASES])
def test_page_draws_a_result_full_of_nan(page, stem, name, query, monkeypatch) -> None:
    entry = next(e for e in STUDIES if e.url_path == page)
    name = f"landscape.studies.{name}"
    module = importlib.import_module(name)
    _, odd = nan_everywhere_allowed(stem, module)
    original = presets.lookup

    def lookup(module_name, config, *args, **kwargs):
        if module_name == name:
            return odd
        return original(module_name, config, *args, **kwargs)

    monkeypatch.setattr(presets, "lookup", lookup)
    clear_cache()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params.update(query)
    at.run()
    at.switch_page(entry.path)
    at.run()
    assert not at.exception, [e.value[:300] for e in at.exception]
    assert drawn_charts(at), "the page drew no chart"
