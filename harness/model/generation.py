"""The timed core: tokenize -> ``generate`` -> trim, batched and grouped by settings.

Imports torch and transformers but never MLflow, so the GPU benchmark can run it
on machines without MLflow; the PyFunc wrapper is a thin adapter over it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from harness.model.formats import PromptFormat
from harness.model.loading import LoadConfig, LoadError, context_length, end_ids, load_model, load_tokenizer
from harness.model.prompt import validate_instruction
from harness.model.settings import GenerationSettings, InvalidParameter, check_max_tokens


@dataclass(frozen=True)
class Request:
    """One row: an instruction and the settings it asked for."""

    instruction: str
    settings: GenerationSettings = GenerationSettings()


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` before the earliest occurrence of any stop sequence."""
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def trim_generated(sequences: Any, prompt_len: int, decode: Callable[..., str], stop: Sequence[str] = ()) -> list[str]:
    """Answers from ``generate`` output: decode exactly the ids after the padded prompt.

    Slicing by the padded input length (not by re-encoding the prompt) is exact
    for every row of a left-padded batch; special tokens (EOS, and the padding
    that follows a row that finished early) are skipped, whitespace kept.
    """
    return [cut_at_stop(decode(row[prompt_len:], skip_special_tokens=True), stop) for row in sequences]


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Generator:
    """A model and tokenizer that answer instructions in one prompt format."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_batch_size: int = 8,
        device: str = "cpu",
        attn_impl: str = "torch",
        prompt_format: PromptFormat = PromptFormat(),
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.device = device
        self.attn_impl = attn_impl
        self.prompt_format = prompt_format

    @classmethod
    def from_pretrained(cls, path: str, cfg: LoadConfig = LoadConfig()) -> Generator:
        """Loaded as ``cfg`` asks (LoadError when it cannot be, a format the tokenizer cannot
        render included)."""
        tokenizer = load_tokenizer(path)
        try:
            prompt_format = PromptFormat.resolve(cfg.prompt_format, tokenizer, cfg.system_prompt)
        except ValueError as error:
            raise LoadError(str(error)) from None
        model, device, attn_impl = load_model(path, cfg)
        return cls(model, tokenizer, cfg.max_batch_size, device, attn_impl, prompt_format)

    @property
    def end_ids(self) -> tuple[int, ...]:
        """The ids that end an answer (the format's end of turn among them)."""
        return end_ids(self.tokenizer, getattr(self.model, "generation_config", None))

    def render(self, instruction: str) -> str:
        return self.prompt_format.render(instruction, self.tokenizer)

    @property
    def context_length(self) -> int:
        return context_length(self.model, self.tokenizer)

    def prompt_lengths(self, instructions: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenize(instructions)]

    def tokenize(self, instructions: Sequence[str]) -> list[list[int]]:
        """The templated prompts' ids, unpadded: tokenized once per request, for both the
        context check and ``generate``. A fast tokenizer's Rust backend is called directly,
        one prompt at a time (its batch call pads, and races torch's threads for the cores):
        the same ids as ``tokenizer(prompts)``, which a test holds it to. Special tokens are
        added as the format says (not where its text already holds them)."""
        prompts = [self.render(i) for i in instructions]
        special = self.prompt_format.add_special_tokens
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:
            return self.tokenizer(prompts, add_special_tokens=special)["input_ids"]
        return [backend.encode(prompt, add_special_tokens=special).ids for prompt in prompts]

    def validate(self, requests: Sequence[Request], ids: Sequence[Sequence[int]] | None = None) -> None:
        """Check every row before generating any, so a bad row fails the call fast."""
        for request in requests:
            validate_instruction(request.instruction)
        if ids is None:
            ids = self.tokenize([r.instruction for r in requests])
        context = self.context_length
        for request, row in zip(requests, ids):
            room = context - len(row)
            if room < 1:
                # The instruction itself, quoted (at most 200 characters and its length), so
                # the client sees which prompt was too long without getting it back whole.
                raise InvalidParameter(
                    "prompt",
                    request.instruction,
                    f"at most {context - 1} tokens with the template (this one makes {len(row)})",
                )
            check_max_tokens(request.settings.max_tokens, room)

    def encode(self, instructions: Sequence[str]) -> Any:
        prompts = [self.render(i) for i in instructions]
        special = self.prompt_format.add_special_tokens
        return self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=special).to(self.device)

    def pad(self, ids: Sequence[Sequence[int]]) -> dict[str, Any]:
        """Already tokenized rows as one padded batch, on the tokenizer's padding side (left
        for MPT-Instruct); built in numpy and shared with torch, since ``tokenizer.pad`` (and
        ``torch.tensor`` of nested lists) cost more than the rows' own tokenization."""
        import numpy as np
        import torch

        lengths = np.array([len(r) for r in ids])
        width = int(lengths.max())
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        batch = np.full((len(ids), width), pad_id, dtype=np.int64)
        for i, row in enumerate(ids):
            if left:
                batch[i, width - len(row) :] = row
            else:
                batch[i, : len(row)] = row
        positions = np.arange(width)
        mask = positions >= (width - lengths)[:, None] if left else positions < lengths[:, None]
        return {
            "input_ids": torch.from_numpy(batch).to(self.device),
            "attention_mask": torch.from_numpy(mask.astype(np.int64)).to(self.device),
        }

    def generate_ids(self, encoded: Any, settings: GenerationSettings, **extra: Any) -> Any:
        """``generate`` with the settings' kwargs; ``extra`` overrides them (benchmarks fix lengths)."""
        import torch

        kwargs = {**settings.generate_kwargs(), **extra}
        with torch.inference_mode():
            return self.model.generate(
                input_ids=encoded["input_ids"],
                attention_mask=encoded["attention_mask"],
                pad_token_id=self.tokenizer.pad_token_id,
                **kwargs,
            )

    def generate_batch(
        self, instructions: Sequence[str], settings: GenerationSettings, ids: Sequence[Sequence[int]] | None = None
    ) -> list[str]:
        encoded = self.encode(instructions) if ids is None else self.pad(ids)
        output = self.generate_ids(encoded, settings)
        width = encoded["input_ids"].shape[1]
        # Only the generated positions cross into Python (what trim_generated keeps anyway).
        return trim_generated(output[:, width:].tolist(), 0, self.tokenizer.decode, settings.stop)

    def generate(self, requests: Sequence[Request]) -> list[str]:
        """One answer per request, in input order.

        Rows are grouped by their settings (never row 0's settings for all) and
        each group is generated in batches of at most ``max_batch_size``. Each prompt is
        tokenized once: the ids checked against the context are the ids generated from.
        """
        ids = self.tokenize([r.instruction for r in requests]) if requests else []
        self.validate(requests, ids)
        groups: dict[GenerationSettings, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.settings, []).append(index)
        answers: list[str | None] = [None] * len(requests)
        for settings, indices in groups.items():
            for chunk in _chunks(indices, self.max_batch_size):
                texts = self.generate_batch([requests[i].instruction for i in chunk], settings, [ids[i] for i in chunk])
                for i, text in zip(chunk, texts):
                    answers[i] = text
        return [a for a in answers if a is not None]
