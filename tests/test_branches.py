"""The branch study: multi-branch networks, training, surfaces and their non-convexity against I,
and the measured duality gap against I."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from landscape import branch_gap
from landscape.nets import MultiBranchNet
from solvers.convex_relu import nonconvex_objective

# ---------------------------------------------------------------------------------------------
# Duality gap


def test_branch_outputs_equal_the_multibranch_net_run_branch_by_branch() -> None:
    torch.manual_seed(2)
    net = MultiBranchNet(3, 1, branches=5, width=1).double()
    for branch in net.branches:
        torch.nn.init.zeros_(branch[0].bias)
        torch.nn.init.zeros_(branch[2].bias)
    X = torch.randn(9, 3, dtype=torch.float64)
    U, a = branch_gap.branch_weights(net)
    separately = torch.stack([branch(X)[:, 0] for branch in net.branches]).mean(0)
    torch.testing.assert_close(branch_gap.branch_outputs(U, a, X), separately)
    torch.testing.assert_close(branch_gap.branch_outputs(U, a, X), net(X)[:, 0])


def test_balanced_two_layer_network_same_output_and_no_larger_objective() -> None:
    rng = np.random.default_rng(0)
    X, y = branch_gap.gap_data("moons", 20, 0.1, 0)
    U, a = rng.standard_normal((6, 3)), rng.standard_normal(6)
    U2, a2 = branch_gap.as_two_layer(U, a)
    f_branch = branch_gap.branch_outputs(torch.tensor(U), torch.tensor(a), torch.tensor(X))
    f_two = np.maximum(X @ U2.T, 0.0) @ a2
    np.testing.assert_allclose(f_two, f_branch.numpy(), rtol=1e-12, atol=1e-12)
    beta = 0.7
    branch_value = branch_gap.branch_objective(
        torch.tensor(U), torch.tensor(a), torch.tensor(X), torch.tensor(y), beta
    ).item()
    two_layer = nonconvex_objective(U2, a2, X, y, beta)
    assert two_layer <= branch_value + 1e-12
    # the penalty of the balanced network is exactly beta * path norm of (U, a / I)
    path = np.sum(np.linalg.norm(U, axis=1) * np.abs(a)) / len(a)
    fit = 0.5 * np.sum((f_two - y) ** 2)
    assert two_layer == pytest.approx(fit + beta * path, rel=1e-12)


def test_merge_neurons_keeps_the_function_and_path_norm() -> None:
    X, _ = branch_gap.gap_data("circles", 15, 0.1, 1)
    u = np.array([0.3, -1.0, 0.2])
    U = np.stack([u, 2.0 * u, np.array([1.0, 0.5, -0.1]), 1e-9 * u])
    a = np.array([1.5, 0.25, -0.8, 1.0])
    Um, am = branch_gap.merge_neurons(U, a)
    assert len(am) == 2  # u and 2u merge; the 1e-9 neuron is pruned
    np.testing.assert_allclose(
        np.maximum(X @ Um.T, 0) @ am, np.maximum(X @ U[:3].T, 0) @ a[:3], atol=1e-12
    )
    path = lambda U_, a_: np.sum(np.linalg.norm(U_, axis=1) * np.abs(a_))  # noqa: E731
    assert path(Um, am) == pytest.approx(path(U[:3], a[:3]), rel=1e-12)
    np.testing.assert_allclose(np.linalg.norm(Um, axis=1), np.abs(am))  # balanced


def test_measured_gap_nonnegative_and_zero_beyond_the_critical_width() -> None:
    base = branch_gap.Config(n=16, beta=1.0, restarts=32, steps=800, seed=0)
    results = [branch_gap.run(replace(base, branches=i)) for i in (1, 2, 3, 4, 6)]
    m_hat = results[0].critical_width
    dual = results[0].dual
    # the merged m-hat-neuron network is optimal, so m* <= m-hat
    assert results[0].critical_width_objective == pytest.approx(dual, abs=1e-6)
    assert 0 <= results[0].tolerance < 1e-6
    for r in results:
        assert r.gap >= -r.tolerance
        if r.branches >= m_hat:
            assert r.gap <= branch_gap.NEAR_ZERO_RTOL * abs(dual), (r.branches, r.gap)
    assert results[0].gap > 0.1  # one branch cannot fit the moons
    sweep = branch_gap.collect(results[::-1])
    np.testing.assert_array_equal(sweep.branches, [1, 2, 3, 4, 6])
    assert sweep.reference_constant == pytest.approx(np.max(sweep.branches * sweep.gap))
    assert np.all(sweep.reference_constant / sweep.branches >= sweep.gap)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("branches", 0),
        ("dataset", "mnist"),
        ("n", 1000),
        ("beta", 0.0),
        ("restarts", 0),
        ("lr", 5.0),
        ("noise", -1.0),
    ],
)
def test_gap_config_rejects_bad_values(field: str, value: object) -> None:
    config = branch_gap.Config(**{field: value})
    with pytest.raises(ValueError, match=field):
        config.validate()
