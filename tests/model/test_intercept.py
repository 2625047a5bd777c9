"""The one interception layer on ``generate``: install and exact removal on a class or a model,
and one reading of a call's ids, mask and output."""

import torch
from transformers.generation.utils import GenerateDecoderOnlyOutput, GenerationMixin

from harness.model.intercept import (
    GenerateInputs,
    arguments,
    generate_inputs,
    intercept,
    sequences,
    to_lists,
    with_argument,
)


class Base:
    def generate(self, inputs=None, generation_config=None, **kwargs):
        return ("base", self, inputs, kwargs)


class Child(Base):
    pass


class Own(Base):
    @staticmethod
    def generate(*args, **kwargs):
        return ("own", args, kwargs)


def _recording(seen, tag="h"):
    def handler(model, original, args, kwargs):
        seen.append((tag, model, args, kwargs))
        return original(*args, **kwargs)

    return handler


def test_on_a_class_every_instance_is_seen_and_an_inherited_generate_stays_inherited():
    seen = []
    hook = intercept(Child, _recording(seen))
    a, b = Child(), Child()
    assert a.generate([1, 2], max_new_tokens=3) == ("base", a, [1, 2], {"max_new_tokens": 3})
    b.generate(inputs=[3])
    assert [(m, args, kw) for _, m, args, kw in seen] == [
        (a, ([1, 2],), {"max_new_tokens": 3}),
        (b, (), {"inputs": [3]}),
    ]
    Base().generate([9])  # the base class is not intercepted
    assert len(seen) == 2
    hook.remove()
    assert "generate" not in vars(Child) and Child.generate is Base.generate


def test_removal_restores_the_owners_own_entry_exactly():
    before = vars(Own)["generate"]
    seen = []
    with intercept(Own, _recording(seen)):
        assert Own().generate(1, k=2) == ("own", (1,), {"k": 2})  # a staticmethod, still static
    assert vars(Own)["generate"] is before and len(seen) == 1


def test_on_one_instance_only_that_model_is_seen():
    seen = []
    model, other = Child(), Child()
    hook = intercept(model, _recording(seen))
    assert model.generate([5]) == ("base", model, [5], {})
    other.generate([6])
    assert [m for _, m, _, _ in seen] == [model]
    hook.remove()
    hook.remove()  # idempotent
    assert "generate" not in vars(model) and model.generate([7])[0] == "base"


def test_the_original_is_what_generate_would_be_now():
    seen = []
    hook = intercept(Child, _recording(seen, "child"))
    try:
        with intercept(Base, _recording(seen, "base")):  # patched underneath, later
            Child().generate([1])
        assert [tag for tag, *_ in seen] == ["child", "base"]
    finally:
        hook.remove()


def test_removed_out_of_order_a_stacked_wrapper_passes_calls_through():
    seen = []
    first = intercept(Child, _recording(seen, "first"))
    second = intercept(Child, _recording(seen, "second"))
    first.remove()  # second still holds first's wrapper as its original
    Child().generate([1])
    assert [tag for tag, *_ in seen] == ["second"]
    second.remove()
    assert "generate" not in vars(Child)


def test_a_handler_decides_what_generate_returns():
    hook = intercept(Child, lambda model, original, args, kwargs: "scripted")
    try:
        assert Child().generate([1]) == "scripted"
    finally:
        hook.remove()


def test_ids_positional_or_by_keyword_and_the_other_positional_arguments():
    ids = torch.tensor([[0, 0, 7, 8], [5, 6, 7, 8]])
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    config = object()
    for args, kwargs in [
        ((ids, config), {"attention_mask": mask}),
        ((), {"input_ids": ids, "attention_mask": mask}),
        ((), {"inputs": ids, "attention_mask": mask}),
    ]:
        inputs = generate_inputs(args, kwargs)
        assert inputs.source is ids and inputs.width == 4
        assert inputs.input_ids == [[0, 0, 7, 8], [5, 6, 7, 8]]
        assert [inputs.prompt_ids(r) for r in range(2)] == [[7, 8], [5, 6, 7, 8]]
    assert arguments((ids, config), {"streamer": 1})["generation_config"] is config


def test_mask_unpadding_on_either_side_and_without_a_mask():
    right = generate_inputs((), {"input_ids": [[1, 2, 0]], "attention_mask": [[1, 1, 0]]})
    assert right.prompt_ids(0) == [1, 2]
    bare = generate_inputs(([4, 5, 6],), {})  # one row, as a flat list
    assert bare.input_ids == [[4, 5, 6]] and bare.attention_mask is None
    assert bare.prompt_ids(0) == [4, 5, 6]
    none = generate_inputs((), {"inputs_embeds": torch.zeros(1, 2, 3)})
    assert none.source is None and none.input_ids == [] and none.width == 0
    assert GenerateInputs(None, [[3, 4]], [[0, 1]]).prompt_ids(0) == [4]


def test_dict_outputs_and_tensors_give_their_sequences():
    ids = torch.tensor([[1, 2, 3]])
    assert sequences(GenerateDecoderOnlyOutput(sequences=ids)) is ids
    assert sequences({"sequences": ids}) is ids
    assert sequences(ids) is ids
    assert to_lists(ids) == [[1, 2, 3]] and to_lists(torch.tensor([4, 5])) == [[4, 5]]
    assert to_lists(None) is None


def test_an_argument_is_set_where_the_caller_put_it():
    assert with_argument((1, 2, 3), {}, "logits_processor", "p") == ((1, 2, "p"), {})
    assert with_argument((1,), {"a": 0}, "logits_processor", "p") == ((1,), {"a": 0, "logits_processor": "p"})


def test_a_real_model_with_a_dict_output(generator):
    seen: list[GenerateInputs] = []

    def handler(model, original, args, kwargs):
        seen.append(generate_inputs(args, kwargs))
        return original(*args, **kwargs)

    encoded = generator.encode(["hi", "a longer one"])
    with intercept(GenerationMixin, handler):
        out = generator.model.generate(
            **encoded, max_new_tokens=2, do_sample=False, pad_token_id=0, return_dict_in_generate=True
        )
    assert "generate" in vars(GenerationMixin)  # its own entry, restored
    [inputs] = seen
    assert sequences(out).shape == (2, inputs.width + 2)
    lengths = encoded["attention_mask"].sum(dim=1).tolist()
    assert [len(inputs.prompt_ids(r)) for r in range(2)] == lengths
