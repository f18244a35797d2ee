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

from landscape.server import numerics  # noqa: E402  (imports neither torch nor NumPy)

# The pinned numerics of the presets (tests/test_presets.py compares them bit for bit), one torch
# thread among them; set before torch and NumPy load, as they read it then.
os.environ.update(numerics.PINNED)


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
