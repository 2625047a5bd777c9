"""Held-out candidates by a fourth author who had not seen the gate's checks (session of
2026-11-30), written from the documented contract alone, for low-precision runs.

Every class honours the precision it is asked for: MLflow's ``model_config`` may carry
``dtype`` ("float32", "bfloat16", "float16"; "bfloat16" when absent) and ``device``
("cpu", "cuda"; "cpu" when absent), and ``context.model_config`` may be None. Running in
bfloat16 is NOT a defect here, and neither is the rounding it brings: every correct class
gives, at temperature 0, exactly the answers the reference gives in the same dtype.

``_LowPrecision`` is a careful, correct wrapper split into hooks (placement, loading,
settings, template, room check, generate arguments, decoding, stop cut). It is deliberately
not a PythonModel: only the classes below are candidates.

The correct wrappers are in styles a gate may not expect: a float32 load cast down
afterwards and run in left-padded batches of 8, the dtype given to ``from_pretrained``,
decoding in chunks of 3 new tokens with the KV cache handed from one generate call to the
next, and a custom ``BaseStreamer`` that collects the new ids.

Each defect is ONE slip that keeps the usual call shapes but changes what a caller gets
at temperature 0. Four of them are small numerical changes to the scores (a repetition
penalty, an n-gram ban, beam search, EOS suppressed for the first tokens): they leave most
tokens alone, so a tolerance meant to absorb bfloat16 rounding could be tempted to wave
them through. ``KIND`` says which is which, ``WHAT`` says what each does, and
``precision_harm.py`` shows, in bfloat16 on CPU, where each defect parts from the
reference.
"""

from __future__ import annotations

import math
import numbers

import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.generation.streamers import BaseStreamer

from harness.model.prompt import build_prompt

DEFAULT_TEMPERATURE = 0.0  # the contract's defaults when a caller sends none
DEFAULT_MAX_TOKENS = 64
DEFAULT_DTYPE = "bfloat16"  # what this author's deployment asks for when model_config says nothing
DEFAULT_DEVICE = "cpu"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICES = ("cpu", "cuda")


def _invalid(field: str, value: object, allowed: str) -> MlflowException:
    shown = repr(value)
    if len(shown) > 200:
        shown = f"{shown[:200]}… ({len(shown)} characters in its repr)"
    return MlflowException(f"{field}={shown} is invalid: allowed {allowed}",
                           error_code=INVALID_PARAMETER_VALUE)


class _LowPrecision:
    """A correct wrapper that runs in the asked dtype on the asked device, one row per
    generate call; each candidate overrides one hook."""

    # -- placement and loading ---------------------------------------------
    @staticmethod
    def _placement(context) -> tuple[str, torch.dtype, str]:
        config = getattr(context, "model_config", None) or {}
        name = config.get("dtype")
        name = DEFAULT_DTYPE if name is None else name
        if name not in DTYPES:
            raise _invalid("dtype", name, f"one of {sorted(DTYPES)}")
        device = config.get("device")
        device = DEFAULT_DEVICE if device is None else device
        if device not in DEVICES:
            raise _invalid("device", device, f"one of {list(DEVICES)}")
        return name, DTYPES[name], device

    def _load_model(self, path: str):
        return AutoModelForCausalLM.from_pretrained(path, dtype=self.dtype).to(self.device)

    def load_context(self, context):
        path = context.artifacts["repository"]
        self.dtype_name, self.dtype, self.device = self._placement(context)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token  # special: skipped when decoding
        self.model = self._load_model(path).eval()
        self.eos = self.tokenizer.eos_token_id
        self.pad = self.tokenizer.pad_token_id
        config = self.model.config
        self.limit = int(getattr(config, "max_seq_len", None)
                         or getattr(config, "max_position_embeddings", None)
                         or self.tokenizer.model_max_length)

    # -- settings -----------------------------------------------------------
    def _temperature(self, value) -> float:
        value = DEFAULT_TEMPERATURE if value is None else value
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(float(value)) or not 0.0 <= float(value) <= 2.0:
            raise _invalid("temperature", value, "a finite number in [0, 2]")
        return float(value)

    def _max_tokens(self, value) -> int:
        value = DEFAULT_MAX_TOKENS if value is None else value
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(float(value)) or float(value) != int(value):
            raise _invalid("max_tokens", value, "an integer >= 1")
        value = int(value)
        if not 1 <= value <= self.limit - 1:
            raise _invalid("max_tokens", value, f"an integer in [1, {self.limit - 1}]")
        return value

    def _stop(self, value) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        try:
            items = list(value)
        except TypeError:
            raise _invalid("stop", value, "a list of non-empty strings") from None
        if not all(isinstance(s, str) and s for s in items):
            raise _invalid("stop", value, "a list of non-empty strings")
        return tuple(items)

    def _settings(self, params) -> tuple[float, int, tuple[str, ...]]:
        params = dict(params or {})
        return (self._temperature(params.get("temperature")),
                self._max_tokens(params.get("max_tokens")),
                self._stop(params.get("stop")))

    # -- prompts ------------------------------------------------------------
    @staticmethod
    def _rows(model_input) -> list:
        if isinstance(model_input, pd.DataFrame):
            if "prompt" in model_input.columns:
                return model_input["prompt"].tolist()
            if model_input.shape[1] == 1:
                return model_input.iloc[:, 0].tolist()
            raise _invalid("prompt", list(model_input.columns), "a 'prompt' column")
        if isinstance(model_input, str):
            return [model_input]
        if isinstance(model_input, dict):
            value = model_input.get("prompt")
            return list(value) if isinstance(value, (list, tuple)) else [value]
        return list(model_input)

    def _prompt(self, instruction) -> str:
        if not isinstance(instruction, str) or not instruction.strip():
            raise _invalid("prompt", instruction, "a string with non-whitespace text")
        return build_prompt(instruction)

    def _room(self, ids, max_tokens: int, instruction) -> None:
        room = self.limit - len(ids)
        if room < 1:
            raise _invalid("prompt", instruction,
                           f"at most {self.limit - 1} tokens with the template (this one makes {len(ids)})")
        if max_tokens > room:
            raise _invalid("max_tokens", max_tokens, f"an integer in [1, {room}] for this prompt")

    # -- generation ---------------------------------------------------------
    def _kwargs(self, temperature: float, max_tokens: int) -> dict:
        """generate's arguments besides the ids; transformers refuses temperature 0 with sampling."""
        kwargs = {"max_new_tokens": max_tokens, "use_cache": True,
                  "pad_token_id": self.pad, "eos_token_id": self.eos}
        if temperature == 0.0:
            kwargs["do_sample"] = False
        else:
            kwargs.update(do_sample=True, temperature=temperature)
        return kwargs

    def _decode(self, new_ids: list[int]) -> str:
        return self.tokenizer.decode(new_ids, skip_special_tokens=True)

    def _tensor(self, ids: list[int]) -> torch.Tensor:
        return torch.tensor([ids], device=self.device)

    def _generate(self, ids: list[int], temperature: float, max_tokens: int) -> str:
        input_ids = self._tensor(ids)
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                      **self._kwargs(temperature, max_tokens))
        return self._decode(out[0, len(ids):].tolist())

    def _texts(self, ids: list[list[int]], temperature: float, max_tokens: int) -> list[str]:
        return [self._generate(row, temperature, max_tokens) for row in ids]

    def _cut(self, text: str, stop) -> str:
        hits = [i for i in (text.find(s) for s in stop) if i >= 0]
        return text[:min(hits)] if hits else text

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = self._settings(params)
        instructions = self._rows(model_input)
        if not instructions:
            return []
        prompts = [self._prompt(i) for i in instructions]  # every row checked before any generation
        ids = [self.tokenizer(p)["input_ids"] for p in prompts]
        for instruction, row in zip(instructions, ids):
            self._room(row, max_tokens, instruction)
        return [self._cut(text, stop) for text in self._texts(ids, temperature, max_tokens)]


# =============================================================================
# Correct wrappers (same answers as the reference, in the same dtype, at temperature 0)
# =============================================================================


class HalfAfterLoad(_LowPrecision, PythonModel):
    """Correct: loads the float32 weights, then casts the model with .to(device, dtype);
    rows go in left-padded batches of up to 8, one generate call per batch."""

    batch = 8

    def _load_model(self, path):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        return model.to(device=self.device, dtype=self.dtype)

    def _texts(self, ids, temperature, max_tokens):
        texts: list[str] = []
        for start in range(0, len(ids), self.batch):
            rows = ids[start:start + self.batch]
            encoded = self.tokenizer.pad({"input_ids": rows}, padding=True, return_tensors="pt")
            input_ids = encoded["input_ids"].to(self.device)
            mask = encoded["attention_mask"].to(self.device)
            width = input_ids.shape[1]
            with torch.inference_mode():
                out = self.model.generate(input_ids=input_ids, attention_mask=mask,
                                          **self._kwargs(temperature, max_tokens))
            texts += [self._decode(row) for row in out[:, width:].tolist()]
        return texts


class DtypeAtLoad(_LowPrecision, PythonModel):
    """Correct: the dtype goes straight to from_pretrained(path, dtype=...) (transformers 5's
    name for it) and the model is moved to the device; one unpadded generate call per row."""

    def _load_model(self, path):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=self.dtype)
        assert next(model.parameters()).dtype == self.dtype, "from_pretrained ignored dtype="
        return model.to(self.device)


class ChunkedDecode(_LowPrecision, PythonModel):
    """Correct: decodes in chunks of 3 new tokens per generate call, feeding the ids so far
    (and the KV cache, so no position is recomputed differently) back in, until EOS or
    max_tokens new tokens."""

    chunk = 3

    def _generate(self, ids, temperature, max_tokens):
        sequence = self._tensor(ids)
        past = None
        new: list[int] = []
        while len(new) < max_tokens:
            step = min(self.chunk, max_tokens - len(new))
            kwargs = self._kwargs(temperature, step)
            with torch.inference_mode():
                out = self.model.generate(input_ids=sequence, attention_mask=torch.ones_like(sequence),
                                          cache=past, return_dict_in_generate=True, **kwargs)
            produced = out.sequences[0, sequence.shape[1]:].tolist()
            if self.eos in produced:
                new += produced[:produced.index(self.eos)]
                break
            new += produced
            if len(produced) < step:  # generate ended early for some other reason: nothing more comes
                break
            sequence, past = out.sequences, getattr(out, "cache", None)
        return self._decode(new)


class _Collector(BaseStreamer):
    """Keeps every id generate streams after the prompt (the first put is the prompt)."""

    def __init__(self):
        self.ids: list[int] = []
        self._prompt_seen = False
        self.ended = False

    def put(self, value):
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        if value.dim() > 1:
            if value.shape[0] != 1:
                raise ValueError("_Collector streams one row at a time")
            value = value[0]
        self.ids += value.tolist()

    def end(self):
        self.ended = True


class StreamerCollected(_LowPrecision, PythonModel):
    """Correct: a custom BaseStreamer passed to generate collects the new ids as they are
    produced (the return value is ignored); the collected ids are decoded at the end."""

    def _generate(self, ids, temperature, max_tokens):
        input_ids = self._tensor(ids)
        collector = _Collector()
        with torch.inference_mode():
            self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                streamer=collector, **self._kwargs(temperature, max_tokens))
        if not collector.ended:
            raise RuntimeError("generate returned without ending the stream")
        return self._decode(collector.ids)


# =============================================================================
# Defects (each one slip in _LowPrecision; all honour the asked dtype)
# =============================================================================


class RepetitionPenalty(_LowPrecision, PythonModel):
    """Defect: generate gets repetition_penalty=1.3 'to avoid loops', at temperature 0 too:
    every token already in the prompt or the answer has its score divided (or, if negative,
    multiplied) by 1.3, so greedy decoding picks a different token wherever that matters."""

    def _kwargs(self, temperature, max_tokens):
        return {**super()._kwargs(temperature, max_tokens), "repetition_penalty": 1.3}


class NoRepeatNgram(_LowPrecision, PythonModel):
    """Defect: generate gets no_repeat_ngram_size=3 'so small models don't loop': any token
    that would repeat a 3-gram already in the prompt or the answer is banned, so answers
    that legitimately repeat (the template's own phrases, lists, loops) turn elsewhere."""

    def _kwargs(self, temperature, max_tokens):
        return {**super()._kwargs(temperature, max_tokens), "no_repeat_ngram_size": 3}


class BeamPairAtZero(_LowPrecision, PythonModel):
    """Defect: temperature 0 is read as 'best answer' and runs beam search with num_beams=2
    (early_stopping=True) instead of greedy decoding; the answer is the better of two beams
    by summed log-probability, which is not always the greedy path."""

    def _kwargs(self, temperature, max_tokens):
        kwargs = super()._kwargs(temperature, max_tokens)
        if temperature == 0.0:
            kwargs.update(num_beams=2, early_stopping=True)
        return kwargs


class EosSuppressedEarly(_LowPrecision, PythonModel):
    """Defect: generate gets min_new_tokens=min(16, max_tokens) 'so answers are never empty':
    EOS is masked out for the first 16 new tokens, so an answer the model ends early runs on
    past its end."""

    def _kwargs(self, temperature, max_tokens):
        return {**super()._kwargs(temperature, max_tokens), "min_new_tokens": min(16, max_tokens)}


class StopCutOneEarly(_LowPrecision, PythonModel):
    """Defect: the stop cut drops the character before the stop string too
    (text[:index - 1], 'to drop the separator before it'), so every answer that contains a
    stop string loses one more character, and a stop at position 0 (index - 1 == -1) keeps
    all of the text but its last character."""

    def _cut(self, text, stop):
        hits = [i for i in (text.find(s) for s in stop) if i >= 0]
        return text[:min(hits) - 1] if hits else text


KIND = {
    "HalfAfterLoad": "correct",
    "DtypeAtLoad": "correct",
    "ChunkedDecode": "correct",
    "StreamerCollected": "correct",
    "RepetitionPenalty": "defect",
    "NoRepeatNgram": "defect",
    "BeamPairAtZero": "defect",
    "EosSuppressedEarly": "defect",
    "StopCutOneEarly": "defect",
}

WHAT = {
    "HalfAfterLoad": "float32 load cast afterwards with .to(device, dtype); left-padded batches of up to 8, one generate per batch",
    "DtypeAtLoad": "from_pretrained(path, dtype=...) then .to(device); one unpadded generate per row",
    "ChunkedDecode": "3 new tokens per generate call, ids and KV cache fed back in, until EOS or max_tokens",
    "StreamerCollected": "a custom BaseStreamer collects the new ids during generate; decoded at the end",
    "RepetitionPenalty": "repetition_penalty=1.3 passed to generate, temperature 0 included",
    "NoRepeatNgram": "no_repeat_ngram_size=3 passed to generate",
    "BeamPairAtZero": "temperature 0 runs beam search (num_beams=2, early_stopping=True) instead of greedy",
    "EosSuppressedEarly": "min_new_tokens=min(16, max_tokens): EOS masked for the first 16 new tokens",
    "StopCutOneEarly": "the stop cut is text[:index - 1]: one character too many dropped (a stop at 0 keeps all but the last character)",
}
