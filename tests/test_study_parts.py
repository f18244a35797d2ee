"""The parts studies keep between runs: one cache bounded in bytes (engine.study_parts)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from landscape.engine import byte_lru
from landscape.server import study_parts
from landscape.studies.lab import lab, reuse
from landscape.studies.linear_duality import linear_duality


@pytest.fixture
def small_parts(monkeypatch):
    """The shared cache replaced by an empty one of 1 MiB for the test."""
    parts: byte_lru.ByteLRU = byte_lru.ByteLRU(2**20, name="Study parts")
    monkeypatch.setattr(study_parts, "_parts", parts)
    return parts


def test_tables_share_one_ceiling_and_the_oldest_part_goes_first(small_parts) -> None:
    study_parts.keep("a", 1, np.zeros(50_000))  # 400 kB
    study_parts.keep("b", 1, np.zeros(50_000))
    assert study_parts.holds("a", 1) and study_parts.holds("b", 1)
    study_parts.kept("a", 1)  # now the most recently used
    study_parts.keep("b", 2, np.zeros(50_000))  # 1.2 MB > 1 MiB: ("b", 1) goes
    assert study_parts.holds("a", 1) and not study_parts.holds("b", 1)
    assert small_parts.nbytes <= small_parts.max_bytes
    study_parts.keep("c", 1, np.zeros(200_000))  # 1.6 MB: larger than the ceiling, not kept
    assert not study_parts.holds("c", 1) and small_parts.stats().refused == 1
    study_parts.forget("a")
    assert not study_parts.holds("a", 1) and study_parts.holds("b", 2)
    assert study_parts.stats().nbytes == small_parts.nbytes


def test_a_kept_function_computes_again_once_evicted(small_parts) -> None:
    calls: list[int] = []

    @study_parts.kept_function("test.squares")
    def squares(n: int) -> np.ndarray:
        calls.append(n)
        return np.arange(n * 10_000) ** 2  # 240 kB for n = 3

    assert squares(3)[:3].tolist() == [0, 1, 4]
    squares(3)
    assert calls == [3]
    study_parts.keep("filler", 0, np.zeros(120_000))  # 960 kB: pushes squares(3) out
    assert squares(3)[:3].tolist() == [0, 1, 4] and calls == [3, 3]
    squares.cache_clear()
    squares(3)
    assert calls == [3, 3, 3]


def test_linear_dualitys_problems_are_kept_within_the_ceiling(small_parts, monkeypatch) -> None:
    """Moving gamma reuses the gamma-free part; once the ceiling pushed it out, it is solved
    again, to the same numbers."""
    solved: list[float] = []
    original = linear_duality._solve_problem

    def counted(config, report):
        solved.append(config.noise)
        return original(config, report)

    monkeypatch.setattr(linear_duality, "_solve_problem", counted)
    base = linear_duality.Config(steps=20, restarts=1, slice_resolution=5, sweep_points=9)
    first = linear_duality.problem(base)
    assert linear_duality.problem(dataclasses.replace(base, gamma_ratio=2.0)) is first
    assert solved == [base.noise]
    counted_bytes = small_parts.stats().nbytes
    assert counted_bytes >= byte_lru.estimate_nbytes(first)
    small_parts.resize(counted_bytes - 1)  # the ceiling falls below the part: evicted
    again = linear_duality.problem(base)
    assert solved == [base.noise, base.noise]
    np.testing.assert_array_equal(again.sweep.sweep_primal, first.sweep.sweep_primal)


def test_a_lab_training_counts_its_models_weights(small_parts) -> None:
    small_parts.resize(16 * 2**20)  # digits: 0.9 MB of features, 0.5 MB more as a tensor
    config = lab.Config(
        epochs=3, branches=2, width=3, resolution=5, curvature_resolution=0, lanczos_iterations=3
    )
    lab.prepare(config)
    data, trained = study_parts.kept(reuse.TRAINING.table, lab.training_key(config))
    weights = sum(
        p.numel() * p.element_size() for model in trained.models for p in model.parameters()
    )
    assert weights > 0
    assert small_parts.nbytes >= weights + data.X.nbytes + data.X_t.numel() * 4
