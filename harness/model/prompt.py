"""The MPT-Instruct prompt template.

This module is imported by the timed generate core and by property tests, so it
imports neither torch nor MLflow.
"""

from __future__ import annotations

from harness.model.errors import quote

INTRO_BLURB = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
)
INSTRUCTION_KEY = "### Instruction:"
RESPONSE_KEY = "### Response:"

# Built from the constants rather than an indented triple-quoted f-string: the
# published wrapper's f-string carried the method body's indentation into every
# prompt, which the model was never trained on.
PREFIX = f"{INTRO_BLURB}\n{INSTRUCTION_KEY}\n"
SUFFIX = f"\n{RESPONSE_KEY}\n"


class PromptError(ValueError):
    """An instruction that cannot be put into the template."""

    field = "prompt"


def validate_instruction(instruction: object) -> str:
    """Return ``instruction`` if it is a non-blank string, else raise :class:`PromptError`."""
    if not isinstance(instruction, str):
        raise PromptError(f"prompt must be a string, got {type(instruction).__name__}: {quote(instruction)}")
    if not instruction.strip():
        raise PromptError(f"prompt must contain non-whitespace text, got {quote(instruction)}")
    return instruction


def build_prompt(instruction: object) -> str:
    """The exact MPT-Instruct prompt around ``instruction`` (kept verbatim, not stripped)."""
    return PREFIX + validate_instruction(instruction) + SUFFIX


def extract_instruction(prompt: str) -> str:
    """Inverse of :func:`build_prompt`; raises :class:`PromptError` on any other text."""
    if not (prompt.startswith(PREFIX) and prompt.endswith(SUFFIX)):
        raise PromptError("prompt does not follow the MPT-Instruct template")
    if len(prompt) < len(PREFIX) + len(SUFFIX):
        raise PromptError("prompt does not follow the MPT-Instruct template")
    return prompt[len(PREFIX) : len(prompt) - len(SUFFIX)]
