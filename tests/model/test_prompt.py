import pytest

from harness.model.prompt import PromptError, build_prompt, extract_instruction

EXPECTED = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n### Instruction:\nWhat is MLflow?\n### Response:\n"
)


def test_template_is_exact():
    assert build_prompt("What is MLflow?") == EXPECTED


def test_no_indentation_leaks_into_the_prompt():
    for line in build_prompt("a\nb").split("\n"):
        assert line == line.lstrip(" \t")


def test_seed_f_string_indentation_is_caught(seed_wrapper_source):
    """The published _build_prompt differs from the template: our check sees it."""
    namespace: dict = {}
    exec(compile(seed_wrapper_source, "seed_step2.py", "exec"), namespace)
    published = namespace["MPT"]()._build_prompt("What is MLflow?")
    assert published != EXPECTED
    assert "\n        ### Instruction:\n        What is MLflow?" in published


@pytest.mark.parametrize("bad", ["", "   ", "\n\t", None, 3, b"bytes", ["a"]])
def test_bad_instructions_are_rejected_naming_prompt(bad):
    with pytest.raises(PromptError, match="prompt"):
        build_prompt(bad)


def test_instruction_is_kept_verbatim():
    text = "  leading and trailing spaces \n"
    assert extract_instruction(build_prompt(text)) == text


def test_extract_rejects_other_text():
    with pytest.raises(PromptError):
        extract_instruction("### Instruction:\nhi\n### Response:\n")
