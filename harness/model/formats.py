"""Prompt formats: how an instruction becomes the text, and the ids, a model is given.

An explicit registry (:data:`FORMATS`, in declared order): each format is data plus one
render function. Imported by the timed core, so it imports neither torch nor MLflow; the
tokenizer is whatever ``AutoTokenizer`` loaded, passed in.

The ids are part of the format. A format whose rendered text already holds the model's
special tokens (a chat template that starts with ``{{ bos_token }}``) is tokenized with
``add_special_tokens=False``, as ``apply_chat_template(..., tokenize=True)`` does: letting
the tokenizer add its BOS again would put it in twice. A plain-text format is tokenized as
the tokenizer is configured to (MPT's adds nothing; a tokenizer that adds BOS adds it once).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from harness._validation import ConfigError
from harness.model.prompt import PromptError, build_prompt, validate_instruction

AUTO = "auto"
DEFAULT_FORMAT = "mpt-instruct"

Render = Callable[[str, str | None, Any], str]  # (instruction, system prompt, tokenizer) -> text


@dataclass(frozen=True)
class _Format:
    name: str
    summary: str
    render: Render
    # False where the rendered text holds the special tokens itself (see the module's doc).
    add_special_tokens: bool = True
    needs_template: bool = False  # renders the tokenizer's own chat_template
    takes_system: bool = True  # MPT-Instruct's intro text is fixed: it has no system prompt


def _mpt(instruction: str, system: str | None, tokenizer: Any) -> str:
    return build_prompt(instruction)


def _falcon(instruction: str, system: str | None, tokenizer: Any) -> str:
    # Falcon-180B-Chat's documented turns: "System:", "User:" and the assistant's "Falcon:",
    # one newline between turns. Falcon-40B-Instruct documents none; a model trained on another
    # rendering ("Assistant:") is judged through its tokenizer's chat_template instead.
    head = f"System: {system}\n" if system is not None else ""
    return f"{head}User: {instruction}\nFalcon:"


def chat_messages(instruction: str, system: str | None = None) -> list[dict[str, str]]:
    """The conversation a chat-template format renders: one user turn, after a system turn
    when a system prompt is given."""
    user = {"role": "user", "content": validate_instruction(instruction)}
    return [{"role": "system", "content": system}, user] if system is not None else [user]


def _chat_template(instruction: str, system: str | None, tokenizer: Any) -> str:
    if not has_chat_template(tokenizer):
        raise PromptError("prompt_format 'chat-template': the snapshot's tokenizer has no chat_template")
    text = tokenizer.apply_chat_template(chat_messages(instruction, system), add_generation_prompt=True, tokenize=False)
    return str(text)


FORMATS: Mapping[str, _Format] = MappingProxyType(
    {
        f.name: f
        for f in (
            _Format(
                "mpt-instruct",
                "MPT-Instruct's '### Instruction:' / '### Response:' template",
                _mpt,
                takes_system=False,
            ),
            _Format("falcon-instruct", "Falcon's 'User: ...\\nFalcon:' turns (optional 'System: ...' first)", _falcon),
            _Format(
                "chat-template",
                "the tokenizer's own chat_template, one user turn, add_generation_prompt=True",
                _chat_template,
                add_special_tokens=False,
                needs_template=True,
            ),
        )
    }
)
FORMAT_CHOICES = (*FORMATS, AUTO)


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


@dataclass(frozen=True)
class PromptFormat:
    """A format by name (``auto`` resolved), and the system prompt it renders, if any."""

    name: str = DEFAULT_FORMAT
    system: str | None = None

    def __post_init__(self) -> None:
        if self.name not in FORMATS:
            raise ConfigError(
                "prompt_format", f"prompt_format must be one of {list(FORMAT_CHOICES)}, got {self.name!r}"
            )
        if self.system is not None and not isinstance(self.system, str):
            raise ConfigError("system_prompt", f"system_prompt must be a string, got {type(self.system).__name__}")
        if self.system is not None and not FORMATS[self.name].takes_system:
            raise ConfigError(
                "system_prompt", f"system_prompt: prompt_format {self.name!r} has no system prompt (its intro is fixed)"
            )

    @classmethod
    def resolve(cls, name: str, tokenizer: Any, system: str | None = None) -> PromptFormat:
        """``name``, or for ``auto`` what the snapshot's tokenizer says: a ``chat_template``
        means ``chat-template``, else MPT-Instruct's template. A :class:`ConfigError` names
        the setting a tokenizer cannot render."""
        if name == AUTO:
            name = "chat-template" if has_chat_template(tokenizer) else DEFAULT_FORMAT
        elif name in FORMATS and FORMATS[name].needs_template and not has_chat_template(tokenizer):
            raise ConfigError("prompt_format", f"prompt_format {name!r}: the snapshot's tokenizer has no chat_template")
        return cls(name, system)

    @property
    def add_special_tokens(self) -> bool:
        return FORMATS[self.name].add_special_tokens

    def render(self, instruction: object, tokenizer: Any = None) -> str:
        """The prompt text for ``instruction`` (raises :class:`PromptError` on a bad one)."""
        return FORMATS[self.name].render(validate_instruction(instruction), self.system, tokenizer)

    def encode(self, instruction: object, tokenizer: Any) -> list[int]:
        """The exact ids ``generate`` is given for ``instruction``, unpadded."""
        text = self.render(instruction, tokenizer)
        return list(tokenizer(text, add_special_tokens=self.add_special_tokens)["input_ids"])

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "system": self.system, "add_special_tokens": self.add_special_tokens}


__all__ = ["AUTO", "DEFAULT_FORMAT", "FORMATS", "FORMAT_CHOICES", "PromptFormat", "chat_messages", "has_chat_template"]
