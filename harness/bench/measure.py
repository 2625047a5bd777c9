"""One measured grid point of ``generate``: the timer, the rounds, memory and MBU, and the
:class:`Case` they make. Shared by the raw-vs-wrapped bench (:mod:`harness.bench.core`)
and the MLflow-model bench (:mod:`harness.bench.pyfunc`); MLflow-free."""

from __future__ import annotations

import itertools
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness._stats import Stats
from harness.bench.rounds import RoundsPolicy, Samples, run_rounds
from harness.model.formats import PromptFormat

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


def instruction_for(tokenizer: Any, target: int, prompt_format: PromptFormat = PromptFormat()) -> str:
    """An instruction whose prompt, in ``prompt_format``, has about ``target`` ids (never
    fewer): the ids the format gives ``generate`` are what is timed."""
    words = itertools.cycle(_WORDS)
    text = next(words)
    while len(prompt_format.encode(text, tokenizer)) < target:
        text += " " + next(words)
    return text


def cache_impl(model: Any, ids: Any, use_cache: bool) -> str:
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


def attn_impl(model: Any) -> str:
    """MPT's own attn_impl, and what transformers recorded for the model (which the native
    MPT does not act on: it runs its eager attention whatever this says)."""
    attn = getattr(model.config, "attn_config", None)
    impl = attn.get("attn_impl") if isinstance(attn, dict) else getattr(attn, "attn_impl", None)
    recorded = getattr(model.config, "_attn_implementation", None)
    return f"{impl or 'unknown'} (transformers: {recorded})" if recorded else str(impl or "unknown")


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


@dataclass(frozen=True)
class Labels:
    """What a grid point's cases say about how they ran, besides their timings."""

    batch: int
    cache: bool
    bandwidth: float | None
    via: str | None  # how the wrapped path was called
    cache_impl: str


def make_case(path: str, prompt: int, new: int, samples: Samples, model: Any, memory: int, labels: Labels) -> Case:
    ttft, e2e = Stats.of(samples.ttft), Stats.of(samples.e2e)
    tpot = Stats.of([(e - t) / (new - 1) for e, t in zip(samples.e2e, samples.ttft)])
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    element = next(model.parameters()).element_size()
    context = prompt + new / 2  # mean context over the decode steps
    batch, use = labels.batch, None
    if labels.bandwidth and labels.cache:
        use = mbu(weights, kv_bytes_per_step(model.config, batch, context, element), tpot.p50, labels.bandwidth)
    return Case(
        path,
        batch,
        prompt,
        new,
        labels.cache,
        ttft,
        tpot,
        e2e,
        tokens_per_s=batch * new / e2e.p50,
        requests_per_s=batch / e2e.p50,
        attn_impl=attn_impl(model),
        cache_impl=labels.cache_impl,
        peak_memory_bytes=memory,
        mbu=use,
        wrapped_via=labels.via if path == "wrapped" else None,
        rounds=len(samples.e2e),
    )


def raw_fn(model: Any, ids: Any, use_cache: bool, mask: Any = None) -> Callable[[int], Any]:
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


def measure(
    policy: RoundsPolicy,
    warmup: int,
    device: str,
    fns: dict[str, Callable[[int], Any]],
    new: int,
    model: Any,
    ids: Any,
    labels: Labels,
) -> list[Case]:
    """One grid point: memory reset, rounds (fixed or adaptive), a Case per path."""
    baseline = reset_peak_memory(device)
    memory = resident_bytes if device == "cpu" else (lambda: 0)
    samples = run_rounds(policy, warmup, Timer(device), fns, new, memory=memory)
    peak = peak_memory(device, baseline, samples)
    return [make_case(path, ids.shape[1], new, found, model, peak, labels) for path, found in samples.items()]


def fixed_length_call(generator: Any, batch: int, prompt_tokens: int, new_tokens: int) -> tuple[Callable[[], Any], int]:
    """``(run, prompt_len)``: ``run()`` is one greedy generate of exactly ``new_tokens``
    for ``batch`` templated prompts of about ``prompt_tokens`` (pytest-benchmark suites)."""
    import torch

    encoded = generator.encode([instruction_for(generator.tokenizer, prompt_tokens, generator.prompt_format)] * batch)

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
