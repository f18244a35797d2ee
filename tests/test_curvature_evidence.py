"""Honest curvature: every claim checked against torch.autograd.functional.hessian.

The Lanczos route may say "negative curvature found" (a vector proves it) or "none found"; only
the exact route may say "convex here". Over a sweep of models, seeds, points and budgets no claim
may be false, and every reported residual must bound the distance to an exact eigenvalue.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from landscape.engine import curvature as cv
from landscape.engine.directions import combine, flatten, parameters_of, random_directions
from landscape.engine.lanczos import kuczynski_wozniakowski, lanczos_run, lower_bound_on_lambda_min
from landscape.engine.nets import MultiBranchNet, mlp
from landscape.engine.operators import curvature_operator
from landscape.engine.problem import Problem
from landscape.engine.spectrum import spectral_density
from landscape.engine.trace import hutch_plus_plus, hutchinson


def exact_hessian(model, loss_fn, X, y, point=None) -> np.ndarray:
    """Independent reference: torch.autograd.functional.hessian of the flat-parameter loss."""
    point = parameters_of(model) if point is None else point
    names = list(point)
    shapes = [point[n].shape for n in names]
    sizes = [point[n].numel() for n in names]

    def loss(flat: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(flat, sizes)
        params = {n: p.reshape(s) for n, p, s in zip(names, pieces, shapes, strict=True)}
        return loss_fn(functional_call(model, params, (X,)), y)

    return torch.autograd.functional.hessian(loss, flatten(point)).numpy()


def make_case(name: str, seed: int):
    """A small float64 model, data and loss; a few Adam steps move it off its initialisation."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 100)
    if name == "linear":  # cross-entropy of a linear model: convex everywhere
        model = nn.Linear(3, 3).double()
        X = torch.randn(30, 3, generator=g, dtype=torch.float64)
        y = torch.randint(0, 3, (30,), generator=g)
        return model, F.cross_entropy, X, y
    if name == "tanh":
        model = mlp(3, 2, [4], "tanh").double()
    elif name == "softplus":
        model = mlp(2, 2, [5, 3], "softplus").double()
    elif name == "multibranch":
        model = MultiBranchNet(3, 2, branches=3, width=3, activation="tanh").double()
    else:  # regression with squared error
        model = mlp(3, 1, [5], "tanh").double()
        X = torch.randn(25, 3, generator=g, dtype=torch.float64)
        y = torch.sin(X.sum(1, keepdim=True))
        return model, F.mse_loss, X, y
    X = torch.randn(25, model.state_dict()[next(iter(model.state_dict()))].shape[1], generator=g)
    X = X.double()
    y = torch.randint(0, 2, (25,), generator=g)
    return model, F.cross_entropy, X, y


def train(model, loss_fn, X, y, steps: int) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(model(X), y).backward()
        optimizer.step()


CASES = ("linear", "tanh", "softplus", "multibranch", "regression")


def sweep():
    """(case, seed, point label, model, loss, X, y, point) over models, seeds and points."""
    for name in CASES:
        for seed in range(3):
            model, loss_fn, X, y = make_case(name, seed)
            yield name, seed, "init", model, loss_fn, X, y, parameters_of(model)
            train(model, loss_fn, X, y, 150)
            centre = parameters_of(model)
            yield name, seed, "trained", model, loss_fn, X, y, centre
            d = random_directions(model, seed, one_dim="keep")
            yield name, seed, "moved", model, loss_fn, X, y, combine(centre, (0.5, d))


@pytest.mark.slow
def test_no_false_claim_over_a_sweep_of_models_points_and_budgets() -> None:
    claims = {"negative": 0, "convex": 0, "none_found": 0}
    checked = 0
    for name, seed, label, model, loss_fn, X, y, point in sweep():
        H = exact_hessian(model, loss_fn, X, y, point)
        eigenvalues = np.linalg.eigvalsh(H)
        scale = np.abs(eigenvalues).max()
        P = H.shape[0]
        for budget, stop in ((3, False), (6, False), (20, False), (20, True)):
            e = cv.curvature_evidence(
                Problem(model, loss_fn, X, y),
                point,
                max_iterations=budget,
                seed=seed + budget,
                stop_at_proof=stop,
            )
            where = f"{name} seed {seed} {label} budget {budget}"
            claims[e.state] += 1
            checked += 1
            assert e.state in ("negative", "none_found"), where  # Lanczos never says convex
            assert e.iterations <= budget
            if e.state == "negative":
                v = e.vector.numpy()
                assert v @ H @ v == pytest.approx(e.rayleigh, rel=1e-9, abs=1e-12 * scale)
                assert eigenvalues[0] < 0 and e.rayleigh < 0, where
            # Krylov-Weinstein: an exact eigenvalue within the residual of each Rayleigh quotient
            for rho, r in ((e.rayleigh, e.residual_min), (e.rayleigh_max, e.residual_max)):
                assert np.abs(eigenvalues - rho).min() <= r * (1 + 1e-6) + 1e-12 * scale, where
            assert eigenvalues[0] - 1e-10 * scale <= e.lambda_min <= e.lambda_max
            assert e.lambda_max <= eigenvalues[-1] + 1e-10 * scale
        exact = cv.curvature_evidence(Problem(model, loss_fn, X, y), point, exact_limit=P)
        claims[exact.state] += 1
        checked += 1
        assert exact.exact and exact.lambda_min == pytest.approx(eigenvalues[0], abs=1e-9 * scale)
        if exact.state == "convex":
            assert eigenvalues[0] >= -exact.tolerance
        else:
            assert eigenvalues[0] < 0
            v = exact.vector.numpy()
            assert v @ H @ v == pytest.approx(eigenvalues[0], rel=1e-6, abs=1e-12 * scale)
    # The sweep exercises all three states.
    print(f"claims over the sweep: {claims} of {checked} runs")
    assert checked == len(CASES) * 3 * 3 * 5
    assert min(claims.values()) > 0, claims


def test_lanczos_stops_on_the_residual_and_the_residuals_are_true() -> None:
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(200, 200, generator=g, dtype=torch.float64))
    spectrum = torch.cat([torch.tensor([-3.0, 9.0, 10.0]), torch.linspace(0, 1, 197)]).double()
    A = Q @ torch.diag(spectrum) @ Q.T
    run = lanczos_run(lambda v: A @ v, 200, 150, seed=1, tolerance=1e-8)
    assert run.converged and run.iterations < 150
    for j in (0, run.iterations - 1):
        y = run.ritz_vector(j)
        true = float((A @ y - run.ritz_values[j] * y).norm())
        assert true == pytest.approx(run.residuals[j], rel=1e-3, abs=1e-12)
        assert true <= 1e-8 * 10 * 1.001
    assert run.ritz_values[0] == pytest.approx(-3.0, abs=1e-7)
    assert run.ritz_values[-1] == pytest.approx(10.0, abs=1e-7)
    # No tolerance: the budget is run in full.
    assert lanczos_run(lambda v: A @ v, 200, 12, seed=1).iterations == 12
    top = lanczos_run(lambda v: A @ v, 200, 150, seed=1, tolerance=1e-8, wanted="largest", k=2)
    assert top.ritz_values[-2] == pytest.approx(9.0, abs=1e-7)
    with pytest.raises(ValueError, match="tolerance"):
        lanczos_run(lambda v: A @ v, 200, 10, tolerance=2.0)
    with pytest.raises(ValueError, match="wanted"):
        lanczos_run(lambda v: A @ v, 200, 10, wanted="smallest")


def test_kuczynski_wozniakowski_bound() -> None:
    eps = kuczynski_wozniakowski(10_000, 40, 0.01)
    assert eps == pytest.approx((np.log(1.648 * 100 / 0.01) / 79) ** 2)
    assert kuczynski_wozniakowski(10_000, 2, 0.01) == 1.0  # two steps promise nothing
    bound, epsilon = lower_bound_on_lambda_min(-1.0, 9.0, 100, 3, 0.01)
    assert bound == float("-inf") and epsilon >= 0.5
    bound, epsilon = lower_bound_on_lambda_min(-1.0, 9.0, 100, 60, 0.01)
    assert bound == pytest.approx(-1.0 - epsilon * 10 / (1 - 2 * epsilon))
    with pytest.raises(ValueError, match="delta"):
        kuczynski_wozniakowski(10, 3, 1.5)


def test_bound_holds_on_a_hard_spectrum_over_many_starts() -> None:
    """A spectrum with one small negative eigenvalue hidden under a wide positive bulk: the KW
    promise (probability >= 0.99) must hold in nearly every run; allow 1 miss in 50."""
    g = torch.Generator().manual_seed(3)
    Q, _ = torch.linalg.qr(torch.randn(300, 300, generator=g, dtype=torch.float64))
    spectrum = torch.cat([torch.tensor([-0.05]), torch.linspace(0.0, 10.0, 299)]).double()
    A = Q @ torch.diag(spectrum) @ Q.T
    misses = 0
    for seed in range(50):
        run = lanczos_run(lambda v: A @ v, 300, 15, seed=seed)
        bound, _ = lower_bound_on_lambda_min(
            run.ritz_values[0], run.ritz_values[-1], 300, run.iterations, 0.01
        )
        misses += bound > -0.05
    assert misses <= 1


def test_top_eigenpairs_match_the_exact_ones() -> None:
    model, loss_fn, X, y = make_case("softplus", 0)
    train(model, loss_fn, X, y, 100)
    H = exact_hessian(model, loss_fn, X, y)
    w, V = np.linalg.eigh(H)
    pairs = cv.top_eigenpairs(Problem(model, loss_fn, X, y), k=2, tolerance=1e-10)
    np.testing.assert_allclose(pairs.values, w[::-1][:2], rtol=1e-8)
    for j in range(2):
        v = flatten(pairs.vectors[j]).numpy()
        assert abs(v @ V[:, -1 - j]) == pytest.approx(1.0, abs=1e-6)
        assert np.abs(w - pairs.values[j]).min() <= pairs.residuals[j] + 1e-12
    with pytest.raises(ValueError, match="k must be"):
        cv.top_eigenpairs(Problem(model, loss_fn, X, y), k=0)


def test_the_issue_example_defaults_find_the_negative_eigenvalue() -> None:
    """A tanh MLP trained with Adam whose exact lambda_min is a small negative number next to a
    lambda_max a hundred times larger: ten fixed Lanczos steps miss it, the defaults do not."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(200, 8, generator=g, dtype=torch.float64)
    y = (X[:, 0] * X[:, 1] > 0).long() + (X[:, 2] > 0.5).long()
    model = mlp(8, 3, [12, 12], "tanh").double()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):
        optimizer.zero_grad()
        F.cross_entropy(model(X), y).backward()
        optimizer.step()
    w = np.linalg.eigvalsh(exact_hessian(model, F.cross_entropy, X, y))
    assert w[0] < 0 and -w[0] < 0.05 * w[-1]
    e = cv.curvature_evidence(Problem(model, F.cross_entropy, X, y))
    assert e.state == "negative" and e.rayleigh < 0
    assert e.rayleigh == pytest.approx(w[0], rel=0.05)


def exact_ggn_and_fisher(model, loss_fn, X, y) -> tuple[np.ndarray, np.ndarray]:
    point = parameters_of(model)
    names, sizes = list(point), [t.numel() for t in point.values()]
    shapes = [t.shape for t in point.values()]

    def unflat(flat):
        pieces = torch.split(flat, sizes)
        return {n: p.reshape(s) for n, p, s in zip(names, pieces, shapes, strict=True)}

    flat = flatten(point)
    outputs = functional_call(model, unflat(flat), (X,))
    J = torch.autograd.functional.jacobian(
        lambda f: functional_call(model, unflat(f), (X,)), flat
    ).reshape(outputs.numel(), -1)
    HL = torch.autograd.functional.hessian(lambda o: loss_fn(o.reshape(outputs.shape), y), outputs)
    HL = HL.reshape(outputs.numel(), outputs.numel())
    G = (J.T @ HL @ J).numpy()
    grads = []
    for i in range(len(y)):
        grads.append(
            torch.autograd.functional.jacobian(
                lambda f, i=i: loss_fn(
                    functional_call(model, unflat(f), (X[i : i + 1],)), y[i : i + 1]
                ),
                flat,
            )
        )
    Gs = torch.stack(grads).numpy()
    return G, Gs.T @ Gs / len(y)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["tanh", "regression"])
def test_ggn_and_fisher_operators_match_their_definitions(case: str) -> None:
    model, loss_fn, X, y = make_case(case, 1)
    train(model, loss_fn, X, y, 50)
    G, Fisher = exact_ggn_and_fisher(model, loss_fn, X, y)
    for kind, reference in (("ggn", G), ("fisher", Fisher)):
        with curvature_operator(Problem(model, loss_fn, X, y), kind=kind) as op:
            np.testing.assert_allclose(op.matrix().numpy(), reference, rtol=1e-8, atol=1e-12)
        # Both are PSD: never "negative"; the exact route says convex.
        P = G.shape[0]
        for budget in (4, 30):
            e = cv.curvature_evidence(
                Problem(model, loss_fn, X, y), kind=kind, max_iterations=budget
            )
            assert e.state == "none_found"
        assert cv.curvature_evidence(
            Problem(model, loss_fn, X, y), kind=kind, exact_limit=P
        ).state == ("convex")
        estimate = cv.trace(Problem(model, loss_fn, X, y), kind=kind, products=60)
        assert abs(estimate.estimate - np.trace(reference)) < 5 * estimate.error + 1e-10


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hessian", "ggn", "fisher"])
def test_batches_give_the_one_batch_operator(kind: str) -> None:
    model, loss_fn, X, y = make_case("multibranch", 2)
    v = flatten(random_directions(model, 5, normalization="none", one_dim="keep")).double()
    with curvature_operator(Problem(model, loss_fn, X, y), kind=kind) as whole:
        expected, gradient = whole.matvec(v), whole.gradient
    for batch_size in (1, 7, 25, 1000):
        with curvature_operator(
            Problem(model, loss_fn, X, y), kind=kind, batch_size=batch_size
        ) as op:
            torch.testing.assert_close(op.matvec(v), expected, rtol=1e-10, atol=1e-13)
            torch.testing.assert_close(op.gradient, gradient, rtol=1e-10, atol=1e-13)
    rows = Problem(model, loss_fn, X, y, batch_rows=4)  # the Problem's own batching
    with curvature_operator(rows, kind=kind) as op:
        torch.testing.assert_close(op.matvec(v), expected, rtol=1e-10, atol=1e-13)
    one = cv.density(Problem(model, loss_fn, X, y), kind=kind, iterations=8, probes=3)
    batched = cv.density(
        Problem(model, loss_fn, X, y), kind=kind, iterations=8, probes=3, batch_size=6
    )
    np.testing.assert_allclose(batched.nodes, one.nodes, rtol=1e-7, atol=1e-10)
    with pytest.raises(ValueError, match="batch_size"):
        cv.hvp(Problem(model, loss_fn, X, y), parameters_of(model), batch_size=0)
    with pytest.raises(ValueError, match="kind"):
        cv.hvp(Problem(model, loss_fn, X, y), parameters_of(model), kind="newton")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_models_get_the_ggn_and_the_fisher() -> None:
    model, loss_fn, X, y = make_case("tanh", 0)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    scripted = torch.jit.load(io.BytesIO(buffer.getvalue()))
    v = random_directions(model, 4, normalization="none", one_dim="keep")
    for kind in ("ggn", "fisher"):
        expected = flatten(cv.hvp(Problem(model, loss_fn, X, y), v, kind=kind))
        torch.testing.assert_close(
            flatten(cv.hvp(Problem(scripted, loss_fn, X, y), v, kind=kind)), expected
        )


def test_float32_model_confirms_its_claim_in_float64() -> None:
    model, loss_fn, X, y = make_case("tanh", 0)
    train(model, loss_fn, X, y, 150)
    w = np.linalg.eigvalsh(exact_hessian(model, loss_fn, X, y))
    model32 = model.float()
    e = cv.curvature_evidence(Problem(model32, loss_fn, X, y), max_iterations=40)
    assert next(model32.parameters()).dtype == torch.float32  # the model is left as it was
    if e.state == "negative":
        assert w[0] < 0 and e.rayleigh >= w[0] - 1e-6


@pytest.mark.slow
def test_slq_moments_and_negative_mass_agree_with_the_exact_spectrum() -> None:
    checked = 0
    for case, seed in (("tanh", 0), ("softplus", 1), ("multibranch", 2), ("regression", 0)):
        model, loss_fn, X, y = make_case(case, seed)
        train(model, loss_fn, X, y, 60)
        w = np.linalg.eigvalsh(exact_hessian(model, loss_fn, X, y))
        P = len(w)
        with curvature_operator(Problem(model, loss_fn, X, y)) as op:
            few = spectral_density(op.matvec, P, iterations=6, probes=40, seed=seed)
            full = spectral_density(op.matvec, P, iterations=P, probes=40, seed=seed)
        for k in (1, 2, 3):  # exact Gauss quadrature for k <= 2m - 1 = 11: unbiased
            mean, error = few.moment(k)
            assert abs(mean - np.mean(w**k)) < 4 * error, (case, k)
        exact_fraction = np.mean(w < -full.threshold)
        assert abs(full.negative_mass - exact_fraction) < 4 * full.negative_mass_error + 1e-12
        # With m < P the negative mass counts eigenvalues below the resolution spread / m^2.
        with curvature_operator(Problem(model, loss_fn, X, y)) as op:
            mid = spectral_density(op.matvec, P, iterations=P // 2, probes=40, seed=seed)
        exact_fraction = np.mean(w < -mid.threshold)
        assert abs(mid.negative_mass - exact_fraction) < 4 * mid.negative_mass_error + 1e-12
        # the density integrates to one over its grid
        step = full.grid[1] - full.grid[0]
        assert float(full.density.sum() * step) == pytest.approx(1.0, abs=1e-3)
        checked += 1
    assert checked == 4


@pytest.mark.slow
def test_hutchinson_and_hutch_plus_plus_against_the_exact_trace() -> None:
    model, loss_fn, X, y = make_case("multibranch", 0)
    train(model, loss_fn, X, y, 150)
    H = exact_hessian(model, loss_fn, X, y)
    exact = float(np.trace(H))
    errors: dict[str, list[float]] = {"hutchinson": [], "hutch++": []}
    reported: dict[str, list[float]] = {"hutchinson": [], "hutch++": []}
    with curvature_operator(Problem(model, loss_fn, X, y)) as op:
        P = op.dimension
        for seed in range(30):
            for name, estimator in (("hutchinson", hutchinson), ("hutch++", hutch_plus_plus)):
                estimate = estimator(op.matvec, P, 30, seed)
                errors[name].append(estimate.estimate - exact)
                reported[name].append(estimate.error)
    for name in errors:
        err, se = np.array(errors[name]), np.array(reported[name])
        assert abs(err.mean()) < 4 * err.std() / np.sqrt(len(err))  # unbiased
        assert np.mean(np.abs(err) > 3 * se) <= 0.1  # the error bars mean what they say
    rms = {k: float(np.sqrt(np.mean(np.square(v)))) for k, v in errors.items()}
    assert rms["hutch++"] < rms["hutchinson"]
    with pytest.raises(ValueError, match="products"):
        hutch_plus_plus(lambda v: v, 10, 5)
