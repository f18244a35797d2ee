"""The Connectivity study end to end: its run, its sweeps, run files, the command line, figures."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import plotly.graph_objects as go
import pytest

from landscape import cli
from landscape.files import results
from landscape.studies.connectivity import barrier_vs_branches, barrier_vs_width, figures
from landscape.studies.connectivity import connectivity as study
from landscape.studies.connectivity.sweeps import settles_at

SMALL = study.Config(
    width=16, pairs=2, epochs=3, points=9, curve_steps=30, plane_resolution=7, device="cpu"
)


@pytest.fixture(scope="module")
def result() -> study.Result:
    return study.run(SMALL)


def test_the_aligned_line_joins_the_same_two_functions(result: study.Result) -> None:
    """A permutation changes no output, so the aligned line's end points have the line's
    losses; the barrier is the height above the chord, measured on the grid."""
    assert result.output_change < 1e-4
    np.testing.assert_allclose(
        result.aligned_train_loss[[0, -1]], result.line_train_loss[[0, -1]], rtol=1e-5
    )
    np.testing.assert_allclose(
        result.aligned_test_loss[[0, -1]], result.line_test_loss[[0, -1]], rtol=1e-5
    )
    ts, line = result.ts, result.line_train_loss
    chord = (1 - ts) * line[0] + ts * line[-1]
    assert result.barrier_none[SMALL.seed_pair] == pytest.approx(np.max(line - chord))
    np.testing.assert_allclose(result.endpoint_train_loss[SMALL.seed_pair], line[[0, -1]])


def test_every_pairs_line_gives_its_barrier(result: study.Result) -> None:
    """The band's lines are each seed pair's own: their barriers are the pair's barriers."""
    ts, k = result.ts, SMALL.seed_pair
    np.testing.assert_array_equal(result.pair_line_train_loss[k], result.line_train_loss)
    np.testing.assert_array_equal(result.pair_aligned_test_loss[k], result.aligned_test_loss)
    for lines, barriers in (
        (result.pair_line_train_loss, result.barrier_none),
        (result.pair_aligned_train_loss, result.barrier_weights),
        (result.pair_line_test_loss, result.test_barrier_none),
    ):
        for pair, barrier in zip(lines, barriers, strict=True):
            chord = (1 - ts) * pair[0] + ts * pair[-1]
            assert barrier == pytest.approx(np.max(pair - chord))


def test_the_curve_keeps_its_end_points_and_the_plane_holds_them(result: study.Result) -> None:
    np.testing.assert_allclose(
        result.curve_train_loss[[0, -1]], result.line_train_loss[[0, -1]], rtol=1e-5
    )
    np.testing.assert_allclose(result.curve_xy[0], result.plane_anchors[0], atol=1e-9)
    np.testing.assert_allclose(result.curve_xy[-1], result.plane_anchors[1], rtol=1e-9)
    assert result.plane_loss.shape == (SMALL.plane_resolution,) * 2
    assert result.training_loss.shape == (SMALL.pairs, 2, SMALL.epochs + 1)
    assert np.all(result.training_loss[:, :, -1] < result.training_loss[:, :, 0])


def test_accuracy_along_the_line_is_a_share_of_rows(result: study.Result) -> None:
    for name in ("line_train_accuracy", "line_test_accuracy", "aligned_test_accuracy"):
        values = getattr(result, name)
        assert values.shape == result.ts.shape and np.all((values >= 0) & (values <= 1))


def test_a_run_file_round_trips(result: study.Result) -> None:
    text = results.run_file(study.__name__, SMALL, result)
    config, loaded = results.load_run_file(text, study)
    assert config == SMALL
    for f in dataclasses.fields(study.Result):
        np.testing.assert_array_equal(getattr(loaded, f.name), getattr(result, f.name))


def test_regression_has_no_accuracy_and_no_curve_when_asked() -> None:
    config = dataclasses.replace(SMALL, dataset="regression", curve=False, pairs=1, epochs=2)
    out = study.run(config)
    assert not out.classification and out.line_train_accuracy.size == 0
    assert out.curve_train_loss.size == 0 and out.plane_loss.size == 0
    results.load_run_file(results.run_file(study.__name__, config, out), study)


def test_multi_branch_networks_are_aligned_without_changing_their_function() -> None:
    config = dataclasses.replace(SMALL, architecture="branches", branches=3, width=6, curve=False)
    out = study.run(config)
    assert out.output_change < 1e-4
    np.testing.assert_allclose(
        out.aligned_train_loss[[0, -1]], out.line_train_loss[[0, -1]], rtol=1e-5
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("width", 1), ("pairs", 0), ("seed_pair", 5), ("alignment", "both"), ("dataset", "cifar")],
)
def test_bad_fields_are_named(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(SMALL, **{field: value}).validate()


def test_settles_at_is_the_first_value_within_the_spread() -> None:
    values = np.array([8.0, 32.0, 128.0])
    ends = np.array([[[1.0, 1.2]] * 2, [[1.0, 1.2]] * 2, [[1.0, 1.2]] * 2])  # spread ~0.115
    aligned = np.array([[0.5, 0.4], [0.1, 0.12], [0.05, 0.01]])
    assert settles_at(values, aligned, ends) == 32.0
    assert np.isnan(settles_at(values, aligned + 1.0, ends))


def test_the_width_sweep_measures_every_width_and_pair() -> None:
    config = barrier_vs_width.Config(widths=(4, 8), pairs=2, epochs=2, points=5, device="cpu")
    out = barrier_vs_width.run(config)
    assert out.barrier_none.shape == (2, 2) and out.endpoint_loss.shape == (2, 2, 2)
    assert np.all(np.isfinite(out.barrier_weights))
    results.load_run_file(
        results.run_file(barrier_vs_width.__name__, config, out), barrier_vs_width
    )


def test_the_cli_sweep_over_branches_writes_a_run_file_the_page_loads(tmp_path) -> None:
    out = tmp_path / "branches.json"
    argv = ["sweep", "barrier-vs-branches", "--out", str(out), "--no-progress"]
    params = [
        "--branch-counts",
        "1,2",
        "--width",
        "4",
        "--pairs",
        "2",
        "--epochs",
        "2",
        "--points",
        "5",
    ]
    assert cli.main([*argv, *params, "--device", "cpu"]) == 0
    config, loaded = results.load_run_file(out.read_bytes(), barrier_vs_branches)
    assert config.branch_counts == (1, 2) and config.width == 4
    direct = barrier_vs_branches.run(config)
    np.testing.assert_allclose(loaded.barrier_none, direct.barrier_none, rtol=1e-6)
    assert json.loads(out.read_text())["study"] == barrier_vs_branches.__name__


def test_every_figure_draws_and_the_plane_has_one_colour_axis(result: study.Result) -> None:
    for fig in (
        figures.paths(result, "weights"),
        figures.barriers(result),
        figures.plane(result, "weights"),
    ):
        assert isinstance(fig, go.Figure) and len(fig.data) > 0
    plane = figures.plane(result, "none")
    scaled = [t for t in plane.data if getattr(t, "coloraxis", None)]
    assert len(scaled) == 1 and plane.layout.coloraxis.colorbar.title.text
