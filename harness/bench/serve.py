"""``harness bench serve``: load through the real gateway route, level by level.

Each level is either ``concurrency`` closed-loop users for ``duration_s`` seconds, or, with
``rate``, an open loop: Poisson arrivals at ``rate`` requests/s (exponential gaps from a
seeded numpy Generator), at most ``concurrency`` in flight. The load comes from Locust
(:mod:`harness.bench.locust_engine`: ``processes`` local worker processes, and workers on
other machines), or, with ``engine="threads"``, from a thread pool in this process
(:func:`harness.serving.load.run_load`, :func:`~harness.serving.load.run_arrivals`; at most
64 in flight). Requests are at temperature 0 with distinct prompts of exact token lengths,
counted with the snapshot's tokenizer, which also counts the answers' tokens. The report is
:class:`harness.bench.serve_report.ServeReport`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

import numpy as np

from harness._validation import (
    as_dict,
    NAME_ALLOWED,
    NAME_PATTERN,
    ConfigError,
    DistinctInts,
    IntIn,
    Matching,
    Number,
    OneOf,
    settings,
)
from harness.bench.locust_engine import Distribution, LevelPlan, LevelRun, Processes, RemoteWorkers, run_levels
from harness.bench.serve_report import Level, RequestSample, ServeReport, Slo
from harness.model.formats import DEFAULT_FORMAT, FORMAT_CHOICES, PromptFormat
from harness.serving.gateway import CompletionRequest, DeploymentsGatewayClient, GatewayError
from harness.serving.load import (
    LOAD_APIS,
    MAX_CONCURRENCY,
    LoadResult,
    MaxTokens,
    align_expected,
    poisson_arrivals,
    run_arrivals,
    run_load,
)
from harness.serving.route import SEED_ROUTE_NAME

MAX_PROMPT_TOKENS = 32768
MAX_DURATION_S = 3600.0
MAX_RATE = 1000.0
MAX_USERS = 10000  # Locust users in one level, over all its workers
ENGINES = ("locust", "threads")
_WORD_RE = re.compile(r" [A-Za-z]{2,}")


class ServeConfigError(ConfigError):
    """An invalid setting; ``field`` names it (the CLI maps it to its option)."""


class ServeBenchError(RuntimeError):
    """The route could not be measured at all (the warm-up request failed)."""


def _one_or_many(value: object) -> object:
    return (value,) if isinstance(value, str) else value


def _slos(slos: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return tuple(str(Slo.parse(s)) for s in slos)
    except ValueError as error:
        raise ServeConfigError("slo", str(error)) from None


@settings(ServeConfigError)
class ServeBenchConfig:
    # The gateway; None: `harness bench serve` starts one. Never quoted: a URL may carry a token.
    url: Annotated[str | None, Matching(r"^https?://[^\s/]+", "an http:// or https:// URL", quote=False)] = None
    route: Annotated[str, Matching(NAME_PATTERN, NAME_ALLOWED)] = SEED_ROUTE_NAME
    concurrency: Annotated[tuple[int, ...], DistinctInts(1, MAX_USERS)] = (1, 2, 4, 8)
    # Requests/s: an open loop, each concurrency caps what is in flight.
    rate: Annotated[float | None, Number(0.0, MAX_RATE)] = None
    duration_s: Annotated[float, Number(0.0, MAX_DURATION_S)] = 10.0
    prompt_tokens: Annotated[tuple[int, ...], DistinctInts(1, MAX_PROMPT_TOKENS)] = (32, 128)
    max_tokens: MaxTokens = 16
    slo: Annotated[tuple[str, ...], BeforeValidator(_one_or_many), AfterValidator(_slos)] = ()  # "e2e_p90_ms<=500"
    seed: Annotated[int, IntIn(0, 2**63 - 1, "an integer >= 0")] = 0
    api: Annotated[str, OneOf(LOAD_APIS)] = "invocations"  # or "openai": the gateway's /v1/completions
    snapshot: str | None = None  # whose tokenizer counts tokens (default: the tiny snapshot)
    prompts_per_length: Annotated[int, IntIn(1, 256)] = 8
    engine: Annotated[str, OneOf(ENGINES)] = "locust"
    processes: Processes = 1  # local Locust worker processes
    remote_workers: RemoteWorkers = 0  # Locust workers on other machines
    # The served model's prompt format: the template's ids count against its context.
    prompt_format: Annotated[str, OneOf(FORMAT_CHOICES)] = DEFAULT_FORMAT
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        workers = Distribution(self.processes, self.remote_workers).workers  # checks them
        if self.engine == "threads" and (max(self.concurrency) > MAX_CONCURRENCY or workers != 1):
            raise ServeConfigError(
                "concurrency",
                f"concurrency={list(self.concurrency)} is invalid with engine threads: allowed 1-{MAX_CONCURRENCY} "
                "in one process (engine locust for more)",
            )
        if self.rate is not None and self.engine == "locust" and min(self.concurrency) < workers:
            raise ServeConfigError(
                "concurrency",
                f"concurrency={list(self.concurrency)} is invalid with rate and {workers} worker(s): allowed "
                f">= {workers}, one user per worker at least (each worker sends its share of the arrivals)",
            )
        if self.rate is not None and self.rate * self.duration_s < 1:
            raise ServeConfigError(
                "rate",
                f"rate={self.rate:g} is invalid with duration_s={self.duration_s:g}: allowed rate x "
                "duration >= 1 (at least one request expected)",
            )

    def level_name(self, concurrency: int) -> str:
        return f"serve c={concurrency}" if self.rate is None else f"serve rate={self.rate:g} c={concurrency}"

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)


def count_tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def word_pool(tokenizer: Any, limit: int = 4000) -> list[str]:
    """Vocabulary entries that decode to one space-led word and encode back to themselves:
    joined, N of them are N tokens (a byte-level BPE splits before each space)."""
    pool = []
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        if _WORD_RE.fullmatch(text) and tokenizer(text, add_special_tokens=False)["input_ids"] == [token_id]:
            pool.append(text)
            if len(pool) >= limit:
                break
    return pool


def build_prompts(tokenizer: Any, lengths: Sequence[int], per_length: int, seed: int) -> list[tuple[str, int]]:
    """``per_length`` distinct prompts of exactly each length in tokens, seeded."""
    pool = word_pool(tokenizer)
    if len(pool) < 2:
        raise ServeConfigError(
            "snapshot", "the snapshot's tokenizer has too few single-token words to build prompts of exact lengths"
        )
    rng = np.random.default_rng(seed)
    prompts: list[tuple[str, int]] = []
    for length in lengths:
        made: list[str] = []
        tries = 0
        while len(made) < per_length:
            tries += 1
            if tries > 50 * per_length:
                raise ServeConfigError(
                    "prompt_tokens", f"cannot make {per_length} distinct prompts of exactly {length} tokens"
                )
            text = "".join(pool[i] for i in rng.integers(len(pool), size=length))
            if text not in made and count_tokens(tokenizer, text) == length:
                made.append(text)
        prompts += [(text, length) for text in made]
    return prompts


def _context_limit(snapshot: str) -> int | None:
    try:
        config = json.loads((Path(snapshot) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    limit = config.get("max_seq_len", config.get("max_position_embeddings"))
    return limit if isinstance(limit, int) else None


def to_level(
    cfg: ServeBenchConfig,
    concurrency: int,
    result: LoadResult | None,
    prompt_tokens: Sequence[int],
    output_tokens: Callable[[str], int],
    run: LevelRun | None = None,
) -> Level:
    """A :class:`Level` from a load result (None: an open loop whose schedule was empty)."""
    samples: list[RequestSample] = []
    examples: dict[str, str] = {}
    for s in result.samples if result is not None else ():
        samples.append(
            RequestSample(
                s.prompt,
                prompt_tokens[s.prompt],
                s.sent_s or 0.0,
                s.latency_s,
                s.status,
                output_tokens(s.answer) if s.ok else None,
            )
        )
        if not s.ok:
            examples.setdefault("none" if s.status is None else str(s.status), str(s.answer)[:300])
    return Level(
        cfg.level_name(concurrency),
        concurrency,
        cfg.rate,
        cfg.duration_s,
        result.elapsed_s if result is not None else cfg.duration_s,
        tuple(samples),
        cfg.slo,
        len(result.mismatches) if result is not None and result.expected else None,
        examples,
        None if run is None else run.engine,
    )


def _thread_levels(
    cfg: ServeBenchConfig,
    texts: tuple[str, ...],
    lengths: tuple[int, ...],
    expected: Mapping[str, str] | None,
    output_tokens: Callable[[str], int],
    progress: Callable[[str], None],
) -> list[Level]:
    assert cfg.url is not None  # checked by the caller
    levels: list[Level] = []
    result: LoadResult | None
    for concurrency in cfg.concurrency:
        progress(f"{cfg.level_name(concurrency)}: {cfg.duration_s:g} s ...")
        if cfg.rate is None:
            result = run_load(cfg.url, cfg.route, texts, expected, cfg.duration_s, concurrency, cfg.max_tokens, cfg.api)
        else:
            arrivals = poisson_arrivals(cfg.rate, cfg.duration_s, cfg.seed)
            result = (
                run_arrivals(cfg.url, cfg.route, texts, arrivals, expected, concurrency, cfg.max_tokens, cfg.api)
                if arrivals.size
                else None
            )
        levels.append(to_level(cfg, concurrency, result, lengths, output_tokens))
        progress(levels[-1].summary())
    return levels


def run_serve_bench(
    cfg: ServeBenchConfig,
    progress: Callable[[str], None] = lambda _: None,
    expected: Mapping[str, str] | None = None,
    tokenizer: Any = None,
    machine: Mapping[str, Any] | None = None,
    distribution: Distribution | None = None,
    log_dir: Path | None = None,
) -> ServeReport:
    """Every level against ``cfg.url``; ``expected`` (prompt -> answer) counts mismatches
    (give one for every prompt :func:`build_prompts` makes from ``cfg``). ``distribution``
    (engine locust) says where the master listens and which workers it waits for (default:
    ``cfg.processes`` local worker processes on loopback); Locust's logs go under ``log_dir``."""
    from harness.model.loading import load_tokenizer
    from harness.model.snapshot import cached_tiny

    if cfg.url is None:
        raise ServeConfigError(
            "url", "url is required to run: `harness bench serve` without --url starts the servers and passes theirs"
        )
    snapshot = cfg.snapshot or str(cached_tiny(progress=progress))
    tokenizer = tokenizer or load_tokenizer(snapshot)
    prompt_format = PromptFormat.resolve(cfg.prompt_format, tokenizer, cfg.system_prompt)
    template = len(prompt_format.encode("x", tokenizer)) - count_tokens(tokenizer, "x")
    if (limit := _context_limit(snapshot)) is not None and max(cfg.prompt_tokens) + template + cfg.max_tokens > limit:
        room = limit - template - cfg.max_tokens
        raise ServeConfigError(
            "prompt_tokens",
            f"prompt_tokens={list(cfg.prompt_tokens)} is invalid "
            f"with max_tokens={cfg.max_tokens}: allowed 1-{room} "
            f"(context {limit}, template {template} tokens)",
        )
    prompts = build_prompts(tokenizer, cfg.prompt_tokens, cfg.prompts_per_length, cfg.seed)
    texts, lengths = tuple(p for p, _ in prompts), tuple(n for _, n in prompts)
    counted: dict[str, int] = {}

    def output_tokens(answer: str) -> int:
        if answer not in counted:  # at most max_tokens: see the note below
            counted[answer] = min(count_tokens(tokenizer, answer), cfg.max_tokens)
        return counted[answer]

    client = DeploymentsGatewayClient(cfg.url)
    for length in cfg.prompt_tokens:  # warm-up, not recorded; fails fast on a wrong route
        try:
            request = CompletionRequest(texts[lengths.index(length)], temperature=0.0, max_tokens=cfg.max_tokens)
            client.complete(cfg.api, cfg.route, request)
        except GatewayError as error:
            raise ServeBenchError(f"the warm-up request failed: {error}") from None
    if cfg.engine == "locust":
        shared = {"route": cfg.route, "api": cfg.api, "max_tokens": cfg.max_tokens, "prompts": list(texts)}
        plans = [LevelPlan(c, cfg.rate, cfg.duration_s, cfg.seed) for c in cfg.concurrency]
        progress(", ".join(cfg.level_name(c) for c in cfg.concurrency) + f": {cfg.duration_s:g} s each ...")
        distribution = distribution or Distribution(cfg.processes, cfg.remote_workers)
        runs = run_levels(cfg.url, shared, plans, align_expected(texts, expected), distribution, log_dir, progress)
        levels = [to_level(cfg, c, run.result, lengths, output_tokens, run) for c, run in zip(cfg.concurrency, runs)]
        for level in levels:
            progress(level.summary())
    else:
        levels = _thread_levels(cfg, texts, lengths, expected, output_tokens, progress)
    if machine is None:
        from harness.bench.report import bench_machine

        machine = bench_machine()
    notes = [
        f"prompt tokens count the route's `prompt` field; the wrapper's template adds "
        f"{template} tokens before the model sees it",
        "output tokens are the answers re-tokenized with the snapshot's tokenizer, at most "
        "max_tokens (an answer cut inside a UTF-8 character decodes to U+FFFD, which "
        "re-tokenizes into more tokens than were generated)",
        "requests_per_s counts answered requests; goodput_rps those whose own latency meets every latency SLO",
    ]
    if cfg.rate is not None:
        notes.append("open loop: latency counts from when each request was due")
    if cfg.engine == "locust":
        notes.append(
            "load from Locust worker processes; each level's `engine` is Locust's own count and "
            "percentiles of the same requests (of response times rounded as Locust rounds them; "
            "in an open loop, from when a request was sent rather than due)"
        )
    config = {**cfg.to_dict(), "snapshot": snapshot, "template_tokens": template}
    return ServeReport(
        dict(machine), config, tuple({"text": t, "tokens": n} for t, n in prompts), tuple(levels), tuple(notes)
    )
