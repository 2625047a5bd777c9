"""Any MLflow model's ``predict`` against raw ``generate`` on the same inputs.

The model is loaded as MLflow serves it (``mlflow.pyfunc.load_model``): a custom PyFunc, the
transformers flavour, with or without a prompt template. The bench does not know where it
keeps its transformers model, so it patches ``generate`` on the model class for the run:
the first call shows the model, the device and the prompt ids the model built; the raw path
is then one batched ``generate`` of exactly those ids. Inside ``predict``, ``generate`` is
held to greedy decoding of exactly the bench's token count, so both paths do the same work
and the ratio is the wrapper's own cost (tokenising, templating, row-by-row pipelines).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from harness.bench.core import BenchConfig
from harness.bench.measure import Case, Labels, cache_impl, instruction_for, measure, peak_bandwidth, raw_fn
from harness.model.formats import PromptFormat
from harness.model.intercept import Interception, generate_inputs, intercept, sequences


if TYPE_CHECKING:
    from harness.store import StoreConfig


class ModelBenchError(RuntimeError):
    """The model cannot be benchmarked this way; the message says why, in the user's words."""


@dataclass
class _Seen:
    """What ``generate`` was given inside one ``predict``."""

    rows: list[list[int]] = field(default_factory=list)  # unpadded prompt ids, in call order
    calls: list[int] = field(default_factory=list)  # the batch size of each call
    new_tokens: list[int] = field(default_factory=list)  # what each call generated
    use_cache: set[str] = field(default_factory=set)
    model: Any = None


class _HeldGenerate:
    """While installed and ``tokens`` is set (inside the bench's ``predict``), every
    ``generate`` on a transformers model is recorded and held to greedy decoding of exactly
    ``tokens`` new tokens; otherwise (the raw path) it is the real one."""

    def __init__(self) -> None:
        from transformers import GenerationMixin

        self._owner, self._original = GenerationMixin, GenerationMixin.generate
        self._lock = threading.Lock()
        self._interception: Interception | None = None
        self.tokens: int | None = None
        self.seen: _Seen | None = None  # recording only while watched

    def __enter__(self) -> _HeldGenerate:
        self._interception = intercept(self._owner, self._generate)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._interception is not None:
            self._interception.remove()

    def _generate(self, model: Any, original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.tokens is None:
            return original(*args, **kwargs)
        kwargs = {**kwargs, "do_sample": False, "max_new_tokens": self.tokens, "min_new_tokens": self.tokens}
        for sampling in ("temperature", "top_p", "top_k"):
            kwargs.pop(sampling, None)
        output = original(*args, **kwargs)
        inputs = generate_inputs(args, kwargs)
        with self._lock:
            if (seen := self.seen) is not None:
                seen.model = model
                seen.rows += [inputs.prompt_ids(r) for r in range(len(inputs.input_ids))]
                seen.calls.append(len(inputs.input_ids))
                seen.new_tokens.append(int(sequences(output).shape[-1]) - inputs.width)
                seen.use_cache.add(str(kwargs.get("use_cache", model.generation_config.use_cache)))
        return output

    def watched(self, fn: Callable[[], Any]) -> _Seen:
        """What ``generate`` was given while ``fn`` ran."""
        with self._lock:
            self.seen = seen = _Seen()
        try:
            fn()
        finally:
            with self._lock:
                self.seen = None
        return seen


def _batched(rows: list[list[int]], pad: int, device: Any) -> tuple[Any, Any]:
    """Left-padded ids and mask, as a decoder-only batch is generated."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    return ids, mask


def _request(pyfunc: Any, texts: list[str], new: int) -> tuple[Any, dict[str, int] | None]:
    """The request the model's signature asks for: its prompt column, and ``max_tokens``
    where it takes one (a param, else a column). Absent a signature: a ``prompt`` column."""
    import pandas as pd

    inputs = pyfunc.metadata.get_input_schema()
    params = pyfunc.metadata.get_params_schema()
    names = inputs.input_names() if inputs is not None and inputs.has_input_names() else []
    strings = [
        s.name
        for s in (inputs.inputs if inputs is not None else [])
        if getattr(getattr(s, "type", None), "name", "") == "string"
    ]
    column = "prompt" if "prompt" in names or not strings else strings[0]
    frame: dict[str, list[Any]] = {column: list(texts)}
    param_names = {p.name for p in params.params} if params is not None else set()
    if "max_tokens" in param_names:
        return pd.DataFrame(frame), {"max_tokens": new}
    if "max_tokens" in names:
        frame["max_tokens"] = [new] * len(texts)
    return pd.DataFrame(frame), None


def _short(uri: str) -> str:
    """A model URI as messages quote it: at most 120 characters."""
    return uri if len(uri) <= 120 else uri[:117] + "..."


def _device_of(model: Any) -> str:
    return str(next(model.parameters()).device.type)


def _notes(uri: str, batch: int, seen: _Seen) -> list[str]:
    calls = len(seen.calls)
    how = (
        "one batched generate"
        if calls == 1 and seen.calls[0] == batch
        else f"{calls} generate calls of batch {sorted(set(seen.calls))}"
    )
    dtype = str(next(seen.model.parameters()).dtype).removeprefix("torch.")
    return [
        f"{uri} at batch {batch}: predict ran {how} (use_cache "
        f"{'/'.join(sorted(seen.use_cache))}, {dtype}); raw: one batched generate of the "
        "same prompt ids"
    ]


def _point(
    cfg: BenchConfig, held: _HeldGenerate, pyfunc: Any, tokenizer: Any, batch: int, prompt: int, new: int
) -> tuple[list[Case], list[str]]:
    texts = [
        instruction_for(tokenizer, prompt, PromptFormat.resolve(cfg.prompt_format, tokenizer, cfg.system_prompt))
    ] * batch
    data, params = _request(pyfunc, texts, new)

    def wrapped(n: int) -> Any:
        held.tokens = n
        try:
            return pyfunc.predict(data, params=params)
        finally:
            held.tokens = None

    seen = held.watched(lambda: wrapped(2))
    uri = _short(str(cfg.model_uri))
    if seen.model is None:
        raise ModelBenchError(
            f"{uri}: predict never called transformers' generate, so there is no raw path to compare it with"
        )
    model = seen.model
    device = _device_of(model)
    if cfg.device != device:
        raise ModelBenchError(f"{uri} runs generate on {device}, not {cfg.device}: pass --device {device}")
    pad = model.generation_config.pad_token_id
    ids, mask = _batched(seen.rows, 0 if pad is None else int(pad), model.device)
    raw = raw_fn(model, ids, True, mask=mask)
    bandwidth = peak_bandwidth(_gpu_name(), cfg.peak_bandwidth) if device == "cuda" else None
    labels = Labels(batch, True, bandwidth, "pyfunc.predict", cache_impl(model, ids, True))
    fns = {"raw": raw, "wrapped": wrapped}
    cases = measure(cfg.rounds_policy, cfg.warmup, device, fns, new, model, ids, labels)
    notes = _notes(uri, batch, seen)
    if any(n != 2 for n in seen.new_tokens):
        notes.append(
            f"{uri}: predict's generate made {seen.new_tokens} new tokens when held "
            "to 2: its timings are not comparable"
        )
    return cases, notes


def _gpu_name() -> str:
    import torch

    return str(torch.cuda.get_device_name(0))


def run_model_bench(
    cfg: BenchConfig, store: StoreConfig, progress: Callable[[str], None] = lambda _: None
) -> tuple[list[Case], list[str]]:
    """Every (batch, prompt, new tokens) case of ``cfg.model_uri``, predict and raw generate
    interleaved, the KV cache as the model keeps it on the predict side and on for raw."""
    import mlflow

    from harness.model.loading import load_tokenizer

    if cfg.model_uri is None or cfg.snapshot is None:
        raise ValueError("run_model_bench needs a BenchConfig with model_uri and snapshot")
    # A folder loads without a tracking store (mlflow-skinny on a GPU machine has none).
    registry = urlsplit(cfg.model_uri).scheme not in ("", "file")
    with store.activated() if registry else nullcontext():
        try:
            pyfunc = mlflow.pyfunc.load_model(cfg.model_uri)
        except Exception as error:  # MLflow raises many kinds; the user needs the reason
            raise ModelBenchError(
                f"cannot load {_short(cfg.model_uri)}: {type(error).__name__}: {str(error)[:300]}"
            ) from None
    tokenizer = load_tokenizer(cfg.snapshot)
    cases: list[Case] = []
    notes: list[str] = []
    with _HeldGenerate() as held:
        for batch, prompt, new in itertools.product(cfg.batch_sizes, cfg.prompt_tokens, cfg.new_tokens):
            found, said = _point(cfg, held, pyfunc, tokenizer, batch, prompt, new)
            cases += found
            notes += [n for n in said if n not in notes]
            progress(f"batch {batch}, prompt {prompt}, new {new}")
    return cases, notes
