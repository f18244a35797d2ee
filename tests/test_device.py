"""The choice of device: ``auto`` never picks a device without float64 (Apple's mps), the
dashboard does not offer one, and float64 work refuses it or moves to the CPU.

This machine has no mps; the tests make `available_devices` report one, which is what a Mac
with Apple silicon reports, and check the choices made from that report.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape.engine import device as devices
from landscape.engine.device import (
    float64_device,
    float64_devices,
    has_float64,
    require_float64,
    resolve_device,
)
from landscape.engine.operators import curvature_operator
from landscape.engine.problem import Problem


@pytest.fixture
def with_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.usefixtures("with_mps")
def test_auto_passes_over_mps_for_the_cpu() -> None:
    assert devices.available_devices() == ["mps", "cpu"]
    assert float64_devices() == ["cpu"]
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("mps") == torch.device("mps")  # named, it is given


def test_auto_picks_cuda_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_float64_work_moves_off_mps_or_is_refused_by_name() -> None:
    assert not has_float64("mps") and has_float64("cpu") and has_float64(torch.device("cuda"))
    assert float64_device("mps") == torch.device("cpu")
    assert float64_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"device='mps' has no float64, which curvature needs"):
        require_float64(torch.device("mps"), "curvature")
    require_float64("cpu", "curvature")


def test_a_curvature_operator_on_mps_is_refused_before_any_work() -> None:
    model = nn.Linear(3, 1)
    problem = Problem(model, nn.functional.mse_loss, torch.randn(8, 3), torch.randn(8, 1))
    problem.device = torch.device("mps")  # what a model on Apple's GPU gives
    with pytest.raises(ValueError, match="device='mps' has no float64"):
        with curvature_operator(problem):
            pass


def test_unknown_or_absent_devices_are_named() -> None:
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda' is not available"):
            resolve_device("cuda")
