import torch

from harness.gate.spy import GenerateSpy, find_tokenizer, find_transformers_model


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


def test_scripted_output_pads_rows_that_finish_early(generator):
    spy = GenerateSpy(generator.model, pad_token_id=0)
    try:
        spy.reset(script=lambda ids: [[5, 6, 0], [7]])
        encoded = generator.encode(["x", "y z"])
        out = generator.model.generate(**encoded, max_new_tokens=3)
        assert isinstance(out, torch.Tensor)
        assert out[:, encoded["input_ids"].shape[1]:].tolist() == [[5, 6, 0], [7, 0, 0]]
        assert spy.calls[0].scripted
    finally:
        spy.remove()


def test_remove_restores_the_real_generate(generator):
    spy = GenerateSpy(generator.model, pad_token_id=0)
    spy.remove()
    assert "generate" not in generator.model.__dict__


def test_finds_model_and_tokenizer_among_attributes(reference_model):
    assert find_transformers_model(reference_model) is reference_model.model
    assert find_tokenizer(reference_model) is reference_model.tokenizer
    assert find_transformers_model(object()) is None
