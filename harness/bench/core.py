"""Latency and throughput of ``generate``: raw model vs the wrapped path, same inputs,
interleaved; TTFT, TPOT, end-to-end, tokens/s, memory and MBU.

MLflow-free at import (the GPU machine has no MLflow): the wrapped path is the PyFunc
``predict`` where MLflow is installed, else the core it adapts (``Generator.generate``).
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from harness._validation import ConfigError, DistinctInts, IntIn, Number, OneOf, as_dict, invalid, settings
from harness.bench.measure import Case, Labels, attn_impl, cache_impl, instruction_for, measure, peak_bandwidth, raw_fn
from harness.bench.rounds import RoundsPolicy
from harness.model.formats import DEFAULT_FORMAT, FORMAT_CHOICES, PromptFormat

if TYPE_CHECKING:
    from harness.model.generation import Generator

SHAPES = ("mpt-7b", "tiny")
BENCH_DEVICES = ("cpu", "cuda")


@settings()
class BenchConfig:
    snapshot: str | None = None  # a snapshot folder, or None with a shape
    shape: Annotated[str | None, OneOf(SHAPES)] = None
    # An MLflow model whose predict is benchmarked against raw generate; the snapshot's
    # tokenizer then only sizes the prompts.
    model_uri: str | None = None
    device: Annotated[str, OneOf(BENCH_DEVICES)] = "cpu"
    dtype: str = "auto"
    batch_sizes: Annotated[tuple[int, ...], DistinctInts(1, 1024)] = (1, 8)
    prompt_tokens: Annotated[tuple[int, ...], DistinctInts(8, 32768)] = (128,)
    new_tokens: Annotated[tuple[int, ...], DistinctInts(2, 8192)] = (16,)
    cache_modes: tuple[bool, ...] = (True, False)
    # A fixed count, or until the median's interval is tight.
    rounds: Annotated[int | str, IntIn(1, 1000, also=("auto",))] = "auto"
    target_ci: Annotated[float, Number(0.0, 0.5, "(0, 50%]")] = 0.02  # auto: every e2e median known to ±2%
    max_time_s: Annotated[float, Number(0.0, 3600.0)] = 30.0  # auto: measured time budget per case
    warmup: Annotated[int, IntIn(0, 100)] = 1
    wrapped: bool = True
    compile: bool = False  # also measure raw generate under torch.compile
    peak_bandwidth: Annotated[float | None, Number(0.0, 1e16)] = None  # bytes/s; overrides the GPU table
    seed: Annotated[int, IntIn(0, 2**63 - 1, "an integer >= 0")] = 0
    # The prompt format the instructions are put in (harness.model.formats): the ids it
    # gives generate are what is timed, so a prompt's size counts them.
    prompt_format: Annotated[str, OneOf(FORMAT_CHOICES)] = DEFAULT_FORMAT
    system_prompt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)

    @property
    def case_runs(self) -> int:
        """How many measured runs (progress steps) the grid makes."""
        grid = len(self.batch_sizes) * len(self.prompt_tokens) * len(self.new_tokens)
        return grid * len(self.cache_modes) + (grid if self.compile else 0)

    def __post_init__(self) -> None:
        if (self.snapshot is None) == (self.shape is None):
            raise ConfigError("snapshot", "give exactly one of snapshot or shape")
        if self.model_uri is not None:
            self._check_model_mode(self.model_uri)

    def _check_model_mode(self, model_uri: str) -> None:
        if not model_uri.strip() or len(model_uri) > 1000:
            raise invalid("model_uri", model_uri, "a model URI or path of 1-1000 characters")
        if self.snapshot is None:
            raise ConfigError("model_uri", "model_uri needs snapshot (its tokenizer sizes the prompts), not shape")
        if self.cache_modes != (True,) or self.compile:
            raise ConfigError(
                "cache_modes",
                "with model_uri the model keeps the KV cache as it does when "
                "served: allowed cache on only, without compile",
            )

    @property
    def rounds_policy(self) -> RoundsPolicy:
        rounds = None if isinstance(self.rounds, str) else self.rounds  # "auto", the only word allowed
        return RoundsPolicy(rounds, self.target_ci, budget_s=self.max_time_s)


def _wrapped_predict(generator: Generator) -> tuple[Callable[[list[str], int], Any], str]:
    from harness.model.generation import Request
    from harness.model.settings import GenerationSettings

    if importlib.util.find_spec("mlflow") is not None:
        from harness.model.wrapper import MPTInstruct, requests_from_input  # noqa: F401

        model = MPTInstruct()
        model.generator, model.model, model.tokenizer = generator, generator.model, generator.tokenizer
        return (lambda texts, n: model.predict(None, texts, {"temperature": 0.0, "max_tokens": n}), "pyfunc.predict")
    return (
        lambda texts, n: generator.generate([Request(t, GenerationSettings(0.0, n)) for t in texts]),
        "generator.generate",
    )


def load_subject(cfg: BenchConfig) -> Generator:
    """A Generator on the snapshot, or on an MPT of the given shape with random weights
    created directly on the device (no CPU copy, no hub); shapes use the tiny tokenizer.
    The prompt format is resolved on that tokenizer first: a ConfigError names a format it
    cannot render before any weights load."""
    from harness.model.generation import Generator
    from harness.model.loading import LoadConfig, load_model, load_tokenizer
    from harness.model.snapshot import TinySpec, cached_tiny

    tokenizer = load_tokenizer(cfg.snapshot or str(cached_tiny()))
    prompt_format = PromptFormat.resolve(cfg.prompt_format, tokenizer, cfg.system_prompt)
    if cfg.snapshot is not None:
        model, device, attn = load_model(cfg.snapshot, LoadConfig(device=cfg.device, dtype=cfg.dtype))
        return Generator(model, tokenizer, 1024, device, attn, prompt_format)
    import torch
    from transformers import GenerationConfig, MptConfig, MptForCausalLM

    from harness.model.loading import resolve_dtype

    spec = TinySpec()
    sizes = (
        dict(d_model=4096, n_heads=32, n_layers=32, vocab_size=50432, max_seq_len=2048)
        if cfg.shape == "mpt-7b"
        else dict(
            d_model=spec.d_model,
            n_heads=spec.n_heads,
            n_layers=spec.n_layers,
            vocab_size=spec.vocab_size,
            max_seq_len=spec.max_seq_len,
        )
    )
    dtype = resolve_dtype(cfg.dtype, cfg.device)
    torch.manual_seed(cfg.seed)
    with torch.device(cfg.device):
        model = MptForCausalLM._from_config(MptConfig(**sizes, eos_token_id=0), dtype=dtype).eval()
    model.generation_config = GenerationConfig(eos_token_id=0, use_cache=True)
    return Generator(model, tokenizer, 1024, cfg.device, attn_impl(model), prompt_format)


def _inputs(generator: Generator, cfg: BenchConfig, batch: int, prompt: int) -> tuple[list[str], Any]:
    """Instructions whose templated prompts have ``prompt`` tokens, and the raw path's ids:
    the same ids, or (for a shape) random ids from the model's vocabulary of that length."""
    import torch

    texts = [instruction_for(generator.tokenizer, prompt, generator.prompt_format)] * batch
    ids = generator.encode(texts)["input_ids"]
    if cfg.shape:
        ids = torch.randint(1, generator.model.config.vocab_size, ids.shape, device=cfg.device)
    return texts, ids


def _wrapped_fn(model: Any, predict: Callable[[list[str], int], Any], texts: list[str]) -> Callable[[int], Any]:
    def wrapped(n: int) -> Any:
        # The wrapper takes no min_new_tokens; its generate honours the model's
        # generation_config, so the output length is fixed there (identical work).
        model.generation_config.min_new_tokens = n
        try:
            return predict(texts, n)
        finally:
            model.generation_config.min_new_tokens = None

    return wrapped


def run_bench(cfg: BenchConfig, progress: Callable[[str], None] = lambda _: None) -> tuple[list[Case], list[str]]:
    """Every (batch, prompt, new tokens, cache) case, raw and wrapped interleaved; with
    ``compile``, raw cache-on cases again under ``torch.compile``. Returns (cases, notes);
    ``progress`` is called after each of ``cfg.case_runs`` runs."""
    import torch

    if cfg.model_uri is not None:
        raise ValueError("a model_uri is benchmarked by harness.bench.pyfunc.run_model_bench")
    generator = load_subject(cfg)
    model = generator.model
    predict, via = _wrapped_predict(generator) if cfg.wrapped else (None, None)
    bandwidth = peak_bandwidth(torch.cuda.get_device_name(0), cfg.peak_bandwidth) if cfg.device == "cuda" else None
    grid = list(itertools.product(cfg.batch_sizes, cfg.prompt_tokens, cfg.new_tokens, cfg.cache_modes))
    cases: list[Case] = []
    notes: list[str] = []
    for batch, prompt, new, cache in grid:
        texts, ids = _inputs(generator, cfg, batch, prompt)
        fns = {"raw": raw_fn(model, ids, cache)}
        if predict is not None and cache:  # the wrapper always runs with the cache on
            fns["wrapped"] = _wrapped_fn(model, predict, texts)
        labels = Labels(batch, cache, bandwidth, via, cache_impl(model, ids, cache))
        cases += measure(cfg.rounds_policy, cfg.warmup, cfg.device, fns, new, model, ids, labels)
        progress(f"batch {batch}, prompt {prompt}, new {new}, cache {'on' if cache else 'off'}")
    if cfg.compile:
        cases += _compiled_cases(cfg, generator, bandwidth, progress, notes)
    return cases, notes


def _compiled_cases(
    cfg: BenchConfig, generator: Generator, bandwidth: float | None, progress: Callable[[str], None], notes: list[str]
) -> list[Case]:
    import torch

    model, cases = generator.model, []
    original = model.forward
    try:
        model.forward = torch.compile(original, dynamic=True)
        for batch, prompt, new in itertools.product(cfg.batch_sizes, cfg.prompt_tokens, cfg.new_tokens):
            _, ids = _inputs(generator, cfg, batch, prompt)
            labels = Labels(batch, True, bandwidth, None, cache_impl(model, ids, True))
            fns = {"compiled": raw_fn(model, ids, True)}
            cases += measure(cfg.rounds_policy, cfg.warmup, cfg.device, fns, new, model, ids, labels)
            progress(f"compiled: batch {batch}, prompt {prompt}, new {new}")
    except Exception as error:  # report why compile does not work here, keep eager results
        notes.append(f"torch.compile variant not measured: {type(error).__name__}: {error}"[:300])
        cases = []
    finally:
        model.forward = original
    return cases
