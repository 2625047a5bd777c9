"""A recording (and optionally scripting) spy on transformers' ``generate``.

Installed on the model *class* (``GenerationMixin``) in the candidate's process, so it
sees every model the candidate holds, wherever it keeps it: an attribute, a dict, a
pipeline. It records what ``generate`` was asked and what each forward pass received
(one new position per step with a KV cache, the whole sequence without), and can script
what ``generate`` returns, so the hard trimming cases are judged deterministically.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Script:
    """What a scripted ``generate`` returns, as data (it crosses a process boundary).

    ``by_marker``: (text, new ids) pairs; a row whose decoded prompt contains the text gets
    those ids (the first pair otherwise). ``raise_message``: ``generate`` raises instead.
    ``suppress_eos``: not scripted; the real ``generate`` runs with EOS banned, so every row
    generates exactly as many tokens as the candidate asked for. ``eos_after``: not scripted
    either; (text, n) pairs: a row whose prompt contains the text emits EOS right after its
    n-th new token, in the real ``generate``, so the candidate's own stopping and padding
    show (the tiny model rarely emits EOS by itself).
    """

    by_marker: tuple[tuple[str, tuple[int, ...]], ...] = ()
    raise_message: str | None = None
    suppress_eos: bool = False
    eos_after: tuple[tuple[str, int], ...] = ()

    @property
    def replaces_output(self) -> bool:
        return bool(self.by_marker) or self.raise_message is not None


class ScriptedFailure(RuntimeError):
    """Raised by a scripted ``generate``: the gate checks the candidate surfaces it."""


@dataclass
class GenerateCall:
    input_ids: list[list[int]]
    attention_mask: list[list[int]] | None
    kwargs: dict[str, Any]
    output: list[list[int]] = field(default_factory=list)
    scripted: bool = False
    # Sequence length each forward pass received during this call.
    forward_widths: list[int] = field(default_factory=list)

    @property
    def width(self) -> int:
        return len(self.input_ids[0]) if self.input_ids else 0

    def prompt_ids(self, row: int) -> list[int]:
        """The row's input ids without its padding, as the attention mask says."""
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
    """Wraps ``owner.generate`` (a model class or one model instance) until :meth:`remove`.

    ``decode`` turns prompt ids into text for :class:`Script` markers; ``eos_token_id`` is
    what ``suppress_eos`` bans.
    """

    def __init__(self, owner: Any, pad_token_id: int, decode=None, eos_token_id: int | None = None):
        self.owner, self.pad_token_id = owner, pad_token_id
        self.decode, self.eos_token_id = decode, eos_token_id
        self.calls: list[GenerateCall] = []
        self.script: Script | None = None
        self.model: Any = None  # the last model generate ran on
        self._lock = threading.Lock()
        self._is_class = isinstance(owner, type)
        self._original = owner.__dict__.get("generate") if self._is_class else None
        original = getattr(owner, "generate")
        spy = self

        if self._is_class:
            def generate(model, *args, **kwargs):
                return spy._generate(model, lambda *a, **k: original(model, *a, **k), args, kwargs)
        else:
            def generate(*args, **kwargs):
                return spy._generate(owner, original, args, kwargs)
        self._wrapper = generate
        setattr(owner, "generate", generate)

    def remove(self) -> None:
        if self.owner.__dict__.get("generate") is not self._wrapper:
            return
        if self._is_class and self._original is not None:
            setattr(self.owner, "generate", self._original)
        else:
            delattr(self.owner, "generate")

    def reset(self, script: Script | None = None) -> None:
        with self._lock:
            self.calls = []
            self.script = script

    def _generate(self, model: Any, original, args: tuple, kwargs: dict):
        source = kwargs.get("input_ids", kwargs.get("inputs", args[0] if args else None))
        call = GenerateCall(
            input_ids=_to_lists(source) or [],
            attention_mask=_to_lists(kwargs.get("attention_mask")),
            kwargs={k: v for k, v in kwargs.items() if isinstance(v, _SIMPLE)},
        )
        with self._lock:
            self.calls.append(call)
            self.model = model
            script = self.script
        if script is not None and script.replaces_output:
            call.scripted = True
            return self._scripted_output(call, script, source)
        if script is not None and script.suppress_eos and self.eos_token_id is not None:
            kwargs = {**kwargs, "suppress_tokens": [self.eos_token_id]}
        if script is not None and script.eos_after and self.eos_token_id is not None:
            kwargs = self._with_forced_eos(kwargs, call, script)
        hook = model.register_forward_pre_hook(_width_recorder(call), with_kwargs=True)
        try:
            output = original(*args, **kwargs)
        finally:
            hook.remove()
        call.output = _to_lists(output.sequences if hasattr(output, "sequences") else output)
        return output

    def _with_forced_eos(self, kwargs: dict, call: GenerateCall, script: Script) -> dict:
        from transformers import LogitsProcessorList

        rows = {}
        for r in range(len(call.input_ids)):
            text = self.decode(call.prompt_ids(r)) if self.decode else ""
            rows.update({r: n for marker, n in script.eos_after if marker in text})
        if not rows:
            return kwargs
        forced = _ForceEos(call.width, rows, self.eos_token_id)
        return {**kwargs, "logits_processor": LogitsProcessorList(
            [*(kwargs.get("logits_processor") or []), forced])}

    def _scripted_output(self, call: GenerateCall, script: Script, source: Any):
        import torch

        if script.raise_message is not None:
            raise ScriptedFailure(script.raise_message)
        new = [self._pick(script, ids) for ids in call.input_ids]
        width = max((len(ids) for ids in new), default=0)
        # Rows that finish early are filled with padding, as generate does.
        rows = [prompt + ids + [self.pad_token_id] * (width - len(ids))
                for prompt, ids in zip(call.input_ids, new)]
        call.output = rows
        device = getattr(source, "device", "cpu")
        return torch.tensor(rows, dtype=torch.long, device=device)

    def _pick(self, script: Script, ids: Sequence[int]) -> list[int]:
        text = self.decode(list(ids)) if self.decode else ""
        chosen = next((new for marker, new in script.by_marker if marker in text),
                      script.by_marker[0][1])
        return list(chosen)


class _ForceEos:
    """A logits processor: row r may emit only EOS once it has ``rows[r]`` new tokens."""

    def __init__(self, width: int, rows: dict[int, int], eos: int):
        self.width, self.rows, self.eos = width, rows, eos

    def __call__(self, input_ids, scores):
        step = input_ids.shape[-1] - self.width
        for row, after in self.rows.items():
            if step == after and row < scores.shape[0]:
                scores[row, :] = float("-inf")
                scores[row, self.eos] = 0.0
        return scores


def _width_recorder(call: GenerateCall):
    def record(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        call.forward_widths.append(int(ids.shape[-1]) if hasattr(ids, "shape") else -1)

    return record
