"""Run files saved before the studies moved into their folders (tests/fixtures/run_files, one per
study, written by the release before the move) still load into their study's Config and Result."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from landscape import studies
from landscape.files import results

FIXTURES = Path(__file__).parent / "fixtures" / "run_files"
MODULES = {name.rsplit(".", 1)[-1]: name for name in studies.study_modules()}
MODULES.update(width_sweep="landscape.studies.width.width_sweep")
MODULES.update(depth_sweep="landscape.studies.width.depth_sweep")


def test_there_is_a_fixture_for_every_study() -> None:
    assert {path.stem for path in FIXTURES.glob("*.json")} == set(MODULES)


@pytest.mark.parametrize("stem", sorted(MODULES))
def test_old_run_file_loads_into_its_study(stem: str) -> None:
    module = importlib.import_module(MODULES[stem])
    data = (FIXTURES / f"{stem}.json").read_bytes()
    config, result = results.load_run_file(data, module)
    assert isinstance(config, module.Config) and isinstance(result, module.Result)
    arrays = results.result_to_arrays(result)
    assert arrays and all(isinstance(a, np.ndarray) for a in arrays.values())
