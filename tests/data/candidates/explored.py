"""Held-out candidates by a third author who had not seen the gate's checks (session of
2026-11-30), written from the documented contract alone.

``_Sound`` is a careful, correct wrapper split into hooks (settings, instruction,
template, room check, generation, stop cut). It is deliberately not a PythonModel:
only the classes below are candidates. Every defect overrides ONE hook with a slip a
careful engineer could make, whose harm shows only on inputs a hand-picked test list
tends to leave out (braces in the instruction, stop strings that are whitespace, regex
metacharacters or part of the template, overlapping stops, the exact ends of each range,
carriage returns and invisible characters, request sequences that leak state).

The correct wrappers are in styles a gate may not expect: a streamer fed from a
thread, a StoppingCriteria that stops early yet cuts exactly, an LRU cache of
temperature-0 answers, a deep-copied GenerationConfig read through
``return_dict_in_generate``, and length-sorted padded batches.

``KIND`` says which is which; ``HARM`` lists, per defect, scoring-server bodies that,
sent in order to a fresh instance, show it (see explored_harm.py).
"""

from __future__ import annotations

import copy
import math
import numbers
import re
import threading
from collections import OrderedDict

import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel
from transformers import (AutoModelForCausalLM, AutoTokenizer, StoppingCriteria,
                          StoppingCriteriaList, TextIteratorStreamer)

from harness.model.prompt import INSTRUCTION_KEY, INTRO_BLURB, RESPONSE_KEY, build_prompt

DEFAULT_TEMPERATURE = 0.0  # the contract's defaults when a caller sends none
DEFAULT_MAX_TOKENS = 64


def _invalid(field: str, value: object, allowed: str) -> MlflowException:
    shown = repr(value)
    if len(shown) > 200:
        shown = f"{shown[:200]}… ({len(shown)} characters in its repr)"
    return MlflowException(f"{field}={shown} is invalid: allowed {allowed}",
                           error_code=INVALID_PARAMETER_VALUE)


class _Sound:
    """A correct wrapper: validated settings, exact template, one row per generate call."""

    # -- loading ------------------------------------------------------------
    def load_context(self, context):
        path = context.artifacts["repository"]
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token  # special: skipped when decoding
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to("cpu").eval()
        self.eos = self.tokenizer.eos_token_id
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
        # Past the whole context it can never fit, whatever the prompt; the room left
        # by each prompt is checked once the prompts are tokenized.
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

    def _instruction(self, instruction: str) -> str:
        return instruction

    def _prompt(self, instruction) -> str:
        if not isinstance(instruction, str) or not instruction.strip():
            raise _invalid("prompt", instruction, "a string with non-whitespace text")
        return build_prompt(self._instruction(instruction))

    def _encode(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt)["input_ids"]

    def _room(self, ids, max_tokens: int, instruction) -> None:
        room = self.limit - len(ids)
        if room < 1:
            raise _invalid("prompt", instruction,
                           f"at most {self.limit - 1} tokens with the template (this one makes {len(ids)})")
        if max_tokens > room:
            raise _invalid("max_tokens", max_tokens, f"an integer in [1, {room}] for this prompt")

    # -- generation ---------------------------------------------------------
    @staticmethod
    def _sampling(temperature: float) -> dict:
        # transformers refuses do_sample=True with temperature 0: 0 is spelled greedy.
        return {"do_sample": False} if temperature == 0.0 else {"do_sample": True, "temperature": temperature}

    def _generate(self, ids, temperature: float, max_tokens: int, stop) -> str:
        """The decode of exactly the ids generated after the prompt (EOS skipped)."""
        input_ids = torch.tensor([ids])
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                      max_new_tokens=max_tokens, use_cache=True,
                                      pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos,
                                      **self._sampling(temperature))
        return self.tokenizer.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)

    def _cut(self, text: str, stop) -> str:
        hits = [i for i in (text.find(s) for s in stop) if i >= 0]
        return text[:min(hits)] if hits else text

    def _answer(self, instruction, ids, temperature, max_tokens, stop) -> str:
        return self._cut(self._generate(ids, temperature, max_tokens, stop), stop)

    def _answers(self, instructions, ids, temperature, max_tokens, stop) -> list[str]:
        return [self._answer(i, row, temperature, max_tokens, stop) for i, row in zip(instructions, ids)]

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = self._settings(params)
        instructions = self._rows(model_input)
        if not instructions:
            return []
        prompts = [self._prompt(i) for i in instructions]  # every row checked before any generation
        ids = [self._encode(p) for p in prompts]
        for instruction, row in zip(instructions, ids):
            self._room(row, max_tokens, instruction)
        return self._answers(instructions, ids, temperature, max_tokens, stop)


# =============================================================================
# Correct wrappers (same answers as the reference at temperature 0)
# =============================================================================


class Streamed(_Sound, PythonModel):
    """Correct: each row is generated in a worker thread feeding a TextIteratorStreamer,
    and the answer is the text assembled from the stream (batch of one per row)."""

    stream_timeout = 60.0

    def _generate(self, ids, temperature, max_tokens, stop):
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, timeout=self.stream_timeout,
                                        skip_special_tokens=True)
        input_ids = torch.tensor([ids])
        failure: list[BaseException] = []

        def run():
            try:
                with torch.inference_mode():
                    self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                        max_new_tokens=max_tokens, use_cache=True,
                                        pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos,
                                        streamer=streamer, **self._sampling(temperature))
            except BaseException as error:  # handed to the caller below
                failure.append(error)
            finally:
                # generate ends the stream itself; ending it again (a no-op for the reader,
                # which stops at the first end) releases the reader when generate failed
                # or returned without streaming, instead of leaving it to the timeout.
                streamer.end()

        worker = threading.Thread(target=run, name="explored-streamer", daemon=True)
        worker.start()
        text = "".join(streamer)
        worker.join(self.stream_timeout)
        if failure:
            raise failure[0]
        return text


class _EarliestStopSettled(StoppingCriteria):
    """Stops a row once the earliest stop string in its new text can no longer move.

    A stop string starting before the earliest hit, not yet complete, would have to reach
    past the current end; and only the last decoded character can still change (an
    incomplete UTF-8 sequence). So once the hit lies more than the longest stop string
    (plus that character and one spare) before the end, the cut is final."""

    def __init__(self, tokenizer, start: int, stop):
        self.tokenizer, self.start, self.stop = tokenizer, start, tuple(stop)
        self.margin = max(len(s) for s in self.stop) + 2

    def __call__(self, input_ids, scores, **kwargs):
        done = []
        for row in input_ids:
            text = self.tokenizer.decode(row[self.start:].tolist(), skip_special_tokens=True)
            hits = [i for i in (text.find(s) for s in self.stop) if i >= 0]
            done.append(bool(hits) and len(text) - min(hits) >= self.margin)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class StopCriteriaThenCut(_Sound, PythonModel):
    """Correct: stop strings end generation early through a StoppingCriteria passed to
    generate (only once the earliest hit is settled), then the text is cut exactly."""

    def _generate(self, ids, temperature, max_tokens, stop):
        input_ids = torch.tensor([ids])
        criteria = StoppingCriteriaList([_EarliestStopSettled(self.tokenizer, len(ids), stop)]) if stop else None
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                      max_new_tokens=max_tokens, use_cache=True,
                                      pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos,
                                      stopping_criteria=criteria, **self._sampling(temperature))
        return self.tokenizer.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)


class GreedyLRU(_Sound, PythonModel):
    """Correct: temperature-0 answers are kept in an LRU cache keyed by the whole request
    (verbatim instruction, max_tokens, stop list); sampled requests are never cached.
    Validation runs first, so an invalid request is rejected every time."""

    capacity = 256

    def load_context(self, context):
        super().load_context(context)
        self._cache: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.Lock()

    def _answer(self, instruction, ids, temperature, max_tokens, stop):
        if temperature != 0.0:
            return super()._answer(instruction, ids, temperature, max_tokens, stop)
        key = (instruction, max_tokens, tuple(stop))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        answer = super()._answer(instruction, ids, temperature, max_tokens, stop)
        with self._lock:
            self._cache[key] = answer
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return answer


class DeepCopiedConfig(_Sound, PythonModel):
    """Correct: a GenerationConfig deep-copied from the model's for every request (the shared
    one is never touched), with return_dict_in_generate=True; the ids come from .sequences."""

    def _generate(self, ids, temperature, max_tokens, stop):
        config = copy.deepcopy(self.model.generation_config)
        config.max_new_tokens = max_tokens
        config.use_cache = True  # the snapshot's own config turns the KV cache off
        config.eos_token_id = self.eos
        config.pad_token_id = self.tokenizer.pad_token_id
        config.return_dict_in_generate = True
        config.do_sample = temperature != 0.0
        if config.do_sample:
            config.temperature = temperature
        input_ids = torch.tensor([ids])
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                      generation_config=config)
        return self.tokenizer.decode(out.sequences[0, len(ids):].tolist(), skip_special_tokens=True)


class SortedPaddedBatches(_Sound, PythonModel):
    """Correct: rows sorted by token length, left-padded batches of 4 (little padding),
    answers put back in input order; stop strings cut with one regular expression of the
    escaped stop strings, whose leftmost match is the earliest occurrence of any of them."""

    batch = 4

    def _cut(self, text, stop):
        if not stop:
            return text
        found = re.search("|".join(re.escape(s) for s in stop), text)
        return text[:found.start()] if found else text

    def _answers(self, instructions, ids, temperature, max_tokens, stop):
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        answers: dict[int, str] = {}
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch):
            members = order[start:start + self.batch]
            width = max(len(ids[i]) for i in members)
            input_ids = torch.tensor([[pad] * (width - len(ids[i])) + ids[i] for i in members])
            mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in members])
            with torch.inference_mode():
                out = self.model.generate(input_ids=input_ids, attention_mask=mask,
                                          max_new_tokens=max_tokens, use_cache=True,
                                          pad_token_id=pad, eos_token_id=self.eos,
                                          **self._sampling(temperature))
            for i, row in zip(members, out[:, width:].tolist()):
                answers[i] = self._cut(self.tokenizer.decode(row, skip_special_tokens=True), stop)
        return [answers[i] for i in range(len(ids))]


# =============================================================================
# Defects (each one slip in _Sound)
# =============================================================================


class BracesFormatted(_Sound, PythonModel):
    """Defect: the headers are filled in with str.format AFTER the instruction is spliced in,
    so braces in the instruction are format fields: '{{x}}' reaches the model as '{x}', and
    JSON such as '{"a": 1}' raises KeyError (a 500 instead of an answer)."""

    template_head = "{intro}\n{instruction_key}\n"
    template_tail = "\n{response_key}\n"

    def _prompt(self, instruction):
        if not isinstance(instruction, str) or not instruction.strip():
            raise _invalid("prompt", instruction, "a string with non-whitespace text")
        return (self.template_head + instruction + self.template_tail).format(
            intro=INTRO_BLURB, instruction_key=INSTRUCTION_KEY, response_key=RESPONSE_KEY)


class RegexStops(_Sound, PythonModel):
    """Defect: stop strings are joined into a regular expression without re.escape, so '.'
    cuts before the first character (empty answers), and '?', '*', '(' raise re.error (500)."""

    def _cut(self, text, stop):
        if not stop:
            return text
        return re.split("|".join(stop), text, maxsplit=1)[0]


class StopsStripped(_Sound, PythonModel):
    """Defect: stop strings are stripped of surrounding whitespace while validating, so
    '\\n', ' ' and '\\n\\n' are dropped (answers run on) and ' machine' cuts one space late."""

    def _stop(self, value):
        return tuple(s.strip() for s in super()._stop(value) if s.strip())


class StopSearchedWithPrompt(_Sound, PythonModel):
    """Defect: the whole sequence (prompt and answer) is decoded, cut at the stop strings and
    then the prompt's length is dropped; a stop that occurs in the template or the
    instruction ('###', 'Response', '\\n', a word of the instruction) empties the answer."""

    def _answer(self, instruction, ids, temperature, max_tokens, stop):
        input_ids = torch.tensor([ids])
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                      max_new_tokens=max_tokens, use_cache=True,
                                      pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos,
                                      **self._sampling(temperature))
        prompt_text = self.tokenizer.decode(ids, skip_special_tokens=True)
        full = self._cut(self.tokenizer.decode(out[0].tolist(), skip_special_tokens=True), stop)
        return full[len(prompt_text):]


class NativeStopStrings(_Sound, PythonModel):
    """Defect: stop strings go to generate(stop_strings=..., tokenizer=...) and the text is
    then cut. transformers' StopStringCriteria stops as soon as ANY stop string ends the
    sequence, prompt included: with overlapping stops ('re_' ends inside 'thre_ thre') the
    cut lands late, and a stop spanning the end of the template stops the answer short."""

    def _generate(self, ids, temperature, max_tokens, stop):
        input_ids = torch.tensor([ids])
        extra = {"stop_strings": list(stop), "tokenizer": self.tokenizer} if stop else {}
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                      max_new_tokens=max_tokens, use_cache=True,
                                      pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos,
                                      **extra, **self._sampling(temperature))
        return self.tokenizer.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)


class EmptyStopAccepted(_Sound, PythonModel):
    """Defect: stop items are only checked to be strings, so an empty one ('' from a form
    field split on commas) is accepted and matches at 0: every answer is '' instead of a
    400 naming stop."""

    def _stop(self, value):
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else list(value)
        if not all(isinstance(s, str) for s in items):
            raise _invalid("stop", value, "a list of strings")
        return tuple(items)


class SamplingLeaksIntoGreedy(_Sound, PythonModel):
    """Defect: settings are written onto the model's shared generation_config, and only the
    sampling branch sets do_sample; after one request with temperature > 0, temperature-0
    requests keep sampling (at the old temperature)."""

    def _generate(self, ids, temperature, max_tokens, stop):
        config = self.model.generation_config
        config.max_new_tokens = max_tokens
        config.use_cache = True
        config.pad_token_id = self.tokenizer.pad_token_id
        if temperature > 0.0:
            config.do_sample = True
            config.temperature = temperature
        input_ids = torch.tensor([ids])
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                      generation_config=config)
        return self.tokenizer.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)


class StopStringsLeftAfterRejection(_Sound, PythonModel):
    """Defect: to stop generation early, the request's stop strings are stored on self for a
    StoppingCriteria and cleared after answering, but not in a finally: a request rejected
    after that point (over-long prompt, max_tokens past the room) leaves them set, and the
    next request without stop strings stops a few characters after the old stop string."""

    _early_stop: tuple = ()

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = self._settings(params)
        if stop:
            self._early_stop = stop
        answers = super().predict(context, model_input, params)
        self._early_stop = ()
        return answers

    def _generate(self, ids, temperature, max_tokens, stop):
        input_ids = torch.tensor([ids])
        early = self._early_stop
        criteria = StoppingCriteriaList([_EarliestStopSettled(self.tokenizer, len(ids), early)]) if early else None
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                      max_new_tokens=max_tokens, use_cache=True,
                                      pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos,
                                      stopping_criteria=criteria, **self._sampling(temperature))
        return self.tokenizer.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)


class TemperatureTwoRejected(_Sound, PythonModel):
    """Defect: the upper bound is exclusive (0 <= t < 2), so exactly 2.0, a valid setting,
    is rejected with a 400 naming temperature."""

    def _temperature(self, value):
        value = DEFAULT_TEMPERATURE if value is None else value
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) < 2.0:
            raise _invalid("temperature", value, "a number in [0, 2)")
        return float(value)


class MaxTokensReservesEos(_Sound, PythonModel):
    """Defect: the room check keeps one position 'for EOS', so max_tokens equal to exactly the
    room left (context length minus prompt tokens) is rejected naming max_tokens."""

    def _room(self, ids, max_tokens, instruction):
        room = self.limit - len(ids) - 1
        if self.limit - len(ids) < 1:
            raise _invalid("prompt", instruction, f"at most {self.limit - 1} tokens with the template")
        if max_tokens > room:
            raise _invalid("max_tokens", max_tokens, f"an integer in [1, {room}] for this prompt")


class RoomCheckValueError(_Sound, PythonModel):
    """Defect: max_tokens past the context is a 400, but a max_tokens that fits the context and
    not this prompt's room (room + 1 for a long prompt) raises ValueError: a 500."""

    def _room(self, ids, max_tokens, instruction):
        room = self.limit - len(ids)
        if room < 1:
            raise _invalid("prompt", instruction, f"at most {self.limit - 1} tokens with the template")
        if max_tokens > room:
            raise ValueError(f"max_tokens={max_tokens} leaves no room: this prompt allows {room}")


class SuccessivePartition(_Sound, PythonModel):
    """Defect: the text is cut by each stop string in turn (text.partition(s)[0]), which finds
    the earliest stop unless two overlap: a listed-first stop that starts later but ends
    inside an earlier-starting one ('re_' inside 'thre_ thre') removes the earlier one's
    match, so the answer keeps text the reference cuts."""

    def _cut(self, text, stop):
        for s in stop:
            text = text.partition(s)[0]
        return text


class CarriageReturnsNormalised(_Sound, PythonModel):
    """Defect: Windows and old-Mac line endings in the instruction are turned into '\\n'
    before templating, so text pasted with '\\r\\n' reaches the model changed."""

    def _instruction(self, instruction):
        return instruction.replace("\r\n", "\n").replace("\r", "\n")


class InvisibleCharsDropped(_Sound, PythonModel):
    """Defect: 'invisible' characters (neither printable nor whitespace: zero-width joiner,
    BOM, soft hyphen, ESC) are removed from the instruction, so emoji ZWJ sequences and
    text pasted with a BOM reach the model changed."""

    def _instruction(self, instruction):
        return "".join(ch for ch in instruction if ch.isprintable() or ch.isspace())


class CacheKeyStripped(_Sound, PythonModel):
    """Defect: an LRU cache of temperature-0 answers keyed by the stripped instruction (plus
    max_tokens and stop): after 'Name a colour.' is answered, 'Name a colour.\\n' (a
    different prompt, answered differently) gets the cached answer."""

    def load_context(self, context):
        super().load_context(context)
        self._cache: OrderedDict[tuple, str] = OrderedDict()

    def _answer(self, instruction, ids, temperature, max_tokens, stop):
        if temperature != 0.0:
            return super()._answer(instruction, ids, temperature, max_tokens, stop)
        key = (instruction.strip(), max_tokens, tuple(stop))
        if key not in self._cache:
            self._cache[key] = super()._answer(instruction, ids, temperature, max_tokens, stop)
            while len(self._cache) > 256:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return self._cache[key]


KIND = {
    "Streamed": "correct",
    "StopCriteriaThenCut": "correct",
    "GreedyLRU": "correct",
    "DeepCopiedConfig": "correct",
    "SortedPaddedBatches": "correct",
    "BracesFormatted": "defect",
    "RegexStops": "defect",
    "StopsStripped": "defect",
    "StopSearchedWithPrompt": "defect",
    "NativeStopStrings": "defect",
    "EmptyStopAccepted": "defect",
    "SamplingLeaksIntoGreedy": "defect",
    "StopStringsLeftAfterRejection": "defect",
    "TemperatureTwoRejected": "defect",
    "MaxTokensReservesEos": "defect",
    "RoomCheckValueError": "defect",
    "SuccessivePartition": "defect",
    "CarriageReturnsNormalised": "defect",
    "InvisibleCharsDropped": "defect",
    "CacheKeyStripped": "defect",
}


# Scoring-server bodies, sent in order to a fresh instance; temperature 0 wherever answers
# are compared (a sampled body only sets up state, or shows an error where an answer is due).
HARM = {
    "BracesFormatted": [
        {"inputs": ["Render the Jinja snippet {{ user.name }}"],
         "params": {"temperature": 0.0, "max_tokens": 12, "stop": []}},
        {"inputs": ["Pretty-print {\"a\": 1, \"b\": [2, 3]}"],
         "params": {"temperature": 0.0, "max_tokens": 12, "stop": []}},
    ],
    "RegexStops": [
        {"inputs": ["Name a colour."],
         "params": {"temperature": 0.0, "max_tokens": 12, "stop": ["."]}},
        {"inputs": ["Name a colour."],
         "params": {"temperature": 0.0, "max_tokens": 12, "stop": ["?"]}},
    ],
    "StopsStripped": [
        {"inputs": ["Name a colour."],
         "params": {"temperature": 0.0, "max_tokens": 12, "stop": [" "]}},
        {"inputs": ["What is MLflow?"],
         "params": {"temperature": 0.0, "max_tokens": 16, "stop": [" machine"]}},
    ],
    "StopSearchedWithPrompt": [
        {"inputs": ["Name a colour."],
         "params": {"temperature": 0.0, "max_tokens": 12, "stop": ["###"]}},
        {"inputs": ["Explain what Response means"],
         "params": {"temperature": 0.0, "max_tokens": 12, "stop": ["Response"]}},
    ],
    "NativeStopStrings": [
        {"inputs": ["What is MLflow?"],
         "params": {"temperature": 0.0, "max_tokens": 12, "stop": ["re_", "thre_ thre"]}},
        {"inputs": ["What is MLflow?"],
         "params": {"temperature": 0.0, "max_tokens": 12, "stop": ["Response:\nife"]}},
    ],
    "EmptyStopAccepted": [
        {"inputs": ["Name a colour."],
         "params": {"temperature": 0.0, "max_tokens": 12, "stop": ["\n", ""]}},
    ],
    "SamplingLeaksIntoGreedy": [
        {"inputs": ["Name a colour."],
         "params": {"temperature": 2.0, "max_tokens": 4, "stop": []}},
        {"inputs": ["Name a colour.", "List two fruits."],
         "params": {"temperature": 0.0, "max_tokens": 16, "stop": []}},
    ],
    "StopStringsLeftAfterRejection": [
        {"inputs": ["Name a colour."],
         "params": {"temperature": 0.0, "max_tokens": 500, "stop": [" "]}},
        {"inputs": ["Name a colour."],
         "params": {"temperature": 0.0, "max_tokens": 24, "stop": []}},
    ],
    "TemperatureTwoRejected": [
        {"inputs": ["Name a colour."],
         "params": {"temperature": 2.0, "max_tokens": 4, "stop": []}},
    ],
    "MaxTokensReservesEos": [
        {"inputs": ["Summarise: " + "word " * 119 + "end."],
         "params": {"temperature": 0.0, "max_tokens": 1, "stop": []}},
    ],
    "RoomCheckValueError": [
        {"inputs": ["Summarise: " + "word " * 119 + "end."],
         "params": {"temperature": 0.0, "max_tokens": 2, "stop": []}},
    ],
    "SuccessivePartition": [
        {"inputs": ["What is MLflow?"],
         "params": {"temperature": 0.0, "max_tokens": 12, "stop": ["re_", "thre_ thre"]}},
    ],
    "CarriageReturnsNormalised": [
        {"inputs": ["Translate: first line\r\nsecond line"],
         "params": {"temperature": 0.0, "max_tokens": 12, "stop": []}},
    ],
    "InvisibleCharsDropped": [
        {"inputs": ["Explain the emoji \U0001F469\u200d\U0001F4BB"],
         "params": {"temperature": 0.0, "max_tokens": 12, "stop": []}},
        {"inputs": ["\ufeffSummarise this file."],
         "params": {"temperature": 0.0, "max_tokens": 12, "stop": []}},
    ],
    "CacheKeyStripped": [
        {"inputs": ["Name a colour."],
         "params": {"temperature": 0.0, "max_tokens": 12, "stop": []}},
        {"inputs": ["Name a colour.\n"],
         "params": {"temperature": 0.0, "max_tokens": 12, "stop": []}},
    ],
}
