"""Surfaces and sweeps on a local Ray cluster (2 CPUs), started once for this module and stopped
at its end: shards assemble the in-process surface, a killed worker is retried, sweeps equal
their in-process runs, and the command line runs on Ray."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from landscape import cli
from landscape.engine.directions import parameters_of, random_directions
from landscape.engine.nets import MultiBranchNet, mlp
from landscape.files import surface_files
from landscape.files.data_files import ArrayData
from landscape.server import cluster
from landscape.studies.branches import branch_gap

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

GRID = np.linspace(-1.0, 1.0, 9)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the whole module (starting one costs seconds on 2 cores)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def job(model: nn.Module, n: int = 40, seed: int = 0) -> cluster.SurfaceJob:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5)).astype(np.float32)
    y = rng.integers(0, 3, n)
    return cluster.SurfaceJob(
        model=model,
        loss="cross_entropy",
        data=ArrayData(X, y),
        center=parameters_of(model),
        d1=random_directions(model, 0),
        d2=random_directions(model, 1),
        alphas=GRID,
        betas=GRID,
    )


def test_ray_shards_equal_the_in_process_surface(local_ray) -> None:
    torch.manual_seed(0)
    branchy = MultiBranchNet(5, 3, 4, 3, 1)  # rows independent: bitwise
    on_ray = cluster.run_surface(job(branchy), ray_address="auto", shard_rows=2)
    assert on_ray.backend.startswith("ray") and len(on_ray.computed) == 5
    np.testing.assert_array_equal(on_ray.surface, cluster.run_surface(job(branchy)).surface)
    torch.manual_seed(0)
    net = mlp(5, 3, [8], "tanh")
    on_ray = cluster.run_surface(job(net), ray_address="auto", shard_rows=3)
    np.testing.assert_array_equal(  # same shards in-process: bitwise
        on_ray.surface, cluster.run_surface(job(net), shard_rows=3).surface
    )
    np.testing.assert_allclose(on_ray.surface, cluster.run_surface(job(net)).surface, rtol=1e-6)


class DiesOnce(nn.Module):
    """An MLP whose worker process dies (``os._exit``) the first time any shard runs it: the
    marker file records that it happened once."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.net = mlp(5, 3, [8], "tanh")
        self.marker = marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not os.path.exists(self.marker):
            Path(self.marker).write_text("died")
            os._exit(1)
        return self.net(x)


def test_a_killed_worker_is_retried_and_nothing_is_lost(local_ray, tmp_path) -> None:
    import sys

    from ray import cloudpickle

    torch.manual_seed(0)
    model = DiesOnce(str(tmp_path / "died"))
    here = sys.modules[__name__]  # not importable by the workers: send DiesOnce by value
    cloudpickle.register_pickle_by_value(here)
    try:
        run = cluster.run_surface(
            job(model), ray_address="auto", shard_rows=3, checkpoint=tmp_path / "ck"
        )
    finally:
        cloudpickle.unregister_pickle_by_value(here)
    assert (tmp_path / "died").read_text() == "died"  # a worker did die mid-run
    assert len(list((tmp_path / "ck").glob("rows-*.npy"))) == 3
    in_process = cluster.run_surface(job(model), shard_rows=3)
    np.testing.assert_array_equal(run.surface, in_process.surface)


def test_a_sweep_on_ray_equals_the_in_process_sweep(local_ray) -> None:
    config = branch_gap.Config(branch_counts=(1, 3), restarts=2, steps=40, n=8)
    branch_gap.primal_restarts.cache_clear()
    here = branch_gap.run(config)
    branch_gap.primal_restarts.cache_clear()
    with cluster.compute_on("auto"):
        there = branch_gap.run(config)
    np.testing.assert_array_equal(there.primal_restarts, here.primal_restarts)
    assert cluster.compute_location() is None


def test_cli_surface_on_ray(local_ray, tmp_path) -> None:
    torch.manual_seed(0)
    model = mlp(5, 3, [8], "tanh").eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (torch.zeros(4, 5),), dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "model.pt2")  # reloaded by every worker
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", X=rng.standard_normal((30, 5)), y=rng.integers(0, 3, 30))
    common = ["surface", "--model", str(tmp_path / "model.pt2"), "--data"]
    common += [str(tmp_path / "data.npz"), "--loss", "cross_entropy", "--resolution", "7"]
    common += ["--shard-rows", "2", "--no-progress", "--threads", "1"]
    assert cli.main([*common, "--out", str(tmp_path / "here.npz")]) == 0
    assert cli.main([*common, "--out", str(tmp_path / "ray.npz"), "--ray", "auto"]) == 0
    here = surface_files.load_surface((tmp_path / "here.npz").read_bytes())
    there = surface_files.load_surface((tmp_path / "ray.npz").read_bytes())
    assert there.metadata["backend"].startswith("ray") and there.metadata["shards"] == 4
    np.testing.assert_array_equal(there.loss, here.loss)
