"""The branch study: multi-branch networks, training, surfaces and their non-convexity against I,
and the measured duality gap against I."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape.engine.nets import MultiBranchNet
from landscape.engine.nonconvexity import hessian_ratio, max_convexity_defect, non_psd_fraction
from landscape.studies.branches import branch_gap, branches, figures
from landscape.studies.branches import data as branch_data
from landscape.studies.branches.losses import loss_function
from landscape.studies.branches.training import objective, train
from solvers.convex_relu import nonconvex_objective
from tests.drawn_charts import drawn_charts

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


@pytest.mark.slow
def test_measured_gap_nonnegative_and_zero_beyond_the_critical_width() -> None:
    config = branch_gap.Config(branch_counts=(1, 2, 3, 4, 6), n=16, restarts=32, steps=800)
    result = branch_gap.run(config)
    m_hat, dual = result.critical_width, result.dual
    # the merged m-hat-neuron network is optimal, so m* <= m-hat
    assert result.critical_width_objective == pytest.approx(dual, abs=1e-6)
    assert 0 <= result.tolerance < 1e-6
    assert np.all(result.gap >= -result.tolerance)
    beyond = result.branch_counts >= m_hat
    assert beyond.sum() >= 2, m_hat
    assert np.all(result.gap[beyond] <= branch_gap.NEAR_ZERO_RTOL * abs(dual)), result.gap
    assert result.gap[0] > 0.1  # one branch cannot fit the moons
    np.testing.assert_array_equal(result.primal, result.primal_restarts.min(axis=1))
    C = result.reference_constant
    assert C == pytest.approx(np.max(result.branch_counts * result.gap))
    assert np.all(C / result.branch_counts >= result.gap)
    # a new list reuses the cached values of I it shares with the old one
    again = branch_gap.run(replace(config, branch_counts=(6, 2)))
    np.testing.assert_array_equal(again.primal, result.primal[[4, 1]])
    fig = figures.gap_vs_branches(result)
    assert fig.layout.yaxis.type == "log" and len(fig.data) == 4


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("branch_counts", (0,)),
        ("branch_counts", (2, 2)),
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


# ---------------------------------------------------------------------------------------------
# Training


def test_trained_multibranch_net_is_the_average_of_its_branches() -> None:
    X, labels = branch_data.load("digits", classes=(0, 1), n_samples=60, seed=0)
    X_t = torch.tensor(X, dtype=torch.float32)
    y_t = torch.tensor(branch_data.signed_labels(labels), dtype=torch.float32)
    torch.manual_seed(0)
    net = MultiBranchNet(64, 1, branches=3, width=4, depth=2)
    run = train(net, X_t, y_t, loss_function("tau_hinge", 2.0), epochs=5, batch_size=16, lr=0.01)
    assert not run.diverged and run.final < run.objective[0]
    separately = torch.stack([branch(X_t) for branch in net.branches]).mean(0)
    torch.testing.assert_close(net(X_t), separately, rtol=1e-5, atol=1e-6)


def test_objective_adds_half_weight_decay_times_squared_norm() -> None:
    torch.manual_seed(1)
    net = MultiBranchNet(3, 2, branches=2, width=3)
    X, y = torch.randn(8, 3), torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    manual = torch.nn.functional.cross_entropy(net(X), y).detach() + 0.05 * sum(
        float((p.detach() ** 2).sum()) for p in net.parameters()
    )
    got = objective(net, X, y, loss_function("cross_entropy"), weight_decay=0.1).detach().item()
    assert got == pytest.approx(manual.item(), rel=1e-6)


def test_training_is_reproducible_and_checks_its_input() -> None:
    X, y = torch.randn(20, 2), torch.randint(0, 2, (20,))
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        net = MultiBranchNet(2, 2, branches=2, width=3)
        runs.append(
            train(
                net,
                X,
                y,
                loss_function("cross_entropy"),
                optimizer="sgd",
                lr=0.05,
                epochs=3,
                batch_size=7,
                seed=5,
            )
        )
    np.testing.assert_array_equal(runs[0].objective, runs[1].objective)
    net = MultiBranchNet(2, 2, branches=1, width=1)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train(net, X, y, loss_function("cross_entropy"), optimizer="lbfgs")
    with pytest.raises(ValueError, match=r"batch_size \(or None\) must be an integer in \[1, 20\]"):
        train(net, X, y, loss_function("cross_entropy"), batch_size=50)
    with pytest.raises(ValueError, match="lr must be"):
        train(net, X, y, loss_function("cross_entropy"), lr=-1.0)


def test_divergence_is_reported_not_returned_as_nan() -> None:
    X, y = 1e3 * torch.randn(20, 2), torch.randint(0, 2, (20,))
    torch.manual_seed(0)
    net = MultiBranchNet(2, 2, branches=1, width=4)
    run = train(net, X, y, loss_function("cross_entropy"), optimizer="sgd", lr=1e6, epochs=20)
    assert run.diverged and "lower lr" in run.message


# ---------------------------------------------------------------------------------------------
# The surface study

SMALL = branches.Config(
    branch_counts=(2,),
    width=3,
    dataset="moons",
    n_samples=40,
    epochs=3,
    batch_size=0,
    resolution=7,
    seeds=2,
    hessian_iterations=30,
)


def full_hessian_extremes(model: torch.nn.Module, loss_fn, X, y) -> tuple[float, float]:
    """Extreme eigenvalues of the dense Hessian of the loss in all parameters (brute force)."""
    eigenvalues = full_hessian_eigenvalues(model, loss_fn, X, y)
    return float(eigenvalues[0]), float(eigenvalues[-1])


def full_hessian_eigenvalues(model: torch.nn.Module, loss_fn, X, y) -> np.ndarray:
    """Every eigenvalue of the dense Hessian, ascending (torch.autograd.functional.hessian)."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()

    def loss_of(vector: torch.Tensor) -> torch.Tensor:
        params = {
            n: t.reshape(s) for n, t, s in zip(names, vector.split(sizes), shapes, strict=True)
        }
        return loss_fn(torch.func.functional_call(model.double(), params, (X.double(),)), y)

    return torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss_of, flat)).numpy()


@pytest.mark.parametrize("construction", ["filter", "three_models"])
def test_surface_centre_equals_the_loss_there(construction: str) -> None:
    result = branches.run(replace(SMALL, construction=construction, seeds=1))
    mid = SMALL.resolution // 2
    assert result.alphas[mid] == 0.0
    centre = result.centre_loss[0, 0]
    np.testing.assert_allclose(result.surfaces[0, 0, :, mid, mid], centre, rtol=1e-5)
    if construction == "filter":
        # the centre is the trained model itself
        np.testing.assert_allclose(centre, result.model_losses[0, 0, :, 0], rtol=1e-6)
        np.testing.assert_array_equal(result.model_coordinates, np.zeros((1, 1, 1, 1, 2)))
    else:
        assert result.model_losses.shape == (1, 1, 1, 3)
        # w0 - w1 and w0 - w2 are both rescaled to ||w2||: w0 sits at (s1/3, s2/3), w1 at
        # (-2 s1/3, s2/3)
        points = result.model_coordinates[0, 0, 0]
        s1, s2 = 3 * points[0]
        np.testing.assert_allclose(points[1], [-2 * s1 / 3, s2 / 3])


@pytest.mark.slow
def test_study_measures_agree_with_independent_computations() -> None:
    result = branches.run(SMALL)
    assert result.surfaces.shape == (1, 1, 2, 7, 7)
    for s in range(2):
        Z = result.surfaces[0, 0, s]
        assert result.non_psd[0, 0, s] == non_psd_fraction(Z, result.alphas, result.betas)
        assert result.defect[0, 0, s] == max_convexity_defect(Z)
        low, high = result.lambda_min[0, 0, s], result.lambda_max[0, 0, s]
        assert result.hessian_ratio[0, 0, s] == hessian_ratio(low, high)
    # Lanczos with more steps than parameters (26) finds the dense Hessian's extreme eigenvalues
    X, y = branches.load_data(SMALL)
    X_t, y_t = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    torch.manual_seed(SMALL.seed)
    net = MultiBranchNet(2, 1, 2, SMALL.width)
    tau_hinge = loss_function("tau_hinge", SMALL.tau)
    train(net, X_t, y_t, tau_hinge, epochs=SMALL.epochs, lr=SMALL.lr, seed=SMALL.seed)
    w = full_hessian_eigenvalues(net, tau_hinge, X_t, y_t.double())
    low, high = float(w[0]), float(w[-1])
    # Negative curvature is claimed only where the exact spectrum has it; the SLQ share below
    # its resolution threshold matches the exact share.
    if result.curvature_state[0, 0, 0] == -1:
        assert low < 0
    share = np.mean(w < -result.negative_threshold[0, 0, 0])
    error = result.negative_mass_error[0, 0, 0]
    assert abs(result.negative_mass[0, 0, 0] - share) < 5 * error + 0.05
    assert result.lambda_max[0, 0, 0] == pytest.approx(high, rel=1e-3, abs=1e-6)
    assert result.lambda_min[0, 0, 0] == pytest.approx(low, rel=1e-3, abs=1e-6)
    # a hinge loss on one hidden layer is piecewise bilinear in (W1, W2): symmetric spectrum
    assert low == pytest.approx(-high, rel=1e-6)


def test_labels_follow_the_loss() -> None:
    X, y = branches.load_data(replace(SMALL, dataset="digits", n_samples=50))
    assert X.shape == (50, 64) and set(np.unique(y)) == {-1.0, 1.0}
    X, y = branches.load_data(
        replace(SMALL, dataset="digits", task="all", loss="multiclass_hinge", n_samples=100)
    )
    assert set(np.unique(y)) == set(range(10))


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["multiclass_hinge", "cross_entropy"])
def test_ten_classes_with_each_loss_give_finite_measures(loss: str) -> None:
    config = replace(SMALL, dataset="digits", task="all", loss=loss, n_samples=100, seeds=1)
    result = branches.run(config)
    assert not result.diverged and result.n_classes == 10
    for field in ("non_psd", "defect", "lambda_min", "lambda_max", "hessian_ratio"):
        assert np.all(np.isfinite(getattr(result, field))), field
    assert result.lambda_min[0, 0, 0] < 0 < result.lambda_max[0, 0, 0]


def test_study_reads_cifar10_from_a_local_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for k in range(1, 6):
        labels = np.array([0, 1, 2, 0, 1, 2])
        records = np.concatenate([labels[:, None], rng.integers(0, 256, (6, 3072))], axis=1)
        (tmp_path / f"data_batch_{k}.bin").write_bytes(records.astype(np.uint8).tobytes())
    config = replace(
        SMALL,
        dataset="cifar10",
        data_dir=str(tmp_path),
        digit_a=0,
        digit_b=1,
        n_samples=0,
        seeds=1,
        resolution=5,
        hessian_iterations=5,
    )
    result = branches.run(config)
    assert result.n_samples == 20  # classes 0 and 1 of the 30 records
    assert result.n_parameters[0, 0] == 2 * (3072 * 3 + 3 + 3 + 1)


@pytest.mark.slow
def test_grid_of_depths_and_branch_counts_and_its_figures() -> None:
    config = replace(SMALL, branch_counts=(1, 2), depths=(1, 2), seeds=1)
    result = branches.run(config)
    assert result.surfaces.shape == (2, 2, 1, 7, 7) and result.n_parameters.shape == (2, 2)
    # one hidden layer of width 3 on 2 inputs, one output: I (2*3 + 3 + 3 + 1) parameters
    np.testing.assert_array_equal(result.n_parameters[0], [13, 26])
    # each cell is the single-slice run of that (depth, I)
    alone = branches.run(replace(config, branch_counts=(2,), depths=(2,)))
    np.testing.assert_array_equal(alone.surfaces[0, 0], result.surfaces[1, 1])
    fig = figures.surface_grid(result)
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert len(heatmaps) == 4 and all(t.coloraxis == "coloraxis" for t in heatmaps)
    assert fig.layout.coloraxis.cmin == pytest.approx(result.surfaces.min())
    assert fig.layout.coloraxis.cmax == pytest.approx(result.surfaces.max())
    assert len(figures.surface_grid(result, "contour").data) == 4
    assert figures.surface_3d(result, 2, 1).data[0].type == "surface"
    assert len(figures.measures_vs_branches(result).data) == 16  # 2 depths x 4 x (band, line)
    with pytest.raises(ValueError, match="branch_count must be one of"):
        figures.surface_3d(result, 1, 8)


def test_results_round_trip_through_the_run_file() -> None:
    from landscape.files import results

    for module, config in (
        (branches, replace(SMALL, seeds=1)),
        (branch_gap, branch_gap.Config(branch_counts=(1, 2), restarts=4, steps=50)),
    ):
        result = module.run(config)
        text = results.run_file(module.__name__, config, result)
        loaded_config, loaded = results.load_run_file(text, module)
        assert loaded_config == config
        for name, value in vars(result).items():
            np.testing.assert_array_equal(getattr(loaded, name), value)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"depths": (4,)}, "depths must hold 1 to 3 distinct integers"),
        ({"branch_counts": ()}, "branch_counts must hold"),
        ({"task": "all"}, "tau_hinge' needs a binary task"),
        ({"digit_b": 3}, "digit_b must differ"),
        ({"resolution": 3}, "resolution must be an integer in"),
        ({"construction": "pca"}, "construction must be one of"),
        ({"dataset": "imagenet"}, "dataset must be one of"),
        ({"n_samples": 1}, "n_samples must be 0"),
        ({"tau": 0.0}, r"tau must be in \[0.001, 100.0\], got 0.0"),
        ({"dataset": "cifar10"}, "data_dir must name a local folder"),
    ],
)
def test_config_rejects_bad_values(fields: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        branches.Config(**fields).validate()


# ---------------------------------------------------------------------------------------------
# The page


@pytest.mark.slow
def test_page_revisits_cached_values_and_measures_the_gap(monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    from ui.catalogue import STUDIES
    from ui.runner import clear_cache

    clear_cache()
    trainings: list[int] = []
    original = branches.train

    def counted(*args, **kwargs):
        trainings.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(branches, "train", counted)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=300)
    at.run()
    at.switch_page(next(e.path for e in STUDIES if e.url_path == "branches"))
    at.query_params.update(branches_largest="2", branches_shown="1", branches_epochs="5")
    at.run()
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    assert at.select_slider(key="branches_largest").value == 2

    def chart(key: str):
        return next(c for c in drawn_charts(at) if c.key == f"chart_branches_{key}")

    keys = [c.key for c in drawn_charts(at)]
    assert keys == [
        f"chart_branches_{k}" for k in ("surface_grid", "surface_frames", "surface_3d", "measures")
    ]
    assert "I = 1" in chart("surface_3d").spec
    trained = len(trainings)
    at.select_slider(key="branches_shown").set_value(2).run()
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    assert "I = 2" in chart("surface_3d").spec  # the 3-D view follows the slider
    assert len(trainings) == trained  # from the kept slices, no training
    at.select_slider(key="branches_gap_restarts").set_value(8)
    at.select_slider(key="branches_gap_steps").set_value(250)
    at.toggle(key="branches_gap").set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    assert len(drawn_charts(at)) == 5  # and the gap against I
    assert any("exact convex program" in c.value for c in at.caption)


def test_summary_is_the_mean_over_seeds_at_one_branch_count() -> None:
    from landscape.files import presets
    from landscape.studies.branches import branches as branch_study

    result = presets.lookup(branch_study.__name__, branch_study.Config())
    assert result is not None
    at = branch_study.summary(result, 0, 4)
    k = list(result.branch_counts).index(4)
    assert at["centre_loss"] == pytest.approx(np.mean(result.centre_loss[0, k]))
    assert at["non_psd"] == pytest.approx(np.mean(result.non_psd[0, k]))
    assert at["hessian_ratio"] == pytest.approx(np.mean(result.hessian_ratio[0, k]))
    with pytest.raises(ValueError):
        branch_study.summary(result, 0, 3)
