"""The branch study's losses against their formulas, computed independently in NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from landscape.studies.branches.losses import (
    LOSS_NAMES,
    cross_entropy,
    loss_function,
    multiclass_hinge,
    tau_hinge,
)


def tau_hinge_loop(f: np.ndarray, y: np.ndarray, tau: float) -> float:
    """Seed eq. (17) one sample at a time: max(0, 1 - y f / tau), averaged."""
    return float(np.mean([max(0.0, 1.0 - yj * fj / tau) for fj, yj in zip(f, y, strict=True)]))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 30),
    tau=st.floats(0.05, 20.0, allow_nan=False),
)
def test_tau_hinge_matches_eq_17(seed: int, n: int, tau: float) -> None:
    rng = np.random.default_rng(seed)
    f = 3.0 * rng.standard_normal(n)
    y = rng.choice([-1.0, 1.0], n)
    got = tau_hinge(torch.tensor(f), torch.tensor(y), tau).item()
    assert got == pytest.approx(tau_hinge_loop(f, y, tau), rel=1e-12, abs=1e-12)
    column = tau_hinge(torch.tensor(f)[:, None], torch.tensor(y), tau).item()
    assert column == pytest.approx(got, rel=1e-12, abs=1e-12)


def test_tau_hinge_known_values_and_scaling() -> None:
    f = torch.tensor([2.0, 0.5, -1.0, 0.0])
    y = torch.tensor([1.0, 1.0, 1.0, -1.0])
    # tau = 1: max(0, 1-2)=0, 0.5, 2, 1 -> mean 3.5/4
    assert tau_hinge(f, y, 1.0).item() == pytest.approx(3.5 / 4)
    # tau = 4: 1 - y f / 4 = 0.5, 0.875, 1.25, 1 -> mean 3.625/4
    assert tau_hinge(f, y, 4.0).item() == pytest.approx(3.625 / 4)
    # l_tau(f) = l_1(f / tau)
    assert tau_hinge(f, y, 2.5).item() == pytest.approx(tau_hinge(f / 2.5, y, 1.0).item())


def test_multiclass_hinge_matches_formula() -> None:
    rng = np.random.default_rng(3)
    s = rng.standard_normal((17, 10))
    labels = rng.integers(0, 10, 17)
    expected = np.mean(
        [
            sum(max(0.0, 1.0 - s[j, labels[j]] + s[j, k]) for k in range(10) if k != labels[j]) / 10
            for j in range(17)
        ]
    )
    got = multiclass_hinge(torch.tensor(s), torch.tensor(labels)).item()
    assert got == pytest.approx(expected, rel=1e-12)
    torch_value = torch.nn.functional.multi_margin_loss(torch.tensor(s), torch.tensor(labels))
    assert got == pytest.approx(torch_value.item(), rel=1e-12)


def test_multiclass_hinge_has_a_hessian_where_multi_margin_loss_has_none() -> None:
    """Through a two-layer linear model s = X A^T B^T the loss is piecewise bilinear: its
    Hessian (double backward) equals central differences of the gradient."""
    torch.manual_seed(0)
    X, labels = torch.randn(12, 3, dtype=torch.float64), torch.randint(0, 4, (12,))
    sizes = (5 * 3, 4 * 5)

    def loss_of(p: torch.Tensor, loss=multiclass_hinge) -> torch.Tensor:
        A, B = p[: sizes[0]].reshape(5, 3), p[sizes[0] :].reshape(4, 5)
        return loss(X @ A.T @ B.T, labels)

    p = torch.randn(sum(sizes), dtype=torch.float64)
    hessian = torch.autograd.functional.hessian(loss_of, p)

    def gradient(q: torch.Tensor) -> torch.Tensor:
        return torch.func.grad(loss_of)(q)

    eps = 1e-7
    columns = [(gradient(p + eps * e) - gradient(p - eps * e)) / (2 * eps) for e in torch.eye(35)]
    torch.testing.assert_close(hessian, torch.stack(columns, 1), rtol=1e-5, atol=1e-6)
    assert hessian.abs().max() > 0
    with pytest.raises(RuntimeError, match="not implemented"):
        torch.autograd.functional.hessian(
            lambda q: loss_of(q, torch.nn.functional.multi_margin_loss), p
        )


def test_cross_entropy_matches_log_softmax() -> None:
    rng = np.random.default_rng(4)
    s = 4.0 * rng.standard_normal((13, 3))
    labels = rng.integers(0, 3, 13)
    shifted = s - s.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected = -np.mean(log_p[np.arange(13), labels])
    got = cross_entropy(torch.tensor(s), torch.tensor(labels)).item()
    assert got == pytest.approx(expected, rel=1e-12)


def test_loss_function_dispatch_and_bad_input() -> None:
    f = torch.tensor([0.3, -0.2])
    y = torch.tensor([1.0, -1.0])
    assert loss_function("tau_hinge", 2.0)(f, y).item() == tau_hinge(f, y, 2.0).item()
    for name in LOSS_NAMES[1:]:
        scores, labels = torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
        assert torch.isfinite(loss_function(name)(scores, labels))
    with pytest.raises(ValueError, match="loss must be one of"):
        loss_function("mse")
    with pytest.raises(ValueError, match="tau must be > 0, got 0"):
        loss_function("tau_hinge", 0.0)
    with pytest.raises(ValueError, match=r"y must have shape \(2,\)"):
        tau_hinge(f, torch.ones(3), 1.0)
    with pytest.raises(ValueError, match=r"outputs must have shape \(n,\) or \(n, 1\)"):
        tau_hinge(torch.zeros(2, 2), y, 1.0)
