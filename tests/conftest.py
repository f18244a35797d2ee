"""Shared test set-up: one torch thread per test process keeps the 2-core CI machine responsive
(the browser tests run a Streamlit server beside pytest)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# One thread for torch, its OpenMP and MKL, set before torch and NumPy load, as they read it then.
# Nothing pins the processor's code paths: the tests pass on whichever the machine has (x86-64
# or ARM, any torch build), and tests/test_presets.py checks the presets by what holds on all.
os.environ.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CONVEXIFY_TORCH_THREADS": "1"})


def pytest_configure(config: pytest.Config) -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    import torch

    torch.manual_seed(0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked gpu skip (with the reason) on a machine without CUDA."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; this machine has none")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
