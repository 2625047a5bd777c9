import math

import numpy as np
import pytest

from harness.model.settings import (
    GenerationSettings,
    InvalidParameter,
    check_max_tokens,
    check_stop,
    check_temperature,
)


@pytest.mark.parametrize("value", [-1, -0.01, 2.01, 3, math.nan, math.inf, -math.inf, "0.5", None, True])
def test_temperature_out_of_range_names_field_value_and_range(value):
    with pytest.raises(InvalidParameter) as info:
        check_temperature(value)
    assert info.value.field == "temperature"
    assert "temperature=" in str(info.value) and "[0, 2]" in str(info.value)


@pytest.mark.parametrize("value", [0, 0.0, 1, 2, np.float64(0.7)])
def test_temperature_in_range(value):
    assert check_temperature(value) == float(value)


@pytest.mark.parametrize("value", [0, -1, -3, 1.5, math.nan, "10", None, True])
def test_max_tokens_invalid(value):
    with pytest.raises(InvalidParameter, match="max_tokens"):
        check_max_tokens(value)


def test_max_tokens_beyond_context_names_the_room_left():
    with pytest.raises(InvalidParameter, match=r"max_tokens=500.*\[1, 400\]"):
        check_max_tokens(500, limit=400)


@pytest.mark.parametrize("value", [1, 100.0, np.int64(7)])
def test_max_tokens_valid(value):
    assert check_max_tokens(value) == int(value)


def test_stop_accepts_list_and_string():
    assert check_stop(["a", "b"]) == ("a", "b")
    assert check_stop("x") == ("x",)
    assert check_stop(None) == ()
    with pytest.raises(InvalidParameter, match="stop"):
        check_stop(["", "a"])
    with pytest.raises(InvalidParameter, match="stop"):
        check_stop(3)


def test_temperature_zero_is_greedy_and_never_passes_temperature():
    kwargs = GenerationSettings(temperature=0, max_tokens=5).generate_kwargs()
    assert kwargs == {"max_new_tokens": 5, "use_cache": True, "do_sample": False}


def test_positive_temperature_samples():
    kwargs = GenerationSettings(temperature=0.7, max_tokens=5).generate_kwargs()
    assert kwargs["do_sample"] is True and kwargs["temperature"] == 0.7


def test_settings_are_hashable_for_grouping():
    assert GenerationSettings(0, 5) == GenerationSettings(0.0, 5.0)
    assert len({GenerationSettings(0, 5), GenerationSettings(0.0, 5)}) == 1
