"""The tolerant oracle's rule, on traces whose every token is one letter (EOS is id 0)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.gate.tolerance import Rule, Trace, agree

TOLERANT = Rule(exact=False, k=3, margin=0.5)


def decode(ids):
    return "".join(chr(ord("a") + i - 1) for i in ids if i != 0)


def trace(ids, alternatives):
    """Greedy ``ids``; at each step the chosen token at log-probability -0.1 and the
    step's ``alternatives`` [(id, logprob), ...] after it, best first."""
    return Trace(
        tuple(ids),
        tuple((i, *(a for a, _ in alt)) for i, alt in zip(ids, alternatives)),
        tuple((-0.1, *(lp for _, lp in alt)) for alt in alternatives),
    )


# "abcd": at step 2 "x" (id 24) is a near-tie, "y" (id 25) second but 2 nats down;
# at step 1 EOS is a near-tie.
TRACE = trace([1, 2, 3, 4], [[], [(0, -0.3)], [(24, -0.2), (25, -2.1)], []])


def test_the_reference_answer_agrees_exactly_under_both_rules():
    for rule in (Rule(), TOLERANT):
        result = agree("abcd", TRACE, decode, rule=rule)
        assert result.ok and result.exact and result.describe() == "equal"


def test_a_near_tie_divergence_is_accepted_and_nothing_after_it_is_compared():
    for suffix in ("", "q", "zzzz"):
        result = agree("abx" + suffix, TRACE, decode, rule=TOLERANT)
        assert result.ok and not result.exact and result.step == 2
        assert result.gap == pytest.approx(0.1)
    assert not agree("abx", TRACE, decode, rule=Rule()).ok  # exact refuses the same text


def test_a_token_outside_the_margin_or_the_top_k_is_refused():
    assert not agree("aby", TRACE, decode, rule=TOLERANT).ok  # 2 nats below the greedy token
    assert agree("aby", TRACE, decode, rule=Rule(exact=False, k=3, margin=2.5)).ok
    assert not agree("abq", TRACE, decode, rule=TOLERANT).ok  # not among the top k at all
    assert not agree("abx", TRACE, decode, rule=Rule(exact=False, k=1, margin=0.5)).ok
    assert not agree("qbcd", TRACE, decode, rule=TOLERANT).ok  # differs before any near-tie


def test_a_branch_on_eos_must_end_there():
    assert agree("a", TRACE, decode, rule=TOLERANT, eos=(0,)).ok
    assert not agree("aq", TRACE, decode, rule=TOLERANT, eos=(0,)).ok


def test_running_past_the_reference_is_refused():
    assert not agree("abcde", TRACE, decode, rule=TOLERANT, eos=(0,)).ok


def test_stop_strings_cut_the_branch_as_they_cut_the_reference():
    assert agree("ab", TRACE, decode, stop=("c",), rule=Rule()).ok
    assert agree("abxq", TRACE, decode, stop=("c",), rule=TOLERANT).ok  # no "c" in the branch
    assert not agree("abxc", TRACE, decode, stop=("c",), rule=TOLERANT).ok  # a stop left in
    # The branch's text is "abx": a stop starting at its "x" ("xq" may complete after it)
    # leaves "ab", which the greedy path with that stop never gives.
    assert agree("ab", TRACE, decode, stop=("xq",), rule=TOLERANT).ok
    assert not agree("ab", TRACE, decode, stop=("q",), rule=TOLERANT).ok


def test_a_rule_outside_its_ranges_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="k=0 is invalid: allowed 1-20"):
        Rule(exact=False, k=0)
    with pytest.raises(ValueError, match=r"margin=-1 is invalid: allowed \[0, 10\]"):
        Rule(exact=False, margin=-1)


def test_exact_on_float32_on_a_cpu_only():
    assert Rule.for_runtime("cpu", "float32").exact
    assert not Rule.for_runtime("cpu", "bfloat16").exact
    assert not Rule.for_runtime("cuda", "float32").exact


_ids = st.lists(st.integers(1, 20), min_size=1, max_size=12)


@given(_ids, st.data())
def test_any_near_tie_branch_with_any_continuation_agrees(ids, data):
    step = data.draw(st.integers(0, len(ids) - 1))
    other = data.draw(st.integers(1, 26).filter(lambda t: t != ids[step]))
    gap = data.draw(st.floats(0, 0.5))
    alternatives = [[] for _ in ids]
    alternatives[step] = [(other, -0.1 - gap)]
    tail = data.draw(st.text("abcdefghijklmnopqrstuvwxyz", max_size=8))
    got = decode([*ids[:step], other]) + tail
    assert agree(got, trace(ids, alternatives), decode, rule=TOLERANT).ok


@given(_ids, st.data())
def test_a_change_with_no_near_tie_never_agrees(ids, data):
    step = data.draw(st.integers(0, len(ids) - 1))
    other = data.draw(st.integers(1, 26).filter(lambda t: t != ids[step]))
    got = decode([*ids[:step], other]) + data.draw(st.text("abc", max_size=4))
    alternatives = [[(other, -0.1 - 0.6)] if i == step else [] for i in range(len(ids))]
    assert not agree(got, trace(ids, alternatives), decode, rule=TOLERANT).ok
