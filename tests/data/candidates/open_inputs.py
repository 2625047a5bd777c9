"""Held-out candidates by a fifth author who had not seen the gate's checks (session of
2026-12-07), written from the documented contract alone, about the three inputs the
contract leaves open.

MLflow and the gateway do not say what a wrapper must do with:

1. an empty string in ``stop`` (``["\\n", ""]``): refusing it (400 naming ``stop``) and
   answering as if it were not in the list (the other stops still cut) are both correct;
2. a blank instruction (``""``, ``"  \\n"``): refusing it (400 naming ``prompt``) and
   answering it (the template rendered with it as given) are both correct;
3. zero rows (``{"inputs": [], ...}``): ``[]`` and a 400 are both correct.

Wrong is a crash (any exception but ``MlflowException(INVALID_PARAMETER_VALUE)`` is a 500
with a stack trace), an empty stop string that matches at 0 (every answer ``""``), a stop
list that stops cutting, or answers for rows nobody sent.

``_Open`` is a careful, correct wrapper (validated settings, the exact template, one
unpadded ``generate`` per row, earliest-stop cut) whose three open behaviours are hooks:
``_empty_stop`` (a stop list with ``""`` in it), ``_blank`` (a blank instruction) and
``_zero_rows``. It is deliberately not a PythonModel: only the classes below are
candidates. Its defaults are the reference's choices (refuse ``""``, refuse blanks, ``[]``).
The correct classes make every combination of choices in varied styles; each defect
overrides one hook with a slip.

``KIND`` says which is which, ``WHAT`` says what each does, ``CHOICE`` gives each correct
class's choice on each open input, and ``HARM`` lists, per defect, scoring-server bodies
that, sent in order to a fresh instance, show it (see open_inputs_harm.py).
"""

from __future__ import annotations

import math
import numbers
import re

import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from harness.model.prompt import INSTRUCTION_KEY, INTRO_BLURB, RESPONSE_KEY, PromptError, build_prompt
from harness.model.settings import InvalidParameter, check_stop

DEFAULT_TEMPERATURE = 0.0  # the contract's defaults when a caller sends none
DEFAULT_MAX_TOKENS = 64

# The MPT-Instruct template, spelled out: harness's build_prompt refuses blank
# instructions, and half of the classes here answer them.
TEMPLATE_HEAD = f"{INTRO_BLURB}\n{INSTRUCTION_KEY}\n"
TEMPLATE_TAIL = f"\n{RESPONSE_KEY}\n"


def _invalid(field: str, value: object, allowed: str) -> MlflowException:
    shown = repr(value)
    if len(shown) > 200:
        shown = f"{shown[:200]}… ({len(shown)} characters in its repr)"
    return MlflowException(f"{field}={shown} is invalid: allowed {allowed}",
                           error_code=INVALID_PARAMETER_VALUE)


class _Open:
    """A correct wrapper; the three open inputs go through ``_empty_stop``, ``_blank`` and
    ``_zero_rows``, whose defaults refuse, refuse and return ``[]``."""

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
            raise _invalid("stop", value, "a list of strings") from None
        if not all(isinstance(s, str) for s in items):
            raise _invalid("stop", value, "a list of strings")
        if "" in items:
            return self._empty_stop(value, items)
        return tuple(items)

    def _empty_stop(self, value, items) -> tuple[str, ...]:
        """Open input 1: ``items`` holds ``""``. Default: refuse, naming stop."""
        raise _invalid("stop", value, "a list of non-empty strings")

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
            if len(model_input) == 0:
                return []
            raise _invalid("prompt", list(model_input.columns), "a 'prompt' column")
        if isinstance(model_input, str):
            return [model_input]
        if isinstance(model_input, dict):
            value = model_input.get("prompt")
            return list(value) if isinstance(value, (list, tuple)) else [value]
        return list(model_input)

    def _blank(self, instruction: str) -> str:
        """Open input 2: a blank instruction. Return what to template, or raise. Default: refuse."""
        raise _invalid("prompt", instruction, "a string with non-whitespace text")

    def _prompt(self, instruction) -> str:
        if not isinstance(instruction, str):
            raise _invalid("prompt", instruction, "a string")
        if not instruction.strip():
            instruction = self._blank(instruction)
        return TEMPLATE_HEAD + instruction + TEMPLATE_TAIL

    def _encode_all(self, prompts: list[str]) -> list[list[int]]:
        return self.tokenizer(prompts)["input_ids"]  # unpadded; IndexError on an empty list

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

    def _generate(self, ids, temperature: float, max_tokens: int) -> str:
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

    def _answers(self, ids, temperature, max_tokens, stop) -> list[str]:
        return [self._cut(self._generate(row, temperature, max_tokens), stop) for row in ids]

    def _respond(self, instructions, temperature, max_tokens, stop):
        prompts = [self._prompt(i) for i in instructions]  # every row checked before any generation
        ids = self._encode_all(prompts)
        for instruction, row in zip(instructions, ids):
            self._room(row, max_tokens, instruction)
        return self._answers(ids, temperature, max_tokens, stop)

    def _zero_rows(self, temperature, max_tokens, stop):
        """Open input 3: no rows (settings already validated). Default: no answers."""
        return []

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = self._settings(params)
        instructions = self._rows(model_input)
        if not instructions:
            return self._zero_rows(temperature, max_tokens, stop)
        return self._respond(instructions, temperature, max_tokens, stop)


# =============================================================================
# Correct wrappers (the reference's answers at temperature 0 on every closed input,
# and an allowed choice on each open one)
# =============================================================================


class EmptyStopDropped(_Open, PythonModel):
    """Correct: empty stop strings are dropped while validating and the rest cut as usual;
    blanks refused, zero rows []. One unpadded generate per row."""

    def _empty_stop(self, value, items):
        return tuple(s for s in items if s)


class StopFilteredAtCut(_Open, PythonModel):
    """Correct: the stop list is kept as sent, "" included, and the cut skips empty stop
    strings (an empty string stops nothing); blanks answered, zero rows []."""

    def _empty_stop(self, value, items):
        return tuple(items)

    def _blank(self, instruction):
        return instruction

    def _cut(self, text, stop):
        earliest = len(text)
        for s in stop:
            if not s:
                continue  # "" occurs everywhere, so it cannot mark where an answer ends
            i = text.find(s)
            if 0 <= i < earliest:
                earliest = i
        return text[:earliest]


class EmptyStopRefused(_Open, PythonModel):
    """Correct: an empty stop string is a 400 naming stop (the default); blanks refused,
    zero rows []. Rows are generated in input order in left-padded batches of 4,
    padding built by hand."""

    batch = 4

    def _answers(self, ids, temperature, max_tokens, stop):
        pad = self.tokenizer.pad_token_id
        answers = []
        for start in range(0, len(ids), self.batch):
            rows = ids[start:start + self.batch]
            width = max(len(r) for r in rows)
            input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
            with torch.inference_mode():
                out = self.model.generate(input_ids=input_ids, attention_mask=mask,
                                          max_new_tokens=max_tokens, use_cache=True,
                                          pad_token_id=pad, eos_token_id=self.eos,
                                          **self._sampling(temperature))
            for row in out[:, width:].tolist():
                answers.append(self._cut(self.tokenizer.decode(row, skip_special_tokens=True), stop))
        return answers


class BlankAnswered(_Open, PythonModel):
    """Correct: a blank instruction is templated as given and answered; "" in stop refused,
    zero rows []. Generation through a fresh GenerationConfig object per request."""

    def _blank(self, instruction):
        return instruction

    def _generate(self, ids, temperature, max_tokens):
        config = GenerationConfig(max_new_tokens=max_tokens, use_cache=True,
                                  eos_token_id=self.eos, pad_token_id=self.tokenizer.pad_token_id,
                                  do_sample=temperature != 0.0,
                                  **({"temperature": temperature} if temperature != 0.0 else {}))
        input_ids = torch.tensor([ids])
        with torch.inference_mode():
            out = self.model.generate(input_ids, attention_mask=torch.ones_like(input_ids),
                                      generation_config=config)
        return self.tokenizer.decode(out[0][len(ids):], skip_special_tokens=True)


class BlankRefused(_Open, PythonModel):
    """Correct: a blank instruction is a 400 naming prompt (the default); "" in stop refused,
    zero rows an empty array. Answers come back as a 1-D numpy object array (MLflow serves
    it as a JSON list)."""

    def predict(self, context, model_input, params=None):
        return np.array(list(super().predict(context, model_input, params)), dtype=object)


class ZeroRowsEmptyList(_Open, PythonModel):
    """Correct: zero rows get [] before any tokenizing; "" in stop dropped, blanks refused.
    Generation with return_dict_in_generate (ids read from .sequences), stop strings cut
    with one regular expression of the escaped strings (leftmost match)."""

    def _zero_rows(self, temperature, max_tokens, stop):
        return []

    def _empty_stop(self, value, items):
        return tuple(s for s in items if s)

    def _generate(self, ids, temperature, max_tokens):
        input_ids = torch.tensor([ids])
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                      max_new_tokens=max_tokens, use_cache=True,
                                      pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos,
                                      return_dict_in_generate=True, **self._sampling(temperature))
        return self.tokenizer.decode(out.sequences[0, input_ids.shape[1]:].tolist(), skip_special_tokens=True)

    def _cut(self, text, stop):
        if not stop:
            return text
        found = re.search("|".join(re.escape(s) for s in stop), text)
        return text[:found.start()] if found else text


class ZeroRowsRefused(_Open, PythonModel):
    """Correct: zero rows are a 400 naming prompt ("at least one row"); "" in stop refused,
    blanks answered. Model and tokenizer kept in a dict, rows answered through
    DataFrame.apply."""

    def load_context(self, context):
        super().load_context(context)
        self._state = {"model": self.model, "tokenizer": self.tokenizer}

    def _zero_rows(self, temperature, max_tokens, stop):
        raise _invalid("prompt", [], "at least one row")

    def _blank(self, instruction):
        return instruction

    def _answers(self, ids, temperature, max_tokens, stop):
        model, tokenizer = self._state["model"], self._state["tokenizer"]

        def one(row):
            input_ids = torch.tensor([row["ids"]])
            with torch.inference_mode():
                out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                     max_new_tokens=max_tokens, use_cache=True,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=self.eos,
                                     **self._sampling(temperature))
            return self._cut(tokenizer.decode(out[0, len(row["ids"]):].tolist(), skip_special_tokens=True), stop)

        frame = pd.DataFrame({"ids": pd.Series(ids, dtype=object)})
        return frame.apply(one, axis=1).tolist()


class AllRefused(_Open, PythonModel):
    """Correct: refuses all three open inputs with a 400 (stop, prompt, prompt), reusing
    harness's own validators (check_stop, build_prompt) and turning their errors into
    MlflowException; rows of equal token length share one unpadded generate call."""

    def _stop(self, value):
        try:
            return check_stop(value)
        except InvalidParameter as error:
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None

    def _prompt(self, instruction):
        try:
            return build_prompt(instruction)
        except PromptError as error:
            raise _invalid("prompt", instruction, f"a string with non-whitespace text ({error})") from None

    def _zero_rows(self, temperature, max_tokens, stop):
        raise _invalid("prompt", [], "at least one row (the request has none)")

    def _answers(self, ids, temperature, max_tokens, stop):
        groups: dict[int, list[int]] = {}
        for index, row in enumerate(ids):
            groups.setdefault(len(row), []).append(index)
        answers: list[str | None] = [None] * len(ids)
        for width, members in groups.items():
            input_ids = torch.tensor([ids[i] for i in members])
            with torch.inference_mode():
                out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                          max_new_tokens=max_tokens, use_cache=True,
                                          pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos,
                                          **self._sampling(temperature))
            for i, row in zip(members, out[:, width:].tolist()):
                answers[i] = self._cut(self.tokenizer.decode(row, skip_special_tokens=True), stop)
        return answers


class AllAnswered(_Open, PythonModel):
    """Correct: answers all three open inputs: "" dropped from stop, blank instructions
    templated as given and answered, zero rows []. The rows go through the tokenizer as
    left-padded batches of 8 (tokenizer(..., padding=True)), one generate per batch."""

    batch = 8

    def _empty_stop(self, value, items):
        return tuple(filter(None, items))

    def _blank(self, instruction):
        return instruction

    def _zero_rows(self, temperature, max_tokens, stop):
        return []  # checked before the tokenizer, which raises IndexError on an empty batch

    def _respond(self, instructions, temperature, max_tokens, stop):
        prompts = [self._prompt(i) for i in instructions]
        for instruction, row in zip(instructions, self._encode_all(prompts)):
            self._room(row, max_tokens, instruction)
        answers = []
        for start in range(0, len(prompts), self.batch):
            encoded = self.tokenizer(prompts[start:start + self.batch], padding=True, return_tensors="pt")
            width = encoded["input_ids"].shape[1]
            with torch.inference_mode():
                out = self.model.generate(**encoded, max_new_tokens=max_tokens, use_cache=True,
                                          pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos,
                                          **self._sampling(temperature))
            answers.extend(self._cut(text, stop) for text in
                           self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True))
        return answers


# =============================================================================
# Defects (each one slip in _Open, on one open input)
# =============================================================================


class EmptyStopCrashes(_Open, PythonModel):
    """Defect: an empty stop string raises ValueError (not MlflowException), so the scoring
    server answers 500 with a stack trace instead of a 400 naming stop."""

    def _empty_stop(self, value, items):
        raise ValueError(f"stop strings must not be empty: {items!r}")


class EmptyStopEmptiesAnswers(_Open, PythonModel):
    """Defect: an empty stop string is accepted and kept, and the cut's str.find("") is 0:
    every answer of the request is ""."""

    def _empty_stop(self, value, items):
        return tuple(items)


class EmptyStopDropsAllStops(_Open, PythonModel):
    """Defect: an empty stop string is read as "no stop strings" and the whole list is
    ignored, so the other stop strings no longer cut (answers run on past them)."""

    def _empty_stop(self, value, items):
        return ()


class BlankCrashes(_Open, PythonModel):
    """Defect: a blank instruction raises a plain ValueError (not MlflowException), so the
    scoring server answers 500 with a stack trace instead of a 400 naming prompt."""

    def _blank(self, instruction):
        raise ValueError(f"prompt must not be blank, got {instruction!r}")


class ZeroRowsCrashes(_Open, PythonModel):
    """Defect: zero rows are not special-cased and go on to the tokenizer, which raises
    IndexError on an empty batch: a 500 instead of []."""

    def _zero_rows(self, temperature, max_tokens, stop):
        return self._respond([], temperature, max_tokens, stop)


class ZeroRowsOneAnswer(_Open, PythonModel):
    """Defect: zero rows get one empty answer, [""], instead of []."""

    def _zero_rows(self, temperature, max_tokens, stop):
        return [""]


KIND = {
    "EmptyStopDropped": "correct",
    "StopFilteredAtCut": "correct",
    "EmptyStopRefused": "correct",
    "BlankAnswered": "correct",
    "BlankRefused": "correct",
    "ZeroRowsEmptyList": "correct",
    "ZeroRowsRefused": "correct",
    "AllRefused": "correct",
    "AllAnswered": "correct",
    "EmptyStopCrashes": "defect",
    "EmptyStopEmptiesAnswers": "defect",
    "EmptyStopDropsAllStops": "defect",
    "BlankCrashes": "defect",
    "ZeroRowsCrashes": "defect",
    "ZeroRowsOneAnswer": "defect",
}

WHAT = {
    "EmptyStopDropped": "Drops empty strings from stop while validating and cuts at the others; refuses blank instructions; zero rows get []; one unpadded generate per row.",
    "StopFilteredAtCut": "Keeps the stop list as sent and skips empty strings when cutting; answers blank instructions; zero rows get [].",
    "EmptyStopRefused": "Refuses an empty stop string with a 400 naming stop; refuses blank instructions; zero rows get []; rows in left-padded batches of 4 built by hand.",
    "BlankAnswered": "Answers a blank instruction (template rendered with it as given); refuses an empty stop string; zero rows get []; a fresh GenerationConfig object per request.",
    "BlankRefused": "Refuses a blank instruction with a 400 naming prompt; refuses an empty stop string; answers (an empty array for zero rows) come back as a 1-D numpy object array.",
    "ZeroRowsEmptyList": "Returns [] for zero rows before tokenizing; drops empty stop strings; refuses blanks; ids read from .sequences and stops cut with one escaped regular expression.",
    "ZeroRowsRefused": "Refuses zero rows with a 400 naming prompt; refuses an empty stop string; answers blanks; model and tokenizer in a dict, rows answered through DataFrame.apply.",
    "AllRefused": "Refuses all three open inputs with a 400 (stop, prompt, prompt) through harness's own check_stop and build_prompt; equal-length rows share one unpadded generate.",
    "AllAnswered": "Answers all three open inputs: empty stop strings dropped, blank instructions answered, zero rows []; left-padded batches of 8 from tokenizer(padding=True).",
    "EmptyStopCrashes": "An empty stop string raises ValueError: a 500 with a stack trace instead of a 400 naming stop or an answer.",
    "EmptyStopEmptiesAnswers": "An empty stop string is kept and matches at 0 (str.find), so every answer of the request is \"\".",
    "EmptyStopDropsAllStops": "An empty stop string makes it ignore the whole stop list, so the other stop strings no longer cut.",
    "BlankCrashes": "A blank instruction raises a plain ValueError: a 500 with a stack trace instead of a 400 naming prompt or an answer.",
    "ZeroRowsCrashes": "Zero rows reach the tokenizer, which raises IndexError on the empty batch: a 500 instead of [] or a 400.",
    "ZeroRowsOneAnswer": "Zero rows get one empty answer [\"\"] instead of [] or a 400.",
}

# What each correct class does with each open input: "answer" ("" dropped / blank
# answered / [] for zero rows) or "refuse" (a 400).
CHOICE = {
    "EmptyStopDropped": {"stop": "answer", "blank": "refuse", "zero": "answer"},
    "StopFilteredAtCut": {"stop": "answer", "blank": "answer", "zero": "answer"},
    "EmptyStopRefused": {"stop": "refuse", "blank": "refuse", "zero": "answer"},
    "BlankAnswered": {"stop": "refuse", "blank": "answer", "zero": "answer"},
    "BlankRefused": {"stop": "refuse", "blank": "refuse", "zero": "answer"},
    "ZeroRowsEmptyList": {"stop": "answer", "blank": "refuse", "zero": "answer"},
    "ZeroRowsRefused": {"stop": "refuse", "blank": "answer", "zero": "refuse"},
    "AllRefused": {"stop": "refuse", "blank": "refuse", "zero": "refuse"},
    "AllAnswered": {"stop": "answer", "blank": "answer", "zero": "answer"},
}

_T0 = {"temperature": 0.0}

# Scoring-server bodies, sent in order to a fresh instance; every body passes
# temperature and max_tokens (MLflow fills in the signature's defaults, 1.0/100, otherwise).
HARM = {
    "EmptyStopCrashes": [
        {"inputs": ["Name a colour."], "params": {**_T0, "max_tokens": 12, "stop": ["\n", ""]}},
    ],
    "EmptyStopEmptiesAnswers": [
        {"inputs": ["Name a colour.", "What is MLflow?"],
         "params": {**_T0, "max_tokens": 12, "stop": ["\n", ""]}},
    ],
    "EmptyStopDropsAllStops": [
        {"inputs": ["Name a colour.", "What is MLflow?"],
         "params": {**_T0, "max_tokens": 16, "stop": [" thre", "", " machine"]}},
    ],
    "BlankCrashes": [
        {"inputs": ["  \n"], "params": {**_T0, "max_tokens": 12, "stop": []}},
        {"inputs": [""], "params": {**_T0, "max_tokens": 12, "stop": []}},
    ],
    "ZeroRowsCrashes": [
        {"inputs": [], "params": {**_T0, "max_tokens": 12, "stop": []}},
    ],
    "ZeroRowsOneAnswer": [
        {"inputs": [], "params": {**_T0, "max_tokens": 12, "stop": []}},
    ],
}
