"""Defective MPT-Instruct PyFunc wrappers that look like careful code.

Each class is the careful wrapper ``_Careful`` (batched, left-padded, validated,
generate kwargs as the reference passes them) with ONE plausible slip. The
slips change what a caller gets, never whether the code looks tidy, so a gate
that only checks for crashes or for the shape of the output passes them all.

``_Careful`` is deliberately not a PythonModel: only the defects below are
candidates, so a loader that collects PythonModel subclasses finds only them.
"""

from __future__ import annotations

import math
import numbers
import unicodedata

import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from harness.model.prompt import build_prompt

DEFAULT_TEMPERATURE = 0.0
DEFAULT_MAX_TOKENS = 64
BATCH = 8


def _invalid(field: str, value: object, allowed: str) -> MlflowException:
    return MlflowException(f"{field}={value!r} is invalid: allowed {allowed}",
                           error_code=INVALID_PARAMETER_VALUE)


class _Careful:
    """A correct wrapper split into hooks, so each defect overrides exactly one of them."""

    def load_context(self, context):
        path = context.artifacts["repository"]
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        self.limit = int(getattr(self.model.config, "max_seq_len", None) or self.tokenizer.model_max_length)

    # -- settings -----------------------------------------------------------
    def _temperature(self, value) -> float:
        value = DEFAULT_TEMPERATURE if value is None else value
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 2.0:
            raise _invalid("temperature", value, "a finite number in [0, 2]")
        return float(value)

    def _max_tokens(self, value) -> int:
        value = DEFAULT_MAX_TOKENS if value is None else value
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                or float(value) != int(value) or int(value) < 1:
            raise _invalid("max_tokens", value, "an integer >= 1")
        return int(value)

    def _stop(self, value) -> tuple[str, ...]:
        value = [] if value is None else [value] if isinstance(value, str) else list(value)
        if not all(isinstance(s, str) and s for s in value):
            raise _invalid("stop", value, "a list of non-empty strings")
        return tuple(value)

    # -- prompts ------------------------------------------------------------
    def _instruction(self, instruction):
        return instruction

    def _prompt(self, instruction) -> str:
        try:
            return build_prompt(self._instruction(instruction))
        except ValueError as error:
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from error

    def _check_room(self, prompts, max_tokens: int) -> None:
        for length in (len(ids) for ids in self.tokenizer(prompts)["input_ids"]):
            room = self.limit - length
            if room < 1:
                raise _invalid("prompt", f"<{length} tokens>", f"at most {self.limit - 1} tokens")
            if max_tokens > room:
                raise _invalid("max_tokens", max_tokens, f"an integer in [1, {room}]")

    # -- generation ---------------------------------------------------------
    def _encode(self, prompts, max_tokens: int):
        return self.tokenizer(prompts, return_tensors="pt", padding=True)

    def _kwargs(self, temperature: float, max_tokens: int, width: int) -> dict:
        kwargs = {"max_new_tokens": max_tokens, "use_cache": True}
        if temperature == 0.0:
            kwargs["do_sample"] = False
        else:
            kwargs.update(do_sample=True, temperature=temperature)
        return kwargs

    def _generate(self, prompts, temperature: float, max_tokens: int) -> list[str]:
        batch = self._encode(prompts, max_tokens)
        width = batch["input_ids"].shape[1]
        with torch.inference_mode():
            out = self.model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                      pad_token_id=self.tokenizer.pad_token_id,
                                      **self._kwargs(temperature, max_tokens, width))
        return [self.tokenizer.decode(row[width:], skip_special_tokens=True) for row in out.tolist()]

    def _chunks(self, prompts):
        return [prompts[i:i + BATCH] for i in range(0, len(prompts), BATCH)]

    def _run(self, prompts, temperature: float, max_tokens: int) -> list[str]:
        answers: list[str] = []
        for chunk in self._chunks(prompts):
            answers += self._generate(chunk, temperature, max_tokens)
        return answers

    def _finish(self, text: str, stop) -> str:
        hits = [i for i in (text.find(s) for s in stop) if i >= 0]
        return text[:min(hits)] if hits else text

    def predict(self, context, model_input, params=None):
        params = dict(params or {})
        temperature = self._temperature(params.get("temperature"))
        max_tokens = self._max_tokens(params.get("max_tokens"))
        stop = self._stop(params.get("stop"))
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame({"prompt": model_input})
        prompts = [self._prompt(i) for i in frame["prompt"].tolist()]
        self._check_room(prompts, max_tokens)
        return [self._finish(a, stop) for a in self._run(prompts, temperature, max_tokens)]


class RightPadding(_Careful, PythonModel):
    """Defect: batches are padded on the right, so shorter rows in a mixed batch continue after pad tokens."""

    def load_context(self, context):
        super().load_context(context)
        self.tokenizer.padding_side = "right"


class AnswerCache(_Careful, PythonModel):
    """Defect: answers are memoised by prompt only, so a later call with other max_tokens/temperature/stop repeats the old text."""

    def load_context(self, context):
        super().load_context(context)
        self._answers: dict[str, str] = {}

    def _run(self, prompts, temperature, max_tokens):
        missing = list(dict.fromkeys(p for p in prompts if p not in self._answers))
        if missing:
            self._answers.update(zip(missing, super()._run(missing, temperature, max_tokens)))
        return [self._answers[p] for p in prompts]


class ReversedOrder(_Careful, PythonModel):
    """Defect: rows are sorted longest-first for tighter batches and the answers are never put back in input order."""

    def _run(self, prompts, temperature, max_tokens):
        ordered = sorted(prompts, key=len, reverse=True)
        return super()._run(ordered, temperature, max_tokens)


class SettingsDroppedOnBranch(_Careful, PythonModel):
    """Defect: calls with more than 4 rows take a 'bulk' branch that generates the default 64 tokens, ignoring max_tokens."""

    def _run(self, prompts, temperature, max_tokens):
        if len(prompts) > 4:
            bulk_limit = min(DEFAULT_MAX_TOKENS, self.limit - max(len(x) for x in self.tokenizer(prompts)["input_ids"]))
            return super()._run(prompts, temperature, bulk_limit)
        return super()._run(prompts, temperature, max_tokens)


class SeededSampling(_Careful, PythonModel):
    """Defect: predict seeds torch with 0, so every sampled (temperature > 0) call returns the same text."""

    def predict(self, context, model_input, params=None):
        torch.manual_seed(0)
        return super().predict(context, model_input, params)


class StopKept(_Careful, PythonModel):
    """Defect: the answer is cut after the stop string instead of before it, so the stop string stays in the answer."""

    def _finish(self, text, stop):
        hits = [(i, s) for s in stop if (i := text.find(s)) >= 0]
        if not hits:
            return text
        index, found = min(hits)
        return text[:index + len(found)]


class StopIgnored(_Careful, PythonModel):
    """Defect: only a stop given as a single string is honoured; the usual list of stop strings is ignored."""

    def _stop(self, value):
        return (value,) if isinstance(value, str) and value else ()


class SilentTruncation(_Careful, PythonModel):
    """Defect: an over-long prompt is cut from the left to fit instead of raising, so the caller gets an answer to a different prompt."""

    def _check_room(self, prompts, max_tokens):
        if max_tokens > self.limit - 1:
            raise _invalid("max_tokens", max_tokens, f"an integer in [1, {self.limit - 1}]")

    def _encode(self, prompts, max_tokens):
        return self.tokenizer(prompts, return_tensors="pt", padding=True, truncation=True,
                              max_length=self.limit - max_tokens, truncation_side="left")


class UnicodeNormalised(_Careful, PythonModel):
    """Defect: instructions are NFKC-normalised first, so ligatures, full-width and circled characters reach the model changed."""

    def _instruction(self, instruction):
        return unicodedata.normalize("NFKC", instruction) if isinstance(instruction, str) else instruction


class LastRowDropped(_Careful, PythonModel):
    """Defect: for more than 8 rows the remainder chunk is sliced [8:-1], so the last row has no answer."""

    def _chunks(self, prompts):
        chunks = [prompts[:BATCH]]
        if len(prompts) > BATCH:
            chunks.append(prompts[BATCH:-1])
        return [c for c in chunks if c]


class NoCache(_Careful, PythonModel):
    """Defect: generate runs with use_cache=False, recomputing the whole sequence every step (same text, far slower)."""

    def _kwargs(self, temperature, max_tokens, width):
        return {**super()._kwargs(temperature, max_tokens, width), "use_cache": False}


class OffByOneMaxTokens(_Careful, PythonModel):
    """Defect: one token of the budget is 'reserved for EOS', so answers get max_tokens - 1 new tokens (max_tokens >= 2)."""

    def _kwargs(self, temperature, max_tokens, width):
        # The slip: EOS is skipped when decoding anyway, so nothing needs reserving.
        return super()._kwargs(temperature, max(1, max_tokens - 1), width)


class StrippedAnswer(_Careful, PythonModel):
    """Defect: answers are stripped of leading and trailing whitespace, so they are no longer the decode of the new ids."""

    def _finish(self, text, stop):
        return super()._finish(text, stop).strip()


class TemperatureIgnored(_Careful, PythonModel):
    """Defect: generation is always greedy, so temperature > 0 gives the temperature-0 answer every time."""

    def _kwargs(self, temperature, max_tokens, width):
        return super()._kwargs(0.0, max_tokens, width)


class ClampedTemperature(_Careful, PythonModel):
    """Defect: an out-of-range temperature (or NaN) is clamped into [0, 2] instead of raising an error naming temperature."""

    def _temperature(self, value):
        value = DEFAULT_TEMPERATURE if value is None else float(value)
        return 0.0 if math.isnan(value) else min(max(value, 0.0), 2.0)
