"""Every numeric (and every other) Config field of every study, given extreme or wrong values:
``run`` ends in a ValueError naming the field, or in a Result that is finite or says why not
(``diverged``/``message``), within a time bound. Small configurations keep a successful run fast.
"""

from __future__ import annotations

import dataclasses
import math
import signal
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from landscape.files import results
from landscape.studies.beyond import budget, exact, gram_depth, skips
from landscape.studies.branches import branch_gap, branches
from landscape.studies.lab import lab
from landscape.studies.linear_duality import linear_duality
from landscape.studies.shallow_relu import single_neuron, two_layer
from landscape.studies.width import depth_sweep, width, width_sweep

SECONDS = 90  # a run of a small configuration takes seconds; this catches a hang

SMALL = {
    linear_duality: linear_duality.Config(
        n=12, steps=10, restarts=1, init_scales=(0.3,), slice_resolution=5, sweep_points=5
    ),
    single_neuron: single_neuron.Config(
        n=20, n_test=10, d=3, iterations=10, seeds=2, slice_resolution=5
    ),
    two_layer: two_layer.Config(n=6, restarts=1, width_count=1, steps=10, grid=5),
    width: width.Config(n=8, input_dim=3, depth=2, width=16, iterations=5),
    width_sweep: width_sweep.Config(
        n=8, input_dim=3, depth=2, iterations=5, min_width=16, max_width=32
    ),
    depth_sweep: depth_sweep.Config(
        n=8,
        input_dim=3,
        depths=(2,),
        iterations=5,
        min_width=16,
        max_width=32,
        concentration_max_width=64,
        samples=1,
    ),
    branches: branches.Config(
        branch_counts=(1, 2),
        width=2,
        dataset="moons",
        n_samples=20,
        epochs=1,
        batch_size=0,
        resolution=5,
        seeds=1,
        hessian_iterations=2,
    ),
    branch_gap: branch_gap.Config(branch_counts=(1, 2), n=6, restarts=1, steps=5),
    lab: lab.Config(
        branches=2, width=2, epochs=2, resolution=5, curvature_resolution=0, lanczos_iterations=2
    ),
    # budgets of 20 and 60 parameters: some families cannot fit them (NaN by design, said)
    budget: budget.Config(
        n_train=20,
        n_test=20,
        budgets=(20, 60),
        branch_counts=(4,),
        seeds=1,
        steps=10,
        convex_betas=(1.0,),
        convex_gates=5,
    ),
    skips: skips.Config(
        max_blocks=1,
        resnet_width=2,
        n=20,
        restarts=2,
        measured=1,
        steps=10,
        resolution=5,
        hessian_iterations=3,
        sweep_widths=(2,),
        sweep_classes=(1, 7),
    ),
    # the ResNet has no depth 1: lambda_min is NaN there by design (said)
    gram_depth: gram_depth.Config(
        n=4, input_dim=3, max_depth=3, mc_width=16, mc_depth=2, mc_draws=2
    ),
    exact: exact.Config(
        n_points=3,
        n_signals=3,
        n_images=10,
        image_patterns=3,
        restarts=1,
        steps=10,
        subnetworks=1,
        inner_width=1,
        filters=1,
    ),
}
STUDIES = list(SMALL)
IDS = [s.__name__.rsplit(".", 1)[-1] for s in STUDIES]

EXTREME_INTS = [0, 1, 2, -1, -(2**63), 2**63, 2**31, 10**12, 10**30, 10**400, 3 * 10**6]
EXTREME_FLOATS = [0.0, -0.0, 0.5, 1.0, 3.0, 1e-300, 1e-12, 1e12, 1e308, -1e308]
EXTREME_FLOATS += [math.inf, -math.inf, math.nan, 5e-324]
WRONG_TYPES = ["abc", "", None, [], [1, 2], (1.0, 2.0), (), b"x", {}, True, False, 1j]
HOSTILE = st.sampled_from(EXTREME_INTS + EXTREME_FLOATS + WRONG_TYPES) | st.integers(
    min_value=-(10**20), max_value=10**20
)
HOSTILE = HOSTILE | st.floats(allow_nan=True, allow_infinity=True)
HOSTILE = HOSTILE | st.tuples(st.sampled_from(EXTREME_INTS + EXTREME_FLOATS))
# and plausible values, so that many configurations pass validation and actually run
HOSTILE = HOSTILE | st.integers(0, 8) | st.floats(0.0, 2.0) | st.sampled_from([(1, 2), (2,)])


def near(config, name: str):
    """Values next to the small configuration's own (they mostly pass validation and run)."""
    value = getattr(config, name)
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.sampled_from([value, max(value - 1, 0), value + 1, 2 * value])
    if isinstance(value, float):
        return st.sampled_from([value, value / 2, 2 * value, 0.0])
    return st.just(value)


class Hang(Exception):
    """A run passed the time bound."""


@contextmanager
def time_bound(seconds: int):
    def stop(signum, frame):
        raise Hang(f"run took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


#: NaN that a Result gives for a quantity its study does not compute, and the field that says
#: so: the Lab's exact trace above its `EXACT_LIMIT` parameters (no exact eigenvalues then).
NOT_COMPUTED = {"exact_trace": lambda arrays: arrays["exact_eigenvalues"].size == 0}


def honest(result) -> None:
    """Finite, or the Result says it is not (a divergence flag, a message, or a quantity of
    `NOT_COMPUTED` that was not computed)."""
    arrays = results.result_to_arrays(result)
    flags = [a for n, a in arrays.items() if "diverged" in n and a.dtype == bool]
    said = any(bool(np.any(a)) for a in flags) or bool(str(arrays.get("message", "")).strip())
    for name, array in arrays.items():
        if array.dtype.kind != "f" or (name in NOT_COMPUTED and NOT_COMPUTED[name](arrays)):
            continue
        bad = np.isnan(array) if name.endswith("bound") else ~np.isfinite(array)
        # (an infinite bound is a true one: "lambda_min >= -inf" when Lanczos promises nothing)
        assert said or not bad.any(), f"{name} holds NaN/inf but the result does not say why"


def outcome(study, config) -> str:
    """'refused' (ValueError with a message) or 'ran' (an honest Result); anything else fails."""
    try:
        with time_bound(SECONDS):
            result = study.run(config)
    except ValueError as error:
        assert len(str(error)) > 10
        return "refused"
    assert isinstance(result, study.Result)
    honest(result)
    return "ran"


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES, ids=IDS)
def test_the_small_configurations_run(study) -> None:
    assert outcome(study, SMALL[study]) == "ran"


def test_a_lab_model_above_the_exact_limit_runs_with_its_exact_trace_not_computed() -> None:
    """13 branches of width 2 on the digits have more than `EXACT_LIMIT` parameters: the exact
    trace is NaN (the page says "model too large") and no exact eigenvalues are kept; the fuzz
    test found it."""
    config = dataclasses.replace(SMALL[lab], branches=13)
    result = lab.run(config)
    assert not result.centre_exact  # Lanczos at the centre, not the dense Hessian
    assert np.isnan(result.exact_trace) and result.exact_eigenvalues.size == 0
    assert np.isfinite(result.hutchpp_trace) and not result.diverged and not result.message
    honest(result)


REPORTED = [
    (linear_duality, {"n": 10**30}),
    (lab, {"seed": math.inf}),
    (branches, {"batch_size": 3.0}),
    (linear_duality, {"hidden_width": 10**6}),
    (width, {"width": 10**9}),
    (width, {"width": 8192, "depth": 20, "n": 512, "iterations": 20_000}),
    (single_neuron, {"iterations": 100_000, "seeds": 200, "n": 20_000, "d": 500}),
    (branches, {"epochs": 1000, "n_samples": 100_000, "width": 512, "seeds": 10}),
    (lab, {"branches": 256, "width": 512, "depth": 4, "resolution": 101, "epochs": 5000}),
    (depth_sweep, {"depths": (2, 20), "max_width": 8192, "iterations": 20_000}),
    (depth_sweep, {"n": 512, "concentration_max_width": 2**20}),
    (two_layer, {"seed": -1}),
    (branch_gap, {"branch_counts": 5}),
    (branch_gap, {"restarts": 512, "steps": 100_000, "n": 60, "branch_counts": (256, 128, 64)}),
]


@pytest.mark.parametrize(("study", "changes"), REPORTED, ids=[str(c) for _, c in REPORTED])
def test_reported_configurations_are_refused_with_the_field_named(study, changes) -> None:
    config = dataclasses.replace(SMALL[study], **changes)
    with pytest.raises(ValueError) as error:
        config.validate()
    named = [field for field in changes if field.split("_")[0] in str(error.value)]
    assert named or "would cost" in str(error.value), str(error.value)


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES, ids=IDS)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_value_of_any_field_is_refused_or_runs_honestly(study, data) -> None:
    fields = [f.name for f in dataclasses.fields(study.Config)]
    chosen = data.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=2, unique=True))
    changes = {name: data.draw(HOSTILE | near(SMALL[study], name), label=name) for name in chosen}
    config = dataclasses.replace(SMALL[study], **changes)
    event(outcome(study, config))  # --hypothesis-show-statistics counts refused and ran
