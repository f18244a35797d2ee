"""The Width study, its two sweeps, their figures and the page with the sweeps switched on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from streamlit.testing.v1 import AppTest

from landscape.engine.gram import gram_matrix, lambda_min
from landscape.studies.width import depth_sweep, figures, width, width_sweep
from landscape.studies.width.wide_nets import WideNetSpec, init_weights, layer_grams
from tests.drawn_charts import drawn_charts
from ui.runner import clear_cache

SMALL = {"n": 8, "input_dim": 4}


@pytest.fixture(scope="module")
def result() -> width.Result:
    return width.run(width.Config(width=64, iterations=30, **SMALL))


@pytest.fixture(scope="module")
def width_result() -> width_sweep.Result:
    return width_sweep.run(width_sweep.Config(depth=2, iterations=30, max_width=256, **SMALL))


@pytest.fixture(scope="module")
def depth_result() -> depth_sweep.Result:
    config = depth_sweep.Config(
        depths=(2, 3), iterations=30, max_width=64, concentration_max_width=2**10, **SMALL
    )
    return depth_sweep.run(config)


def test_sphere_data() -> None:
    X, y = width.sphere_data("sphere", 20, 5, seed=3)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-12)
    assert X.shape == (20, 5) and np.all(np.abs(y) <= 1.0)
    X2, y2 = width.sphere_data("sphere", 20, 5, seed=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X, y = width.sphere_data("digits", 30, 5, seed=3)
    assert X.shape == (30, 64)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-12)
    assert set(np.unique(y)) <= {-1.0, 1.0}
    assert lambda_min(gram_matrix(X, 2, "tanh")) > 0


def test_run_uses_the_theorem_and_records_the_dynamics(result: width.Result) -> None:
    config = width.Config(width=64, iterations=30, **SMALL)
    X, _ = width.sphere_data(config.dataset, config.n, config.input_dim, config.seed)
    K = gram_matrix(X, config.depth, config.activation)
    np.testing.assert_allclose(result.gram, K)
    np.testing.assert_allclose(result.eigenvalues, np.linalg.eigvalsh(K))
    assert result.lambda_min == pytest.approx(np.linalg.eigvalsh(K)[0], rel=1e-10)
    assert result.eta == pytest.approx(config.step_multiplier * result.lambda_min / config.n**2)
    k = np.arange(31)
    np.testing.assert_allclose(
        result.bound, result.loss[0] * (1 - result.eta * result.lambda_min / 2) ** k
    )
    for series in (
        result.loss,
        result.weight_movement,
        result.gram_drift,
        result.lambda_min_last,
        result.lambda_min_full,
    ):
        assert series.shape == (31,) and np.all(np.isfinite(series))
    assert result.weight_movement[0] == 0 and result.gram_drift[0] == 0
    assert np.all(result.loss <= result.bound * (1 + 1e-12))
    # the stability limit is 2 / lambda_max of the full Gram matrix of the same initial network
    spec = WideNetSpec(config.depth, config.width, config.activation)
    G = layer_grams(spec, init_weights(spec, config.input_dim, config.seed), torch.as_tensor(X))
    assert result.eta_stable == pytest.approx(2 / np.linalg.eigvalsh(G.sum(0).numpy())[-1])


def test_resnet_step_carries_h_squared() -> None:
    config = width.Config(width=32, iterations=5, architecture="resnet", depth=4, **SMALL)
    out = width.run(config)
    assert out.eta == pytest.approx(config.step_multiplier * out.lambda_min * 16 / config.n**2)


@pytest.mark.slow
def test_a_singular_gram_stops_before_training() -> None:
    """Fully connected softplus at depth 20: lambda_min(K^(H)) is zero to rounding."""
    out = width.run(width.Config(activation="softplus", depth=20, iterations=5))
    assert "zero to rounding" in out.message
    assert out.loss.size == 0 and not out.diverged


def test_divergence_is_reported() -> None:
    out = width.run(width.Config(width=32, iterations=100, step_multiplier=3e5, **SMALL))
    assert out.diverged and "diverged" in out.message
    assert np.all(np.isfinite(out.loss)) and len(out.loss) < 101


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"dataset": "mnist"}, "dataset must be one of"),
        ({"n": 1}, "n must be an integer in [2, 512], got 1"),
        ({"input_dim": 1}, "input_dim must be an integer in [2, 256], got 1"),
        ({"depth": 0}, "depth H (fc) must be an integer in [1, 20], got 0"),
        (
            {"depth": 1, "architecture": "resnet"},
            "depth H (resnet) must be an integer in [2, 20], got 1",
        ),
        ({"width": 0}, "width m must be an integer in [1, 8192], got 0"),
        ({"activation": "gelu"}, "activation must be one of"),
        ({"architecture": "resnet", "c_res": 1.0}, "c_res must be in (0, 1), got 1.0"),
        ({"step_multiplier": 0.0}, "step_multiplier must be in"),
        ({"iterations": 0}, "iterations must be an integer in [1, 20000], got 0"),
    ],
)
def test_config_names_the_bad_field(fields: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as error:
        width.Config(**fields).validate()
    assert fragment in str(error.value)


def test_sweep_configs_name_the_bad_field() -> None:
    with pytest.raises(ValueError, match="at least two powers of two"):
        width_sweep.Config(min_width=17, max_width=40).validate()
    with pytest.raises(ValueError, match=r"depths must hold 1 to 20 distinct integers in"):
        depth_sweep.Config(depths=(1, 2)).validate()
    with pytest.raises(ValueError, match="target must be in"):
        depth_sweep.Config(target=2.0).validate()


def test_loglog_slope_recovers_a_power_law() -> None:
    m = width_sweep.power_of_two_widths(16, 1024)
    assert m.tolist() == [16, 32, 64, 128, 256, 512, 1024]
    slope, intercept = width_sweep.loglog_slope(m.astype(float), 3.0 * m**-0.5)
    assert slope == pytest.approx(-0.5) and intercept == pytest.approx(np.log(3.0))
    assert np.isnan(width_sweep.loglog_slope(m[:1].astype(float), np.ones(1))[0])


def test_width_sweep_movement_falls_like_one_over_sqrt_width(
    width_result: width_sweep.Result,
) -> None:
    assert width_result.widths.tolist() == [16, 32, 64, 128, 256]
    assert not width_result.diverged.any()
    assert -0.65 < width_result.movement_slope < -0.35
    assert np.all(np.isfinite(width_result.init_deviation))  # one draw per width: noisy
    assert width_result.drift_slope < -0.3
    assert width_result.loss.shape == (5, 31)


def test_depth_sweep_against_the_gram_matrices(depth_result: depth_sweep.Result) -> None:
    X, _ = width.sphere_data("sphere", 8, 4, 0)
    for a, architecture in enumerate(("fc", "resnet")):
        for d, depth in enumerate((2, 3)):
            K = gram_matrix(X, depth, "tanh", architecture)
            assert depth_result.lambda_min[a, d] == pytest.approx(lambda_min(K), rel=1e-10)
    assert np.all(depth_result.deviation_slope < 0)
    assert np.all(depth_result.width_needed > 0)
    reached = depth_result.width_to_target[np.isfinite(depth_result.width_to_target)]
    assert set(reached.tolist()) <= set(depth_result.train_widths.tolist())


def test_figures(result, width_result, depth_result) -> None:
    built = [
        figures.gram_heatmap(result),
        figures.gram_spectrum(result),
        figures.convergence(result),
        figures.dynamics(result),
        figures.width_scaling(width_result),
        figures.width_curves(width_result),
        figures.depth_lambda(depth_result),
        figures.depth_widths(depth_result),
    ]
    for fig in built:
        assert isinstance(fig, go.Figure) and len(fig.data) >= 1
    assert np.asarray(built[2].data[0].y).dtype == np.float32


def test_page_with_both_sweeps() -> None:
    """The page renders both sweeps (small settings, set through the URL) without an error."""
    clear_cache()
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=240)
    at.run()
    at.switch_page("views/width.py")
    small = {
        "width_n": "8",
        "width_iters": "20",
        "width_sweep_on": "true",
        "width_sweep_max": "64",
        "width_depth_on": "true",
        "width_depths": ["2", "3"],
        "width_depth_max": "64",
        "width_conc_max": "1024",
    }
    for key, value in small.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.toggle(key="width_depth_on").value and at.slider(key="width_n").value == 8
    assert len(drawn_charts(at)) == 8


def test_stable_multiplier_is_the_stability_limit_in_units_of_the_step() -> None:
    from landscape.files import presets
    from landscape.studies.width import width as width_study

    result = presets.lookup(width_study.__name__, width_study.Config())
    assert result is not None
    value = width_study.stable_multiplier(result, 100.0)
    # 2 / lambda_max(G(0)) is the stability limit: the multiplier giving eta = eta_stable
    assert 100.0 * result.eta_stable / result.eta == value
    assert width_study.theorem_step(result.lambda_min, 32, 3, "fc", value) == pytest.approx(
        result.eta_stable, rel=1e-9
    )
