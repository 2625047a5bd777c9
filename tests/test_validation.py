"""The one validation layer: every refused setting names its field, says what is allowed and
quotes at most a short prefix of the value (never a value marked unquotable)."""

import ast
from typing import Annotated

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness._validation import ConfigError, DistinctInts, IntIn, Matching, Number, OneOf, settings, shown
from harness.serving.route import RouteError, RouteSpec, routes_from_gateway_yaml


@settings()
class _Probe:
    count: Annotated[int, IntIn(1, 64)] = 1
    levels: Annotated[tuple[int, ...], DistinctInts(1, 64)] = (1,)
    seconds: Annotated[float, Number(0.0, 3600.0)] = 1.0
    api: Annotated[str, OneOf(("a", "b"))] = "a"
    url: Annotated[str | None, Matching(r"^https?://", "an http(s) URL", quote=False)] = None


@given(st.integers(-(10**6), 10**6))
def test_an_int_is_taken_exactly_when_in_range(value):
    if 1 <= value <= 64:
        assert _Probe(count=value).count == value
    else:
        with pytest.raises(ConfigError) as caught:
            _Probe(count=value)
        assert caught.value.field == "count"
        assert str(caught.value) == f"count={value} is invalid: allowed 1-64"


@given(st.one_of(st.booleans(), st.text(max_size=300), st.floats(allow_nan=True), st.none()))
def test_what_is_not_an_int_is_refused_with_a_short_prefix(value):
    with pytest.raises(ConfigError) as caught:
        _Probe(count=value)
    assert str(caught.value) == f"count={shown(value)} is invalid: allowed 1-64"


@given(st.text(max_size=300))
def test_a_quoted_string_is_at_most_its_first_40_characters(text):
    quoted = ast.literal_eval(shown(text))  # a repr: escapes kept readable
    assert quoted == text or (quoted.endswith("…") and quoted[:-1] == text[:40])


@given(st.lists(st.integers(0, 70), max_size=6))
def test_levels_are_distinct_ints_in_range_and_lists_become_tuples(values):
    ok = bool(values) and len(set(values)) == len(values) and all(1 <= v <= 64 for v in values)
    if ok:
        assert _Probe(levels=values).levels == tuple(values)
    else:
        with pytest.raises(ConfigError, match=r"^levels=.* is invalid: allowed distinct integers in 1-64$"):
            _Probe(levels=values)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_a_number_is_finite_and_in_its_interval(value):
    if 0 < value <= 3600:
        assert _Probe(seconds=value).seconds == value
    else:
        with pytest.raises(ConfigError, match=r"allowed a number in \(0, 3600\]"):
            _Probe(seconds=value)


@given(st.text(min_size=1, max_size=200))
def test_an_unquotable_value_never_appears_in_the_message(text):
    if text.startswith(("http://", "https://")):
        return
    with pytest.raises(ConfigError) as caught:
        _Probe(url="ftp://" + text)
    assert str(caught.value) == "url is invalid: allowed an http(s) URL"


def test_long_values_are_cut_to_a_marked_prefix():
    assert shown("x" * 500) == repr("x" * 40 + "…")
    assert shown(12) == "12"


def test_a_refused_replace_is_refused_like_a_constructor():
    from dataclasses import replace

    with pytest.raises(ConfigError, match="^api='c' is invalid: allowed"):
        replace(_Probe(), api="c")


_SECRET = "dapi-0123456789abcdef"
_KEYS = st.sampled_from(["name", "provider", "config", "token", "endpoint_type", "model", "extra"])


@given(st.dictionaries(_KEYS, st.sampled_from([_SECRET, 3, None, [], {"k": _SECRET}]), max_size=4))
def test_a_route_entry_is_refused_by_name_without_echoing_what_it_holds(entry):
    with pytest.raises(RouteError) as caught:
        RouteSpec.from_dict({"name": "r", **entry} if "model" in entry else {"model": entry})
    assert _SECRET not in str(caught.value)
    assert caught.value.field


def test_a_gateway_file_without_endpoints_names_them():
    for text in ("", "endpoints: []", "endpoints: 3", "- a"):
        with pytest.raises(RouteError, match="endpoints") as caught:
            routes_from_gateway_yaml(text)
        assert caught.value.field == "endpoints"
