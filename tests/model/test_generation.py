import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.model.generation import Generator, Request, cut_at_stop, trim_generated
from harness.model.prompt import build_prompt
from harness.model.settings import GenerationSettings, InvalidParameter

GREEDY = GenerationSettings(temperature=0, max_tokens=6)


def _prompts_sent(call, tokenizer):
    return [tokenizer.decode(call.prompt_ids(r)) for r in range(len(call.input_ids))]


def test_every_row_answered_in_order_in_batches(generator, generate_spy, monkeypatch):
    monkeypatch.setattr(generator, "max_batch_size", 2)
    calls = generate_spy(generator.model)
    instructions = [f"question number {i}" for i in range(5)]
    answers = generator.generate([Request(i, GREEDY) for i in instructions])
    assert len(answers) == 5 and all(isinstance(a, str) for a in answers)
    assert [len(c.input_ids) for c in calls] == [2, 2, 1]
    sent = [p for c in calls for p in _prompts_sent(c, generator.tokenizer)]
    assert sent == [build_prompt(i) for i in instructions]
    singles = [generator.generate([Request(i, GREEDY)])[0] for i in instructions]
    assert answers == singles


def test_rows_with_different_settings_are_generated_in_groups(generator, generate_spy):
    calls = generate_spy(generator.model)
    requests = [
        Request("a", GenerationSettings(0, 3)),
        Request("b", GenerationSettings(0, 7)),
        Request("c", GenerationSettings(0, 3)),
    ]
    generator.generate(requests)
    by_tokens = {c.kwargs["max_new_tokens"]: _prompts_sent(c, generator.tokenizer) for c in calls}
    assert by_tokens == {3: [build_prompt("a"), build_prompt("c")], 7: [build_prompt("b")]}


def test_temperature_zero_is_greedy_and_repeatable(generator, generate_spy):
    calls = generate_spy(generator.model)
    first = generator.generate([Request("hello there", GREEDY)])
    second = generator.generate([Request("hello there", GREEDY)])
    assert first == second
    assert calls[0].kwargs["do_sample"] is False
    assert "temperature" not in calls[0].kwargs


def test_positive_temperature_samples(generator, generate_spy):
    calls = generate_spy(generator.model)
    generator.generate([Request("hello", GenerationSettings(0.8, 4))])
    assert calls[0].kwargs["do_sample"] is True and calls[0].kwargs["temperature"] == 0.8


def test_generate_runs_with_the_kv_cache_on(generator, generate_spy):
    calls = generate_spy(generator.model)
    generator.generate([Request("hello", GREEDY)])
    assert calls[0].kwargs["use_cache"] is True


def test_answers_are_exactly_the_ids_after_the_prompt(generator, generate_spy):
    calls = generate_spy(generator.model)
    answers = generator.generate([Request("short", GREEDY), Request("a much longer instruction", GREEDY)])
    output, width = calls[0].output, calls[0].width
    expected = [generator.tokenizer.decode(row[width:], skip_special_tokens=True) for row in output]
    assert answers == expected


def test_max_tokens_beyond_context_rejected_before_generating(generator, generate_spy):
    calls = generate_spy(generator.model)
    with pytest.raises(InvalidParameter, match="max_tokens"):
        generator.generate([Request("ok", GREEDY), Request("x", GenerationSettings(0, 10_000))])
    assert calls == []


def test_bad_row_fails_the_call_before_any_generation(generator, generate_spy):
    calls = generate_spy(generator.model)
    with pytest.raises(ValueError, match="prompt"):
        generator.generate([Request("fine", GREEDY), Request("   ", GREEDY)])
    assert calls == []


def test_stop_cuts_before_first_stop_sequence(generator):
    plain = generator.generate([Request("stop test", GenerationSettings(0, 12))])[0]
    assert len(plain) > 3
    stop = plain[2:4]
    cut = generator.generate([Request("stop test", GenerationSettings(0, 12, stop=(stop,)))])[0]
    assert cut == plain[: plain.find(stop)]


def test_trim_keeps_whitespace_and_skips_eos_padding():
    class Tok:
        special = {0}

        def decode(self, ids, skip_special_tokens=False):
            return "".join("" if (skip_special_tokens and i in self.special) else chr(96 + i) for i in ids)

    rows = [[0, 0, 5, 6, 1, 2, 0, 0], [7, 8, 9, 6, 3, 0, 0, 0]]
    assert trim_generated(rows, 4, Tok().decode) == ["ab", "c"]


def test_cut_at_stop_uses_earliest_match():
    assert cut_at_stop("abc###def\n", ["\n", "###"]) == "abc"
    assert cut_at_stop("abc", []) == "abc"


def test_context_length_comes_from_the_model(generator):
    assert generator.context_length == 512
    assert isinstance(generator, Generator)


@given(st.lists(st.text(min_size=1, max_size=60).filter(str.strip), min_size=1, max_size=4))
@settings(max_examples=40, deadline=None)
def test_one_tokenization_gives_exactly_the_tokenizers_ids_padded_as_it_pads(generator, texts):
    prompts = [build_prompt(t) for t in texts]
    assert generator.tokenize(texts) == generator.tokenizer(prompts)["input_ids"]
    padded, reference = generator.pad(generator.tokenize(texts)), generator.encode(texts)
    assert padded["input_ids"].tolist() == reference["input_ids"].tolist()
    assert padded["attention_mask"].tolist() == reference["attention_mask"].tolist()
