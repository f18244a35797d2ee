"""Trace of a curvature operator from matrix-vector products: Hutchinson and Hutch++.

Hutchinson (1990): ``tr A = E[g^T A g]`` for Rademacher ``g``; the mean of s samples has variance
``2 (||A||_F^2 - sum_i A_ii^2) / s``. Hutch++ (Meyer, Musco, Musco & Woodruff 2021) spends a
third of its m products on a sketch ``Q = orth(A S)`` of the top of the spectrum, whose trace
``tr(Q^T A Q)`` it takes exactly (a second third), and Hutchinson on the deflated
``(I - Q Q^T) A (I - Q Q^T)`` with the last third: for a spectrum with a few large eigenvalues
(a trained network's Hessian) the deflated part has a much smaller Frobenius norm, so the same
error costs far fewer products (``O(1/eps)`` instead of ``O(1/eps^2)`` for PSD A).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from landscape.engine.lanczos import Matvec


@dataclass
class TraceEstimate:
    """``estimate`` of ``tr A`` with its standard ``error`` (of the random part), after
    ``products`` operator products."""

    estimate: float
    error: float
    products: int


def _rademacher(
    count: int, dimension: int, generator: torch.Generator, device: torch.device | str
) -> torch.Tensor:
    signs = torch.randint(0, 2, (count, dimension), generator=generator) * 2 - 1
    return signs.to(device, torch.float64)


def _check(products: int, least: int) -> None:
    if int(products) != products or products < least:
        raise ValueError(f"products must be an integer >= {least}, got {products}")


def hutchinson(
    matvec: Matvec,
    dimension: int,
    products: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> TraceEstimate:
    """Hutchinson's estimate with ``products`` Rademacher probes: mean and standard error of
    ``g_i^T A g_i``."""
    _check(products, 2)
    generator = torch.Generator().manual_seed(int(seed))
    G = _rademacher(int(products), dimension, generator, device)
    values = np.array([float(g @ matvec(g)) for g in G])
    error = float(values.std(ddof=1) / np.sqrt(len(values)))
    return TraceEstimate(float(values.mean()), error, int(products))


def hutch_plus_plus(
    matvec: Matvec,
    dimension: int,
    products: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> TraceEstimate:
    """Hutch++ with ``products`` (>= 6) products: ``k = products // 3`` sketch vectors ``S``,
    ``Q = orth(A S)`` (P, k), ``tr(Q^T A Q)`` from k more, and ``products - 2k`` Rademacher
    probes ``g`` of the deflated operator, ``(1/s) sum g^T (I - QQ^T) A (I - QQ^T) g``; the
    error is the standard error of that last mean (the first term carries none given Q).
    """
    _check(products, 6)
    generator = torch.Generator().manual_seed(int(seed))
    k = int(products) // 3
    k = min(k, dimension)
    s = int(products) - 2 * k
    S = _rademacher(k, dimension, generator, device)
    AS = torch.stack([matvec(v) for v in S], dim=1)  # (P, k)
    Q, _ = torch.linalg.qr(AS)
    AQ = torch.stack([matvec(Q[:, j]) for j in range(Q.shape[1])], dim=1)
    top = float(torch.trace(Q.T @ AQ))
    G = _rademacher(s, dimension, generator, device)
    G = G - (G @ Q) @ Q.T  # (I - QQ^T) g
    values = np.array([float(g @ matvec(g)) for g in G])
    error = float(values.std(ddof=1) / np.sqrt(s)) if s >= 2 else float("nan")
    return TraceEstimate(top + float(values.mean()), error, 2 * k + s)
