import pytest
import torch
from transformers.generation.utils import GenerationMixin

from harness.gate.spy import GenerateSpy, Script, ScriptedFailure


def test_records_positional_and_keyword_calls(generator):
    spy = GenerateSpy(generator.model, pad_token_id=0)
    try:
        encoded = generator.encode(["hi", "a longer one"])
        generator.model.generate(encoded["input_ids"], attention_mask=encoded["attention_mask"],
                                 max_new_tokens=2, do_sample=False, pad_token_id=0)
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
        generator.model.generate(**encoded, max_new_tokens=4, min_new_tokens=4, do_sample=False,
                                 use_cache=True, pad_token_id=0)
        generator.model.generate(**encoded, max_new_tokens=3, min_new_tokens=3, do_sample=False,
                                 use_cache=False, pad_token_id=0)
        cached, uncached = spy.calls
        width = cached.width
        assert spy.model is generator.model
        assert cached.forward_widths == [width, 1, 1, 1]
        assert uncached.forward_widths == [width, width + 1, width + 2]
    finally:
        spy.remove()
    assert "generate" not in GenerationMixin.__dict__ or \
        GenerationMixin.__dict__["generate"] is not spy._wrapper


def test_scripted_output_pads_rows_that_finish_early(generator):
    spy = GenerateSpy(generator.model, pad_token_id=0, decode=generator.tokenizer.decode)
    try:
        spy.reset(Script(by_marker=(("x", (5, 6, 0)), ("y z", (7,)))))
        encoded = generator.encode(["x", "y z"])
        out = generator.model.generate(**encoded, max_new_tokens=3)
        assert isinstance(out, torch.Tensor)
        assert out[:, encoded["input_ids"].shape[1]:].tolist() == [[5, 6, 0], [7, 0, 0]]
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
