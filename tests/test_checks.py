"""One rule for argument checks: the same value is refused the same way everywhere."""

from __future__ import annotations

import math

import pytest

from contrast.checks import finite_number, int_at_least, one_of
from contrast.data import ContrastiveData, PairedData


@pytest.mark.parametrize("value", [True, False, 1.0, "2", None, 1])
def test_int_at_least_refuses_bools_floats_strings_and_small_ints(value):
    with pytest.raises(ValueError, match=rf"^batch_size must be an int >= 2 \(why\), got {value!r}$"):
        int_at_least("batch_size", value, 2, why="why")


def test_int_at_least_accepts_ints_and_none_when_optional():
    assert int_at_least("k", 3) == 3 and int_at_least("n", None, 2, optional=True) is None
    with pytest.raises(ValueError, match="^k must be a positive int, got 0$"):
        int_at_least("k", 0)
    with pytest.raises(ValueError, match="^n must be None or an int >= 2, got 1$"):
        int_at_least("n", 1, 2, optional=True)


@pytest.mark.parametrize("value", [True, math.nan, math.inf, -1.0, 0, "0.1"])
def test_finite_number_refuses_bools_non_finite_and_out_of_range(value):
    with pytest.raises(ValueError, match="^lr must be a finite number > 0, got"):
        finite_number("lr", value, minimum=0, strictly=True)
    assert finite_number("lr", 0.5, minimum=0, strictly=True) == 0.5 and finite_number("wd", 0, minimum=0) == 0.0


def test_one_of_names_the_choices():
    with pytest.raises(ValueError, match=r"^views must be one of \('cpu', 'batched'\), got 'gpu'$"):
        one_of("views", "gpu", ("cpu", "batched"))


@pytest.mark.parametrize("data_class", [ContrastiveData, PairedData])
def test_both_data_modules_refuse_a_bool_batch_size(data_class):
    """ContrastiveData took batch_size=True (an int to Python) where PairedData refused it."""
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 2 \(contrastive losses need negatives\)"):
        data_class(batch_size=True)
