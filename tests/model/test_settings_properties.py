import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.model.settings import GenerationSettings, InvalidParameter, check_max_tokens

valid_temperature = st.floats(min_value=0.0, max_value=2.0, allow_nan=False)
invalid_temperature = st.floats(allow_nan=True, allow_infinity=True).filter(lambda t: not (0.0 <= t <= 2.0))


@given(valid_temperature, st.integers(min_value=1, max_value=4096))
def test_in_range_settings_are_accepted(temperature, max_tokens):
    settings = GenerationSettings(temperature=temperature, max_tokens=max_tokens)
    kwargs = settings.generate_kwargs()
    assert kwargs["max_new_tokens"] == max_tokens
    assert kwargs["do_sample"] is (temperature > 0)


@given(invalid_temperature)
def test_out_of_range_temperature_is_rejected_naming_it(temperature):
    with pytest.raises(InvalidParameter) as info:
        GenerationSettings(temperature=temperature)
    assert info.value.field == "temperature" and "temperature" in str(info.value)


@given(
    st.integers(max_value=0)
    | st.floats(allow_nan=True).filter(lambda x: not (math.isfinite(x) and x >= 1 and x.is_integer()))
)
def test_out_of_range_max_tokens_is_rejected_naming_it(max_tokens):
    with pytest.raises(InvalidParameter) as info:
        GenerationSettings(max_tokens=max_tokens)
    assert info.value.field == "max_tokens"


@given(st.integers(min_value=1, max_value=2048), st.integers(min_value=1, max_value=4096))
def test_context_limit_is_exact(limit, max_tokens):
    if max_tokens <= limit:
        assert check_max_tokens(max_tokens, limit) == max_tokens
    else:
        with pytest.raises(InvalidParameter, match=f"\\[1, {limit}\\]"):
            check_max_tokens(max_tokens, limit)
