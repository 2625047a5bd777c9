from hypothesis import given
from hypothesis import strategies as st

from harness.model.prompt import INSTRUCTION_KEY, INTRO_BLURB, RESPONSE_KEY, build_prompt, extract_instruction

instructions = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=2000).filter(
    lambda s: s.strip()
) | st.sampled_from(["### Response:\n", "### Instruction:", "🎉\n\t x"])


@given(instructions)
def test_prompt_equals_the_template_exactly(instruction):
    expected = f"{INTRO_BLURB}\n{INSTRUCTION_KEY}\n{instruction}\n{RESPONSE_KEY}\n"
    assert build_prompt(instruction) == expected


@given(instructions)
def test_instruction_is_recoverable(instruction):
    assert extract_instruction(build_prompt(instruction)) == instruction
