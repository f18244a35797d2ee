"""The networks: shapes, the branch average of seed eq. 16, the stacked forward pass."""

from __future__ import annotations

import pytest
import torch

from landscape.engine.nets import MultiBranchNet, mlp


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus", "linear"])
def test_multibranch_forward_is_the_mean_of_its_branches(depth: int, activation: str) -> None:
    torch.manual_seed(1)
    net = MultiBranchNet(5, 3, branches=4, width=6, depth=depth, activation=activation).double()
    x = torch.randn(11, 5, dtype=torch.float64)
    by_branch = torch.stack([branch(x) for branch in net.branches]).mean(0)
    torch.testing.assert_close(net(x), by_branch, rtol=1e-12, atol=1e-12)
    assert net.branch_outputs(x).shape == (4, 11, 3)


def test_multibranch_parameter_layout() -> None:
    net = MultiBranchNet(64, 10, branches=16, width=8)
    assert len(net.branches) == 16
    assert net.branches[3][0].weight.shape == (8, 64)
    assert net.branches[3][2].weight.shape == (10, 8)
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params == 16 * (64 * 8 + 8 + 8 * 10 + 10)


def test_one_branch_one_unit_is_a_single_neuron() -> None:
    """I = 1, width 1: f(x) = a relu(w.x + b) + c."""
    net = MultiBranchNet(3, 1, branches=1, width=1).double()
    x = torch.randn(7, 3, dtype=torch.float64)
    first, last = net.branches[0][0], net.branches[0][2]
    expected = torch.relu(x @ first.weight.T + first.bias) * last.weight[0, 0] + last.bias
    torch.testing.assert_close(net(x), expected)


def test_mlp_layers() -> None:
    net = mlp(4, 2, [8, 8], "tanh")
    assert [type(m).__name__ for m in net] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    assert net(torch.randn(3, 4)).shape == (3, 2)
    assert len(mlp(4, 2, [])) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"branches": 0}, "branches"),
        ({"width": 0}, "width"),
        ({"depth": 0}, "depth"),
        ({"activation": "sigmoid"}, "activation"),
    ],
)
def test_multibranch_rejects_bad_arguments(kwargs: dict, field: str) -> None:
    arguments = {"in_features": 2, "out_features": 1, "branches": 2, "width": 3, **kwargs}
    with pytest.raises(ValueError, match=field):
        MultiBranchNet(**arguments)
