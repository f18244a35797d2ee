"""Directions: filter/layer normalisation, 1-D handling, cosine, the three-model plane, PCA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.engine.directions import (
    combine,
    cosine,
    flatten,
    parameters_of,
    pca_directions,
    random_directions,
    three_model_plane,
)
from landscape.engine.nets import MultiBranchNet
from landscape.engine.problem import Problem
from landscape.engine.surface import surface_2d


def small_conv() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2)
    )


def test_filter_normalisation_matches_row_norms() -> None:
    net = small_conv()
    d = random_directions(net, seed=3, normalization="filter")
    for name, w in net.named_parameters():
        if w.dim() > 1:
            rows_w = w.detach().reshape(w.shape[0], -1).norm(dim=1)
            rows_d = d[name].reshape(w.shape[0], -1).norm(dim=1)
            torch.testing.assert_close(rows_d, rows_w, rtol=1e-5, atol=0)
        else:
            assert torch.count_nonzero(d[name]) == 0, name


def test_layer_normalisation_and_kept_biases() -> None:
    net = small_conv()
    d = random_directions(net, seed=3, normalization="layer", one_dim="keep")
    for name, w in net.named_parameters():
        torch.testing.assert_close(d[name].norm(), w.detach().norm(), rtol=1e-5, atol=0)


def test_no_normalisation_is_a_standard_gaussian() -> None:
    net = nn.Linear(200, 100)
    d = random_directions(net, seed=0, normalization="none", one_dim="keep")
    v = flatten(d).double()
    assert abs(float(v.mean())) < 0.02 and abs(float(v.std()) - 1) < 0.02


def test_directions_are_seeded_and_shaped_like_the_parameters() -> None:
    net = MultiBranchNet(4, 2, branches=3, width=5)
    a, b, c = (random_directions(net, s) for s in (7, 7, 8))
    assert all(a[k].shape == p.shape for k, p in net.named_parameters())
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(flatten(a), flatten(c))


def test_cosine() -> None:
    net = nn.Linear(3, 2)
    d = random_directions(net, 1, normalization="none", one_dim="keep")
    assert cosine(d, d) == pytest.approx(1.0)
    assert cosine(d, {k: -2 * v for k, v in d.items()}) == pytest.approx(-1.0)
    e = {"weight": torch.tensor([[1.0, 0, 0], [0, 0, 0]]), "bias": torch.zeros(2)}
    f = {"weight": torch.tensor([[1.0, 1.0, 0], [0, 0, 0]]), "bias": torch.zeros(2)}
    assert cosine(e, f) == pytest.approx(1 / np.sqrt(2))


def test_bad_choices_raise() -> None:
    net = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="normalization"):
        random_directions(net, 0, normalization="unit")
    with pytest.raises(ValueError, match="one_dim"):
        random_directions(net, 0, one_dim="drop")
    with pytest.raises(ValueError, match="models"):
        three_model_plane([net, net])


def test_three_model_plane_returns_each_models_loss_at_its_coordinates() -> None:
    torch.manual_seed(0)
    X = torch.randn(40, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (40,))
    models = [MultiBranchNet(4, 3, branches=2, width=3).double() for _ in range(3)]
    plane = three_model_plane(models)
    # The construction: centre is the mean, |d1| = |d2| = |w2|.
    w2 = flatten(parameters_of(models[2])).norm()
    torch.testing.assert_close(flatten(plane.d1).norm(), w2)
    torch.testing.assert_close(flatten(plane.d2).norm(), w2)
    for (a, b), model in zip(plane.coordinates, models, strict=True):
        point = combine(plane.center, (a, plane.d1), (b, plane.d2))
        for name, p in model.named_parameters():
            torch.testing.assert_close(point[name], p.detach())
        problem = Problem(models[0], F.cross_entropy, X, y)
        Z = surface_2d(problem, plane.d1, plane.d2, [a], [b], center=plane.center)
        with torch.no_grad():
            expected = float(F.cross_entropy(model(X), y))
        assert Z[0, 0] == pytest.approx(expected, abs=1e-10)


def test_pca_of_a_trajectory_in_a_plane() -> None:
    """A trajectory that moves in a known plane: PCA finds it, variance is all explained."""
    torch.manual_seed(0)
    net = nn.Linear(5, 3)
    final = parameters_of(net)
    u = random_directions(net, 1, normalization="none", one_dim="keep")
    v = random_directions(net, 2, normalization="none", one_dim="keep")
    ts = np.linspace(1, 0, 12)
    trajectory = [combine(final, (3 * t, u), (np.sin(4 * t), v)) for t in ts]
    pca = pca_directions(trajectory)
    assert pca.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-9)
    assert pca.explained_variance_ratio[0] >= pca.explained_variance_ratio[1]
    assert cosine(pca.d1, pca.d2) == pytest.approx(0.0, abs=1e-6)  # float32 storage
    assert float(flatten(pca.d1).norm()) == pytest.approx(1.0, abs=1e-6)
    # Every checkpoint is recovered from its coordinates (it lies in the plane).
    for point, (a, b) in zip(trajectory, pca.coordinates, strict=True):
        rebuilt = combine(final, (a, pca.d1), (b, pca.d2))
        torch.testing.assert_close(flatten(rebuilt), flatten(point), rtol=0, atol=1e-5)
    np.testing.assert_allclose(pca.coordinates[-1], 0.0, atol=1e-12)
    assert np.all(pca.coordinates[0] >= 0)


def test_pca_needs_three_checkpoints() -> None:
    net = nn.Linear(2, 1)
    with pytest.raises(ValueError, match="trajectory"):
        pca_directions([parameters_of(net)] * 2)
