"""PyFunc wrappers for the prompt formats ``chat-template`` and ``falcon-instruct``.

``chat-template``: the tokenizer's own ``chat_template`` rendered for one user message
(after a system message only when ``model_config["system_prompt"]`` names one) with
``add_generation_prompt=True``; the ids are ``apply_chat_template(..., tokenize=True)``'s,
i.e. the rendered text tokenized with ``add_special_tokens=False`` (the template holds BOS);
generation stops at every EOS of ``model.generation_config.eos_token_id`` (a list on the chat
snapshot: ``<|endoftext|>`` and ``<|im_end|>``). ``falcon-instruct``: ``"User: " + instruction
+ "\\nFalcon:"``, tokenized as the tokenizer is configured. Answers: the ids after the prompt,
decoded with ``skip_special_tokens=True``, cut before the earliest stop string.

Correct classes (``correct.``) give, at temperature 0, exactly the answers of
``Generator.from_pretrained(path, LoadConfig(prompt_format=...))``; each defect (``defect.``)
is the careful ``_CarefulChat``/``_CarefulFalcon`` with one slip. The settings checks are
shared on purpose: the contract is not a matter of style. Measured harm: formats.md.
"""

from __future__ import annotations

import math
import numbers

import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, pipeline

DEFAULT_TEMPERATURE = 0.0
DEFAULT_MAX_TOKENS = 64


def _invalid(field: str, value: object, allowed: str) -> MlflowException:
    return MlflowException(f"{field}={value!r} is invalid: allowed {allowed}", error_code=INVALID_PARAMETER_VALUE)


def _settings(params) -> tuple[float, int, tuple[str, ...]]:
    params = dict(params or {})
    temperature = params.get("temperature")
    temperature = DEFAULT_TEMPERATURE if temperature is None else temperature
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not 0.0 <= float(temperature) <= 2.0:  # NaN fails both comparisons
        raise _invalid("temperature", temperature, "a finite number in [0, 2]")
    max_tokens = params.get("max_tokens")
    max_tokens = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, numbers.Real) \
            or not math.isfinite(max_tokens) or float(max_tokens) != int(max_tokens) or int(max_tokens) < 1:
        raise _invalid("max_tokens", max_tokens, "an integer >= 1")
    stop = params.get("stop")
    stop = [] if stop is None else [stop] if isinstance(stop, str) else list(stop)
    if not all(isinstance(s, str) and s for s in stop):
        raise _invalid("stop", stop, "a list of non-empty strings")
    return float(temperature), int(max_tokens), tuple(stop)


def _instructions(model_input) -> list[str]:
    """The instructions, verbatim; a non-string or blank one is refused naming ``prompt``."""
    if isinstance(model_input, pd.DataFrame):
        if "prompt" not in model_input.columns:
            raise _invalid("prompt", list(model_input.columns), "a DataFrame with a 'prompt' column")
        rows = model_input["prompt"].tolist()
    elif isinstance(model_input, list):
        rows = list(model_input)
    else:
        raise _invalid("prompt", type(model_input).__name__, "a DataFrame with a 'prompt' column")
    for row in rows:
        if not isinstance(row, str) or not row.strip():
            raise _invalid("prompt", row, "a string with non-whitespace text")
    return rows


def _check_room(lengths, limit: int, max_tokens: int) -> None:
    for length in lengths:
        room = limit - length
        if room < 1:
            raise _invalid("prompt", f"<{length} tokens>", f"at most {limit - 1} tokens with the template")
        if max_tokens > room:
            raise _invalid("max_tokens", max_tokens, f"an integer in [1, {room}] for this prompt")


def _cut(text: str, stop) -> str:
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    return text[:min(hits)] if hits else text


def _sampling(temperature: float) -> dict:
    return {"do_sample": False} if temperature == 0.0 else {"do_sample": True, "temperature": temperature}


def _load(context):
    """(model, tokenizer, context limit, system prompt or None), float32 on the CPU."""
    path = context.artifacts["repository"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to("cpu").eval()
    limit = int(getattr(model.config, "max_seq_len", None) or tokenizer.model_max_length)
    system = (getattr(context, "model_config", None) or {}).get("system_prompt")
    return model, tokenizer, limit, system


def _chat(instruction: str, system: str | None) -> list[dict[str, str]]:
    turn = [{"role": "user", "content": instruction}]
    return turn if system is None else [{"role": "system", "content": system}, *turn]


# --------------------------------------------------------------------------- correct


class ChatDictPerRow(PythonModel):
    """correct. chat-template: apply_chat_template(tokenize=True, return_dict=True, return_tensors="pt") per row."""

    def load_context(self, context):
        self.model, self.tokenizer, self.limit, self.system = _load(context)

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = _settings(params)
        encoded = [self.tokenizer.apply_chat_template(_chat(i, self.system), add_generation_prompt=True,
                                                      tokenize=True, return_dict=True, return_tensors="pt")
                   for i in _instructions(model_input)]
        _check_room([e["input_ids"].shape[1] for e in encoded], self.limit, max_tokens)
        answers = []
        for enc in encoded:
            # No eos_token_id: the model's generation config already lists both of the chat's EOS.
            with torch.no_grad():
                out = self.model.generate(**enc, max_new_tokens=max_tokens, use_cache=True,
                                          pad_token_id=self.tokenizer.pad_token_id, **_sampling(temperature))
            answers.append(_cut(self.tokenizer.decode(out[0, enc["input_ids"].shape[1]:],
                                                      skip_special_tokens=True), stop))
        return answers


class RenderedLeftPadded(PythonModel):
    """correct. chat-template: render with tokenize=False, one left-padded batch with add_special_tokens=False."""

    def load_context(self, context):
        self.model, self.tokenizer, self.limit, self.system = _load(context)
        eos = self.model.generation_config.eos_token_id
        self.eos = list(eos) if isinstance(eos, (list, tuple)) else [eos]

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = _settings(params)
        instructions = _instructions(model_input)
        if not instructions:
            return []
        texts = [self.tokenizer.apply_chat_template(_chat(i, self.system), add_generation_prompt=True,
                                                    tokenize=False) for i in instructions]
        # The rendered text starts with the template's own BOS: the tokenizer must not add another.
        batch = self.tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        _check_room(batch["attention_mask"].sum(dim=1).tolist(), self.limit, max_tokens)
        config = GenerationConfig(max_new_tokens=max_tokens, use_cache=True, eos_token_id=self.eos,
                                  pad_token_id=self.tokenizer.pad_token_id, **_sampling(temperature))
        with torch.inference_mode():
            out = self.model.generate(**batch, generation_config=config)
        width = batch["input_ids"].shape[1]
        return [_cut(t, stop) for t in self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)]


class ChatPipeline(PythonModel):
    """correct. chat-template: a text-generation pipeline given the chat messages, return_full_text=False."""

    def load_context(self, context):
        model, self.tokenizer, self.limit, self.system = _load(context)
        self.pipe = pipeline("text-generation", model=model, tokenizer=self.tokenizer)

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = _settings(params)
        chats = [_chat(i, self.system) for i in _instructions(model_input)]
        if not chats:
            return []
        lengths = [len(self.tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=True,
                                                          return_dict=False)) for c in chats]
        _check_room(lengths, self.limit, max_tokens)
        # Given messages, the pipeline renders the template itself (add_generation_prompt, no
        # second BOS); its own defaults (256 tokens, sampling at 0.7) are all overridden.
        outputs = self.pipe(chats, return_full_text=False, max_new_tokens=max_tokens, use_cache=True,
                            pad_token_id=self.tokenizer.pad_token_id, clean_up_tokenization_spaces=False,
                            **_sampling(temperature))
        return [_cut(out[0]["generated_text"], stop) for out in outputs]


class EosSetLoop(PythonModel):
    """correct. chat-template: own KV-cache decoding loop that stops at any id of the generation config's EOS."""

    def load_context(self, context):
        model, tokenizer, limit, system = _load(context)
        eos = model.generation_config.eos_token_id
        self._s = {"model": model, "tok": tokenizer, "limit": limit, "system": system,
                   "eos": frozenset(eos if isinstance(eos, (list, tuple)) else [eos]),
                   "top_k": getattr(model.generation_config, "top_k", None) or 50}

    def _next(self, logits: torch.Tensor, temperature: float) -> int:
        if temperature == 0.0:
            return int(torch.argmax(logits))
        scores = logits / temperature
        kth = torch.topk(scores, min(self._s["top_k"], scores.shape[-1])).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
        return int(torch.multinomial(torch.softmax(scores, dim=-1), 1))

    def _answer(self, ids: list[int], temperature: float, max_tokens: int) -> str:
        model, step, cache, new = self._s["model"], torch.tensor([ids]), None, []
        with torch.inference_mode():
            while len(new) < max_tokens:
                out = model(input_ids=step, cache=cache, use_cache=True)
                cache, token = out.cache, self._next(out.logits[0, -1], temperature)
                new.append(token)
                if token in self._s["eos"]:
                    break
                step = torch.tensor([[token]])
        return self._s["tok"].decode(new, skip_special_tokens=True)

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = _settings(params)
        tok, system = self._s["tok"], self._s["system"]
        prompts = [tok.apply_chat_template(_chat(i, system), add_generation_prompt=True, tokenize=True,
                                           return_dict=False) for i in _instructions(model_input)]
        _check_room([len(p) for p in prompts], self._s["limit"], max_tokens)
        return [_cut(self._answer(p, temperature, max_tokens), stop) for p in prompts]


class FalconHandPadded(PythonModel):
    """correct. falcon-instruct: "User: …\\nFalcon:" tokenized normally, left-padded by hand in batches of 4."""

    chunk = 4

    def load_context(self, context):
        self.model, self.tokenizer, self.limit, self.system = _load(context)

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = _settings(params)
        head = "" if self.system is None else f"System: {self.system}\n"
        texts = [f"{head}User: {i}\nFalcon:" for i in _instructions(model_input)]
        ids = [self.tokenizer(t)["input_ids"] for t in texts]
        _check_room([len(x) for x in ids], self.limit, max_tokens)
        pad, answers = self.tokenizer.pad_token_id, []
        for start in range(0, len(ids), self.chunk):
            rows = ids[start:start + self.chunk]
            width = max(len(r) for r in rows)
            input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
            with torch.no_grad():
                out = self.model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_tokens,
                                          use_cache=True, pad_token_id=pad, **_sampling(temperature))
            answers += [_cut(self.tokenizer.decode(row[width:], skip_special_tokens=True), stop)
                        for row in out.tolist()]
        return answers


# --------------------------------------------------------------------------- defects


class _CarefulChat:
    """A correct chat-template wrapper split into hooks (one unpadded generate per row); not a
    PythonModel, so only the defects below are candidates."""

    def load_context(self, context):
        self.model, self.tokenizer, self.limit, self.system = _load(context)

    def _messages(self, instruction: str) -> list[dict[str, str]]:
        return _chat(instruction, self.system)

    def _render(self, instruction: str) -> str:
        return self.tokenizer.apply_chat_template(self._messages(instruction), add_generation_prompt=True,
                                                  tokenize=False)

    def _ids(self, instruction: str) -> list[int]:
        return self.tokenizer(self._render(instruction), add_special_tokens=False)["input_ids"]

    def _eos(self):
        return self.model.generation_config.eos_token_id

    def _answer(self, instruction: str, prompt: list[int], new: list[int]) -> str:
        return self.tokenizer.decode(new, skip_special_tokens=True)

    def predict(self, context, model_input, params=None):
        temperature, max_tokens, stop = _settings(params)
        instructions = _instructions(model_input)
        prompts = [self._ids(i) for i in instructions]
        _check_room([len(p) for p in prompts], self.limit, max_tokens)
        answers = []
        for instruction, prompt in zip(instructions, prompts):
            with torch.inference_mode():
                out = self.model.generate(input_ids=torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt),
                                          dtype=torch.long), max_new_tokens=max_tokens, use_cache=True,
                                          pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self._eos(),
                                          **_sampling(temperature))
            answers.append(_cut(self._answer(instruction, prompt, out[0, len(prompt):].tolist()), stop))
        return answers


class _CarefulFalcon(_CarefulChat):
    """The same careful wrapper in falcon-instruct."""

    def _render(self, instruction: str) -> str:
        head = "" if self.system is None else f"System: {self.system}\n"
        return f"{head}User: {instruction}\nFalcon:"

    def _ids(self, instruction: str) -> list[int]:
        return self.tokenizer(self._render(instruction))["input_ids"]


class TemplateTwice(_CarefulChat, PythonModel):
    """defect. chat-template: the rendered prompt is rendered again as the user content."""

    def _render(self, instruction: str) -> str:
        once = super()._render(instruction)
        return self.tokenizer.apply_chat_template(_chat(once, self.system), add_generation_prompt=True,
                                                  tokenize=False)


class BosDoubled(_CarefulChat, PythonModel):
    """defect. chat-template: the rendered text is tokenized with the default add_special_tokens=True (BOS twice)."""

    def _ids(self, instruction: str) -> list[int]:
        return self.tokenizer(self._render(instruction))["input_ids"]


class NoGenerationPrompt(_CarefulChat, PythonModel):
    """defect. chat-template: add_generation_prompt=True is forgotten (no assistant header)."""

    def _render(self, instruction: str) -> str:
        return self.tokenizer.apply_chat_template(self._messages(instruction), tokenize=False)


class FormatEosIgnored(_CarefulChat, PythonModel):
    """defect. chat-template: eos_token_id=tokenizer.eos_token_id, so generation runs on past <|im_end|>."""

    def _eos(self):
        return self.tokenizer.eos_token_id


class SystemRoleInvented(_CarefulChat, PythonModel):
    """defect. chat-template: a default system message is sent when none was configured."""

    def _messages(self, instruction: str) -> list[dict[str, str]]:
        return _chat(instruction, self.system if self.system is not None else "You are a helpful assistant.")


class SpecialTokensKept(_CarefulChat, PythonModel):
    """defect. chat-template: the answer is decoded with skip_special_tokens=False (<|im_end|> in the text)."""

    def _answer(self, instruction: str, prompt: list[int], new: list[int]) -> str:
        return self.tokenizer.decode(new, skip_special_tokens=False)


class PromptSlicedByText(_CarefulChat, PythonModel):
    """defect. chat-template: the answer is the full decode sliced at len(rendered prompt), specials included."""

    def _answer(self, instruction: str, prompt: list[int], new: list[int]) -> str:
        full = self.tokenizer.decode(prompt + new, skip_special_tokens=True)
        return full[len(self._render(instruction)):]


class ChatContentStripped(_CarefulChat, PythonModel):
    """defect. chat-template: the user content is instruction.strip(), not the verbatim instruction."""

    def _messages(self, instruction: str) -> list[dict[str, str]]:
        return _chat(instruction.strip(), self.system)


class FalconTrailingSpace(_CarefulFalcon, PythonModel):
    """defect. falcon-instruct: the prompt ends "Falcon: " (a trailing space) instead of "Falcon:"."""

    def _render(self, instruction: str) -> str:
        return super()._render(instruction) + " "


class FalconBosPrepended(_CarefulFalcon, PythonModel):
    """defect. falcon-instruct: the tokenizer's bos_token is written before "User:" (id 0 first)."""

    def _render(self, instruction: str) -> str:
        return self.tokenizer.bos_token + super()._render(instruction)
