"""Latency and throughput of ``generate``: raw model vs the wrapped path, same inputs,
interleaved; TTFT, TPOT, end-to-end, tokens/s, memory and MBU.

MLflow-free at import (the GPU machine has no MLflow): the wrapped path is the PyFunc
``predict`` where MLflow is installed, else the core it adapts (``Generator.generate``).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.bench.rounds import RoundsPolicy, Samples, run_rounds
from harness._stats import Stats

SHAPES = ("mpt-7b", "tiny")
# Peak memory bandwidth in bytes/s, matched against torch.cuda.get_device_name().
GPU_BANDWIDTH = (
    ("H100 PCIe", 2.0e12),
    ("H100", 3.35e12),
    ("H200", 4.8e12),
    ("A100-SXM4-80GB", 2.04e12),
    ("A100 80GB", 2.04e12),
    ("A100-PCIE-80GB", 2.04e12),
    ("A100", 1.56e12),
)
_WORDS = (
    "machine learning models route gateway signature endpoint serving latency throughput tokens batch prompt answer"
).split()


@dataclass(frozen=True)
class BenchConfig:
    snapshot: str | None = None  # a snapshot folder, or None with a shape
    shape: str | None = None
    # An MLflow model whose predict is benchmarked against raw generate; the snapshot's
    # tokenizer then only sizes the prompts.
    model_uri: str | None = None
    device: str = "cpu"
    dtype: str = "auto"
    batch_sizes: tuple[int, ...] = (1, 8)
    prompt_tokens: tuple[int, ...] = (128,)
    new_tokens: tuple[int, ...] = (16,)
    cache_modes: tuple[bool, ...] = (True, False)
    rounds: int | str = "auto"  # a fixed count, or until the median's interval is tight
    target_ci: float = 0.02  # auto: stop when every path's e2e median is known to ±2%
    max_time_s: float = 30.0  # auto: measured time budget per case
    warmup: int = 1
    wrapped: bool = True
    compile: bool = False  # also measure raw generate under torch.compile
    peak_bandwidth: float | None = None  # bytes/s; overrides the GPU table
    seed: int = 0

    @property
    def case_runs(self) -> int:
        """How many measured runs (progress steps) the grid makes."""
        grid = len(self.batch_sizes) * len(self.prompt_tokens) * len(self.new_tokens)
        return grid * len(self.cache_modes) + (grid if self.compile else 0)

    def __post_init__(self) -> None:
        if (self.snapshot is None) == (self.shape is None):
            raise ValueError("give exactly one of snapshot or shape")
        if self.model_uri is not None:
            self._check_model_mode()
        if self.shape is not None and self.shape not in SHAPES:
            raise ValueError(f"shape={self.shape!r} is invalid: allowed {SHAPES}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device={self.device!r} is invalid: allowed ('cpu', 'cuda')")
        for name, low, high in (("batch_sizes", 1, 1024), ("prompt_tokens", 8, 32768), ("new_tokens", 2, 8192)):
            values = getattr(self, name)
            object.__setattr__(self, name, tuple(int(v) for v in values))
            if not values or not all(low <= v <= high for v in values):
                raise ValueError(f"{name}={values!r} is invalid: allowed integers in [{low}, {high}]")
        if not 0 <= self.warmup <= 100:
            raise ValueError(f"warmup={self.warmup!r} is invalid: allowed 0-100")
        self.rounds_policy  # validates rounds, target_ci and max_time_s

    def _check_model_mode(self) -> None:
        if not self.model_uri.strip() or len(self.model_uri) > 1000:
            raise ValueError(
                f"model_uri={self.model_uri[:40]!r} is invalid: allowed a model URI or path of 1-1000 characters"
            )
        if self.snapshot is None:
            raise ValueError("model_uri needs snapshot (its tokenizer sizes the prompts), not shape")
        if self.cache_modes != (True,) or self.compile:
            raise ValueError(
                "with model_uri the model keeps the KV cache as it does when "
                "served: allowed cache on only, without compile"
            )

    @property
    def rounds_policy(self) -> RoundsPolicy:
        if self.rounds != "auto" and (isinstance(self.rounds, bool) or not isinstance(self.rounds, int)):
            raise ValueError(f"rounds={str(self.rounds)[:20]!r} is invalid: allowed 1-1000 or 'auto'")
        return RoundsPolicy(None if self.rounds == "auto" else self.rounds, self.target_ci, budget_s=self.max_time_s)


@dataclass(frozen=True)
class Case:
    path: str  # "raw", "wrapped" or "compiled"
    batch_size: int
    prompt_tokens: int
    new_tokens: int
    use_cache: bool
    ttft_s: Stats
    tpot_s: Stats
    e2e_s: Stats
    tokens_per_s: float  # batch * new_tokens / e2e p50
    requests_per_s: float
    attn_impl: str
    cache_impl: str
    peak_memory_bytes: int | None = None  # this case's own: CUDA peak, or CPU RSS growth
    mbu: float | None = None
    wrapped_via: str | None = None
    rounds: int = 0


def mbu(weight_bytes: int, kv_bytes_per_step: float, tpot_s: float, bandwidth: float) -> float:
    """Model bandwidth utilisation: bytes a decode step must read / TPOT / peak bandwidth."""
    return (weight_bytes + kv_bytes_per_step) / tpot_s / bandwidth


def kv_bytes_per_step(config: Any, batch: int, context: float, element_size: int) -> float:
    """K and V of every layer for ``context`` positions (MPT: n_heads * head_dim = d_model)."""
    return 2 * config.n_layers * batch * context * config.d_model * element_size


def peak_bandwidth(device_name: str, override: float | None = None) -> float | None:
    if override:
        return override
    return next((bw for key, bw in GPU_BANDWIDTH if key in device_name), None)


class Timer:
    """Device-synchronised wall time: CUDA events on a GPU, perf_counter on a CPU."""

    def __init__(self, device: str):
        import torch

        self.cuda = device == "cuda"
        self.torch = torch

    def __call__(self, fn: Callable[[], Any]) -> float:
        if self.cuda:
            start = self.torch.cuda.Event(enable_timing=True)
            end = self.torch.cuda.Event(enable_timing=True)
            self.torch.cuda.synchronize()
            start.record()
            fn()
            end.record()
            self.torch.cuda.synchronize()
            return start.elapsed_time(end) / 1000.0
        begin = time.perf_counter()
        fn()
        return time.perf_counter() - begin


def _instruction_for(tokenizer, target: int) -> str:
    """An instruction whose templated prompt has about ``target`` tokens (never fewer)."""
    from harness.model.prompt import build_prompt

    words = itertools.cycle(_WORDS)
    text = next(words)
    while len(tokenizer(build_prompt(text))["input_ids"]) < target:
        text += " " + next(words)
    return text


def _cache_impl(model, ids, use_cache: bool) -> str:
    """The KV cache generate really kept, read from its output (a requested
    cache_implementation that the model ignores does not show up here)."""
    import torch

    with torch.inference_mode():
        out = model.generate(
            input_ids=ids[:1, :4],
            max_new_tokens=2,
            min_new_tokens=2,
            do_sample=False,
            use_cache=use_cache,
            pad_token_id=0,
            return_dict_in_generate=True,
        )
    # transformers renamed past_key_values to cache (5.2x); read whichever this one has.
    cache = getattr(out, "cache", None)
    if cache is None and "past_key_values" in out:
        cache = out["past_key_values"]
    return type(cache).__name__ if cache is not None else "none"


def _attn_impl(model) -> str:
    """MPT's own attn_impl, and what transformers recorded for the model (which the native
    MPT does not act on: it runs its eager attention whatever this says)."""
    attn = getattr(model.config, "attn_config", None)
    impl = attn.get("attn_impl") if isinstance(attn, dict) else getattr(attn, "attn_impl", None)
    recorded = getattr(model.config, "_attn_implementation", None)
    return f"{impl or 'unknown'} (transformers: {recorded})" if recorded else str(impl or "unknown")


def _wrapped_predict(generator) -> tuple[Callable[[list[str], int], Any], str]:
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


def reset_peak_memory(device: str) -> int:
    """Start a case's memory count: CUDA's peak is reset; on CPU the resident size now is
    the baseline its growth is measured from."""
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
        return 0
    return resident_bytes()


def resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the process's peak, which never goes down
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def peak_memory(device: str, baseline: int, samples: dict[str, Samples]) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    return max(0, max(s.rss_peak for s in samples.values()) - baseline)


def load_subject(cfg: BenchConfig):
    """A Generator on the snapshot, or on an MPT of the given shape with random weights
    created directly on the device (no CPU copy, no hub); shapes use the tiny tokenizer."""
    from harness.model.generation import Generator
    from harness.model.loading import LoadConfig, load_tokenizer

    if cfg.snapshot is not None:
        return Generator.from_pretrained(
            cfg.snapshot, LoadConfig(device=cfg.device, dtype=cfg.dtype, max_batch_size=1024)
        )
    import torch
    from transformers import GenerationConfig, MptConfig, MptForCausalLM

    from harness.model.loading import resolve_dtype
    from harness.model.snapshot import TinySpec, cached_tiny

    tiny = cached_tiny()
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
    return Generator(model, load_tokenizer(str(tiny)), 1024, cfg.device, _attn_impl(model))


def _case(
    path: str,
    batch: int,
    prompt: int,
    new: int,
    cache: bool,
    samples: Samples,
    model,
    memory: int,
    bandwidth: float | None,
    via: str | None,
    cache_impl: str,
) -> Case:
    ttft, e2e = Stats.of(samples.ttft), Stats.of(samples.e2e)
    tpot = Stats.of([(e - t) / (new - 1) for e, t in zip(samples.e2e, samples.ttft)])
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    element = next(model.parameters()).element_size()
    context = prompt + new / 2  # mean context over the decode steps
    use = None
    if bandwidth and cache:
        use = mbu(weights, kv_bytes_per_step(model.config, batch, context, element), tpot.p50, bandwidth)
    return Case(
        path,
        batch,
        prompt,
        new,
        cache,
        ttft,
        tpot,
        e2e,
        tokens_per_s=batch * new / e2e.p50,
        requests_per_s=batch / e2e.p50,
        attn_impl=_attn_impl(model),
        cache_impl=cache_impl,
        peak_memory_bytes=memory,
        mbu=use,
        wrapped_via=via,
        rounds=len(samples.e2e),
    )


def _inputs(generator, cfg: BenchConfig, batch: int, prompt: int):
    """Instructions whose templated prompts have ``prompt`` tokens, and the raw path's ids:
    the same ids, or (for a shape) random ids from the model's vocabulary of that length."""
    import torch

    texts = [_instruction_for(generator.tokenizer, prompt)] * batch
    ids = generator.encode(texts)["input_ids"]
    if cfg.shape:
        ids = torch.randint(1, generator.model.config.vocab_size, ids.shape, device=cfg.device)
    return texts, ids


def _raw_fn(model, ids, use_cache: bool, mask=None) -> Callable[[int], Any]:
    import torch

    mask = torch.ones_like(ids) if mask is None else mask

    def raw(n: int) -> Any:
        with torch.inference_mode():
            return model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=n,
                min_new_tokens=n,
                use_cache=use_cache,
                pad_token_id=0,
            )

    return raw


def _wrapped_fn(model, predict, texts) -> Callable[[int], Any]:
    def wrapped(n: int) -> Any:
        # The wrapper takes no min_new_tokens; its generate honours the model's
        # generation_config, so the output length is fixed there (identical work).
        model.generation_config.min_new_tokens = n
        try:
            return predict(texts, n)
        finally:
            model.generation_config.min_new_tokens = None

    return wrapped


def _measure(
    cfg: BenchConfig, timer: Timer, fns: dict[str, Callable[[int], Any]], new: int, model, ids, path_args
) -> list[Case]:
    """One grid point: memory reset, rounds (fixed or adaptive), a Case per path."""
    baseline = reset_peak_memory(cfg.device)
    samples = run_rounds(
        cfg.rounds_policy, cfg.warmup, timer, fns, new, memory=resident_bytes if cfg.device == "cpu" else (lambda: 0)
    )
    memory = peak_memory(cfg.device, baseline, samples)
    batch, cache, bandwidth, via, cache_impl = path_args
    return [
        _case(
            path,
            batch,
            ids.shape[1],
            new,
            cache,
            found,
            model,
            memory,
            bandwidth,
            via if path == "wrapped" else None,
            cache_impl,
        )
        for path, found in samples.items()
    ]


def run_bench(cfg: BenchConfig, progress: Callable[[str], None] = lambda _: None) -> tuple[list[Case], list[str]]:
    """Every (batch, prompt, new tokens, cache) case, raw and wrapped interleaved; with
    ``compile``, raw cache-on cases again under ``torch.compile``. Returns (cases, notes);
    ``progress`` is called after each of ``cfg.case_runs`` runs."""
    import torch

    if cfg.model_uri is not None:
        raise ValueError("a model_uri is benchmarked by harness.bench.pyfunc.run_model_bench")
    generator = load_subject(cfg)
    model, timer = generator.model, Timer(cfg.device)
    predict, via = _wrapped_predict(generator) if cfg.wrapped else (None, None)
    bandwidth = peak_bandwidth(torch.cuda.get_device_name(0), cfg.peak_bandwidth) if cfg.device == "cuda" else None
    grid = list(itertools.product(cfg.batch_sizes, cfg.prompt_tokens, cfg.new_tokens, cfg.cache_modes))
    cases, notes = [], []
    for batch, prompt, new, cache in grid:
        texts, ids = _inputs(generator, cfg, batch, prompt)
        fns = {"raw": _raw_fn(model, ids, cache)}
        if predict is not None and cache:  # the wrapper always runs with the cache on
            fns["wrapped"] = _wrapped_fn(model, predict, texts)
        cases += _measure(
            cfg, timer, fns, new, model, ids, (batch, cache, bandwidth, via, _cache_impl(model, ids, cache))
        )
        progress(f"batch {batch}, prompt {prompt}, new {new}, cache {'on' if cache else 'off'}")
    if cfg.compile:
        cases += _compiled_cases(cfg, generator, timer, bandwidth, progress, notes)
    return cases, notes


def _compiled_cases(cfg, generator, timer, bandwidth, progress, notes) -> list[Case]:
    import torch

    model, cases = generator.model, []
    original = model.forward
    try:
        model.forward = torch.compile(original, dynamic=True)
        for batch, prompt, new in itertools.product(cfg.batch_sizes, cfg.prompt_tokens, cfg.new_tokens):
            _, ids = _inputs(generator, cfg, batch, prompt)
            cases += _measure(
                cfg,
                timer,
                {"compiled": _raw_fn(model, ids, True)},
                new,
                model,
                ids,
                (batch, True, bandwidth, None, _cache_impl(model, ids, True)),
            )
            progress(f"compiled: batch {batch}, prompt {prompt}, new {new}")
    except Exception as error:  # report why compile does not work here, keep eager results
        notes.append(f"torch.compile variant not measured: {type(error).__name__}: {error}"[:300])
        cases = []
    finally:
        model.forward = original
    return cases


def fixed_length_call(generator, batch: int, prompt_tokens: int, new_tokens: int):
    """``(run, prompt_len)``: ``run()`` is one greedy generate of exactly ``new_tokens``
    for ``batch`` templated prompts of about ``prompt_tokens`` (pytest-benchmark suites)."""
    import torch

    encoded = generator.encode([_instruction_for(generator.tokenizer, prompt_tokens)] * batch)

    def run() -> Any:
        with torch.inference_mode():
            return generator.model.generate(
                **encoded,
                do_sample=False,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                use_cache=True,
                pad_token_id=generator.tokenizer.pad_token_id,
            )

    return run, encoded["input_ids"].shape[1]
