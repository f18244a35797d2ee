"""Lanczos on a symmetric operator: Ritz pairs with residuals, and what a run can promise.

After m steps from a unit start ``q_1``, ``A Q_m = Q_m T_m + beta_m q_{m+1} e_m^T`` with
``Q_m`` (P, m) orthonormal (full re-orthogonalisation, classical Gram-Schmidt twice, float64) and
``T_m`` tridiagonal. With ``T_m = S diag(theta) S^T`` the Ritz pairs are ``(theta_j, Q_m s_j)``
and their residuals ``||A y_j - theta_j y_j|| = beta_m |S[m-1, j]|``; for a symmetric ``A`` some
eigenvalue lies within that residual of ``theta_j`` (Krylov-Weinstein). The squared first
components ``S[0, j]^2`` are the Gauss quadrature weights of the spectral measure of ``q_1``
(`landscape.engine.spectrum`).

Ritz values lie inside the spectrum, so a few steps can miss the smallest eigenvalue: the extremes
only come with a probabilistic promise (`kuczynski_wozniakowski`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

Matvec = Callable[[torch.Tensor], torch.Tensor]
WANTED = ("extremes", "largest", "none")


@dataclass
class Lanczos:
    """The outcome of `lanczos_run` after ``iterations`` steps.

    ``ritz_values`` (m,) ascending; ``weights`` (m,) the squared first components of the
    eigenvectors of ``T_m`` (sum 1); ``residuals`` (m,) ``beta_m |S[m-1, j]|``; ``basis`` (m, P)
    float64; ``exhausted`` when the Krylov space became invariant (``beta_m`` ~ 0: the Ritz values
    are then exact eigenvalues of A).
    """

    ritz_values: np.ndarray
    weights: np.ndarray
    residuals: np.ndarray
    iterations: int
    converged: bool
    exhausted: bool
    basis: torch.Tensor
    eigenvectors: np.ndarray  # (m, m): S, columns in the order of ritz_values

    def ritz_vector(self, j: int) -> torch.Tensor:
        """The unit Ritz vector ``Q_m s_j`` (P,) float64 of ``ritz_values[j]``."""
        s = torch.as_tensor(self.eigenvectors[:, j], dtype=torch.float64, device=self.basis.device)
        y = s @ self.basis
        return y / y.norm()


def start_vector(dimension: int, seed: int, device: torch.device | str) -> torch.Tensor:
    """A start uniform on the unit sphere (a normalised Gaussian from a seeded CPU generator, the
    same on every device), as `kuczynski_wozniakowski` assumes."""
    generator = torch.Generator().manual_seed(int(seed))
    q = torch.randn(dimension, generator=generator, dtype=torch.float64).to(device)
    return q / q.norm()


def lanczos_run(
    matvec: Matvec,
    dimension: int,
    max_iterations: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    tolerance: float | None = None,
    wanted: str = "extremes",
    k: int = 1,
    min_iterations: int = 2,
    start: torch.Tensor | None = None,
    stop_when_negative: float | None = None,
) -> Lanczos:
    """Lanczos with full re-orthogonalisation, stopped by the Ritz residuals or the budget.

    The run stops after ``max_iterations`` steps, when the Krylov space is exhausted, or, with a
    ``tolerance``, as soon as every wanted Ritz pair has residual ``<= tolerance * max_j
    |theta_j|``: ``wanted="extremes"`` the smallest and the largest, ``"largest"`` the ``k``
    largest, ``"none"`` never (run the budget). ``start`` (P,) replaces the random start.
    ``stop_when_negative`` (relative, e.g. 1e-5) also stops once ``theta_min < -stop_when_negative
    * max|theta|``: enough to hand a candidate proof of negative curvature to the caller.
    """
    _check_arguments(dimension, max_iterations, wanted, k, tolerance)
    q = start_vector(dimension, seed, device) if start is None else start.to(device, torch.float64)
    basis = torch.empty(int(max_iterations), dimension, dtype=torch.float64, device=q.device)
    basis[0] = q / q.norm()
    alphas: list[float] = []
    betas: list[float] = []
    converged = exhausted = False
    theta = np.zeros(0)
    S = np.zeros((0, 0))
    residuals = np.zeros(0)
    for m in range(1, int(max_iterations) + 1):
        alpha, w = _orthogonal_step(matvec, basis[:m])
        alphas.append(alpha)
        beta = float(w.norm())
        T = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        theta, S = np.linalg.eigh(T)
        residuals = beta * np.abs(S[-1])
        scale = max(float(np.abs(theta).max()), np.finfo(float).tiny)
        exhausted = beta <= 1e-12 * scale
        enough = m >= max(min_iterations, k if wanted == "largest" else 1)
        converged = enough and _wanted_converged(residuals, wanted, k, tolerance, scale)
        found = stop_when_negative is not None and theta[0] < -stop_when_negative * scale
        if exhausted or converged or found or m == max_iterations:
            break
        betas.append(beta)
        basis[m] = w / beta
    m = len(alphas)
    return Lanczos(
        ritz_values=theta,
        weights=S[0] ** 2,
        residuals=residuals,
        iterations=m,
        converged=converged or exhausted,
        exhausted=exhausted,
        basis=basis[:m],
        eigenvectors=S,
    )


def _check_arguments(
    dimension: int, max_iterations: int, wanted: str, k: int, tolerance: float | None
) -> None:
    """`lanczos_run`'s arguments in range, or a ValueError naming the first that is not."""
    if int(max_iterations) != max_iterations or not 1 <= max_iterations <= dimension:
        raise ValueError(f"iterations must be an integer in [1, {dimension}], got {max_iterations}")
    if wanted not in WANTED:
        raise ValueError(f"wanted must be one of {WANTED}, got {wanted!r}")
    if int(k) != k or not 1 <= k <= max_iterations:
        raise ValueError(f"k must be an integer in [1, {max_iterations}], got {k}")
    if tolerance is not None and not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance}")


def _orthogonal_step(matvec: Matvec, Q: torch.Tensor) -> tuple[float, torch.Tensor]:
    """``alpha_m = q_m^T A q_m`` and ``w = A q_m`` orthogonalised against the basis ``Q`` (m, P):
    classical Gram-Schmidt, twice, in float64 (its norm is ``beta_m``)."""
    w = matvec(Q[-1]).to(torch.float64)
    alpha = float(Q[-1] @ w)
    for _ in range(2):
        w = w - Q.T @ (Q @ w)
    return alpha, w


def _wanted_converged(
    residuals: np.ndarray, wanted: str, k: int, tolerance: float | None, scale: float
) -> bool:
    """Whether every wanted Ritz pair has residual ``<= tolerance * scale``: the extremes, the
    ``k`` largest, or (``"none"``, or no ``tolerance``) never."""
    if tolerance is None:
        return False
    chosen = {
        "extremes": residuals[[0, -1]],
        "largest": residuals[-min(k, len(residuals)) :],
        "none": np.array([np.inf]),
    }[wanted]
    return bool(np.all(chosen <= tolerance * scale))


def lanczos(
    matvec: Matvec, dimension: int, iterations: int, seed: int, device: torch.device | str
) -> np.ndarray:
    """Ritz values of a symmetric operator after ``iterations`` Lanczos steps, ascending.

    With ``iterations == dimension`` they are the exact eigenvalues up to rounding.
    """
    return lanczos_run(matvec, dimension, iterations, seed, device).ritz_values


KW_CONSTANT = 1.648


def kuczynski_wozniakowski(dimension: int, iterations: int, delta: float) -> float:
    """The relative error ``epsilon`` that m Lanczos steps from a uniform random start miss with
    probability at most ``delta`` (Kuczynski & Wozniakowski 1992, Theorem 4.2).

    For a PSD ``A`` of size n with largest eigenvalue ``lambda_1`` and largest Ritz value ``xi``,
    ``P[(lambda_1 - xi) / lambda_1 >= epsilon] <= 1.648 sqrt(n) exp(-sqrt(epsilon) (2m - 1))``;
    solving for ``epsilon`` gives ``(log(1.648 sqrt(n) / delta) / (2m - 1))^2``, capped at 1 (no
    promise). Lanczos is shift invariant, so for a symmetric ``H`` applied to ``lambda_max I - H``
    this reads: ``lambda_min >= theta_min - epsilon (lambda_max - lambda_min)`` with probability
    ``>= 1 - delta``.
    """
    if int(dimension) != dimension or dimension < 1:
        raise ValueError(f"dimension must be an integer >= 1, got {dimension}")
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    logarithm = math.log(KW_CONSTANT * math.sqrt(dimension) / delta)
    return min(1.0, max(0.0, logarithm / (2 * iterations - 1)) ** 2)


def lower_bound_on_lambda_min(
    theta_min: float, theta_max: float, dimension: int, iterations: int, delta: float
) -> tuple[float, float]:
    """``(bound, epsilon)``: with probability ``>= 1 - delta`` over the random start,
    ``lambda_min >= bound``; ``-inf`` when m steps promise nothing.

    `kuczynski_wozniakowski` at ``delta / 2`` on both ends (a union bound): ``lambda_min >=
    theta_min - eps s`` and ``lambda_max <= theta_max + eps s`` with ``s = lambda_max -
    lambda_min``, so ``s <= (theta_max - theta_min) / (1 - 2 eps)`` and
    ``bound = theta_min - eps (theta_max - theta_min) / (1 - 2 eps)`` (needs ``eps < 1/2``).
    """
    epsilon = kuczynski_wozniakowski(dimension, iterations, delta / 2)
    if epsilon >= 0.5:
        return float("-inf"), epsilon
    spread = max(theta_max - theta_min, 0.0) / (1 - 2 * epsilon)
    return theta_min - epsilon * spread, epsilon
