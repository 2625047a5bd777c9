"""The sampling oracle: the distribution the reference's own ``generate(do_sample=True,
temperature=t)`` implies, step by step, read from the scores ``generate`` itself samples from
(``output_scores``: after the temperature and whatever warpers the snapshot's generation
config and transformers' defaults add, today top-k 50), so nothing about them is assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.model.settings import GenerationSettings


def _byte_level_table() -> dict[str, int]:
    """GPT-2's byte-level alphabet (what its BPE writes each byte as), inverted: printable
    bytes stand for themselves, the rest for the code points from 256 on."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {chr(b): b for b in kept}, 0
    for b in range(256):
        if b not in kept:
            table[chr(256 + extra)] = b
            extra += 1
    return table


_BYTE_LEVEL = _byte_level_table()


@dataclass(frozen=True)
class FirstTokens:
    """The first answer token's distribution, by its text (tokens whose decoded text is the
    same are one outcome: a caller cannot tell them apart)."""

    texts: tuple[str, ...]
    probs: tuple[float, ...]
    greedy: str  # the text of the most likely token: what temperature 0 answers first

    def counts(self, answers: Sequence[str]) -> tuple[list[int], list[str]]:
        """Per outcome, how many answers are it; and the answers that are none of them."""
        index = {t: i for i, t in enumerate(self.texts)}
        counts, outside = [0] * len(self.texts), []
        for answer in answers:
            if answer in index:
                counts[index[answer]] += 1
            else:
                outside.append(answer)
        return counts, outside


class SamplingOracle:
    """Step distributions of the reference (a :class:`harness.model.generation.Generator`),
    kept per (prompt ids, temperature); ``steps`` counts the forward passes it made."""

    def __init__(self, generator: Any):
        self.generator = generator
        self.steps = 0
        self._cache: dict[tuple[tuple[int, ...], float], np.ndarray] = {}
        self._bytes: list[bytes | None] | None = None
        self._top_k: int | None = None  # k when generate keeps exactly the top k; 0: ask generate

    @property
    def eos(self) -> tuple[int, ...]:
        """The ids that end an answer: the tokenizer's EOS and the format's end of turn."""
        ends: tuple[int, ...] = self.generator.end_ids
        return ends

    def prompt_ids(self, instruction: str) -> tuple[int, ...]:
        return tuple(self.generator.tokenize([instruction])[0])

    def decode(self, ids: Sequence[int]) -> str:
        return self.generator.tokenizer.decode(list(ids), skip_special_tokens=True)

    def step(self, ids: Sequence[int], temperature: float) -> np.ndarray:
        """The probability of each next token after ``ids`` when sampling at ``temperature``."""
        key = (tuple(ids), float(temperature))
        if key not in self._cache:
            import torch

            out = self.generator.generate_ids(
                self.generator.pad([list(ids)]),
                GenerationSettings(temperature, 1),
                output_scores=True,
                return_dict_in_generate=True,
            )
            self.steps += 1
            self._cache[key] = torch.softmax(out.scores[0][0].float(), -1).cpu().numpy()
        return self._cache[key]

    def kept(self, ids: Sequence[int], temperature: float) -> list[int]:
        """The tokens the sampler keeps after ``ids``, most likely first. When the first step
        shows that ``generate`` keeps exactly the top k logits (its top-k warper, alone), later
        steps are read from one forward pass each, with ties and a 1e-5 margin at the k-th
        logit kept (no kernel difference can make a kept token look impossible); otherwise
        every step asks ``generate`` itself."""
        if self._top_k is None:
            probs = self.step(ids, temperature)
            logits = self._logits(ids)
            k = int((probs > 0).sum())
            self._top_k = k if bool(((logits >= np.sort(logits)[-k]) == (probs > 0)).all()) else 0
        if self._top_k == 0:
            scores = self.step(ids, temperature)
            mask = scores > 0
        else:
            scores = self._logits(ids)
            kth = float(np.sort(scores)[-self._top_k])
            mask = scores >= kth - 1e-5 * max(1.0, abs(kth))
        order = np.argsort(-scores, kind="stable")
        return [int(t) for t in order if mask[t]]

    def _logits(self, ids: Sequence[int]) -> np.ndarray:
        import torch

        self.steps += 1
        with torch.inference_mode():
            tensor = torch.tensor([list(ids)], device=self.generator.model.device)
            out = self.generator.model(input_ids=tensor)
        return out.logits[0, -1].float().cpu().numpy()

    def first_tokens(self, instruction: str, temperature: float) -> FirstTokens:
        probs = self.step(self.prompt_ids(instruction), temperature)
        merged: dict[str, float] = {}
        for token in np.flatnonzero(probs):
            text = self.decode([int(token)])
            merged[text] = merged.get(text, 0.0) + float(probs[token])
        greedy = self.decode([int(np.argmax(probs))])
        return FirstTokens(tuple(merged), tuple(merged.values()), greedy)

    def token_bytes(self) -> list[bytes | None]:
        """Each token's bytes (None for special and unused ids). A byte-level BPE (MPT's,
        GPT-2's) maps each token to its bytes exactly; another tokenizer falls back to each
        token's decoded text, and an answer it cannot follow is undetermined, not impossible."""
        if self._bytes is None:
            tokenizer = self.generator.tokenizer
            size = int(self.generator.model.get_output_embeddings().weight.shape[0])
            special = set(tokenizer.all_special_ids)
            decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
            table = _BYTE_LEVEL if type(decoder).__name__ == "ByteLevel" else None
            found: list[bytes | None] = []
            for token in range(size):
                piece = tokenizer.convert_ids_to_tokens(token) if token < len(tokenizer) else None
                if piece is None or token in special:
                    found.append(None)
                elif table is not None and all(c in table for c in piece):
                    found.append(bytes(table[c] for c in piece))
                else:
                    found.append(self.decode([token]).encode("utf-8") or None)
            self._bytes = found
        return self._bytes

    def explain(self, instruction: str, answer: str, temperature: float, max_tokens: int, budget: int) -> Explained:
        """Whether ``answer`` is text the reference can sample: at most ``max_tokens`` tokens,
        each kept by the sampler at its step (probability above 0), whose bytes decode to it
        (a split character decodes to U+FFFD, as the candidate's decode shows it). Branches
        are followed most likely first; ``budget`` forward passes spent leave the answer
        undetermined (None), never impossible."""
        prompt, pieces = self.prompt_ids(instruction), self.token_bytes()
        stack: list[tuple[tuple[int, ...], bytes]] = [((), b"")]
        deepest: tuple[int, ...] = ()
        spent = 0
        while stack:
            ids, held = stack.pop()
            if held.decode("utf-8", "replace") == answer:
                return Explained(True, len(ids), answer)
            if len(ids) >= max_tokens:
                continue
            if spent >= budget:
                return Explained(None, len(deepest), self.decode(deepest))
            spent += 1
            for token in reversed(self.kept(prompt + ids, temperature)):  # the likeliest popped first
                piece = pieces[token] if token < len(pieces) else None
                if token in self.eos or not piece:
                    continue
                longer = held + piece
                if answer.startswith(_settled(longer).decode("utf-8", "replace")):
                    stack.append((ids + (token,), longer))
                    if len(ids) + 1 > len(deepest):
                        deepest = ids + (token,)
        return Explained(False, len(deepest), self.decode(deepest))


def _settled(data: bytes) -> bytes:
    """``data`` less a trailing incomplete UTF-8 sequence, which later bytes may complete:
    what is left decodes the same whatever follows."""
    for back in range(1, min(4, len(data)) + 1):
        lead = data[-back]
        if lead & 0xC0 == 0x80:  # a continuation byte: look further back for its lead
            continue
        need = 2 if lead & 0xE0 == 0xC0 else 3 if lead & 0xF0 == 0xE0 else 4 if lead & 0xF8 == 0xF0 else 1
        return data[:-back] if need > back else data
    return data


@dataclass(frozen=True)
class Explained:
    """``possible``: True (a sampled sequence gives it), False (none can), None (the budget
    ran out first); how far the longest explanation reached, in tokens and text."""

    possible: bool | None
    tokens: int
    text: str


__all__ = ["Explained", "FirstTokens", "SamplingOracle"]
