"""Correct MPT-Instruct PyFunc wrappers, each written in a style unlike the reference.

Every class here must give, at temperature 0, exactly the answers of
``harness.model.wrapper.MPTInstruct``: the decode (skip_special_tokens=True) of
the ids generated after the prompt, cut at the earliest stop string. They exist
so the gate can be shown to accept correct code that it has never seen, not
just code shaped like the reference.

The validation helpers are shared on purpose: the contract (field names in the
errors, the context limit) is not a matter of style; how the text is generated is.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, pipeline

from harness.model.prompt import build_prompt

DEFAULT_TEMPERATURE = 0.0  # the contract's default when the caller sends none
DEFAULT_MAX_TOKENS = 64


def _invalid(field: str, value: object, allowed: str) -> MlflowException:
    return MlflowException(f"{field}={value!r} is invalid: allowed {allowed}",
                           error_code=INVALID_PARAMETER_VALUE)


def _settings(params) -> tuple[float, int, tuple[str, ...]]:
    """(temperature, max_tokens, stop) from params; the context limit is checked later."""
    params = dict(params or {})
    temperature = params.get("temperature")
    temperature = DEFAULT_TEMPERATURE if temperature is None else temperature
    # bool is an int subclass: True must not pass as temperature 1.
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not 0.0 <= float(temperature) <= 2.0:  # NaN fails both comparisons
        raise _invalid("temperature", temperature, "a finite number in [0, 2]")
    max_tokens = params.get("max_tokens")
    max_tokens = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    # A float 5.0 arrives when pandas or JSON widened an int; 5.5 is not a count.
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, numbers.Real) \
            or not math.isfinite(max_tokens) or float(max_tokens) != int(max_tokens) \
            or int(max_tokens) < 1:
        raise _invalid("max_tokens", max_tokens, "an integer >= 1")
    stop = params.get("stop")
    stop = [] if stop is None else [stop] if isinstance(stop, str) else list(stop)
    if not all(isinstance(s, str) and s for s in stop):
        raise _invalid("stop", stop, "a list of non-empty strings")
    return float(temperature), int(max_tokens), tuple(stop)


def _instructions(model_input) -> list:
    if isinstance(model_input, pd.DataFrame):
        if "prompt" not in model_input.columns:
            raise _invalid("prompt", list(model_input.columns), "a DataFrame with a 'prompt' column")
        return model_input["prompt"].tolist()
    if isinstance(model_input, list):
        return list(model_input)
    raise _invalid("prompt", type(model_input).__name__, "a DataFrame with a 'prompt' column")


def _prompt(instruction) -> str:
    try:
        return build_prompt(instruction)  # the exact template; retyping it risks a stray space
    except ValueError as error:
        raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from error


def _check_room(lengths, limit: int, max_tokens: int) -> None:
    """Every row is checked before any generation, so a bad row fails the call cheaply."""
    for length in lengths:
        room = limit - length
        if room < 1:
            raise _invalid("prompt", f"<{length} tokens>", f"at most {limit - 1} tokens")
        if max_tokens > room:
            raise _invalid("max_tokens", max_tokens, f"an integer in [1, {room}] for this prompt")


def _cut(text: str, stop) -> str:
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    return text[:min(hits)] if hits else text


def _sampling(temperature: float) -> dict:
    # transformers refuses do_sample=True with temperature 0, so 0 is spelled greedy.
    return {"do_sample": False} if temperature == 0.0 else {"do_sample": True, "temperature": temperature}


def _load(context):
    path = context.artifacts["repository"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"  # generate appends on the right; padding must not sit between
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # special, so skipped when decoding
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to("cpu").eval()
    limit = int(getattr(model.config, "max_seq_len", None)
                or getattr(model.config, "max_position_embeddings", None)
                or tokenizer.model_max_length)
    return model, tokenizer, limit


class RowByRow(PythonModel):
    """One generate call per row: no padding at all, so no batching subtleties."""

    def load_context(self, context):
        self.model, self.tokenizer, self.limit = _load(context)

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = _settings(params)
        prompts = [_prompt(i) for i in _instructions(model_input)]
        encoded = [self.tokenizer(p, return_tensors="pt") for p in prompts]
        _check_room([e["input_ids"].shape[1] for e in encoded], self.limit, max_tokens)
        answers = []
        for enc in encoded:
            with torch.no_grad():
                out = self.model.generate(**enc, max_new_tokens=max_tokens, use_cache=True,
                                          pad_token_id=self.tokenizer.pad_token_id,
                                          **_sampling(temperature))
            new_ids = out[0, enc["input_ids"].shape[1]:]
            answers.append(_cut(self.tokenizer.decode(new_ids, skip_special_tokens=True), stop))
        return answers


class Pipeline(PythonModel):
    """A transformers text-generation pipeline; return_full_text=False decodes only the new ids."""

    def load_context(self, context):
        self.model, self.tokenizer, self.limit = _load(context)
        self.pipe = pipeline("text-generation", model=self.model, tokenizer=self.tokenizer)

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = _settings(params)
        prompts = [_prompt(i) for i in _instructions(model_input)]
        _check_room([len(ids) for ids in self.tokenizer(prompts)["input_ids"]], self.limit, max_tokens)
        # The pipeline's own defaults (max_new_tokens=256, sampling at 0.7) must all be
        # overridden; it runs rows one at a time (batch_size 1), so nothing is padded.
        outputs = self.pipe(prompts, return_full_text=False, max_new_tokens=max_tokens,
                            use_cache=True, pad_token_id=self.tokenizer.pad_token_id,
                            clean_up_tokenization_spaces=False, **_sampling(temperature))
        return [_cut(out[0]["generated_text"], stop) for out in outputs]


class GenerationConfigObject(PythonModel):
    """Whole batch in one left-padded generate call, settings passed as a GenerationConfig."""

    def load_context(self, context):
        self.model, self.tokenizer, self.limit = _load(context)

    def _config(self, temperature: float, max_tokens: int) -> GenerationConfig:
        # A passed config replaces the model's, so EOS must be named again or rows
        # would run on past the end of their answer.
        return GenerationConfig(max_new_tokens=max_tokens, use_cache=True,
                                eos_token_id=self.tokenizer.eos_token_id,
                                pad_token_id=self.tokenizer.pad_token_id,
                                **_sampling(temperature))

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = _settings(params)
        prompts = [_prompt(i) for i in _instructions(model_input)]
        _check_room([len(ids) for ids in self.tokenizer(prompts)["input_ids"]], self.limit, max_tokens)
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = self.model.generate(**batch, generation_config=self._config(temperature, max_tokens))
        start = batch["input_ids"].shape[1]
        texts = self.tokenizer.batch_decode(out[:, start:], skip_special_tokens=True)
        return [_cut(t, stop) for t in texts]


class MaxLengthArithmetic(PythonModel):
    """max_length = padded prompt length + max_tokens, in left-padded chunks of 4."""

    chunk = 4

    def load_context(self, context):
        self.model, self.tokenizer, self.limit = _load(context)

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = _settings(params)
        prompts = [_prompt(i) for i in _instructions(model_input)]
        _check_room([len(ids) for ids in self.tokenizer(prompts)["input_ids"]], self.limit, max_tokens)
        answers: list[str] = []
        for start in range(0, len(prompts), self.chunk):
            batch = self.tokenizer(prompts[start:start + self.chunk], return_tensors="pt", padding=True)
            width = batch["input_ids"].shape[1]
            # Every row of a left-padded chunk shares the padded width, so a total
            # length budget gives each exactly max_tokens new positions.
            with torch.no_grad():
                out = self.model.generate(input_ids=batch["input_ids"],
                                          attention_mask=batch["attention_mask"],
                                          max_length=width + max_tokens, use_cache=True,
                                          pad_token_id=self.tokenizer.pad_token_id,
                                          **_sampling(temperature))
            answers += [_cut(self.tokenizer.decode(row[width:].tolist(), skip_special_tokens=True), stop)
                        for row in out]
        return answers


class ModelInDict(PythonModel):
    """Model and tokenizer live only in a dict, so nothing named `model` is on the instance."""

    def load_context(self, context):
        model, tokenizer, limit = _load(context)
        self._state = {"m": model, "t": tokenizer, "limit": limit}

    def predict(self, context, model_input, params=None):
        m, t = self._state["m"], self._state["t"]
        temperature, max_tokens, stop = _settings(params)
        prompts = [_prompt(i) for i in _instructions(model_input)]
        ids = t(prompts)["input_ids"]
        _check_room([len(x) for x in ids], self._state["limit"], max_tokens)
        # Pad by hand (left, with the pad id, mask 0) instead of asking the tokenizer to.
        width = max(len(x) for x in ids)
        input_ids = torch.tensor([[t.pad_token_id] * (width - len(x)) + x for x in ids])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        with torch.inference_mode():
            out = m.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_tokens,
                             use_cache=True, pad_token_id=t.pad_token_id, **_sampling(temperature))
        return [_cut(t.decode(row[width:], skip_special_tokens=True), stop) for row in out.tolist()]


class NumpyOutput(PythonModel):
    """Returns a 1-D numpy array (dtype=object) instead of a list; MLflow serves it as a JSON list.

    dtype=object on purpose: numpy's fixed-width '<U' strings drop trailing NUL
    characters, which would change an answer that ends in one.
    """

    def load_context(self, context):
        self.model, self.tokenizer, self.limit = _load(context)

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = _settings(params)
        prompts = [_prompt(i) for i in _instructions(model_input)]
        _check_room([len(ids) for ids in self.tokenizer(prompts)["input_ids"]], self.limit, max_tokens)
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True)
        with torch.no_grad():
            out = self.model.generate(**batch, max_new_tokens=max_tokens, use_cache=True,
                                      pad_token_id=self.tokenizer.pad_token_id, **_sampling(temperature))
        start = batch["input_ids"].shape[1]
        answers = np.empty(len(prompts), dtype=object)
        for i, row in enumerate(out):
            answers[i] = _cut(self.tokenizer.decode(row[start:], skip_special_tokens=True), stop)
        return answers


class TopK1Greedy(PythonModel):
    """Temperature 0 as sampling restricted to the single most likely token (top_k=1)."""

    def load_context(self, context):
        self.model, self.tokenizer, self.limit = _load(context)

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = _settings(params)
        prompts = [_prompt(i) for i in _instructions(model_input)]
        _check_room([len(ids) for ids in self.tokenizer(prompts)["input_ids"]], self.limit, max_tokens)
        # top_k=1 leaves one token with probability 1, so the draw is the argmax;
        # temperature/top_p are pinned to 1 so no other warper touches the logits.
        how = ({"do_sample": True, "top_k": 1, "top_p": 1.0, "temperature": 1.0}
               if temperature == 0.0 else {"do_sample": True, "temperature": temperature})
        answers = []
        for prompt in prompts:
            enc = self.tokenizer([prompt], return_tensors="pt", padding=True)
            with torch.no_grad():
                out = self.model.generate(**enc, max_new_tokens=max_tokens, use_cache=True,
                                          pad_token_id=self.tokenizer.pad_token_id, **how)
            answers.append(self.tokenizer.decode(out[0, enc["input_ids"].shape[1]:],
                                                 skip_special_tokens=True))
        return [_cut(a, stop) for a in answers]


class ManualLoop(PythonModel):
    """Its own decoding loop over the KV cache (``cache``, once past_key_values); generate is never called."""

    def load_context(self, context):
        self.model, self.tokenizer, self.limit = _load(context)
        # Sampling follows generate's defaults (top_k from the generation config, 50
        # when unset) so the same temperature means the same distribution.
        self.top_k = getattr(self.model.generation_config, "top_k", None) or 50

    def _next(self, logits: torch.Tensor, temperature: float) -> int:
        if temperature == 0.0:
            return int(torch.argmax(logits))
        scores = logits / temperature
        kth = torch.topk(scores, min(self.top_k, scores.shape[-1])).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
        return int(torch.multinomial(torch.softmax(scores, dim=-1), 1))

    def _answer(self, prompt: str, temperature: float, max_tokens: int) -> str:
        ids = self.tokenizer(prompt, return_tensors="pt")["input_ids"]
        step, past, new = ids, None, []
        with torch.inference_mode():
            for _ in range(max_tokens):
                out = self.model(input_ids=step, cache=past, use_cache=True)
                past = out.cache
                token = self._next(out.logits[0, -1], temperature)
                new.append(token)
                if token == self.tokenizer.eos_token_id:
                    break
                step = torch.tensor([[token]])
        return self.tokenizer.decode(new, skip_special_tokens=True)

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = _settings(params)
        prompts = [_prompt(i) for i in _instructions(model_input)]
        _check_room([len(ids) for ids in self.tokenizer(prompts)["input_ids"]], self.limit, max_tokens)
        return [_cut(self._answer(p, temperature, max_tokens), stop) for p in prompts]


class LengthBucketed(PythonModel):
    """Rows with the same token length are batched together (no padding), then put back in order."""

    def load_context(self, context):
        self.model, self.tokenizer, self.limit = _load(context)

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = _settings(params)
        prompts = [_prompt(i) for i in _instructions(model_input)]
        ids = self.tokenizer(prompts)["input_ids"]
        _check_room([len(x) for x in ids], self.limit, max_tokens)
        buckets: dict[int, list[int]] = {}
        for index, row in enumerate(ids):
            buckets.setdefault(len(row), []).append(index)
        answers: dict[int, str] = {}
        for length, members in sorted(buckets.items(), reverse=True):
            batch = torch.tensor([ids[i] for i in members])
            with torch.no_grad():
                out = self.model.generate(input_ids=batch, attention_mask=torch.ones_like(batch),
                                          max_new_tokens=max_tokens, use_cache=True,
                                          pad_token_id=self.tokenizer.pad_token_id,
                                          **_sampling(temperature))
            for i, row in zip(members, out):
                answers[i] = _cut(self.tokenizer.decode(row[length:], skip_special_tokens=True), stop)
        return [answers[i] for i in range(len(prompts))]
