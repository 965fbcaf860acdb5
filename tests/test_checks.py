"""One rule for argument checks: the same value is refused the same way everywhere."""

from __future__ import annotations

import math

import pytest

from contrast.checks import ConfigError, boolean, constructor_parameters, finite_number, int_at_least, one_of
from contrast.data import ContrastiveData, PairedData
from contrast.methods import SimCLR
from contrast.models.momentum import Queue


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


@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_boolean_refuses_what_is_not_true_or_false(value):
    with pytest.raises(ConfigError, match=rf"^nesterov must be true or false, got {value!r}$") as error:
        boolean("nesterov", value)
    assert error.value.argument == "nesterov" and boolean("nesterov", False) is False


def test_constructor_parameters_follow_kwargs_to_the_bases_and_stop_where_the_chain_ends():
    import inspect

    class Root:
        def __init__(self, hidden: int = 0) -> None: ...

    class Base(Root):
        def __init__(self, lr: float = 0.1, width: int = 8) -> None: ...

    class Method(Base):
        def __init__(self, width: int = 16, *args, **kwargs) -> None: ...

    found = constructor_parameters(Method)
    assert list(found) == ["width", "lr"]  # Root is not reached: Base takes no **kwargs
    assert found["width"].default == 16 and found["lr"].default == 0.1  # the nearest class's default
    assert constructor_parameters(Base)["width"].default == 8
    assert all(isinstance(p, inspect.Parameter) for p in found.values())


@pytest.mark.parametrize(
    "given, argument",
    [
        (dict(nesterov=1), "nesterov"),
        (dict(weight_decay=True), "weight_decay"),
        (dict(num_classes=True), "num_classes"),
        (dict(num_classes=1), "num_classes"),
        (dict(warmup_epochs=math.nan), "warmup_epochs"),
    ],
)
def test_a_method_names_the_bad_argument(given, argument):
    with pytest.raises(ConfigError) as error:
        SimCLR(backbone="tiny_cnn", **given)
    assert error.value.argument == argument, error.value


def test_a_queue_of_a_bool_size_is_refused_by_name():
    with pytest.raises(ConfigError, match="^size must be a positive int, got True$"):
        Queue(True, 8)
