"""A library call never changes process-wide state, is silent unless asked for progress, and
says which argument is wrong. Checked for every public call of `landscape` (before/after)."""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np
import pytest
import torch
from public_api_cases import CALLS, data, mlp
from torch import nn

import landscape
from landscape.server import heap, numerics


def _model_with_state() -> nn.Module:
    """The cases' MLP with a BatchNorm (running statistics a forward in train mode would move)
    and a dropout, left in train mode: a call must evaluate in eval mode and restore the flags."""
    base = mlp()
    model = nn.Sequential(base[0], nn.BatchNorm1d(6), nn.Tanh(), nn.Dropout(0.5), base[2])
    model.train()
    model[1].eval()  # a mixed set of flags, restored one module at a time
    return model


def _process_state() -> dict[str, Any]:
    return {
        "threads": torch.get_num_threads(),
        "torch_rng": torch.random.get_rng_state().clone(),
        "numpy_rng": np.random.get_state()[1].copy(),  # noqa: NPY002 - the legacy global state
        "grad_enabled": torch.is_grad_enabled(),
        "default_dtype": torch.get_default_dtype(),
        "heap_thresholds": heap.thresholds(),
        "environment": {name: os.environ.get(name) for name in numerics.PINNED},
        "deterministic": torch.are_deterministic_algorithms_enabled(),
    }


def _model_state(model: nn.Module) -> dict[str, Any]:
    return {
        "tensors": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [p.grad for p in model.parameters()],
        "devices": [p.device for p in model.parameters()],
    }


def _assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before.keys() == after.keys()
    for key in before:
        a, b = before[key], after[key]
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), key
        elif isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=key)
        elif isinstance(a, dict) and a and isinstance(next(iter(a.values())), torch.Tensor):
            assert a.keys() == b.keys()
            for name in a:
                assert torch.equal(a[name], b[name]), f"{key}[{name}]"
        else:
            assert a == b, key


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_call_changes_no_process_wide_state_and_not_the_model(name: str) -> None:
    X, y = data()
    model = _model_with_state()
    torch.manual_seed(1234)
    np.random.seed(4321)  # noqa: NPY002 - the legacy global state a call must not move
    process, own = _process_state(), _model_state(model)
    CALLS[name](model, X, y)
    _assert_same(process, _process_state())
    _assert_same(own, _model_state(model))


def test_kernels_and_solvers_change_no_process_wide_state() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 2))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    torch.manual_seed(99)
    before = _process_state()
    landscape.infinite_width_kernel(X, depth=2, activation="tanh")
    features = np.hstack([X, np.ones((5, 1))])
    landscape.solve_convex_relu(features, X[:, 0], 0.1, method="interior_point")
    landscape.solve_dual(X, X, 0.1, 2)
    _assert_same(before, _process_state())


def test_a_call_on_another_device_copies_the_model_and_leaves_it_where_it_was() -> None:
    X, y = data()
    model = mlp()
    here = landscape.random_plane(model, "cross_entropy", X, y, resolution=3)
    again = landscape.random_plane(model, "cross_entropy", X, y, resolution=3, device="cpu")
    np.testing.assert_array_equal(here.loss, again.loss)
    assert again.metadata["device"] == "cpu"
    with pytest.raises(ValueError, match="device must be one of"):
        landscape.random_plane(model, "cross_entropy", X, y, device="tpu")


@pytest.mark.gpu
def test_a_call_on_cuda_gives_the_cpu_numbers_and_leaves_the_model_on_the_cpu() -> None:
    X, y = data()
    model = mlp()
    cpu = landscape.random_plane(model, "cross_entropy", X, y, resolution=5)
    gpu = landscape.random_plane(model, "cross_entropy", X, y, resolution=5, device="cuda")
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=1e-4)
    assert gpu.metadata["device"].startswith("cuda")
    assert all(p.device.type == "cpu" for p in model.parameters())
    evidence = landscape.curvature(model, "cross_entropy", X, y, device="cuda")
    assert evidence.state == landscape.curvature(model, "cross_entropy", X, y).state


def test_progress_is_silent_by_default_and_a_tqdm_bar_when_asked(capsys) -> None:
    X, y = data()
    model = mlp()
    landscape.random_plane(model, "cross_entropy", X, y, resolution=3)
    quiet = capsys.readouterr()
    assert quiet.out == "" and quiet.err == ""
    landscape.random_plane(model, "cross_entropy", X, y, resolution=3, progress=True)
    loud = capsys.readouterr()
    assert "random plane" in loud.err and "1000/1000" in loud.err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"loss": "hinge"}, "loss must be a callable or one of"),
        ({"resolution": 1}, r"resolution must be an integer in \[2, "),
        ({"span": -1.0}, r"span must be in \["),
        ({"seed": -2}, "seed must be an integer >= 0"),
        ({"normalization": "batch"}, "normalization must be one of"),
        ({"method": "fastest"}, "method must be one of"),
    ],
)
def test_bad_arguments_raise_a_value_error_naming_the_field(
    arguments: dict[str, Any], message: str
) -> None:
    X, y = data()
    call = {"loss": "cross_entropy", **arguments}
    with pytest.raises(ValueError, match=message):
        landscape.random_plane(mlp(), X=X, y=y, **call)


def test_bad_inputs_raise_a_value_error_naming_them() -> None:
    X, y = data()
    model = mlp()
    with pytest.raises(ValueError, match="same number n >= 1 of rows"):
        landscape.random_plane(model, "cross_entropy", X, y[:-1])
    with pytest.raises(ValueError, match="integer class labels"):
        landscape.random_plane(model, "cross_entropy", X, y + 0.5)
    with pytest.raises(ValueError, match=r"end\['0.weight'\] must have shape"):
        other = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
        landscape.interpolation(model, "cross_entropy", X, y, other)
    with pytest.raises(ValueError, match="method must be one of"):
        landscape.hessian_trace(model, "cross_entropy", X, y, method="exact")
    with pytest.raises(ValueError, match="model must be a torch.nn.Module"):
        landscape.random_plane(copy.deepcopy(model.state_dict()), "mse", X, y)  # type: ignore[arg-type]
