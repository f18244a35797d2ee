"""The barrier method of the convex ReLU programs: a log barrier on the cone constraints and a
damped Newton path-following loop that certifies each centred point with a dual bound.

`ConeBarrier` is the barrier problem of the two-layer program (and of the convolutional one,
with a pooling matrix); `path_following` is its outer loop, shared with the three-layer
program's barrier (`solvers.three_layer_barrier`), which reuses `fit_terms` and `norm_barrier`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch


def fit_terms(
    f: torch.Tensor, y: torch.Tensor, loss: str, tau: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The barrier problem's fit term, its gradient and its diagonal Hessian in ``f`` (n,).

    Squared and logistic: ``tau ell(f)``. Hinge: ``sum_j h(1 - y_j f_j)`` with
    ``h(c) = min_xi tau xi - log xi - log(xi - c)``, the barrier of the epigraph of
    ``max(0, c)`` with ``xi`` minimised out: ``xi`` is the root of
    ``tau xi^2 - (tau c + 2) xi + c = 0`` above ``max(0, c)``, ``h'(c) = 1 / (xi - c)`` and
    ``h''(c) = (r - tau c) / (2 r (xi - c)^2)`` with ``r = sqrt(tau^2 c^2 + 4)``; each quantity
    is evaluated in the form without cancellation for the sign of ``tau c``.
    """
    if loss == "squared":
        return 0.5 * tau * torch.sum((f - y) ** 2), tau * (f - y), tau * torch.ones_like(f)
    margin = y * f
    if loss == "logistic":
        return (
            tau * torch.sum(torch.nn.functional.softplus(-margin)),
            -tau * y * torch.sigmoid(-margin),
            tau * torch.sigmoid(margin) * torch.sigmoid(-margin),
        )
    tc = tau * (1.0 - margin)
    r = torch.sqrt(tc**2 + 4.0)
    # both roots' forms, each used where it has no cancellation
    low = torch.where(tc < -2.0, tc + 2.0 - r, -1.0)  # the other root's form, safe elsewhere
    xi = torch.where(tc >= -2.0, (tc + 2.0 + r) / (2.0 * tau), 2.0 * tc / (tau * low))
    gap = torch.where(
        tc >= 0.0, (4.0 + 2.0 * r) / (tau * (2.0 + r + tc)), (2.0 - tc + r) / (2 * tau)
    )
    value = torch.sum(tau * xi - torch.log(xi) - torch.log(gap))
    spread = torch.where(tc >= 0.0, 4.0 / (r + tc), r - tc)  # r - tau c without cancellation
    return value, -y / gap, spread / (2.0 * r * gap**2)


def norm_barrier(U: torch.Tensor, a: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``psi(u) = min_t a t - log(t^2 - ||u||^2)`` per row of ``U`` (K, d), with derivatives.

    With ``s = sqrt(1 + a^2 ||u||^2)``: ``psi = 1 + s - log(2 (1 + s) / a^2)``,
    ``grad = a^2 u / (1 + s)`` and ``hess = c1 (I - uhat uhat^T) + c2 uhat uhat^T`` with
    ``c1 = a^2 / (1 + s)``, ``c2 = c1 / s``. Returns ``(sum psi, grad (K, d), hess^1/2 (K, d, d))``.
    """
    rho = torch.linalg.norm(U, dim=1)
    s = torch.sqrt(1.0 + (a * rho) ** 2)
    value = torch.sum(1.0 + s - torch.log(2.0 * (1.0 + s) / a**2))
    c1 = a**2 / (1.0 + s)
    uhat = U / torch.where(rho > 0, rho, 1.0)[:, None]
    root = (
        torch.sqrt(c1)[:, None, None] * torch.eye(U.shape[1], dtype=U.dtype, device=U.device)
        + (torch.sqrt(c1 / s) - torch.sqrt(c1))[:, None, None] * uhat[:, :, None] * uhat[:, None, :]
    )
    return value, c1[:, None] * U, root


class ConeBarrier:
    """The log-barrier problem of the convex program on the blocks ``u = (v_1..v_P, w_1..w_P)``.

    ``phi_tau(u) = fit_tau(F u) + sum_k psi(u_k) - sum_k sum_j log(((2 D_k - I) X u_k)_j)`` where
    ``psi(u) = min_t tau beta t - log(t^2 - ||u||^2)`` is the second-order-cone barrier of the
    epigraph of ``beta ||u||`` with ``t`` minimised out, and ``fit_tau`` is ``tau ell`` (or, for
    the hinge loss, the barrier of its epigraph with the slack minimised out: ``fit_terms``).
    ``X`` is scaled to unit spectral norm and ``beta`` with it, which changes no value.
    ``pool`` (n, m) pools the m rows of ``X`` into the n outputs, ``F_k = s_k pool D_k X`` (the
    CNN program: patches into samples); ``None`` is the identity (the two-layer program).
    """

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        patterns: np.ndarray,
        beta: float,
        loss: str,
        device: str | torch.device,
        pool: np.ndarray | None = None,
    ) -> None:
        self.device, self.loss = torch.device(device), loss
        self.scale = float(np.linalg.norm(X, 2))
        self.beta = beta / self.scale
        self.m, self.d = X.shape  # rows carrying the walls
        self.n = self.m if pool is None else pool.shape[0]  # outputs
        self.pool = (
            None if pool is None else torch.as_tensor(pool, dtype=torch.float64, device=self.device)
        )
        P = patterns.shape[0]
        self.K = 2 * P
        self.X = torch.as_tensor(X / self.scale, dtype=torch.float64, device=self.device)
        self.y = torch.as_tensor(y, dtype=torch.float64, device=self.device)
        on = torch.as_tensor(patterns.T, dtype=torch.float64, device=self.device)  # (n, P)
        self.gates = torch.cat([on, on], dim=1)  # (n, K): diag(D_k) of block k
        self.signs = self.gates * torch.cat(
            [
                torch.ones(P, dtype=torch.float64, device=self.device),
                -torch.ones(P, dtype=torch.float64, device=self.device),
            ]
        )
        self.live = torch.as_tensor(
            np.linalg.norm(X, axis=1) > 0, dtype=torch.float64, device=self.device
        )[:, None]
        self.walls = (2.0 * self.gates - 1.0) * self.live  # diag(2 D_k - I) on non-zero rows

    def pooled(self, rows: torch.Tensor) -> torch.Tensor:
        """``pool @ rows`` (n, ...) of row values (m, ...)."""
        return rows if self.pool is None else self.pool @ rows

    def predictions(self, U: torch.Tensor) -> torch.Tensor:
        """``F u = sum_k s_k pool D_k X u_k`` (n,)."""
        return self.pooled(((self.X @ U.T) * self.signs).sum(dim=1))

    def adjoint(self, q: torch.Tensor) -> torch.Tensor:
        """``F^T q`` (K, d)."""
        rows = q if self.pool is None else self.pool.T @ q
        return (self.signs * rows[:, None]).T @ self.X

    def slacks(self, U: torch.Tensor) -> torch.Tensor:
        """``(2 D_k - I) X u_k`` as columns (n, K); 1 on zero rows of ``X`` (no wall there)."""
        return torch.where(self.live > 0, (self.X @ U.T) * self.walls, 1.0)

    def merit(self, tau: float, U: torch.Tensor) -> torch.Tensor:
        """``phi_tau(u)``; ``inf`` outside the domain."""
        S = self.slacks(U)
        if torch.any(S <= 0):
            return torch.tensor(float("inf"), dtype=torch.float64, device=self.device)
        fit = fit_terms(self.predictions(U), self.y, self.loss, tau)[0]
        return fit + norm_barrier(U, tau * self.beta)[0] - torch.sum(torch.log(S))

    def newton(self, tau: float, U: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Newton direction ``dU`` of ``phi_tau`` and the decrement ``-grad^T dU``.

        The Hessian is block diagonal (``B_k = R_k^T R_k``, ``d x d``, ``R_k`` from the QR of
        ``[diag(1/s_k) X; hess_psi^1/2]`` so that active walls do not swamp the rest) plus
        ``F^T Omega F`` of rank ``n``, inverted by Woodbury with the (n, n) matrix
        ``I + Omega^1/2 Y Y^T Omega^1/2``, ``Y_i = D_i X L_i``, ``L_i L_i^T = B_vi^-1 + B_wi^-1``.
        """
        n, m, d, K, X = self.n, self.m, self.d, self.K, self.X
        inv_s = self.live / self.slacks(U)
        _, g_norm, h_root = norm_barrier(U, tau * self.beta)
        _, grad, omega = fit_terms(self.predictions(U), self.y, self.loss, tau)
        gradient = -(self.walls * inv_s).T @ X + g_norm + self.adjoint(grad)
        R = torch.linalg.qr(torch.cat([inv_s.T[:, :, None] * X[None], h_root], dim=1), mode="r")[1]
        eye = torch.eye(d, dtype=torch.float64, device=self.device).expand(K, d, d)
        R_inv = torch.linalg.solve_triangular(R, eye, upper=True)

        def solve_blocks(A: torch.Tensor) -> torch.Tensor:  # B^-1 A = R^-1 R^-T A, row-wise
            return (R_inv @ (R_inv.transpose(1, 2) @ A[:, :, None]))[:, :, 0]

        # v_i and w_i share D_i: D_i X (Q_v + Q_w) X^T D_i with Q_v + Q_w = L_i L_i^T, L_i from
        # the QR of [R_v^-T; R_w^-T], halves the work of the (n, n) product below.
        P = K // 2
        stacked = torch.cat([R_inv[:P].transpose(1, 2), R_inv[P:].transpose(1, 2)], dim=1)
        L = torch.linalg.qr(stacked, mode="r")[1].transpose(1, 2)  # (P, d, d)
        root = torch.sqrt(omega)
        rows = (torch.einsum("md,pde->mpe", X, L) * self.gates[:, :P, None]).reshape(m, P * d)
        Z = root[:, None] * self.pooled(rows)
        C = torch.linalg.cholesky(torch.eye(n, dtype=torch.float64, device=self.device) + Z @ Z.T)
        z = solve_blocks(-gradient)
        corr = root * torch.cholesky_solve((root * self.predictions(z))[:, None], C)[:, 0]
        dU = z - solve_blocks(self.adjoint(corr))
        return dU, float(-torch.sum(gradient * dU))

    def multipliers(
        self, tau: float, U: torch.Tensor, dU: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray]:
        """Dual estimates ``q`` (n,) and ``mu`` (K, n) from the Newton step ``dU``.

        ``mu = -(1 / (tau s)) (1 - ds / s)`` and ``q = (fit'(f) + fit''(f) F dU) / tau`` satisfy
        the linearised stationarity ``F_k^T q + G_k^T mu_k = -(grad psi + hess psi dU_k) / tau``
        exactly, which the plain barrier estimates ``1 / (tau s)`` do not for blocks far from
        the centre.
        """
        S = self.slacks(U)
        dS = (self.X @ dU.T) * self.walls
        _, grad, weight = fit_terms(self.predictions(U), self.y, self.loss, tau)
        q = (grad + weight * self.predictions(dU)) / tau
        mu = -(self.live / (tau * S) * (1.0 - dS / S)).T
        return q.cpu().numpy(), mu.cpu().numpy()


class BarrierProblem(Protocol):
    """What `path_following` needs of a barrier problem: ``phi_tau`` and its Newton step."""

    def merit(self, tau: float, U: torch.Tensor) -> torch.Tensor:
        """``phi_tau(U)``, a scalar tensor; ``inf`` outside the barrier's domain."""

    def newton(self, tau: float, U: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The Newton direction ``dU = -H^{-1} grad`` of ``phi_tau`` at ``U`` (shape of ``U``)
        and the decrement ``-grad^T dU``; ``torch.linalg.LinAlgError`` when H is singular."""


def path_following(
    problem: BarrierProblem,
    U: torch.Tensor,
    tau: float,
    certify: Callable[[float, torch.Tensor, torch.Tensor], tuple[float, float]],
    tol: float,
    max_iter: int,
) -> tuple[torch.Tensor, float, int, bool]:
    """The barrier method's outer loop: damped Newton on ``phi_tau`` from a strictly feasible
    ``U``, ``tau`` times 10 per round.

    After each centring (Newton decrement <= 1e-3), ``certify(tau, U, dU)`` gives a dual lower bound
    and the objective; stops when they are within ``tol`` (relative). Gives up (converged False,
    best bound kept) when one centring needs over 50 steps, three rounds in a row need none,
    the line search finds no descent or the Newton system is numerically singular. Returns
    ``(U, best bound, Newton steps, converged)``.
    """
    bound, converged, steps, round_start, idle_rounds = -np.inf, False, 0, 0, 0
    while steps < max_iter and steps - round_start <= 50 and idle_rounds < 3:  # else stalled
        try:
            dU, decrement = problem.newton(tau, U)
        except torch.linalg.LinAlgError:
            break  # the Newton system is numerically singular: keep the last certificate
        if decrement <= 1e-3:  # centred: certify, then move along the central path
            candidate, value = certify(tau, U, dU)
            bound = max(bound, candidate)
            if value - bound <= tol * max(abs(value), 1e-300):
                converged = True
                break
            idle_rounds = idle_rounds + 1 if steps == round_start else 0
            tau, round_start = 10.0 * tau, steps
            continue
        current, alpha = float(problem.merit(tau, U)), 1.0
        for _ in range(60):
            if float(problem.merit(tau, U + alpha * dU)) <= current - 0.01 * alpha * decrement:
                break
            alpha *= 0.5
        else:
            break  # no descent left in floating point: keep the last certificate
        U = U + alpha * dU
        steps += 1
    return U, bound, steps, converged
