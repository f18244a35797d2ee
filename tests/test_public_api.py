"""The front door, `import landscape`: its names, the README's quickstart, and the numbers of
every public call against an independent computation (a forward pass, the dense Hessian by
``torch.autograd.functional.hessian``, a closed form, per-sample gradients, cvxpy)."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys
from pathlib import Path

import cvxpy as cp
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from public_api_cases import (
    CALLS,
    EXTRA_INPUTS,
    data,
    dense_hessian,
    end_model,
    loss_at,
    mlp,
    trajectory,
)
from torch import nn

import landscape
from landscape.engine.directions import random_directions

ROOT = Path(__file__).resolve().parents[1]

#: The public API. A name that disappears fails here; a new one is added here on purpose.
EXPECTED_NAMES = {
    # problem and directions
    "Problem",
    "problem",
    "random_directions",
    "pca_directions",
    "three_model_plane",
    # surfaces
    "Surface",
    "Line",
    "random_plane",
    "pca_plane",
    "random_line",
    "interpolation",
    # curvature
    "CurvatureEvidence",
    "CurvatureMap",
    "SpectralDensity",
    "HessianTrace",
    "curvature",
    "curvature_map",
    "spectral_density",
    "hessian_trace",
    # kernels
    "Kernel",
    "infinite_width_kernel",
    "empirical_ntk",
    # convex programs
    "ConvexReLUSolution",
    "solve_convex_relu",
    "DualSolution",
    "solve_dual",
    "recover_weights",
    "ThreeLayerSolution",
    "solve_three_layer",
    "ConvexCNNSolution",
    "solve_convex_cnn",
}

QUICKSTART = """\
import torch
import landscape
from sklearn.datasets import load_digits

X, y = load_digits(return_X_y=True)
model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
surface = landscape.random_plane(model, "cross_entropy", X / 16, y, resolution=21)
print(surface.loss.shape, surface.loss.min(), surface.metadata["directions"])
surface.figure().write_html("surface.html")
"""


def test_every_expected_name_is_public_and_documented() -> None:
    assert set(landscape.__all__) == EXPECTED_NAMES
    for name in sorted(EXPECTED_NAMES):
        value = getattr(landscape, name)
        doc = inspect.getdoc(value)
        assert doc and len(doc.splitlines()[0]) > 10, f"landscape.{name} has no docstring"
        assert name in dir(landscape)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = landscape.nothing  # type: ignore[attr-defined]


def test_result_fields_and_methods_are_documented() -> None:
    results = ("Surface", "Line", "CurvatureEvidence", "CurvatureMap", "SpectralDensity")
    for name in (*results, "HessianTrace", "Kernel"):
        cls = getattr(landscape, name)
        for method in ("figure",):
            assert inspect.getdoc(getattr(cls, method)), f"{name}.{method}"
        for field in cls.__dataclass_fields__:
            assert field in inspect.getdoc(cls), f"{name}'s docstring does not say what {field} is"


def test_import_landscape_loads_no_study_no_cvxpy_no_streamlit() -> None:
    code = (
        "import sys, landscape; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('cvxpy', 'streamlit', 'ray') or m.startswith('landscape.studies')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_readme_quickstart_runs_as_written(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(QUICKSTART, "quickstart", "exec"), namespace)
    surface = namespace["surface"]
    assert surface.loss.shape == (21, 21)
    assert np.all(np.isfinite(surface.loss))
    assert (tmp_path / "surface.html").stat().st_size > 10_000
    model, X, y = namespace["model"], namespace["X"], namespace["y"]
    with torch.no_grad():
        direct = nn.functional.cross_entropy(
            model(torch.as_tensor(X / 16, dtype=torch.float32)), torch.as_tensor(y)
        )
    assert surface.loss[10, 10] == pytest.approx(float(direct), rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Surfaces against forward passes.


def test_random_plane_is_the_loss_at_each_point_of_the_plane() -> None:
    X, y = data()
    model = mlp()
    surface = landscape.random_plane(model, "cross_entropy", X, y, resolution=5, span=0.8, seed=3)
    theta = dict(model.named_parameters())
    d1 = random_directions(model, 6)  # seeds 2 seed and 2 seed + 1, filter-normalised
    d2 = random_directions(model, 7)
    assert surface.metadata["directions"]["seeds"] == [6, 7]
    for i, j in ((2, 2), (0, 4), (3, 1)):
        a, b = surface.alphas[i], surface.betas[j]
        point = {k: theta[k] + a * d1[k] + b * d2[k] for k in theta}
        assert surface.loss[i, j] == pytest.approx(loss_at(model, point, X, y), rel=1e-5)
    assert surface.center_loss == pytest.approx(loss_at(model, theta, X, y), rel=1e-5)
    np.testing.assert_array_equal(surface.alphas, np.linspace(-0.8, 0.8, 5))
    with pytest.raises(ValueError):
        surface.loss[0, 0] = 0.0  # frozen numbers


def test_random_line_is_the_plane_along_its_first_direction() -> None:
    X, y = data()
    model = mlp()
    line = landscape.random_line(model, "cross_entropy", X, y, points=5, span=0.8, seed=3)
    surface = landscape.random_plane(model, "cross_entropy", X, y, resolution=5, span=0.8, seed=3)
    np.testing.assert_allclose(line.loss, surface.loss[:, 2], rtol=1e-5)


def test_interpolation_ends_are_the_two_models_losses() -> None:
    X, y = data()
    start, end = mlp(), end_model()
    line = landscape.interpolation(start, "cross_entropy", X, y, end, points=5)
    theta0, theta1 = dict(start.named_parameters()), dict(end.named_parameters())
    assert line.ts[0] == 0.0 and line.ts[-1] == 1.0
    assert line.loss[0] == pytest.approx(loss_at(start, theta0, X, y), rel=1e-5)
    assert line.loss[-1] == pytest.approx(loss_at(start, theta1, X, y), rel=1e-5)
    middle = {k: (theta0[k] + theta1[k]) / 2 for k in theta0}
    assert line.loss[2] == pytest.approx(loss_at(start, middle, X, y), rel=1e-5)


def test_pca_plane_passes_through_a_planar_trajectory() -> None:
    """Checkpoints that lie on a plane through the last one project onto themselves: the loss
    at each projected point is each checkpoint's own loss."""
    X, y = data()
    model = mlp()
    checkpoints = trajectory(model)
    surface = landscape.pca_plane(model, "cross_entropy", X, y, checkpoints, resolution=5)
    own = [loss_at(model, c, X, y) for c in checkpoints]
    np.testing.assert_allclose(surface.path_loss, own, rtol=1e-5)
    np.testing.assert_allclose(surface.path[-1], [0.0, 0.0], atol=1e-7)
    assert surface.explained_variance.sum() == pytest.approx(1.0, abs=1e-6)
    assert surface.alphas[-1] == pytest.approx(1.2 * np.abs(surface.path).max(), rel=1e-6)


def test_a_callable_loss_and_tensor_data_give_the_same_surface() -> None:
    X, y = data()
    model = mlp()
    named = landscape.random_plane(model, "cross_entropy", X, y, resolution=3)
    inputs, labels = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)
    called = landscape.random_plane(model, nn.CrossEntropyLoss(), inputs, labels, resolution=3)
    np.testing.assert_allclose(called.loss, named.loss, rtol=1e-6)
    assert called.metadata["arguments"]["loss"] == "torch.nn.modules.loss.CrossEntropyLoss"
    assert called.metadata["inputs"]["X"] == named.metadata["inputs"]["X"]


def test_cross_entropy_on_token_targets_averages_over_every_position() -> None:
    """A language model's outputs (n, L, V) and next tokens (n, L): the classes are on the last
    axis and the loss is the mean over all n L positions."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(7, 5), nn.Linear(5, 7))
    tokens = torch.randint(0, 7, (10, 4))
    targets = torch.randint(0, 7, (10, 4))
    surface = landscape.random_plane(model, "cross_entropy", tokens, targets, resolution=3)
    with torch.no_grad():
        logits = model(tokens)
    per_position = [
        float(nn.functional.cross_entropy(logits[i, t][None], targets[i, t][None]))
        for i in range(10)
        for t in range(4)
    ]
    assert surface.loss[1, 1] == pytest.approx(np.mean(per_position), rel=1e-5)


def test_mse_reads_targets_n_as_n_by_1() -> None:
    X, y = data()
    model = nn.Linear(4, 1)
    targets = X @ np.array([1.0, -1.0, 0.5, 0.0])
    surface = landscape.random_plane(model, "mse", X, targets, resolution=3)
    with torch.no_grad():
        outputs = model(torch.as_tensor(X, dtype=torch.float32))
    direct = float(((outputs[:, 0] - torch.as_tensor(targets, dtype=torch.float32)) ** 2).mean())
    assert surface.loss[1, 1] == pytest.approx(direct, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Curvature against the dense Hessian.


def test_curvature_exact_route_is_the_dense_hessians_spectrum() -> None:
    X, y = data()
    model = mlp()
    evidence = landscape.curvature(model, "cross_entropy", X, y)
    reference = np.linalg.eigvalsh(dense_hessian(model, X, y))
    assert evidence.exact and evidence.state in ("negative", "convex")
    np.testing.assert_allclose(evidence.eigenvalues, reference, atol=1e-9 * np.abs(reference).max())
    assert evidence.state == ("negative" if reference[0] < -1e-9 else "convex")
    assert "lambda_min" in evidence.text() or "Ritz" in evidence.text()


def test_curvature_lanczos_proof_is_a_direction_of_negative_curvature() -> None:
    X, y = data()
    model = mlp()
    evidence = landscape.curvature(model, "cross_entropy", X, y, exact_limit=0)
    H = dense_hessian(model, X, y)
    assert not evidence.exact
    reference = np.linalg.eigvalsh(H)
    assert reference[0] < 0, "the fixture must have negative curvature"
    assert evidence.state == "negative"
    v = evidence.vector
    assert np.linalg.norm(v) == pytest.approx(1.0, rel=1e-9)
    assert v @ H @ v == pytest.approx(evidence.rayleigh, rel=1e-6)
    assert evidence.lambda_min >= reference[0] - 1e-6


def test_linear_softmax_regression_is_convex_here() -> None:
    """Cross-entropy of a linear model is convex in its weights: the exact route says so."""
    X, y = data()
    evidence = landscape.curvature(nn.Linear(4, 3), "cross_entropy", X, y)
    assert evidence.state == "convex" and evidence.exact


def test_spectral_density_mean_is_the_trace_over_p() -> None:
    X, y = data()
    model = mlp()
    H = dense_hessian(model, X, y)
    density = landscape.spectral_density(
        model, "cross_entropy", X, y, iterations=20, probes=16, exact_limit=100
    )
    mean, error = density.moment(1)
    assert abs(mean - np.trace(H) / H.shape[0]) <= 4 * error + 1e-9
    second, error2 = density.moment(2)
    assert abs(second - np.trace(H @ H) / H.shape[0]) <= 4 * error2 + 1e-9
    np.testing.assert_allclose(density.exact_eigenvalues, np.linalg.eigvalsh(H), atol=1e-8)
    integral = np.sum(density.density) * (density.grid[1] - density.grid[0])
    assert integral == pytest.approx(1.0, abs=0.02)


def test_hessian_trace_hutch_plus_plus_is_exact_when_its_sketch_spans_everything() -> None:
    X, y = data()
    model = mlp()
    exact = float(np.trace(dense_hessian(model, X, y)))
    P = sum(p.numel() for p in model.parameters())
    full = landscape.hessian_trace(model, "cross_entropy", X, y, products=3 * P + 4)
    assert full.estimate == pytest.approx(exact, rel=1e-6)
    assert full.running_estimate[-1] == pytest.approx(full.estimate, rel=1e-9)
    hutch = landscape.hessian_trace(
        model, "cross_entropy", X, y, method="hutchinson", products=200, seed=1
    )
    assert hutch.running_estimate[-1] == pytest.approx(hutch.estimate, rel=1e-9)
    assert hutch.running_error[-1] == pytest.approx(hutch.error, rel=1e-6)
    assert abs(hutch.estimate - exact) <= 4 * hutch.error


# ---------------------------------------------------------------------------------------------
# Kernels against closed forms and per-sample gradients.


def test_infinite_width_relu_ntk_of_depth_one_is_the_arc_cosine_formula() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((7, 3))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    kernel = landscape.infinite_width_kernel(X, depth=1, activation="relu", kind="ntk")
    rho = np.clip(X @ X.T, -1, 1)
    theta = np.arccos(rho)
    expected = rho * (np.pi - theta) / np.pi + (np.sqrt(1 - rho**2) + (np.pi - theta) * rho) / np.pi
    np.testing.assert_allclose(kernel.matrix, expected, atol=1e-7)
    assert kernel.lambda_min == pytest.approx(np.linalg.eigvalsh(expected)[0], abs=1e-7)
    with pytest.raises(ValueError, match="unit sphere"):
        landscape.infinite_width_kernel(2 * X)


def test_empirical_ntk_is_the_gram_of_per_sample_output_gradients() -> None:
    X, _ = data()
    model = mlp()
    kernel = landscape.empirical_ntk(model, X[:6])
    rows = []
    for x in torch.as_tensor(X[:6], dtype=torch.float32):
        out = model(x[None])[0]
        grads = []
        for c in range(out.shape[0]):
            g = torch.autograd.grad(out[c], list(model.parameters()), retain_graph=True)
            grads.append(torch.cat([t.reshape(-1) for t in g]).double())
        rows.append(torch.stack(grads))
    J = torch.stack(rows)  # (n, k, P)
    expected = torch.einsum("icp,jcp->ij", J, J).numpy()
    np.testing.assert_allclose(kernel.matrix, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# The convex programs: the re-exported entry point against a cvxpy program written here.


def test_solve_convex_relu_is_the_global_optimum_cvxpy_finds() -> None:
    rng = np.random.default_rng(0)
    X = np.hstack([rng.standard_normal((6, 1)), np.ones((6, 1))])
    y = rng.standard_normal(6)
    beta = 0.1
    solution = landscape.solve_convex_relu(X, y, beta, method="interior_point", tol=1e-8)
    gates = rng.standard_normal((20000, 2))
    patterns = np.unique(X @ gates.T > 0, axis=1).T  # every pattern of 6 points on a line
    patterns = patterns[patterns.any(axis=1)]
    V = cp.Variable((len(patterns), 2))
    W = cp.Variable((len(patterns), 2))
    fit = sum(np.diag(D.astype(float)) @ X @ (V[i] - W[i]) for i, D in enumerate(patterns))
    constraints = []
    for i, D in enumerate(patterns):
        sign = np.diag(2.0 * D - 1.0)
        constraints += [sign @ X @ V[i] >= 0, sign @ X @ W[i] >= 0]
    penalty = sum(cp.norm(V[i]) + cp.norm(W[i]) for i in range(len(patterns)))
    program = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(fit - y) + beta * penalty), constraints)
    program.solve()
    assert solution.exact
    assert solution.objective == pytest.approx(program.value, rel=1e-5)
    assert solution.network_objective == pytest.approx(program.value, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Every result: metadata that redoes it, a figure with data.


def _arrays(result: object) -> dict[str, np.ndarray]:
    fields = result.__dataclass_fields__  # type: ignore[attr-defined]
    return {
        name: getattr(result, name)
        for name in fields
        if isinstance(getattr(result, name), np.ndarray)
    }


@pytest.mark.parametrize("name", sorted(CALLS))
def test_metadata_redoes_the_numbers(name: str) -> None:
    X, y = data()
    model = mlp()
    first = CALLS[name](model, X, y)
    meta = first.metadata
    assert meta["versions"]["torch"] == torch.__version__
    assert meta["inputs"]["model"]["parameters"] == 51
    again_inputs = {"model": model, "X": X if meta["call"] != "empirical_ntk" else X[:8]}
    if meta["call"] == "empirical_ntk":
        again_inputs["y"] = y[:8]
    else:
        again_inputs["y"] = y
    extra = EXTRA_INPUTS.get(meta["call"], lambda m: {})(model)
    again = getattr(landscape, meta["call"])(**again_inputs, **extra, **meta["arguments"])
    assert again.metadata == meta
    for field, values in _arrays(first).items():
        np.testing.assert_array_equal(getattr(again, field), values, err_msg=field)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_figure_is_a_plotly_figure_with_data(name: str) -> None:
    X, y = data()
    result = CALLS[name](mlp(), X, y)
    figure = result.figure()
    assert isinstance(figure, go.Figure) and len(figure.data) > 0
    for trace in figure.data:
        for axis in ("x", "y", "z"):
            values = getattr(trace, axis, None)
            if values is not None and len(values) and np.asarray(values).dtype.kind == "f":
                assert np.asarray(values).dtype == np.float32, (name, trace.type, axis)


def test_kernel_figure_and_metadata() -> None:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((5, 3))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = rng.standard_normal(5)
    kernel = landscape.infinite_width_kernel(X, depth=3, activation="erf", kind="nngp", y=y)
    again = landscape.infinite_width_kernel(X, y=y, **kernel.metadata["arguments"])
    np.testing.assert_array_equal(again.matrix, kernel.matrix)
    assert len(kernel.figure().data) == 1
    assert math.isfinite(kernel.lambda_min)


def test_only_the_front_door_and_above_import_the_front_door() -> None:
    """`landscape.api` sits above the studies, like the command line: the mathematics, the
    files, the server, the studies and the solvers never import it (nor `landscape`'s names)."""
    from test_layering import files, imported_modules, within

    folders = [ROOT / "landscape" / room for room in ("engine", "files", "server", "studies")]
    for path in [p for folder in [*folders, ROOT / "solvers"] for p in files(folder)]:
        for name in imported_modules(path):
            assert not within(name, "landscape.api"), f"{path.relative_to(ROOT)} imports {name}"
            public = name.removeprefix("landscape.")
            assert name == public or public.split(".")[0] not in EXPECTED_NAMES, (path, name)
    for path in files(ROOT / "landscape" / "api"):
        for name in imported_modules(path):
            assert not any(within(name, p) for p in ("streamlit", "ui", "views")), (path, name)
