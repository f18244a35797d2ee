"""The shared input checks: each error names the field, the value and the allowed range."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from landscape.engine.validation import check_choice, check_integer, check_integers, check_number


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, 11.0, True, "3", None, 10**400])
def test_check_number_rejects(value) -> None:
    with pytest.raises(ValueError, match=r"^gamma must be (a number )?in \[0, 10\], got "):
        check_number("gamma", value, 0, 10)


@given(st.floats(0, 10))
def test_check_number_accepts_the_closed_range(value: float) -> None:
    assert check_number("gamma", value, 0, 10) == value


@pytest.mark.parametrize("value", [1.5, 0, 9, True, "two", None, 3.0, 10**30, math.inf])
def test_check_integer_rejects(value) -> None:
    with pytest.raises(ValueError, match=r"^depth must be an integer in \[1, 8\], got "):
        check_integer("depth", value, 1, 8)


def test_check_integer_without_upper_bound() -> None:
    assert check_integer("n", 4, 1) == 4
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 4.0"):
        check_integer("n", 4.0, 1)  # a float batch size or width reaches code that loops on it
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        check_integer("n", 0, 1)


def test_check_integers_and_choice() -> None:
    assert check_integers("I", [1, 2, 4], 1, 64, 6) == (1, 2, 4)
    with pytest.raises(ValueError, match="I must hold 1 to 6 distinct integers in"):
        check_integers("I", [1, 1], 1, 64, 6)
    with pytest.raises(ValueError, match=r"loss must be one of \('squared', 'hinge'\), got 'l1'"):
        check_choice("loss", "l1", ("squared", "hinge"))
