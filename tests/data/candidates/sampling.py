"""Held-out candidates by a sixth author who had not seen the gate's checks (session of
2026-12-07), written from the documented contract alone, about sampling and concurrency.

The contract at temperature t > 0 is a distribution: the one of
``model.generate(do_sample=True, temperature=t)`` with the snapshot's own generation config
(today transformers' defaults, top_k=50 and top_p=1.0): each step draws from softmax(logits/t)
restricted to the 50 highest logits and renormalised. Every row is an independent draw, and so
is every request; the caller may seed torch's global RNG before a call, and a wrapper's draws
may follow that RNG, but it must never reseed it. At temperature 0 decoding is greedy.
``predict`` may run in several threads at once (MLflow's scoring server serves requests from a
thread pool): every request must get exactly what it would get alone.

``_Sampler`` is a careful, correct wrapper (validated settings, the exact template, one
unpadded ``generate`` per row, the earliest stop string cut, no mutable state shared between
requests). It is deliberately not a PythonModel: only the classes below are candidates.

- Correct samplers in other styles: their own decoding loop with ``torch.multinomial``,
  Gumbel-max, a per-request ``torch.Generator`` seeded from the global RNG, rows spread over a
  thread pool, the whole batch in one left-padded ``generate``. Each draws from exactly the
  contract's distribution (and is greedy at 0).
- Slips: each is exact at temperature 0 and, at t > 0, samples from another distribution
  (nucleus added, temperature applied twice or inverted, top_k=1) or breaks independence (a
  seed reset before every row, greedy decoding for batches), or stops on text that starts in
  the prompt (transformers' own ``stop_strings``; exact at temperature 0 as long as the greedy
  answer does not itself begin with the stop string's tail).
- Concurrency: two keep a request's settings on ``self`` between preparing and finishing it
  (correct one request at a time, wrong when requests overlap); two are thread-safe (a lock
  around the shared state; a shared thread pool fed only arguments).

``KIND`` says which is which, ``WHAT`` says what each does, ``HARM`` lists, per defect,
scoring-server bodies whose answers show it, and ``HOW`` says how to send them and what to look
at (see sampling_harm.py, which measures every class's first-token distribution against the
exact one).
"""

from __future__ import annotations

import math
import numbers
import threading
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList

from harness.model.prompt import build_prompt

DEFAULT_TEMPERATURE = 0.0  # the contract's defaults when a caller sends none
DEFAULT_MAX_TOKENS = 64
DEFAULT_TOP_K = 50  # transformers' default, used when the snapshot's generation config sets none


def _invalid(field: str, value: object, allowed: str) -> MlflowException:
    shown = repr(value)
    if len(shown) > 200:
        shown = f"{shown[:200]}… ({len(shown)} characters in its repr)"
    return MlflowException(f"{field}={shown} is invalid: allowed {allowed}",
                           error_code=INVALID_PARAMETER_VALUE)


class _Sampler:
    """A correct wrapper: validated settings, exact template, one unpadded generate per row,
    earliest stop string cut; no state on ``self`` changes after loading."""

    # -- loading ------------------------------------------------------------
    def load_context(self, context):
        path = context.artifacts["repository"]
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token  # special: skipped when decoding
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to("cpu").eval()
        self.eos = self.tokenizer.eos_token_id
        self.pad = self.tokenizer.pad_token_id
        config = self.model.config
        self.limit = int(getattr(config, "max_seq_len", None)
                         or getattr(config, "max_position_embeddings", None)
                         or self.tokenizer.model_max_length)
        # What generate samples from: the snapshot's own top_k, transformers' 50 when unset.
        self.top_k = getattr(self.model.generation_config, "top_k", None) or DEFAULT_TOP_K

    # -- settings -----------------------------------------------------------
    @staticmethod
    def _temperature(value) -> float:
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

    @staticmethod
    def _stop(value) -> tuple[str, ...]:
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

    def _prepare(self, model_input, max_tokens: int) -> list[list[int]]:
        """Every row templated, tokenized and checked against the context, before any generation."""
        instructions = self._rows(model_input)
        ids = []
        for instruction in instructions:
            if not isinstance(instruction, str) or not instruction.strip():
                raise _invalid("prompt", instruction, "a string with non-whitespace text")
            row = self.tokenizer(build_prompt(instruction))["input_ids"]
            room = self.limit - len(row)
            if room < 1:
                raise _invalid("prompt", instruction,
                               f"at most {self.limit - 1} tokens with the template (this one makes {len(row)})")
            if max_tokens > room:
                raise _invalid("max_tokens", max_tokens, f"an integer in [1, {room}] for this prompt")
            ids.append(row)
        return ids

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
                                      pad_token_id=self.pad, eos_token_id=self.eos,
                                      **self._sampling(temperature))
        return self.tokenizer.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)

    @staticmethod
    def _cut(text: str, stop) -> str:
        hits = [i for i in (text.find(s) for s in stop) if i >= 0]
        return text[:min(hits)] if hits else text

    def _answer(self, ids, temperature, max_tokens, stop) -> str:
        return self._cut(self._generate(ids, temperature, max_tokens, stop), stop)

    def _answers(self, ids, temperature, max_tokens, stop) -> list[str]:
        return [self._answer(row, temperature, max_tokens, stop) for row in ids]

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = self._settings(params)
        ids = self._prepare(model_input, max_tokens)
        if not ids:
            return []
        return self._answers(ids, temperature, max_tokens, stop)


class _OwnLoop(_Sampler):
    """Its own decoding loop over the KV cache (``cache`` in, ``.cache`` out); ``_pick`` chooses
    each next token from the last position's logits. generate is never called."""

    def _generate(self, ids, temperature, max_tokens, stop, generator=None):
        step, cache, new = torch.tensor([ids]), None, []
        with torch.inference_mode():
            for _ in range(max_tokens):
                out = self.model(input_ids=step, cache=cache, use_cache=True)
                cache = out.cache
                token = self._pick(out.logits[0, -1].float(), temperature, generator)
                new.append(token)
                if token == self.eos:
                    break
                step = torch.tensor([[token]])
        return self.tokenizer.decode(new, skip_special_tokens=True)

    def _top_k(self, scores: torch.Tensor) -> torch.Tensor:
        """Scores outside the top k set to -inf (ties with the k-th kept, as generate does)."""
        kth = torch.topk(scores, min(self.top_k, scores.shape[-1])).values[-1]
        return scores.masked_fill(scores < kth, float("-inf"))

    def _pick(self, logits, temperature, generator) -> int:
        raise NotImplementedError


# =============================================================================
# Correct samplers (draw from exactly the contract's distribution; greedy at 0)
# =============================================================================


class OwnMultinomialLoop(_OwnLoop, PythonModel):
    """Correct: its own KV-cache decoding loop, top-50 filter on logits/t, torch.multinomial."""

    def _pick(self, logits, temperature, generator):
        if temperature == 0.0:
            return int(torch.argmax(logits))
        probs = torch.softmax(self._top_k(logits / temperature), dim=-1)
        return int(torch.multinomial(probs, 1))


class GumbelMax(_OwnLoop, PythonModel):
    """Correct: its own KV-cache decoding loop, sampling by Gumbel-max over the top-50 logits/t."""

    def _pick(self, logits, temperature, generator):
        if temperature == 0.0:
            return int(torch.argmax(logits))
        top = torch.topk(logits / temperature, min(self.top_k, logits.shape[-1]))
        # argmax(score + Gumbel noise) is a draw from softmax(score) over the same tokens.
        uniform = torch.rand(top.values.shape, dtype=torch.float64).clamp_(1e-300, 1.0 - 1e-16)
        noisy = top.values.double() - torch.log(-torch.log(uniform))
        return int(top.indices[int(torch.argmax(noisy))])


class PerRequestGenerator(_OwnLoop, PythonModel):
    """Correct: its own KV-cache loop drawing with torch.multinomial(generator=g), g a fresh
    torch.Generator seeded once per request from torch.randint on the global RNG."""

    def _answers(self, ids, temperature, max_tokens, stop):
        generator = None
        if temperature != 0.0:
            # One global draw per request: seeding the caller's RNG decides the request's draws,
            # and rows share the request's generator, so they stay independent of each other.
            generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ()).item()))
        return [self._cut(self._generate(row, temperature, max_tokens, stop, generator), stop) for row in ids]

    def _pick(self, logits, temperature, generator):
        if temperature == 0.0:
            return int(torch.argmax(logits))
        probs = torch.softmax(self._top_k(logits / temperature), dim=-1)
        return int(torch.multinomial(probs, 1, generator=generator))


class RowsAcrossThreads(_Sampler, PythonModel):
    """Correct: a request's rows are spread over a small thread pool made for it, each row one
    generate(do_sample=True, temperature=t); answers put back in input order."""

    workers = 3

    def _answers(self, ids, temperature, max_tokens, stop):
        if len(ids) == 1:
            return [self._answer(ids[0], temperature, max_tokens, stop)]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(ids)),
                                thread_name_prefix="sampling-rows") as pool:
            return list(pool.map(lambda row: self._answer(row, temperature, max_tokens, stop), ids))


class BatchedSampling(_Sampler, PythonModel):
    """Correct: the whole request in one left-padded generate(do_sample=True, temperature=t,
    top_k=50) call (greedy at 0); the padding and mask built by hand."""

    def _answers(self, ids, temperature, max_tokens, stop):
        width = max(len(row) for row in ids)
        input_ids = torch.tensor([[self.pad] * (width - len(row)) + row for row in ids])
        mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in ids])
        sampling = {"do_sample": False} if temperature == 0.0 else \
            {"do_sample": True, "temperature": temperature, "top_k": self.top_k}
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_tokens,
                                      use_cache=True, pad_token_id=self.pad, eos_token_id=self.eos, **sampling)
        return [self._cut(self.tokenizer.decode(row, skip_special_tokens=True), stop)
                for row in out[:, width:].tolist()]


# =============================================================================
# Slips (exact at temperature 0; a wrong distribution or lost independence above it)
# =============================================================================


class NucleusAdded(_Sampler, PythonModel):
    """Defect: top_p=0.9 added at t > 0 "for quality": the tail of the top 50 is never drawn."""

    @staticmethod
    def _sampling(temperature):
        if temperature == 0.0:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": temperature, "top_p": 0.9}


class SeedPerRequest(_Sampler, PythonModel):
    """Defect: torch.manual_seed(1234) before every sampled row "for reproducibility": identical
    rows (and identical requests) get identical samples, and the caller's RNG is reset."""

    seed = 1234

    def _answer(self, ids, temperature, max_tokens, stop):
        if temperature != 0.0:
            torch.manual_seed(self.seed)
        return super()._answer(ids, temperature, max_tokens, stop)


class GreedyWhenBatched(_Sampler, PythonModel):
    """Defect: a request of more than one row is decoded greedily whatever its temperature
    (a "batch mode" meant for offline scoring left on)."""

    def _answers(self, ids, temperature, max_tokens, stop):
        if len(ids) > 1:
            temperature = 0.0
        return super()._answers(ids, temperature, max_tokens, stop)


class NativeStopStrings(_Sampler, PythonModel):
    """Defect: stop strings go to generate(stop_strings=..., tokenizer=...) before the cut; that
    criterion matches the whole sequence, prompt included, so a stop string made of the
    template's end and an answer's first characters ends those answers after one token
    (sampled answers that begin so; a greedy one too, if it begins so)."""

    def _generate(self, ids, temperature, max_tokens, stop):
        input_ids = torch.tensor([ids])
        extra = {"stop_strings": list(stop), "tokenizer": self.tokenizer} if stop else {}
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                      max_new_tokens=max_tokens, use_cache=True,
                                      pad_token_id=self.pad, eos_token_id=self.eos,
                                      **extra, **self._sampling(temperature))
        return self.tokenizer.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)


class _DivideBy(LogitsProcessor):
    def __init__(self, temperature: float):
        self.temperature = temperature

    def __call__(self, input_ids, scores):
        return scores / self.temperature


class TemperatureTwice(_Sampler, PythonModel):
    """Defect: a logits processor divides by t and generate's temperature=t divides again, so
    t behaves as t squared (0.5 samples like 0.25; 1.0 happens to be right)."""

    @staticmethod
    def _sampling(temperature):
        if temperature == 0.0:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": temperature,
                "logits_processor": LogitsProcessorList([_DivideBy(temperature)])}


class TemperatureInverted(_Sampler, PythonModel):
    """Defect: passes temperature 1/t (read as an "inverse temperature" setting): 0.5 samples
    like 2.0 (1.0 happens to be right)."""

    @staticmethod
    def _sampling(temperature):
        if temperature == 0.0:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": 1.0 / temperature}


class TopK1Sampled(_Sampler, PythonModel):
    """Defect: one code path for every temperature, do_sample=True with top_k=1 (how temperature
    0 is made greedy), so t > 0 is greedy too."""

    @staticmethod
    def _sampling(temperature):
        return {"do_sample": True, "temperature": temperature or 1.0, "top_k": 1}


# =============================================================================
# Concurrency (temperature-0 answers; requests that overlap in time)
# =============================================================================


class StopOnSelf(_Sampler, PythonModel):
    """Defect: the request's stop list is kept on self between preparing the request and cutting
    its answers: when requests overlap, one request's answers are cut at another's stops."""

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = self._settings(params)
        self.stop = stop
        ids = self._prepare(model_input, max_tokens)
        if not ids:
            return []
        texts = [self._generate(row, temperature, max_tokens, ()) for row in ids]
        return [self._cut(text, self.stop) for text in texts]


class SettingsOnSelf(_Sampler, PythonModel):
    """Defect: max_tokens and temperature are written onto self when a request starts and read
    for every row: when requests overlap, rows are generated with another request's settings."""

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = self._settings(params)
        self.temperature, self.max_tokens = temperature, max_tokens
        ids = self._prepare(model_input, max_tokens)
        if not ids:
            return []
        return [self._answer(row, self.temperature, self.max_tokens, stop) for row in ids]


class LockedPredict(_Sampler, PythonModel):
    """Correct: keeps the request's settings and stop list on self like the two above, but the
    whole of predict holds a threading.Lock, so requests never see each other's."""

    def load_context(self, context):
        super().load_context(context)
        self._lock = threading.Lock()

    def predict(self, context, model_input, params=None):
        with self._lock:
            self.temperature, self.max_tokens, self.stop = self._settings(params)
            ids = self._prepare(model_input, self.max_tokens)
            texts = [self._generate(row, self.temperature, self.max_tokens, ()) for row in ids]
            return [self._cut(text, self.stop) for text in texts]


class PoolInsidePredict(_Sampler, PythonModel):
    """Correct: one thread pool made at load time; predict submits every row with all its
    settings as arguments and collects the answers in order (no mutable state on self)."""

    workers = 2

    def load_context(self, context):
        super().load_context(context)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sampling-pool")

    def _answers(self, ids, temperature, max_tokens, stop):
        futures = [self._pool.submit(self._answer, row, temperature, max_tokens, stop) for row in ids]
        return [future.result() for future in futures]


KIND = {
    "OwnMultinomialLoop": "correct",
    "GumbelMax": "correct",
    "PerRequestGenerator": "correct",
    "RowsAcrossThreads": "correct",
    "BatchedSampling": "correct",
    "NucleusAdded": "defect",
    "SeedPerRequest": "defect",
    "GreedyWhenBatched": "defect",
    "NativeStopStrings": "defect",
    "TemperatureTwice": "defect",
    "TemperatureInverted": "defect",
    "TopK1Sampled": "defect",
    "StopOnSelf": "defect",
    "SettingsOnSelf": "defect",
    "LockedPredict": "correct",
    "PoolInsidePredict": "correct",
}

WHAT = {
    "OwnMultinomialLoop": "Its own KV-cache decoding loop (no generate): logits/t, top-50 filter, softmax, torch.multinomial; argmax at temperature 0.",
    "GumbelMax": "Its own KV-cache decoding loop sampling by Gumbel-max (argmax of the top-50 logits/t plus Gumbel noise from torch.rand); argmax at temperature 0.",
    "PerRequestGenerator": "Its own KV-cache loop with torch.multinomial(generator=g), g a fresh torch.Generator seeded once per request from torch.randint on the global RNG.",
    "RowsAcrossThreads": "A request's rows spread over a 3-thread pool made for it, one generate(do_sample=True, temperature=t) per row, answers put back in input order.",
    "BatchedSampling": "The whole request in one left-padded generate(do_sample=True, temperature=t, top_k=50) call, padding and mask built by hand.",
    "NucleusAdded": "Adds top_p=0.9 at temperature > 0, so the tail of the top-50 distribution is never drawn.",
    "SeedPerRequest": "Calls torch.manual_seed(1234) before every sampled row: identical rows and identical requests get identical samples, and the caller's RNG is reset.",
    "GreedyWhenBatched": "Decodes greedily whenever a request has more than one row, whatever its temperature (single-row requests sample correctly).",
    "NativeStopStrings": "Passes stop_strings and the tokenizer to generate before cutting; the criterion also matches text that starts in the prompt, so a stop made of the template's end plus an answer's first token ends those answers after that token (at temperature 0 only when the greedy answer begins with that token).",
    "TemperatureTwice": "Divides the logits by t in a logits processor and again through generate's temperature=t: t samples like t squared.",
    "TemperatureInverted": "Passes temperature 1/t to generate: 0.5 samples like 2.0 (only t = 1 is right).",
    "TopK1Sampled": "Uses do_sample=True with top_k=1 for every temperature, so temperature > 0 is greedy too.",
    "StopOnSelf": "Keeps the request's stop list on self from preparing the request to cutting its answers; overlapping requests are cut at each other's stop strings.",
    "SettingsOnSelf": "Writes max_tokens and temperature onto self at the start of a request and reads them per row; overlapping requests generate with each other's settings.",
    "LockedPredict": "Keeps the request's settings on self, but holds a threading.Lock around the whole of predict, so overlapping requests are served one after the other.",
    "PoolInsidePredict": "Submits each row, with all its settings as arguments, to a 2-thread pool made at load time and collects the answers in order; nothing on self changes.",
}

# The bodies below are built from these, and sampling_harm.py uses the same ones.
# (instruction, temperature) pairs whose first-token distribution is measured; ``SAMPLES``
# draws each, as identical rows of one request and as single-row requests.
DISTRIBUTION = (("Name a colour.", 0.5), ("What is MLflow?", 1.0))
SAMPLES = 200

# NativeStopStrings: the template ends "### Response:\n" and " source" is one token, drawn first
# for "What is MLflow?" about 9% of the time at t=1 (not the greedy first token, so greedy
# answers are unaffected). The contract's answers, of 2 tokens, are " source" alone only when
# the second token is EOS; transformers' criterion stops every answer that begins " source".
NATIVE_STOP_INSTRUCTION = "What is MLflow?"
NATIVE_STOP_TOKEN_TEXT = " source"
NATIVE_STOP = "Response:\n" + NATIVE_STOP_TOKEN_TEXT
NATIVE_STOP_BODY = {"inputs": [NATIVE_STOP_INSTRUCTION] * SAMPLES,
                    "params": {"temperature": 1.0, "max_tokens": 2, "stop": [NATIVE_STOP]}}

# Overlapping temperature-0 requests of different settings: sent together from 4 threads, each
# must get what it gets alone.
CONCURRENT_INSTRUCTIONS = ["Name a colour.", "What is MLflow?", "List two fruits.", "Write a haiku about rain."]
CONCURRENT_BODIES = [
    {"inputs": CONCURRENT_INSTRUCTIONS, "params": {"temperature": 0.0, "max_tokens": 16, "stop": []}},
    {"inputs": CONCURRENT_INSTRUCTIONS, "params": {"temperature": 0.0, "max_tokens": 5, "stop": [" "]}},
    {"inputs": CONCURRENT_INSTRUCTIONS, "params": {"temperature": 0.0, "max_tokens": 12, "stop": ["d", "_"]}},
    {"inputs": CONCURRENT_INSTRUCTIONS, "params": {"temperature": 0.0, "max_tokens": 8, "stop": ["e"]}},
]


def _rows_body(instruction: str, temperature: float) -> dict:
    return {"inputs": [instruction] * SAMPLES, "params": {"temperature": temperature, "max_tokens": 1, "stop": []}}


def _request_body(instruction: str, temperature: float) -> dict:
    return {"inputs": [instruction], "params": {"temperature": temperature, "max_tokens": 1, "stop": []}}


_AT_HALF = [_rows_body(i, t) for i, t in DISTRIBUTION if t == 0.5]
_AT_ONE = [_rows_body(i, t) for i, t in DISTRIBUTION if t == 1.0]

# Scoring-server bodies whose answers show each defect; HOW says how to send them.
HARM = {
    "NucleusAdded": _AT_HALF + _AT_ONE,
    "SeedPerRequest": _AT_HALF + _AT_ONE,
    "GreedyWhenBatched": _AT_HALF + _AT_ONE,
    "NativeStopStrings": [NATIVE_STOP_BODY],
    "TemperatureTwice": _AT_HALF,
    "TemperatureInverted": _AT_HALF,
    "TopK1Sampled": _AT_HALF + _AT_ONE,
    "StopOnSelf": CONCURRENT_BODIES,
    "SettingsOnSelf": CONCURRENT_BODIES,
}

_ROWS = ("rows: send each body once; the answers (one token each) are draws of the first token, "
         "to compare with softmax(logits/t) over the top 50, renormalised")
HOW = {
    "NucleusAdded": _ROWS + "; the tail of the top 50 (about a tenth of the mass) is never drawn.",
    "SeedPerRequest": _ROWS + "; every answer of a body is the same text (and so is every single-row "
                              "request of the same prompt, e.g. _request_body(...) sent 200 times).",
    "GreedyWhenBatched": _ROWS + "; every answer of a body is the greedy first token.",
    "NativeStopStrings": "rows: send the body once; about 9% of the answers are ' source' alone, where the "
                         "contract never gives ' source' alone (EOS, the only way to end after it, is "
                         "outside the top 50 there); at temperature 0 the same stop shortens the answer "
                         "to 'Write a haiku about rain.', whose greedy answer begins ' source'.",
    "TemperatureTwice": _ROWS + "; at t=0.5 the draws follow t=0.25 (too peaked).",
    "TemperatureInverted": _ROWS + "; at t=0.5 the draws follow t=2.0 (too flat).",
    "TopK1Sampled": _ROWS + "; every answer of a body is the greedy first token.",
    "StopOnSelf": "concurrent: send the 4 bodies at once from 4 threads (a few rounds) and compare each "
                  "answer with the same body sent alone; answers are cut at another body's stop strings.",
    "SettingsOnSelf": "concurrent: send the 4 bodies at once from 4 threads (a few rounds) and compare each "
                      "answer with the same body sent alone; rows run to another body's max_tokens.",
}
