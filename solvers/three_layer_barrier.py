"""Torch interior-point method for the three-layer program of `solvers.three_layer_relu`.

The blocks ``u_{g,j}`` (``G = 2 P2`` groups ``g = (l, s)`` of ``J = 2 P1`` blocks
``j = (i, t)``) minimise ``ell(f) + beta sum ||u_{g,j}||`` with

    h_g = sum_j t_j D1_j X u_{g,j}  (n,),       f = sum_g s_g D2_g h_g,
    (2 D1_j - I) X u_{g,j} >= 0 (inner walls),  (2 D2_g - I) h_g >= 0 (outer walls).

The barrier problem is the two-layer one (`solvers.convex_relu`: the second-order-cone barrier
``psi`` of each block's norm, ``tau ell`` or the hinge's epigraph barrier, the same outer loop
`path_following` and dual scaling `scaled_dual_value`) plus ``-sum log`` of the outer walls. Its
Hessian is block diagonal (``B_b``, ``d x d``, from the inner walls and ``psi``) plus, per group,
``A_g^T W_g A_g`` of rank ``n`` (``A_g u_g = h_g``, ``W_g = diag(1 / sigma_g^2)`` the outer walls)
plus ``F^T Omega F`` of rank ``n`` (the loss). Newton steps use Woodbury twice: inside each group
with ``N_g = I + w M_g w`` (``M_g = A_g B_g^-1 A_g^T``, ``w = W_g^1/2``), then across groups with
``C = I + Omega^1/2 (sum_g D2_g T_g D2_g) Omega^1/2``, ``T_g = A_g H_g^-1 A_g^T
= M_g - M_g w N_g^-1 w M_g``: every dense solve is ``n x n``.

Start: an outer pattern whose walls admit a strictly feasible ``h`` (``h`` in the span ``L`` of
the ``D1_i X`` with the pattern's strict signs) starts from ``u = c g_i +- z_i`` with
``sum_i D1_i X z_i`` = the pattern's signs (least squares) and ``c`` large enough to keep each
block inside its cone. A pattern with no strictly feasible point is left out: its feasible
points equal, pattern by pattern in ``f``, limits of strictly feasible points of other patterns
(``L`` minus the coordinate hyperplanes is dense in ``L`` once the rows with no live pattern,
whose ``h`` is always 0, lose their walls), so the optimum is unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

from solvers.barrier import fit_terms, norm_barrier, path_following
from solvers.convex_relu import dual_domain, loss_value, scaled_dual_value


class ThreeLayerBarrier:
    """``phi_tau`` of the three-layer program on blocks ``U`` (G, J, d), with its Newton step."""

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        beta: float,
        loss: str,
        inner: np.ndarray,
        outer: np.ndarray,
        device: torch.device,
    ) -> None:
        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, dtype=torch.float64, device=device)

        self.device, self.loss = device, loss
        self.scale = float(np.linalg.norm(X, 2))
        self.beta = beta / self.scale
        self.n, self.d = X.shape
        P1, P2 = inner.shape[0], outer.shape[0]
        self.G, self.J = 2 * P2, 2 * P1
        live = np.linalg.norm(X, axis=1) > 0
        reached = live & inner.any(axis=0)  # rows some inner pattern can move
        self.X, self.y = tensor(X / self.scale), tensor(y)
        gate_in = np.repeat(inner.astype(np.float64), 2, axis=0)  # (J, n)
        t = np.tile([1.0, -1.0], P1)
        self.t_gate = tensor(t[:, None] * gate_in)  # (J, n): t_j D1_j
        self.walls_in = tensor((2.0 * gate_in - 1.0) * live)  # (J, n), 0 on zero rows
        self.live_in = tensor(np.broadcast_to(live, gate_in.shape).astype(np.float64))
        gate_out = np.repeat(outer.astype(np.float64), 2, axis=0)  # (G, n)
        s = np.tile([1.0, -1.0], P2)
        self.s_gate = tensor(s[:, None] * gate_out)  # (G, n): s_g D2_g
        self.walls_out = tensor((2.0 * gate_out - 1.0) * reached)  # (G, n), 0 off reached rows
        self.live_out = tensor(np.broadcast_to(reached, gate_out.shape).astype(np.float64))

    # ---- linear maps -------------------------------------------------------------------
    def hidden(self, U: torch.Tensor) -> torch.Tensor:
        """``h_g = sum_j t_j D1_j X u_{g,j}`` (G, n)."""
        return torch.einsum("gjn,jn->gn", torch.einsum("nd,gjd->gjn", self.X, U), self.t_gate)

    def hidden_adjoint(self, c: torch.Tensor) -> torch.Tensor:
        """``A_g^T c_g`` for ``c`` (G, n): (G, J, d)."""
        return torch.einsum("gn,jn,nd->gjd", c, self.t_gate, self.X)

    def predictions(self, U: torch.Tensor) -> torch.Tensor:
        """``f = sum_g s_g D2_g h_g`` (n,)."""
        return (self.s_gate * self.hidden(U)).sum(dim=0)

    def slacks(self, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inner (G, J, n) and outer (G, n) wall values; 1 where a row has no wall."""
        XU = torch.einsum("nd,gjd->gjn", self.X, U)
        inner = torch.where(self.live_in > 0, XU * self.walls_in, 1.0)
        outer = torch.where(self.live_out > 0, self.hidden(U) * self.walls_out, 1.0)
        return inner, outer

    # ---- barrier -------------------------------------------------------------------------
    def merit(self, tau: float, U: torch.Tensor) -> torch.Tensor:
        """``phi_tau(U)``; ``inf`` outside the domain."""
        inner, outer = self.slacks(U)
        if torch.any(inner <= 0) or torch.any(outer <= 0):
            return torch.tensor(float("inf"), dtype=torch.float64, device=self.device)
        fit = fit_terms(self.predictions(U), self.y, self.loss, tau)[0]
        norms = norm_barrier(U.reshape(-1, self.d), tau * self.beta)[0]
        return fit + norms - torch.sum(torch.log(inner)) - torch.sum(torch.log(outer))

    def newton(self, tau: float, U: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Newton direction ``dU`` of ``phi_tau`` and the decrement ``-grad^T dU`` (see the
        module docstring for the two Woodbury steps)."""
        G, J, n, d, X = self.G, self.J, self.n, self.d, self.X
        inner, outer = self.slacks(U)
        inv_in = self.live_in / inner  # (G, J, n)
        inv_out = self.live_out / outer  # (G, n)
        _, g_norm, h_root = norm_barrier(U.reshape(-1, d), tau * self.beta)
        _, grad_f, omega = fit_terms(self.predictions(U), self.y, self.loss, tau)
        outer_grad = self.s_gate * grad_f[None, :] - self.walls_out * inv_out
        gradient = (
            -torch.einsum("gjn,nd->gjd", self.walls_in * inv_in, X)
            + g_norm.reshape(G, J, d)
            + self.hidden_adjoint(outer_grad)
        )
        rows = torch.cat([inv_in.reshape(-1, n)[:, :, None] * X[None], h_root], dim=1)
        R = torch.linalg.qr(rows, mode="r")[1]
        eye = torch.eye(d, dtype=torch.float64, device=self.device).expand(G * J, d, d)
        R_inv = torch.linalg.solve_triangular(R, eye, upper=True).reshape(G, J, d, d)

        def solve_blocks(A: torch.Tensor) -> torch.Tensor:  # B^-1 A, block by block
            inner_product = torch.einsum("gjed,gje->gjd", R_inv, A)
            return torch.einsum("gjde,gje->gjd", R_inv, inner_product)

        Y = torch.einsum("nd,gjde->gjne", X, R_inv) * self.t_gate[None, :, :, None]
        M = torch.einsum("gjne,gjme->gnm", Y, Y)  # (G, n, n): A_g B_g^-1 A_g^T
        w = inv_out  # W_g^1/2 = 1 / sigma on walled rows, 0 elsewhere
        eye_n = torch.eye(n, dtype=torch.float64, device=self.device)
        N = torch.linalg.cholesky(eye_n + w[:, :, None] * M * w[:, None, :])

        def solve_groups(A: torch.Tensor) -> torch.Tensor:  # H_g^-1 A, group by group
            z = solve_blocks(A)
            a = w * self.hidden(z)
            corr = w * torch.cholesky_solve(a[:, :, None], N)[:, :, 0]
            return z - solve_blocks(self.hidden_adjoint(corr))

        wM = w[:, :, None] * M
        T = M - wM.transpose(1, 2) @ torch.cholesky_solve(wM, N)  # A_g H_g^-1 A_g^T
        root = torch.sqrt(omega)
        pooled = torch.einsum("gn,gnm,gm->nm", self.s_gate, T, self.s_gate)
        C = torch.linalg.cholesky(eye_n + root[:, None] * pooled * root[None, :])
        z = solve_groups(-gradient)
        c = root * torch.cholesky_solve((root * self.predictions(z))[:, None], C)[:, 0]
        dU = z - solve_groups(self.hidden_adjoint(self.s_gate * c[None, :]))
        return dU, float(-torch.sum(gradient * dU))

    def dual_bound(
        self, tau: float, U: torch.Tensor, dU: torch.Tensor, y: np.ndarray, loss: str
    ) -> float:
        """A lower bound on the optimum (scaled problem) from the barrier's multipliers.

        ``q = (fit'(f) + fit''(f) F dU) / tau``, ``mu = -(1 / (tau s)) (1 - ds / s)`` for both
        kinds of walls; each block's residual is
        ``X^T (t_j D1_j (s_g D2_g q + (2 D2_g - I) lambda_g) + (2 D1_j - I) mu_{g,j})``.
        """
        inner, outer = self.slacks(U)
        d_inner, d_outer = self.slacks_step(dU)
        _, grad, weight = fit_terms(self.predictions(U), self.y, self.loss, tau)
        q_t = (grad + weight * self.predictions(dU)) / tau
        q = dual_domain(q_t.cpu().numpy(), y, loss)
        mu = torch.clamp(-(self.live_in / (tau * inner)) * (1.0 - d_inner / inner), max=0.0)
        lam = torch.clamp(-(self.live_out / (tau * outer)) * (1.0 - d_outer / outer), max=0.0)
        q_t = torch.as_tensor(q, dtype=torch.float64, device=self.device)
        residual = self.hidden_adjoint(self.s_gate * q_t[None, :] + self.walls_out * lam)
        residual = residual + torch.einsum("gjn,nd->gjd", self.walls_in * mu, self.X)
        norms = torch.linalg.norm(residual, dim=2).reshape(-1).cpu().numpy()
        return scaled_dual_value(q, norms, y, self.beta, loss)

    def slacks_step(self, dU: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The walls' change along ``dU`` (linear, no floor)."""
        XdU = torch.einsum("nd,gjd->gjn", self.X, dU)
        return XdU * self.walls_in, self.hidden(dU) * self.walls_out

    # ---- start ---------------------------------------------------------------------------
    def start(self, interior: np.ndarray, fit0: float) -> tuple[torch.Tensor, np.ndarray]:
        """A strictly feasible ``U`` and the groups (G,) bool whose walls admit one."""
        G, J, n, d = self.G, self.J, self.n, self.d
        X = self.X.cpu().numpy()
        gates = interior / np.linalg.norm(interior, axis=1, keepdims=True)  # (P1, d)
        t_gate = self.t_gate.cpu().numpy()[0::2]  # (P1, n): D1_i
        features = (t_gate[:, :, None] * X[None]).transpose(1, 0, 2).reshape(n, -1)  # (n, P1 d)
        walls_out = self.walls_out.cpu().numpy()
        target = walls_out.T  # (n, G): the pattern's signs, 0 off walled rows
        z = np.linalg.lstsq(features, target, rcond=None)[0]  # (P1 d, G)
        reached = features @ z
        ok = np.all((walls_out.T * reached > 1e-9) | (walls_out.T == 0), axis=0)
        z = z.T.reshape(G, -1, d)  # (G, P1, d)
        toward = X @ gates.T  # (n, P1): X g_i, of the sign of each wall
        walls_in = self.walls_in.cpu().numpy()[0::2]  # (P1, n)
        depth = np.min(np.where(walls_in != 0, walls_in * toward.T, np.inf), axis=1)  # (P1,)
        push = np.max(np.abs(np.einsum("nd,gpd->gpn", X, z)), axis=2)  # (G, P1)
        c = 2.0 * np.max(push / depth[None, :], initial=1.0) + 1.0
        U = np.empty((G, J, d))
        U[:, 0::2] = c * gates[None] + z / 2.0
        U[:, 1::2] = c * gates[None] - z / 2.0
        U[~ok] = c * np.repeat(gates, 2, axis=0)[None]  # zero output; such groups are dropped
        size = np.sum(np.linalg.norm(U[ok], axis=2))
        U *= fit0 / (4.0 * self.beta * max(size, 1e-300))
        return torch.as_tensor(U, dtype=torch.float64, device=self.device), ok

    def keep(self, groups: np.ndarray) -> None:
        """Restrict the problem to the ``groups`` (G,) bool."""
        index = torch.as_tensor(np.flatnonzero(groups), device=self.device)
        self.s_gate, self.walls_out = self.s_gate[index], self.walls_out[index]
        self.live_out = self.live_out[index]
        self.G = int(index.shape[0])


def solve_three_layer_barrier(
    X: np.ndarray,
    y: np.ndarray,
    beta: float,
    loss: str,
    inner: np.ndarray,
    interior: np.ndarray,
    outer: np.ndarray,
    tol: float,
    max_iter: int,
    device: torch.device,
) -> tuple[np.ndarray, float, int, bool]:
    """``(V (4 P1 P2, d) in `_BlockLayout` order, lower bound, Newton steps, converged)``."""
    problem = ThreeLayerBarrier(X, y, beta, loss, inner, outer, device)
    fit0 = loss_value(np.zeros_like(y), y, loss)
    U, groups = problem.start(interior, fit0)
    if not groups.any():  # no outer pattern has a strictly feasible point
        return np.zeros((4 * inner.shape[0] * outer.shape[0], X.shape[1])), -np.inf, 0, False
    problem.keep(groups)
    U = U[torch.as_tensor(np.flatnonzero(groups), device=device)]
    walls = float(problem.live_in.sum()) + float(problem.live_out[0].sum())  # per group
    tau = problem.G * (walls + 2 * problem.J) / fit0  # the barrier's parameter over fit(0)

    def certify(tau: float, U: torch.Tensor, dU: torch.Tensor) -> tuple[float, float]:
        bound = problem.dual_bound(tau, U, dU, y, loss)
        V = (U / problem.scale).cpu().numpy()
        f = problem.predictions(U).cpu().numpy()
        return bound, loss_value(f, y, loss) + beta * float(np.linalg.norm(V, axis=2).sum())

    U, bound, steps, converged = path_following(problem, U, tau, certify, tol, max_iter)
    values = np.zeros((groups.shape[0], problem.J, problem.d))
    values[groups] = (U / problem.scale).cpu().numpy()
    return values.reshape(-1, problem.d), bound, steps, converged
