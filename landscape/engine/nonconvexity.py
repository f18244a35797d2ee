"""Measures of non-convexity of a loss surface ``Z[i, j] = L(theta + alpha_i d1 + beta_j d2)``.

Three numbers, each 0 for a convex function and positive for a non-convex one:
the fraction of the slice whose 2x2 Hessian is not positive semi-definite, the largest convexity
defect along the grid's lines (normalised by the loss range), and the ratio
``max(0, -lambda_min) / lambda_max`` of the full Hessian at the centre.
"""

from __future__ import annotations

import numpy as np


def slice_hessians(Z: np.ndarray, alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """Central finite-difference 2x2 Hessians of the slice at the interior grid points.

    ``H_aa = (Z[i+1,j] - 2Z[i,j] + Z[i-1,j]) / da^2``, ``H_bb`` likewise,
    ``H_ab = (Z[i+1,j+1] - Z[i+1,j-1] - Z[i-1,j+1] + Z[i-1,j-1]) / (4 da db)``.
    ``Z`` (p, q) on uniform ``alphas`` (p,) and ``betas`` (q,); returns (p-2, q-2, 2, 2).
    Exact (up to rounding) for a quadratic.
    """
    Z = np.asarray(Z, dtype=np.float64)
    da, db = _uniform_step("alphas", alphas, Z.shape[0]), _uniform_step("betas", betas, Z.shape[1])
    h_aa = (Z[2:, 1:-1] - 2.0 * Z[1:-1, 1:-1] + Z[:-2, 1:-1]) / da**2
    h_bb = (Z[1:-1, 2:] - 2.0 * Z[1:-1, 1:-1] + Z[1:-1, :-2]) / db**2
    h_ab = (Z[2:, 2:] - Z[2:, :-2] - Z[:-2, 2:] + Z[:-2, :-2]) / (4.0 * da * db)
    return np.stack([np.stack([h_aa, h_ab], -1), np.stack([h_ab, h_bb], -1)], -2)


def non_psd_fraction(
    Z: np.ndarray, alphas: np.ndarray, betas: np.ndarray, rtol: float = 1e-3
) -> float:
    """Fraction of interior grid points whose slice Hessian has ``lambda_min < -rtol * scale``.

    ``scale`` is the larger of the largest ``|lambda|`` of any slice Hessian and the curvature
    ``(max Z - min Z) / span^2`` of a bump as high as the loss range across the slice's longer side,
    so that rounding noise, affine slices and PSD-but-singular quadratics count as PSD.
    Returns a number in [0, 1]; 0 for a convex function.
    """
    if not 0 <= rtol < 1:
        raise ValueError(f"rtol must be in [0, 1), got {rtol}")
    eig = np.linalg.eigvalsh(slice_hessians(Z, alphas, betas))  # (p-2, q-2, 2), ascending
    span = max(float(np.ptp(alphas)), float(np.ptp(betas)))
    scale = max(float(np.max(np.abs(eig))), float(np.ptp(Z)) / span**2)
    if scale == 0.0:
        return 0.0
    return float(np.mean(eig[..., 0] < -rtol * scale))


def line_convexity_defect(z: np.ndarray) -> np.ndarray:
    """Defect ``z_k - env(k) >= 0`` of equally spaced values ``z`` (m,) above their convex envelope.

    ``env`` is the lower convex hull of the points ``(k, z_k)``, i.e. at each ``k`` the lowest
    chord ``(1 - lam) z_a + lam z_b`` over ``a <= k <= b``; the defect is 0 everywhere iff ``z``
    is convex.
    """
    z = np.asarray(z, dtype=np.float64)
    hull: list[int] = []
    for k in range(len(z)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # drop b when it lies on or above the chord from a to k
            if (z[b] - z[a]) * (k - a) >= (z[k] - z[a]) * (b - a):
                hull.pop()
            else:
                break
        hull.append(k)
    envelope = np.interp(np.arange(len(z)), hull, z[hull])
    return np.maximum(z - envelope, 0.0)


def max_convexity_defect(Z: np.ndarray) -> float:
    """Largest defect above the convex envelope along every row, column and diagonal of ``Z``.

    ``max_line max_k (z_k - env(t_k)) / (max Z - min Z)``: 0 for a convex function, at most 1.
    """
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or min(Z.shape) < 3:
        raise ValueError(f"Z must be a 2-D grid with at least 3 x 3 points, got shape {Z.shape}")
    span = float(Z.max() - Z.min())
    if span == 0.0:
        return 0.0
    lines = [*Z, *Z.T]
    p, q = Z.shape
    flipped = Z[:, ::-1]
    for offset in range(-(p - 3), q - 2):
        lines.append(np.diagonal(Z, offset))
        lines.append(np.diagonal(flipped, offset))
    return max(float(line_convexity_defect(line).max()) for line in lines) / span


def hessian_ratio(lambda_min: float, lambda_max: float) -> float:
    """Li et al.'s ``|lambda_min / lambda_max|`` with the convex case sent to 0.

    ``max(0, -lambda_min) / lambda_max`` for ``lambda_max > 0``: 0 when the Hessian is PSD
    (``lambda_min >= 0``); ``inf`` for a negative definite Hessian, 0 for the zero matrix.
    """
    if lambda_min > lambda_max:
        raise ValueError(f"lambda_min must be <= lambda_max, got {lambda_min} > {lambda_max}")
    if lambda_min >= 0.0:
        return 0.0
    if lambda_max <= 0.0:
        return float("inf")
    return -lambda_min / lambda_max


def _uniform_step(name: str, values: np.ndarray, length: int) -> float:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) != length or length < 3:
        raise ValueError(
            f"{name} must be a 1-D grid of {length} >= 3 points, got shape {values.shape}"
        )
    steps = np.diff(values)
    if np.any(steps <= 0) or not np.allclose(steps, steps[0], rtol=1e-6):
        raise ValueError(f"{name} must be increasing and uniformly spaced")
    return float(steps[0])
