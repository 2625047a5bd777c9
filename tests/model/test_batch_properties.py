"""Greedy answers in a left-padded batch equal the single-row answers."""

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.model.generation import Request
from harness.model.settings import GenerationSettings

words = st.sampled_from(["What", "is", "MLflow", "machine", "learning", "東京", "🎉", "poem", "route", "?", "\n", "  "])
instruction = st.lists(words, min_size=1, max_size=25).map(" ".join).filter(str.strip)


@settings(max_examples=15)
@given(st.lists(instruction, min_size=2, max_size=4), st.integers(min_value=1, max_value=8))
def test_batched_greedy_equals_single_row(generator, instructions, max_tokens):
    greedy = GenerationSettings(temperature=0, max_tokens=max_tokens)
    batched = generator.generate([Request(i, greedy) for i in instructions])
    singles = [generator.generate([Request(i, greedy)])[0] for i in instructions]
    assert batched == singles
