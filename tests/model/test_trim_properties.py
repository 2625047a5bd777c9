"""Trimming by ids, on random left-padded batches built with the tiny tokenizer."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.model.generation import trim_generated
from harness.model.loading import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tiny_snapshot):
    return load_tokenizer(str(tiny_snapshot))


def _rows(vocab_size):
    ids = st.lists(st.integers(min_value=0, max_value=vocab_size - 1), max_size=30)
    return st.lists(st.tuples(ids, ids), min_size=1, max_size=5)


@given(data=st.data())
def test_answer_is_the_decode_of_the_generated_ids_alone(tokenizer, data):
    rows = data.draw(_rows(len(tokenizer)))
    pad = tokenizer.pad_token_id
    width = max(len(prompt) for prompt, _ in rows)
    new = max(len(gen) for _, gen in rows)
    # Left-pad prompts to one width; right-fill generations with padding, as
    # generate does after a row has emitted EOS.
    batch = [[pad] * (width - len(p)) + p + g + [pad] * (new - len(g)) for p, g in rows]
    answers = trim_generated(batch, width, tokenizer.decode)
    assert answers == [tokenizer.decode(g, skip_special_tokens=True) for _, g in rows]


@given(st.text(max_size=40), st.text(min_size=1, max_size=3))
def test_stop_cut_never_contains_the_stop(tokenizer, text, stop):
    ids = tokenizer.encode(text)
    [answer] = trim_generated([ids], 0, tokenizer.decode, stop=(stop,))
    full = tokenizer.decode(ids, skip_special_tokens=True)
    assert stop not in answer and full.startswith(answer)
