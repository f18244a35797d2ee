"""The beyond study: path counts, parameter matching, the new Gram recursions, budgets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_config_fuzz import SMALL  # the small configurations, one per study

from landscape.engine.datasets import unit_sphere
from landscape.engine.gram import gram_matrix
from landscape.studies.beyond import budget, gram_depth, skips
from landscape.studies.beyond.nets import (
    ResNet,
    branch_parameters,
    build,
    count_parameters,
    matched_width,
    mlp_parameters,
    resnet_parameters,
    unrolled_linear,
    unrolled_paths,
)


@pytest.mark.parametrize("blocks", [0, 1, 2, 3, 4])
def test_unrolled_paths_reproduce_a_linear_resnet(blocks: int) -> None:
    rng = np.random.default_rng(blocks)
    A = [0.3 * rng.standard_normal((5, 5)) for _ in range(blocks)]
    x = rng.standard_normal((7, 5))
    z = x.copy()
    for matrix in A:  # the network: z <- z + A z
        z = z + z @ matrix.T
    total, terms = unrolled_linear(A, x)
    assert terms == unrolled_paths(blocks) == 2**blocks
    np.testing.assert_allclose(total, z, rtol=1e-12, atol=1e-12)


def test_parameter_formulas_count_the_built_networks() -> None:
    d = 13
    for width in (1, 4, 9):
        for k in (0, 1, 3):
            assert count_parameters(ResNet(d, 1, width, k)) == resnet_parameters(d, 1, width, k)
        for I in (1, 2, 8):
            assert count_parameters(build("branch", d, 1, width, I, 0)) == branch_parameters(
                d, 1, I, width
            )
        for depth in (1, 3):
            assert count_parameters(build("fc", d, 1, width, depth, 0)) == mlp_parameters(
                d, 1, width, depth
            )


@pytest.mark.parametrize("budget_size", [50, 137, 1000, 4321, 10_000])
def test_matched_width_is_the_closest_by_brute_force(budget_size: int) -> None:
    for count in (
        lambda w: branch_parameters(64, 1, 8, w),
        lambda w: resnet_parameters(64, 1, w, 2),
        lambda w: mlp_parameters(10, 1, w, 3),
    ):
        chosen = matched_width(count, budget_size)
        best = min(abs(count(w) - budget_size) for w in range(1, 3000))
        assert abs(count(chosen) - budget_size) == best


def test_branch_with_one_branch_and_full_highway_gate_are_fully_connected() -> None:
    X = unit_sphere(7, 4, 0)
    fc = [gram_matrix(X, H) for H in (1, 2, 5)]
    branch = gram_depth.recursion_gram(X, [1, 2, 5], "branch", branches=1)
    highway = gram_depth.recursion_gram(X, [1, 2, 5], "highway", alpha=1.0)
    for a, b, c in zip(fc, branch, highway, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-14)


@pytest.mark.slow
@pytest.mark.parametrize("architecture", gram_depth.ARCHITECTURES)
def test_recursion_matches_monte_carlo_of_the_network(architecture: str) -> None:
    torch.set_num_threads(1)
    X = unit_sphere(6, 5, 1)
    options = {"branches": 3, "alpha": 0.4, "c_res": 0.5}
    K = gram_depth.recursion_gram(X, [3], architecture, **options)[0]
    draws = [
        gram_depth.monte_carlo_gram(X, 3, 8192, architecture, seed, **options) for seed in range(12)
    ]
    error = np.linalg.norm(np.mean(draws, axis=0) - K) / np.linalg.norm(K)
    assert error < 0.03


def test_monte_carlo_detects_a_wrong_recursion() -> None:
    """The check can fail: the branch recursion without its cross-branch term is rejected."""
    X = unit_sphere(6, 5, 1)
    right = gram_depth.recursion_gram(X, [3], "branch", branches=3)[0]
    wrong = gram_depth.recursion_gram(X, [3], "branch", branches=1)[0] / 3.0
    draws = [gram_depth.monte_carlo_gram(X, 3, 8192, "branch", s, branches=3) for s in range(8)]
    mean = np.mean(draws, axis=0)
    assert np.linalg.norm(mean - right) < 0.3 * np.linalg.norm(mean - wrong)


def test_fit_decay_recovers_known_laws() -> None:
    H = np.arange(2, 30)
    exp_slope, exp_r2, _, power_r2 = gram_depth.fit_decay(H, 3.0 * np.exp(-0.2 * H))
    assert exp_slope == pytest.approx(-0.2) and exp_r2 == pytest.approx(1.0)
    assert power_r2 < 1.0
    _, _, power_slope, power_r2 = gram_depth.fit_decay(H, 2.0 * H**-1.5)
    assert power_slope == pytest.approx(-1.5) and power_r2 == pytest.approx(1.0)


def test_parameters_to_reach_interpolates_in_log_log() -> None:
    P = np.array([100, 1000, 10000])
    L = np.array([1.0, 0.1, 0.01])
    assert budget.parameters_to_reach(P, L, 0.1) == pytest.approx(1000)
    assert budget.parameters_to_reach(P, L, np.sqrt(0.1)) == pytest.approx(np.sqrt(1e5))
    assert np.isnan(budget.parameters_to_reach(P, L, 0.001))
    assert budget.parameters_to_reach(P, np.array([np.nan, 0.5, 0.01]), 0.5) == 1000


def test_bad_configurations_name_the_field() -> None:
    with pytest.raises(ValueError, match="branches"):
        gram_depth.Config(branches=0).validate()
    with pytest.raises(ValueError, match="dataset"):
        budget.Config(dataset="cifar").validate()
    with pytest.raises(ValueError, match="budgets"):
        budget.Config(budgets=(5,)).validate()


@pytest.mark.slow
def test_small_runs_draw_every_figure_and_summary() -> None:
    import plotly.graph_objects as go

    from landscape.studies.beyond import exact, figures

    torch.set_num_threads(1)
    g = gram_depth.run(gram_depth.Config(n=5, max_depth=4, mc_width=64, mc_draws=2, mc_depth=2))
    s = skips.run(
        dataclasses.replace(SMALL[skips], sweep_widths=(2, 3), sweep_classes=(3, 8, 1, 7))
    )
    b = budget.run(
        budget.Config(
            budgets=(100, 300),
            seeds=1,
            steps=10,
            convex_betas=(1.0,),
            convex_gates=5,
            n_train=40,
            n_test=40,
            branch_counts=(2,),
        )
    )
    e = exact.run(
        exact.Config(n_points=3, n_signals=3, n_images=10, image_patterns=3, restarts=1, steps=10)
    )
    drawn = [
        figures.lambda_vs_depth(g),
        figures.width_vs_depth(g),
        figures.skips_measures(s),
        figures.skips_surfaces(s),
        figures.skips_sweep(s),
        figures.budget_curves(b, budget.reach(b, 0.5)[0]),
        figures.exact_vs_trained(e),
    ]
    assert all(isinstance(fig, go.Figure) and fig.data for fig in drawn)
    for lines in (
        gram_depth.summary(g),
        skips.summary(s),
        skips.sweep_summary(s),
        budget.summary(b, 0.5),
        exact.summary(e),
    ):
        assert lines and all(isinstance(line, str) for line in lines)
    assert s.gap.min() == 0.0  # the best restart has no gap
    # the sweep: 2 pairs x 2 widths; the page's run (3 vs 8, width 2) is its first setting
    assert s.sweep_gap.shape == (2, 2, 2, 1, 2) and s.sweep_non_psd.shape == (2, 2, 2, 1, 1)
    assert np.all(s.sweep_gap.min(axis=-1) == 0.0)  # each setting's best restart has no gap
    assert s.sweep_parameters[1, 0, 0] > s.sweep_parameters[0, 0, 0]  # wider ResNet, more
    assert "of 4" in skips.sweep_summary(s)[0]
    assert np.all(e.trained[:2] >= e.optimum[:2, None] * (1 - 1e-7))  # exact programs bound


def test_sweep_reuses_the_page_run_and_validates_its_pairs() -> None:
    """A sweep setting equal to the page's (classes, resnet_width) is the page's own run."""

    torch.set_num_threads(1)
    config = dataclasses.replace(SMALL[skips], sweep_classes=(3, 8))  # classes = (3, 8)
    result = skips.run(config)
    np.testing.assert_array_equal(result.sweep_gap[0, 0], result.gap)
    np.testing.assert_array_equal(result.sweep_non_psd[0, 0], result.non_psd)
    for bad in ((3, 3), (3,), (3, 8, 1), (3, 10), ("a", "b")):
        with pytest.raises(ValueError, match="sweep_classes"):
            skips.Config(sweep_classes=bad).validate()
    with pytest.raises(ValueError, match="sweep_widths"):
        skips.Config(sweep_widths=(1,)).validate()
