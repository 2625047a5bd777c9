import pickle

import pytest
import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
from transformers.generation.utils import GenerateDecoderOnlyOutput, GenerationMixin

from harness.gate.spy import GenerateSpy, Script, ScriptedFailure, ScriptUnsupported


def test_records_positional_and_keyword_calls(generator):
    spy = GenerateSpy(generator.model, pad_token_id=0)
    try:
        encoded = generator.encode(["hi", "a longer one"])
        generator.model.generate(
            encoded["input_ids"],
            attention_mask=encoded["attention_mask"],
            max_new_tokens=2,
            do_sample=False,
            pad_token_id=0,
        )
        call = spy.calls[0]
        assert call.input_ids == encoded["input_ids"].tolist()
        assert call.kwargs["max_new_tokens"] == 2 and "attention_mask" not in call.kwargs
        assert len(call.output[0]) == call.width + 2
        assert call.prompt_ids(0) == [t for t, m in zip(call.input_ids[0], call.attention_mask[0]) if m]
    finally:
        spy.remove()


def test_on_the_class_it_sees_every_model_and_each_forward_width(generator):
    spy = GenerateSpy(GenerationMixin, pad_token_id=0)
    try:
        encoded = generator.encode(["hi"])
        generator.model.generate(
            **encoded, max_new_tokens=4, min_new_tokens=4, do_sample=False, use_cache=True, pad_token_id=0
        )
        generator.model.generate(
            **encoded, max_new_tokens=3, min_new_tokens=3, do_sample=False, use_cache=False, pad_token_id=0
        )
        cached, uncached = spy.calls
        width = cached.width
        assert spy.model is generator.model
        assert cached.forward_widths == [width, 1, 1, 1]
        assert uncached.forward_widths == [width, width + 1, width + 2]
    finally:
        spy.remove()
    assert "generate" not in GenerationMixin.__dict__ or GenerationMixin.__dict__["generate"] is not spy._wrapper


def test_scripted_output_pads_rows_that_finish_early(generator):
    spy = GenerateSpy(generator.model, pad_token_id=0, decode=generator.tokenizer.decode)
    try:
        spy.reset(Script(by_marker=(("x", (5, 6, 0)), ("y z", (7,)))))
        encoded = generator.encode(["x", "y z"])
        out = generator.model.generate(**encoded, max_new_tokens=3)
        assert isinstance(out, torch.Tensor)
        assert out[:, encoded["input_ids"].shape[1] :].tolist() == [[5, 6, 0], [7, 0, 0]]
        assert spy.calls[0].scripted
    finally:
        spy.remove()


def test_a_script_can_raise_or_withhold_eos(generator):
    eos = generator.tokenizer.eos_token_id
    spy = GenerateSpy(generator.model, pad_token_id=0, eos_token_id=eos)
    try:
        encoded = generator.encode(["anything"])
        spy.reset(Script(raise_message="scripted failure"))
        with pytest.raises(ScriptedFailure, match="scripted failure"):
            generator.model.generate(**encoded, max_new_tokens=2)
        spy.reset(Script(suppress_eos=True))
        generator.model.generate(**encoded, max_new_tokens=20, do_sample=False, pad_token_id=0)
        assert len(spy.calls[0].new_ids(0)) == 20 and eos not in spy.calls[0].new_ids(0)
    finally:
        spy.remove()


def test_remove_restores_the_real_generate(generator):
    spy = GenerateSpy(generator.model, pad_token_id=0)
    spy.remove()
    assert "generate" not in generator.model.__dict__


# -- scripted generate behaves as generate does for what a wrapper passes ------------------


def _scripted(generator, *by_marker):
    spy = GenerateSpy(generator.model, pad_token_id=0, decode=generator.tokenizer.decode)
    spy.reset(Script(by_marker=tuple((m, tuple(ids)) for m, ids in by_marker)))
    return spy


def _streamed(generator, script_raises=False, **kwargs):
    """(text a reader thread got, what generate raised or None, whether the reader ended)."""
    import threading

    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(generator.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=10)
    raised = []

    def run():
        try:
            generator.model.generate(**generator.encode(["x"]), streamer=streamer, **kwargs)
        except Exception as error:  # noqa: BLE001 - the test looks at it
            raised.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    text = "".join(streamer)  # raises queue.Empty after 10 s if the streamer is never ended
    worker.join(timeout=10)
    return text, (raised or [None])[0], not worker.is_alive()


def test_a_streaming_reader_gets_the_scripted_text_and_never_hangs(generator):
    answer = generator.tokenizer.encode("The answer is 42.", add_special_tokens=False)
    eos = generator.tokenizer.eos_token_id
    spy = _scripted(generator, ("x", answer + [eos]))
    try:
        text, raised, ended = _streamed(generator, max_new_tokens=30)
        assert (text, raised, ended) == ("The answer is 42.", None, True)
        spy.reset(Script(raise_message="scripted failure"))
        text, raised, ended = _streamed(generator, max_new_tokens=30)
        assert text == "" and isinstance(raised, ScriptedFailure) and ended
        spy.reset(Script(by_marker=(("x", tuple(answer)),)))
        text, raised, ended = _streamed(generator, max_new_tokens=30, output_scores=True, return_dict_in_generate=True)
        assert text == "" and isinstance(raised, ScriptUnsupported) and ended
    finally:
        spy.remove()


class _StopAfter(StoppingCriteria):
    """Done once a row's last token is ``token``."""

    def __init__(self, token):
        self.token = token

    def __call__(self, input_ids, scores, **kwargs):
        return input_ids[:, -1] == self.token


def test_stopping_criteria_end_rows_and_then_the_call(generator):
    spy = _scripted(generator, ("x", (5, 6, 7, 8)), ("y z", (9, 10, 11, 12)))
    try:
        encoded = generator.encode(["x", "y z"])
        width = encoded["input_ids"].shape[1]
        out = generator.model.generate(
            **encoded, max_new_tokens=10, stopping_criteria=StoppingCriteriaList([_StopAfter(6)])
        )
        assert out[:, width:].tolist() == [[5, 6, 0, 0], [9, 10, 11, 12]]
        out = generator.model.generate(
            **encoded,
            max_new_tokens=10,  # a plain list works too
            stopping_criteria=[_StopAfter(6), _StopAfter(10)],
        )
        assert out[:, width:].tolist() == [[5, 6], [9, 10]]
        assert spy.calls[-1].output == out.tolist()
    finally:
        spy.remove()


def test_lengths_cut_the_script_as_generate_would(generator):
    spy = _scripted(generator, ("x", (5, 6, 7, 8)), ("y z", (9,)))
    try:
        encoded = generator.encode(["x", "y z"])
        width = encoded["input_ids"].shape[1]

        def new(**kwargs):
            return generator.model.generate(**encoded, **kwargs)[:, width:].tolist()

        assert new(max_new_tokens=2) == [[5, 6], [9, 0]]
        assert new(max_length=width + 3) == [[5, 6, 7], [9, 0, 0]]
        assert new(max_new_tokens=8, min_new_tokens=6) == [[5, 6, 7, 8, 0, 0], [9, 0, 0, 0, 0, 0]]
        assert new(generation_config=GenerationConfig(max_new_tokens=1)) == [[5], [9]]
        assert new() == [[5, 6, 7, 8], [9, 0, 0, 0]]  # generate's default: up to 20 new tokens
    finally:
        spy.remove()


def test_return_dict_in_generate_gives_sequences(generator):
    spy = _scripted(generator, ("x", (5, 6)))
    try:
        encoded = generator.encode(["x"])
        out = generator.model.generate(**encoded, max_new_tokens=4, return_dict_in_generate=True)
        assert isinstance(out, GenerateDecoderOnlyOutput)
        assert out.sequences[0, encoded["input_ids"].shape[1] :].tolist() == [5, 6]
    finally:
        spy.remove()


class _Ban(LogitsProcessor):
    def __init__(self, token):
        self.token = token

    def __call__(self, input_ids, scores):
        scores[:, self.token] = float("-inf")
        return scores


class _NeedsScores(StoppingCriteria):
    def __call__(self, input_ids, scores, **kwargs):
        return scores[0].argmax(dim=-1) == 0


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"output_scores": True, "return_dict_in_generate": True}, "output_scores=True"),
        ({"output_logits": True, "return_dict_in_generate": True}, "output_logits=True"),
        ({"num_beams": 2}, "num_beams=2"),
        ({"num_return_sequences": 2, "do_sample": True}, "num_return_sequences=2"),
        ({"logits_processor": LogitsProcessorList([_Ban(6)])}, "changes the scripted ids"),
        ({"prefix_allowed_tokens_fn": lambda batch, ids: [5]}, "changes the scripted ids"),
        ({"stopping_criteria": StoppingCriteriaList([_NeedsScores()])}, "fails without scores"),
    ],
)
def test_what_a_script_cannot_honour_is_recorded_and_raised(generator, kwargs, reason):
    spy = _scripted(generator, ("x", (5, 6)))
    try:
        with pytest.raises(ScriptUnsupported, match=reason):
            generator.model.generate(**generator.encode(["x"]), max_new_tokens=4, **kwargs)
        call = pickle.loads(pickle.dumps(spy.calls[-1]))  # as it crosses the worker's pipe
        assert call.scripted and reason in call.unsupported
    finally:
        spy.remove()


def test_a_logits_processor_that_keeps_the_scripted_ids_is_honoured(generator):
    spy = _scripted(generator, ("x", (5, 6)))
    try:
        encoded = generator.encode(["x"])
        out = generator.model.generate(**encoded, max_new_tokens=4, logits_processor=LogitsProcessorList([_Ban(7)]))
        assert out[0, encoded["input_ids"].shape[1] :].tolist() == [5, 6]
        assert spy.calls[-1].unsupported is None
    finally:
        spy.remove()
