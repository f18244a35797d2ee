"""Seeded module construction while other threads build theirs (the server's runs at once)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from torch import nn

from landscape.engine.nets import mlp
from landscape.server import seeding
from landscape.studies.beyond import nets as beyond_nets
from landscape.studies.lab import lab
from landscape.studies.lab import training as lab_training

BUILDS = 150  # per thread


@pytest.fixture
def frequent_switches() -> Iterator[None]:
    """Threads switch every microsecond, so that builds at once interleave (unguarded, 70 of 600
    builds of a small MLP differed from their single-threaded weights)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def weights(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def differing_builds(build: Callable[[int], nn.Module], seeds: tuple[int, ...]) -> int:
    """How many of ``BUILDS`` builds per seed, one thread per seed at once, differ from the
    seed's build made alone."""
    alone = {seed: weights(build(seed)) for seed in seeds}
    differing = [0]

    def builder(seed: int) -> None:
        for _ in range(BUILDS):
            if not torch.equal(weights(build(seed)), alone[seed]):
                differing[0] += 1

    threads = [threading.Thread(target=builder, args=(seed,)) for seed in seeds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return differing[0]


def test_seeded_is_manual_seed_then_the_build() -> None:
    torch.manual_seed(3)
    expected = weights(mlp(5, 2, [8]))
    after = torch.rand(4)
    with seeding.seeded(3):
        built = weights(mlp(5, 2, [8]))
    assert torch.equal(built, expected)
    assert torch.equal(torch.rand(4), after)  # the generator is left as the build leaves it


@pytest.mark.slow
def test_the_labs_models_do_not_depend_on_other_builds(frequent_switches) -> None:
    X, y = np.zeros((10, 2), dtype=np.float32), np.zeros(10, dtype=np.int64)
    config = lab.Config()

    def build(seed: int) -> nn.Module:
        return lab_training.build_model(config, X, y, "classification", 2, seed=seed)

    assert differing_builds(build, (1, 2)) == 0


def test_the_beyond_studies_models_do_not_depend_on_other_builds(frequent_switches) -> None:
    def build(seed: int) -> nn.Module:
        return beyond_nets.build("resnet" if seed % 2 else "fc", 6, 2, 16, 2, seed)

    assert differing_builds(build, (1, 2)) == 0
