"""The prompt-format registry: each format's text and exact ids, on the plain tiny MPT and
on its chat variant (a ChatML chat_template whose text holds BOS)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.model.formats import AUTO, FORMAT_CHOICES, FORMATS, PromptFormat, chat_messages
from harness.model.generation import Generator, Request
from harness.model.loading import LoadConfig, LoadError, end_ids, snapshot_end_ids
from harness.model.prompt import PromptError, build_prompt
from harness.model.settings import GenerationSettings
from harness.model.snapshot import IM_END, IM_START

INSTRUCTIONS = st.text(min_size=1, max_size=60).filter(lambda s: s.strip())


def test_the_registry_lists_each_format_once_in_declared_order_and_auto_last():
    assert list(FORMATS) == ["mpt-instruct", "falcon-instruct", "chat-template"]
    assert FORMAT_CHOICES == (*FORMATS, AUTO)
    assert PromptFormat().name == "mpt-instruct"  # the default is today's template


def test_an_unknown_format_or_a_system_prompt_mpt_cannot_render_is_refused_by_name():
    with pytest.raises(ValueError, match="prompt_format must be one of"):
        PromptFormat("llama-2")
    with pytest.raises(ValueError, match="system_prompt"):
        PromptFormat("mpt-instruct", system="Be brief.")


@given(INSTRUCTIONS)
def test_mpt_instruct_is_the_mpt_template_and_falcon_its_turns(instruction):
    assert PromptFormat().render(instruction) == build_prompt(instruction)
    assert PromptFormat("falcon-instruct").render(instruction) == f"User: {instruction}\nFalcon:"
    assert PromptFormat("falcon-instruct", "Be brief.").render(instruction) == (
        f"System: Be brief.\nUser: {instruction}\nFalcon:"
    )


@pytest.mark.parametrize("name", list(FORMATS))
@pytest.mark.parametrize("blank", ["", "  \n", None, 3])
def test_every_format_refuses_a_blank_or_non_string_instruction_naming_prompt(name, blank, chat_generator):
    with pytest.raises(PromptError, match="prompt"):
        PromptFormat(name).render(blank, chat_generator.tokenizer)


def test_the_chat_snapshot_is_a_chatml_model_whose_template_holds_bos(chat_generator):
    tok = chat_generator.tokenizer
    im_start, im_end = tok.convert_tokens_to_ids([IM_START, IM_END])
    assert tok("hi")["input_ids"][0] == tok.bos_token_id  # the tokenizer adds BOS to plain text
    assert {IM_START, IM_END} <= set(tok.all_special_tokens)
    assert im_end in chat_generator.end_ids and tok.eos_token_id in chat_generator.end_ids
    text = PromptFormat("chat-template").render("What is MLflow?", tok)
    assert text == f"{tok.bos_token}{IM_START}user\nWhat is MLflow?{IM_END}\n{IM_START}assistant\n"
    ids = chat_generator.tokenize(["What is MLflow?"])[0]
    assert ids[:2] == [tok.bos_token_id, im_start]  # BOS once
    assert tok(text)["input_ids"][:2] == [tok.bos_token_id, tok.bos_token_id]  # what add_special_tokens=True does


@given(INSTRUCTIONS)
def test_chat_template_ids_are_apply_chat_template_s_own(chat_generator, instruction):
    tok = chat_generator.tokenizer
    direct = tok.apply_chat_template(chat_messages(instruction), add_generation_prompt=True, return_dict=False)
    assert chat_generator.tokenize([instruction])[0] == list(direct)
    assert PromptFormat("chat-template").encode(instruction, tok) == list(direct)


def test_a_system_prompt_is_rendered_as_the_template_s_system_turn(chat_snapshot):
    gen = Generator.from_pretrained(
        str(chat_snapshot), LoadConfig(prompt_format="chat-template", system_prompt="Be brief.")
    )
    assert gen.render("Hi.").startswith(f"{gen.tokenizer.bos_token}{IM_START}system\nBe brief.{IM_END}\n")


def test_auto_reads_the_snapshot(tiny_snapshot, chat_snapshot):
    assert Generator.from_pretrained(str(chat_snapshot), LoadConfig(prompt_format=AUTO)).prompt_format.name == (
        "chat-template"
    )
    assert Generator.from_pretrained(str(tiny_snapshot), LoadConfig(prompt_format=AUTO)).prompt_format.name == (
        "mpt-instruct"
    )


def test_chat_template_on_a_tokenizer_without_one_is_a_load_error_naming_the_format(tiny_snapshot):
    with pytest.raises(LoadError, match="prompt_format 'chat-template'.*no chat_template"):
        Generator.from_pretrained(str(tiny_snapshot), LoadConfig(prompt_format="chat-template"))


def test_a_plain_format_on_the_chat_snapshot_gets_the_bos_its_tokenizer_adds(chat_snapshot):
    gen = Generator.from_pretrained(str(chat_snapshot), LoadConfig(prompt_format="mpt-instruct"))
    ids = gen.tokenize(["Hi."])[0]
    assert ids == gen.tokenizer(build_prompt("Hi."))["input_ids"] and ids[0] == gen.tokenizer.bos_token_id
    assert ids[1] != gen.tokenizer.bos_token_id


def test_end_ids_take_the_generation_config_s_list_and_the_tokenizer_s_eos(chat_generator, generator, chat_snapshot):
    tok = chat_generator.tokenizer
    assert snapshot_end_ids(str(chat_snapshot), tok) == (0, tok.convert_tokens_to_ids(IM_END))
    assert generator.end_ids == (generator.tokenizer.eos_token_id,)
    assert end_ids(tok, None) == (tok.eos_token_id,)


def test_the_chat_model_ends_some_greedy_answers_at_im_end_and_the_answer_stops_there(chat_generator):
    """The snapshot is built so its end of turn matters: answers end at <|im_end|> early
    often enough that a wrapper ignoring it gives other answers (a third of these rows)."""
    im_end = chat_generator.tokenizer.convert_tokens_to_ids(IM_END)
    rows = [
        "What is MLflow?",
        "Write a poem about the sea.",
        "List three colours.",
        "Translate 'cat' into French.",
        "What is 2 + 2?",
        "Summarize: the model is served.",
        "東京 🎉 café",
        "def f(x):\n    return x",
        "Explain a route.",
        "Name a number.",
        "Why do tests matter?",
        "  indented question  ",
    ]
    settings = GenerationSettings(0.0, 16)
    ended = 0
    for row in rows:
        ids = chat_generator.pad(chat_generator.tokenize([row]))
        new = chat_generator.generate_ids(ids, settings)[0, ids["input_ids"].shape[1] :].tolist()
        if im_end in new:
            ended += 1
            assert new.index(im_end) == len(new) - 1  # generation stopped at it
    assert 3 <= ended <= 9  # 6 of 12 when measured
    assert all(IM_END not in a for a in chat_generator.generate([Request(r, settings) for r in rows]))


def test_the_readme_lists_every_format_in_the_registry_s_order():
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = readme.split("| format | the prompt |", 1)[1].split("\n\n", 1)[0]
    listed = [line.split("`")[1] for line in table.splitlines()[2:]]
    assert listed == list(FORMAT_CHOICES)
