"""Du et al.'s wide networks: forward pass, output-gradient Grams, gradients, training dynamics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import erf

from landscape.engine.datasets import unit_sphere
from landscape.engine.gram import c_sigma, gram_matrix, lambda_min
from landscape.studies.width.wide_nets import (
    WideNetSpec,
    forward,
    gradients_and_grams,
    init_weights,
    layer_grams,
    sample_last_gram_at_init,
    train,
)

NUMPY_SIGMA = {
    "relu": lambda z: np.maximum(z, 0.0),
    "erf": erf,
    "softplus": lambda z: np.logaddexp(0.0, z),
    "tanh": np.tanh,
}
ACTIVATIONS = tuple(NUMPY_SIGMA)
CASES = [(arch, act) for arch in ("fc", "resnet") for act in ACTIVATIONS]


def numpy_forward(spec: WideNetSpec, weights: list[np.ndarray], X: np.ndarray) -> np.ndarray:
    """MATH.md section 3 written out sample by sample, in NumPy."""
    sigma, m, H = NUMPY_SIGMA[spec.activation], spec.width, spec.depth
    out = []
    for x in X:
        h = math.sqrt(c_sigma(spec.activation) / m) * sigma(weights[0] @ x)
        for layer in range(2, H + 1):
            update = sigma(weights[layer - 1] @ h)
            if spec.architecture == "resnet":
                h = h + spec.c_res / (H * math.sqrt(m)) * update
            else:
                h = math.sqrt(c_sigma(spec.activation) / m) * update
        out.append(weights[-1] @ h)
    return np.array(out)


def small(architecture: str, activation: str, width: int = 7, depth: int = 3):
    spec = WideNetSpec(depth, width, activation, architecture, c_res=0.4)
    X = unit_sphere(5, 3, seed=1)
    return spec, init_weights(spec, 3, seed=2), X


@pytest.mark.parametrize(("architecture", "activation"), CASES)
def test_forward_matches_the_definition(architecture: str, activation: str) -> None:
    spec, weights, X = small(architecture, activation)
    u, hidden, pre = forward(spec, weights, torch.as_tensor(X))
    expected = numpy_forward(spec, [w.numpy() for w in weights], X)
    np.testing.assert_allclose(u.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert len(hidden) == spec.depth + 1 and len(pre) == spec.depth
    assert [w.shape for w in weights] == [(7, 3), (7, 7), (7, 7), (7,)]


@pytest.mark.parametrize(("architecture", "activation"), CASES)
def test_layer_grams_match_jacobians_from_torch_func(architecture: str, activation: str) -> None:
    """G^(h)_ij = <du_i/dW^(h), du_j/dW^(h)> with the Jacobians taken by torch.func.jacrev."""
    spec, weights, X = small(architecture, activation)
    X_t = torch.as_tensor(X)
    jacobians = torch.func.jacrev(lambda ws: forward(spec, ws, X_t)[0])(weights)
    expected = torch.stack([J.reshape(len(X), -1) @ J.reshape(len(X), -1).T for J in jacobians])
    torch.testing.assert_close(layer_grams(spec, weights, X_t), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("architecture", "activation"), CASES)
def test_gradients_match_autograd_of_the_loss(architecture: str, activation: str) -> None:
    spec, weights, X = small(architecture, activation)
    X_t, y = torch.as_tensor(X), torch.linspace(-1.0, 1.0, 5, dtype=torch.float64)
    leaves = [w.clone().requires_grad_(True) for w in weights]
    loss = 0.5 * ((forward(spec, leaves, X_t)[0] - y) ** 2).sum()
    expected = torch.autograd.grad(loss, leaves)
    _, grads, _ = gradients_and_grams(spec, weights, X_t, y)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("architecture", ["fc", "resnet"])
def test_one_step_follows_the_gram_dynamics(architecture: str) -> None:
    """Seed eq. 10: y - u(1) = (I - eta G(0)) (y - u(0)) + O(eta^2), G the full Gram matrix."""
    spec = WideNetSpec(2, 64, "tanh", architecture)
    X_t = torch.as_tensor(unit_sphere(6, 4, seed=3))
    y = torch.as_tensor(np.sin(np.arange(6.0)))
    weights = init_weights(spec, 4, seed=4)
    u, grads, grams = gradients_and_grams(spec, weights, X_t, y)
    G = grams.sum(0)
    errors = []
    for eta in (1e-3, 5e-4):
        stepped = [w - eta * g for w, g in zip(weights, grads, strict=True)]
        u_next = forward(spec, stepped, X_t)[0]
        predicted = (torch.eye(6, dtype=torch.float64) - eta * G) @ (y - u)
        errors.append(float(torch.linalg.norm((y - u_next) - predicted)))
        assert errors[-1] < 1e-2 * eta * float(torch.linalg.norm(G @ (y - u)))
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.1)  # second order in eta


def test_sampled_last_gram_has_the_network_distribution() -> None:
    """The O(H n^2 m) draw of G^(H)(0) and explicit-weight networks agree in mean and spread."""
    spec = WideNetSpec(3, 24, "relu", "resnet")
    X_t = torch.as_tensor(unit_sphere(4, 3, seed=5))
    draws = 400
    sampled = torch.stack([sample_last_gram_at_init(spec, X_t, seed) for seed in range(draws)])
    explicit = torch.stack(
        [layer_grams(spec, init_weights(spec, 3, 10_000 + seed), X_t)[-2] for seed in range(draws)]
    )
    upper = torch.triu_indices(4, 4)
    a, b = (s[:, upper[0], upper[1]].numpy() for s in (sampled, explicit))
    z = (a.mean(0) - b.mean(0)) / np.sqrt((a.var(0) + b.var(0)) / draws)
    assert np.abs(z).max() < 4.5
    ratio = a.std(0) / b.std(0)
    assert np.all((ratio > 0.75) & (ratio < 1.33))


def test_the_sampled_gram_depends_on_the_layers() -> None:
    """The distribution check above can fail: a ResNet draw is not a fully connected one."""
    X_t = torch.as_tensor(unit_sphere(4, 3, seed=5))
    resnet = np.mean(
        [
            sample_last_gram_at_init(WideNetSpec(3, 24, "relu", "resnet"), X_t, s).trace().item()
            for s in range(100)
        ]
    )
    fc = np.mean(
        [
            sample_last_gram_at_init(WideNetSpec(3, 24, "relu", "fc"), X_t, s).trace().item()
            for s in range(100)
        ]
    )
    assert fc > 10 * resnet  # ResNet's last layer carries (c_res / H)^2


def _data(n: int = 12, d: int = 5) -> tuple[np.ndarray, np.ndarray]:
    X = unit_sphere(n, d, seed=6)
    return X, np.sin(np.pi * X[:, 0])


def test_weight_movement_falls_like_one_over_sqrt_width() -> None:
    X, y = _data()
    K = gram_matrix(X, 2, "tanh")
    eta = 100.0 * lambda_min(K) / len(X) ** 2
    widths = np.array([32, 64, 128, 256, 512, 1024])
    movement = [
        train(WideNetSpec(2, int(m), "tanh"), X, y, eta, 40, seed=0).weight_movement[-1]
        for m in widths
    ]
    slope = np.polyfit(np.log(widths), np.log(movement), 1)[0]
    assert -0.62 < slope < -0.38


@pytest.mark.slow
def test_wide_network_converges_linearly_no_slower_than_the_bound() -> None:
    """Theorem (seed eq. 15) at width 1024, tanh (smooth, covered): L(k) <= L(0)(1 - eta lam/2)^k,
    each step contracts by at least the bound's factor, and lambda_min(G^(H)(k)) >= lam / 2."""
    X, y = _data()
    K = gram_matrix(X, 2, "tanh")
    lam = lambda_min(K)
    eta = 100.0 * lam / len(X) ** 2
    history = train(WideNetSpec(2, 1024, "tanh"), X, y, eta, 150, seed=1)
    assert not history.diverged
    k = np.arange(len(history.loss))
    rate = 1.0 - eta * lam / 2.0
    assert np.all(history.loss <= history.loss[0] * rate**k * (1 + 1e-12))
    assert np.all(history.loss[1:] / history.loss[:-1] <= rate)
    assert history.loss[-1] < 1e-3 * history.loss[0]
    assert history.lambda_min_last.min() >= lam / 2


def test_divergence_stops_the_run_and_says_so() -> None:
    X, y = _data()
    history = train(WideNetSpec(2, 32, "tanh"), X, y, eta=50.0, iterations=200, seed=0)
    assert history.diverged
    assert history.iterations_run < 200
    assert len(history.loss) == history.iterations_run + 1
    assert np.all(np.isfinite(history.loss))


def test_init_is_reproducible() -> None:
    spec = WideNetSpec(2, 8, "relu")
    first, again, other = (init_weights(spec, 3, seed) for seed in (1, 1, 2))
    for a, b, c in zip(first, again, other, strict=True):
        torch.testing.assert_close(a, b)
        assert not torch.equal(a, c)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (WideNetSpec(0, 8), "depth (fc) must be an integer in [1,"),
        (WideNetSpec(1, 8, architecture="resnet"), "depth (resnet) must be an integer in [2,"),
        (WideNetSpec(2, 0), "width must be an integer in [1,"),
        (WideNetSpec(2, 8, activation="gelu"), "activation must be one of"),
        (WideNetSpec(2, 8, architecture="cnn"), "architecture must be one of"),
        (WideNetSpec(2, 8, architecture="resnet", c_res=1.2), "c_res must be in (0, 1), got 1.2"),
    ],
)
def test_bad_spec_gets_a_clear_error(spec: WideNetSpec, fragment: str) -> None:
    with pytest.raises(ValueError) as error:
        spec.validate()
    assert fragment in str(error.value)


def test_train_rejects_bad_input() -> None:
    X, y = _data()
    spec = WideNetSpec(2, 8)
    with pytest.raises(ValueError, match="eta must be a finite number > 0, got 0"):
        train(spec, X, y, 0.0, 5, seed=0)
    with pytest.raises(ValueError, match="iterations must be an integer >= 0"):
        train(spec, X, y, 0.1, -1, seed=0)
    with pytest.raises(ValueError, match="same number of rows"):
        train(spec, X, y[:-1], 0.1, 5, seed=0)


def test_untracked_training_records_the_same_loss() -> None:
    X, y = _data()
    spec = WideNetSpec(2, 32, "tanh", "resnet")
    tracked = train(spec, X, y, 0.05, 20, seed=3)
    bare = train(spec, X, y, 0.05, 20, seed=3, track=False)
    np.testing.assert_array_equal(bare.loss, tracked.loss)
    assert bare.weight_movement.size == 0 and bare.gram_change.size == 0
    np.testing.assert_array_equal(bare.gram_last_init, tracked.gram_last_init)
