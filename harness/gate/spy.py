"""A recording (and optionally scripting) spy around a transformers model's ``generate``.

The gate judges candidates from outside: it compares what a candidate returned
with what it actually asked the model, and can script what ``generate`` returns
so that trimming is judged on the hard cases, deterministically.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Script: given the input ids (one list per row), return the new ids for each row.
Script = Callable[[list[list[int]]], Sequence[Sequence[int]]]


@dataclass
class GenerateCall:
    input_ids: list[list[int]]
    attention_mask: list[list[int]] | None
    kwargs: dict[str, Any]
    output: list[list[int]] = field(default_factory=list)
    scripted: bool = False

    @property
    def width(self) -> int:
        return len(self.input_ids[0]) if self.input_ids else 0

    def prompt_ids(self, row: int) -> list[int]:
        """The row's input ids without its (left) padding, as the attention mask says."""
        ids = self.input_ids[row]
        if self.attention_mask is None:
            return ids
        return [t for t, m in zip(ids, self.attention_mask[row]) if m]

    def new_ids(self, row: int) -> list[int]:
        return self.output[row][self.width:]


def _to_lists(value: Any) -> list[list[int]] | None:
    if value is None:
        return None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if value and isinstance(value[0], int):
        value = [value]
    return [list(map(int, row)) for row in value]


_SIMPLE = (bool, int, float, str, type(None))


class GenerateSpy:
    """Installed on a model instance; records every call until :meth:`remove`."""

    def __init__(self, model: Any, pad_token_id: int):
        self.model = model
        self.pad_token_id = pad_token_id
        self.calls: list[GenerateCall] = []
        self.script: Script | None = None
        self._lock = threading.Lock()
        self._original = model.generate
        model.generate = self._generate

    def remove(self) -> None:
        if self.model.__dict__.get("generate") == self._generate:
            del self.model.__dict__["generate"]

    def reset(self, script: Script | None = None) -> None:
        with self._lock:
            self.calls = []
            self.script = script

    def _generate(self, *args: Any, **kwargs: Any):
        source = kwargs.get("input_ids", kwargs.get("inputs", args[0] if args else None))
        call = GenerateCall(
            input_ids=_to_lists(source) or [],
            attention_mask=_to_lists(kwargs.get("attention_mask")),
            kwargs={k: v for k, v in kwargs.items() if isinstance(v, _SIMPLE)},
        )
        with self._lock:
            self.calls.append(call)
            script = self.script
        if script is None:
            output = self._original(*args, **kwargs)
            call.output = _to_lists(output.sequences if hasattr(output, "sequences") else output)
            return output
        call.scripted = True
        return self._scripted_output(call, script, source)

    def _scripted_output(self, call: GenerateCall, script: Script, source: Any):
        import torch

        new = [list(map(int, ids)) for ids in script(call.input_ids)]
        width = max((len(ids) for ids in new), default=0)
        # Rows that finish early are filled with padding, as generate does.
        rows = [prompt + ids + [self.pad_token_id] * (width - len(ids))
                for prompt, ids in zip(call.input_ids, new)]
        call.output = rows
        device = getattr(source, "device", "cpu")
        return torch.tensor(rows, dtype=torch.long, device=device)


def find_transformers_model(obj: Any, depth: int = 2) -> Any | None:
    """The transformers model a loaded candidate holds, searched among its attributes."""
    from transformers import PreTrainedModel

    return _find(obj, lambda v: isinstance(v, PreTrainedModel), depth, set())


def find_tokenizer(obj: Any, depth: int = 2) -> Any | None:
    from transformers import PreTrainedTokenizerBase

    return _find(obj, lambda v: isinstance(v, PreTrainedTokenizerBase), depth, set())


def _find(obj: Any, match: Callable[[Any], bool], depth: int, seen: set[int]) -> Any | None:
    if id(obj) in seen:
        return None
    seen.add(id(obj))
    if match(obj):
        return obj
    if depth <= 0 or not hasattr(obj, "__dict__"):
        return None
    for value in list(vars(obj).values()):
        if (found := _find(value, match, depth - 1, seen)) is not None:
            return found
    return None
