"""Activation patterns of a ReLU layer: exact hyperplane-arrangement enumeration and sampled gates.

An activation pattern of the data ``X`` (n, d) is the 0/1 vector ``D = 1[X g > 0]`` of a gate
``g`` in R^d (Pilanci & Ergen 2020 write ``D_i = diag(1[X g_i >= 0])``; the project uses ``> 0``).
The patterns of the full-dimensional cells of the arrangement ``{g : x_j^T g = 0}`` are enough for
the convex program of a two-layer ReLU network: a neuron ``u`` on a cell boundary computes
``relu(X u) = D X u`` with the pattern ``D`` of any cell next to it. The all-zero pattern
contributes nothing to that program and is dropped everywhere.

Both functions return ``(patterns, gates)``: ``patterns`` (P, n) bool, one distinct pattern per
row, and ``gates`` (P, d), a gate strictly inside each cell (``x_j^T g != 0`` for every non-zero
row ``x_j``, and ``1[X g > 0]`` equal to the pattern).
"""

from __future__ import annotations

from itertools import product
from math import comb

import numpy as np

MAX_EXACT_RANK = 3
DEFAULT_MAX_PATTERNS = 4096

_RANK_RTOL = 1e-10
_INCIDENCE_TOL = 1e-9


#: Sampled gates at most (each is a column of the exact program: more would take hours), and
#: entries of the (n, gates) sign matrix at most (bytes of memory).
MAX_SAMPLED_GATES = 100_000
MAX_GATE_ENTRIES = 200_000_000


def _as_features(X: np.ndarray) -> np.ndarray:
    """``X`` as a finite float64 array of shape (n, d)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must be a non-empty 2-D array (n, d), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must be finite (no NaN or inf)")
    return X


def _row_space(A: np.ndarray) -> np.ndarray:
    """Orthonormal basis (r, rank A) of the span of the rows of ``A`` (k, r)."""
    _, s, Vt = np.linalg.svd(A, full_matrices=False)
    rank = int(np.sum(s > _RANK_RTOL * s[0])) if s.size and s[0] > 0 else 0
    return Vt[:rank].T


def distinct_hyperplanes(X: np.ndarray) -> int:
    """Number of distinct hyperplanes ``{g : x_j^T g = 0}`` among the non-zero rows of ``X``."""
    X = _as_features(X)
    norms = np.linalg.norm(X, axis=1)
    rows = X[norms > 0] / norms[norms > 0, None]
    if rows.shape[0] == 0:
        return 0
    first = np.argmax(np.abs(rows) > _INCIDENCE_TOL, axis=1)
    rows = rows * np.sign(rows[np.arange(rows.shape[0]), first])[:, None]
    return int(np.unique(np.round(rows, 9), axis=0).shape[0])


def cell_count_bound(hyperplanes: int, rank: int) -> int:
    """Cover's bound on the cells of a central arrangement: ``2 sum_{k<r} C(m-1, k)``.

    Equality holds for ``m`` hyperplanes in general position in R^r (rank ``r``).
    """
    if hyperplanes == 0:
        return 1
    return 2 * sum(comb(hyperplanes - 1, k) for k in range(rank))


def _push_off(rays: np.ndarray, steps: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``v + eps p`` with ``eps`` small enough that no row of ``B`` off ``v`` changes sign.

    ``rays`` (c, r), ``steps`` (c, r), ``B`` (k, r); ``eps = min(1, min_j |b_j v| / |b_j p|) / 2``
    over the rows with ``b_j^T v != 0``.
    """
    at_ray, along = rays @ B.T, steps @ B.T
    off = np.abs(at_ray) > _INCIDENCE_TOL
    safe_along = np.where(along == 0, 1.0, np.abs(along))
    ratio = np.where(off & (along != 0), np.abs(at_ray) / safe_along, np.inf)
    eps = 0.5 * np.minimum(1.0, ratio.min(axis=1, initial=np.inf))
    return rays + eps[:, None] * steps


def _cell_points(A: np.ndarray) -> np.ndarray:
    """A point (C, r) strictly inside every full-dimensional cell of ``{g : a_j^T g = 0}``.

    ``A`` (k, r) has non-zero rows and rank <= 3. A cell of an essential central arrangement is a
    pointed cone, so it has an extreme ray ``v`` (the null vector of ``rank - 1`` rows); the cells
    at ``v`` are those that the incident rows draw in ``v^perp``. At a simple vertex (``rank - 1``
    independent incident rows) every sign choice ``sigma`` occurs, at the step ``p`` solving
    ``[B_I; v^T] p = [sigma; 0]``; at other vertices the local arrangement is enumerated
    recursively. The point is ``v + eps p``, ``eps`` from ``_push_off``.
    """
    basis = _row_space(A)  # (r, rank): the cells are those of B = A basis, times its complement
    B = A @ basis
    B = B / np.linalg.norm(B, axis=1, keepdims=True)
    k, rank = B.shape
    if rank == 1:
        return np.array([[1.0], [-1.0]]) @ basis.T
    if rank == 2:
        rays = B @ np.array([[0.0, 1.0], [-1.0, 0.0]])  # each row turned by 90 degrees
    else:
        i, j = np.triu_indices(k, 1)
        rays = np.cross(B[i], B[j])
    norms = np.linalg.norm(rays, axis=1)
    rays = rays[norms > 1e-12] / norms[norms > 1e-12, None]
    rays = np.concatenate([rays, -rays])
    products = rays @ B.T
    signs = np.where(np.abs(products) <= _INCIDENCE_TOL, 0, np.sign(products)).astype(np.int8)
    signs, first = np.unique(signs, axis=0, return_index=True)
    rays = rays[first]
    incident_count = np.sum(signs == 0, axis=1)
    simple = incident_count == rank - 1
    points = [_simple_vertex_points(rays[simple], signs[simple], B)]
    for ray, sign in zip(rays[~simple], signs[~simple], strict=True):
        incident = np.flatnonzero(sign == 0)
        tangent = np.linalg.svd(ray[None, :])[2][1:].T  # (rank, rank - 1), orthonormal, ray-perp
        steps = _cell_points(B[incident] @ tangent) @ tangent.T
        points.append(_push_off(np.repeat(ray[None, :], len(steps), axis=0), steps, B))
    return np.concatenate(points) @ basis.T


def _simple_vertex_points(rays: np.ndarray, signs: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Points of the ``2^(rank-1)`` cells at each simple vertex (vectorised ``_cell_points``)."""
    rank = B.shape[1]
    if rays.shape[0] == 0:
        return np.zeros((0, rank))
    incident = np.nonzero(signs == 0)[1].reshape(rays.shape[0], rank - 1)
    systems = np.concatenate([B[incident], rays[:, None, :]], axis=1)  # (c, rank, rank)
    combos = np.array(list(product((-1.0, 1.0), repeat=rank - 1)))
    rhs = np.concatenate([combos, np.zeros((len(combos), 1))], axis=1).T  # (rank, 2^(rank-1))
    steps = np.linalg.solve(systems, np.broadcast_to(rhs, (rays.shape[0], *rhs.shape)))
    steps = steps.transpose(0, 2, 1).reshape(-1, rank)
    return _push_off(np.repeat(rays, len(combos), axis=0), steps, B)


def enumerate_patterns(
    X: np.ndarray, max_patterns: int = DEFAULT_MAX_PATTERNS
) -> tuple[np.ndarray, np.ndarray]:
    """Every non-zero pattern ``1[X g > 0]`` of ``X`` (n, d) of rank <= 3, with interior gates.

    Returns ``patterns`` (P, n) bool and ``gates`` (P, d). Raises ``ValueError`` when rank X > 3,
    or when Cover's bound on the number of cells (``2 sum_{k<r} C(m-1, k)`` for ``m`` distinct
    hyperplanes) exceeds ``max_patterns``.
    """
    X = _as_features(X)
    if (
        not isinstance(max_patterns, int | np.integer)
        or isinstance(max_patterns, bool)
        or not 1 <= max_patterns <= MAX_SAMPLED_GATES
    ):
        raise ValueError(
            f"max_patterns must be an integer in [1, {MAX_SAMPLED_GATES}], got {max_patterns!r}"
        )
    n, d = X.shape
    nonzero = np.linalg.norm(X, axis=1) > 0
    if not np.any(nonzero):
        return np.zeros((0, n), dtype=bool), np.zeros((0, d))
    rank = _row_space(X[nonzero]).shape[1]
    if rank > MAX_EXACT_RANK:
        raise ValueError(
            f"patterns='all' enumerates the hyperplane arrangement only for rank X <= "
            f"{MAX_EXACT_RANK}, got rank {rank}; pass an integer number of sampled gates instead"
        )
    bound = cell_count_bound(distinct_hyperplanes(X), rank)
    if bound > max_patterns:
        raise ValueError(
            f"patterns='all' would enumerate up to {bound} activation patterns for n={n} points of "
            f"rank {rank}, more than max_patterns={max_patterns}; use fewer points, raise "
            f"max_patterns, or pass an integer number of sampled gates"
        )
    return _distinct(X, _cell_points(X[nonzero]))


def sample_patterns(X: np.ndarray, gates: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Distinct non-zero patterns ``1[X g > 0]`` of ``gates`` Gaussian gates ``g ~ N(0, I_d)``.

    Returns ``patterns`` (P, n) bool with ``P <= gates`` and, for each, the mean of the unit gates
    that produced it (inside the same convex cell, and further from its walls). Same seed, same
    patterns.
    """
    X = _as_features(X)
    if not isinstance(gates, int | np.integer) or isinstance(gates, bool) or gates < 1:
        raise ValueError(
            f"patterns (number of sampled gates) must be an integer >= 1, got {gates!r}"
        )
    if gates > MAX_SAMPLED_GATES or gates * X.shape[0] > MAX_GATE_ENTRIES:
        raise ValueError(
            f"patterns (number of sampled gates) must be at most {MAX_SAMPLED_GATES:,} and "
            f"patterns x n at most {MAX_GATE_ENTRIES:,} (the gate matrix X G^T), got {gates:,} "
            f"gates for n = {X.shape[0]}"
        )
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2^63), got {seed!r}")
    G = np.random.default_rng(seed).standard_normal((int(gates), X.shape[1]))
    G /= np.linalg.norm(G, axis=1, keepdims=True)
    patterns, owner = np.unique(X @ G.T > 0, axis=1, return_inverse=True)
    means = np.zeros((patterns.shape[1], X.shape[1]))
    np.add.at(means, owner.ravel(), G)
    return _distinct(X, means)


def _distinct(X: np.ndarray, gates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct non-zero patterns of ``gates`` (c, d), sorted, each with its first gate."""
    patterns, first = np.unique(X @ gates.T > 0, axis=1, return_index=True)
    keep = patterns.any(axis=0)
    return patterns[:, keep].T.copy(), gates[first[keep]]
