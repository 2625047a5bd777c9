import pytest

from harness.model.errors import quote
from harness.model.prompt import PromptError, validate_instruction
from harness.model.settings import InvalidParameter, check_stop


def test_short_values_are_quoted_whole():
    assert quote("hi") == "'hi'"
    assert quote(1.5) == "1.5"
    assert quote(None) == "None"
    assert quote("a" * 198) == repr("a" * 198)  # 200 characters with the quotes: not cut


def test_a_long_string_keeps_200_characters_and_states_its_length():
    quoted = quote("a" * 300_000)
    assert quoted == "'" + "a" * 199 + "…' (300000 characters)"


def test_a_long_non_string_states_the_length_of_its_repr():
    value = list(range(1000))
    quoted = quote(value, limit=20)
    assert quoted.startswith(repr(value)[:20] + "…")
    assert quoted.endswith(f"({len(repr(value))} characters in its repr)")


def test_limit_is_checked():
    with pytest.raises(ValueError, match="limit"):
        quote("x", limit=0)


def test_settings_and_prompt_errors_quote_at_most_200_characters():
    long = "b" * 300_000
    for error_type, call in [
        (InvalidParameter, lambda: check_stop([long, ""])),
        (PromptError, lambda: validate_instruction(" " * 300_000)),
        (PromptError, lambda: validate_instruction([long])),
    ]:
        with pytest.raises(error_type, match="stop|prompt") as info:
            call()
        message = str(info.value)
        assert len(message) < 400 and "characters" in message, message
