"""A fixed-time load test of a completions route through the MLflow AI Gateway.

``concurrency`` workers send requests at temperature 0 until ``duration_s`` has passed;
each worker cycles through the distinct prompts, offset by its index so that the requests
in flight at once carry different prompts (:func:`run_load`, a closed loop). Or requests
are sent at given times whatever the answers (:func:`run_arrivals`, an open loop). Every
request is kept as a raw :class:`Sample`; the statistics (percentiles, throughput,
failures, wrong answers) are computed from them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from harness._stats import latency_stats
from harness._validation import DistinctStrings, IntIn, Number, OneOf, settings
from harness.serving.gateway import CompletionRequest, DeploymentsGatewayClient, GatewayError

MAX_CONCURRENCY = 64
MAX_NEW_TOKENS = 4096
MAX_LOAD_S = 86400.0
Concurrency = Annotated[int, IntIn(1, MAX_CONCURRENCY)]
MaxTokens = Annotated[int, IntIn(1, MAX_NEW_TOKENS)]
# How a request reaches the route: its own /endpoints/NAME/invocations, or the gateway's
# OpenAI-compatible /v1/completions with model=NAME.
LOAD_APIS = ("invocations", "openai")


@dataclass(frozen=True)
class Sample:
    """One request: which prompt, how long it took, and what came back."""

    prompt: int  # index into LoadResult.prompts
    latency_s: float
    ok: bool
    status: int | None  # 200 when ok; the HTTP status of a failure, None when there was none
    answer: str  # the answer when ok, else the error message
    sent_s: float | None = None  # when it was sent (open loop: due), seconds after the start


@dataclass(frozen=True)
class LoadResult:
    prompts: tuple[str, ...]
    samples: tuple[Sample, ...]
    elapsed_s: float  # wall time from the first request sent to the last answer
    concurrency: int
    expected: tuple[str, ...] | None = None  # aligned with prompts

    @property
    def requests(self) -> int:
        return len(self.samples)

    @property
    def failures(self) -> list[Sample]:
        return [s for s in self.samples if not s.ok]

    @property
    def mismatches(self) -> list[Sample]:
        """Answered requests whose answer is not their own prompt's expected answer."""
        if self.expected is None:
            return []
        return [s for s in self.samples if s.ok and s.answer != self.expected[s.prompt]]

    @property
    def throughput(self) -> float:
        """Requests (answered or failed) per second of wall time."""
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentiles(self) -> dict[str, float]:
        """p50/p90/p99/max latency of the answered requests in ms ({} when none was)."""
        stats = latency_stats([s.latency_s * 1000.0 for s in self.samples if s.ok])
        return {} if stats is None else {k: stats[k] for k in ("p50", "p90", "p99", "max")}

    def summary(self) -> str:
        stats = self.percentiles()
        latency = ", ".join(f"{k} {v:.1f} ms" for k, v in stats.items()) if stats else "no answered request"
        return (
            f"{self.requests} requests in {self.elapsed_s:.1f} s "
            f"({self.throughput:.1f} req/s), concurrency {self.concurrency}, "
            f"{len(self.prompts)} prompts: {latency}; "
            f"{len(self.failures)} failures, {len(self.mismatches)} mismatches"
        )


@settings()
class _Load:
    prompts: Annotated[tuple[str, ...], DistinctStrings("a non-empty sequence of distinct, non-empty strings")]
    duration_s: Annotated[float, Number(0.0, MAX_LOAD_S)]
    concurrency: Concurrency
    max_tokens: MaxTokens
    api: Annotated[str, OneOf(LOAD_APIS)] = LOAD_APIS[0]


def _validated(
    prompts: Sequence[str],
    expected: Mapping[str, str] | Sequence[str] | None,
    duration_s: float,
    concurrency: int,
    max_tokens: int,
    api: str = LOAD_APIS[0],
) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    prompts = _Load(prompts, duration_s, concurrency, max_tokens, api).prompts  # type: ignore[arg-type]  # checked
    return tuple(prompts), align_expected(prompts, expected)


def align_expected(
    prompts: Sequence[str], expected: Mapping[str, str] | Sequence[str] | None
) -> tuple[str, ...] | None:
    """``expected`` (a mapping prompt -> answer, or answers in prompt order) as answers in
    prompt order; ValueError naming the field when it does not cover every prompt."""
    if expected is None:
        return None
    if isinstance(expected, Mapping):
        missing = [p for p in prompts if p not in expected]
        if missing:
            raise ValueError(f"expected is invalid: allowed a mapping with every prompt (missing {missing[0]!r})")
        answers = tuple(expected[p] for p in prompts)
    elif isinstance(expected, Sequence) and not isinstance(expected, str):
        answers = tuple(expected)
    else:
        answers = ()
    if len(answers) != len(prompts) or not all(isinstance(a, str) for a in answers):
        raise ValueError(
            f"expected is invalid: allowed a mapping prompt -> answer or a "
            f"sequence of {len(prompts)} string answers aligned with prompts"
        )
    return answers


def _send(
    client: DeploymentsGatewayClient,
    api: str,
    route_name: str,
    prompts: tuple[str, ...],
    prompt: int,
    max_tokens: int,
    due: float,
    run_start: float,
) -> Sample:
    """One request at temperature 0; its latency counts from ``due`` (when it was meant to go)."""
    request = CompletionRequest(prompts[prompt], temperature=0.0, max_tokens=max_tokens)
    try:
        text = client.complete(api, route_name, request).text
        return Sample(prompt, time.perf_counter() - due, True, 200, text, due - run_start)
    except GatewayError as error:
        return Sample(prompt, time.perf_counter() - due, False, error.status, error.message, due - run_start)


def run_load(
    gateway_url: str,
    route_name: str,
    prompts: Sequence[str],
    expected: Mapping[str, str] | Sequence[str] | None = None,
    duration_s: float = 5.0,
    concurrency: int = 4,
    max_tokens: int = 8,
    api: str = "invocations",
) -> LoadResult:
    """Query ``route_name`` from ``concurrency`` threads for ``duration_s`` seconds.

    ``expected`` (a mapping prompt -> answer, or answers aligned with ``prompts``) makes
    every answer be checked against its own prompt's answer. A request that is sent
    before the deadline is waited for; ``elapsed_s`` includes it.
    """
    prompts, answers = _validated(prompts, expected, duration_s, concurrency, max_tokens, api)
    # One client per worker: no state is shared between threads but the samples.
    clients = [DeploymentsGatewayClient(gateway_url) for _ in range(concurrency)]

    stop = threading.Event()  # set on an interrupt: workers finish what is in flight only

    def worker(index: int, deadline: float) -> list[Sample]:
        samples, step = [], 0
        while time.perf_counter() < deadline and not stop.is_set():
            samples.append(
                _send(
                    clients[index],
                    api,
                    route_name,
                    prompts,
                    (index + step) % len(prompts),
                    max_tokens,
                    time.perf_counter(),
                    started,
                )
            )
            step += 1
        return samples

    started = time.perf_counter()
    deadline = started + duration_s
    with ThreadPoolExecutor(concurrency, thread_name_prefix="load") as pool:
        try:
            per_worker = list(pool.map(worker, range(concurrency), [deadline] * concurrency))
        except BaseException:
            stop.set()
            raise
    elapsed = time.perf_counter() - started
    return LoadResult(prompts, tuple(s for samples in per_worker for s in samples), elapsed, concurrency, answers)


def run_arrivals(
    gateway_url: str,
    route_name: str,
    prompts: Sequence[str],
    arrivals_s: Sequence[float] | np.ndarray,
    expected: Mapping[str, str] | Sequence[str] | None = None,
    max_in_flight: int = MAX_CONCURRENCY,
    max_tokens: int = 8,
    api: str = "invocations",
) -> LoadResult:
    """An open loop: request ``i`` (prompt ``i % len(prompts)``) is due ``arrivals_s[i]``
    seconds after the start and is sent then, whether or not earlier ones were answered.

    At most ``max_in_flight`` requests are outstanding; a request due while all are busy
    waits for one, and that wait counts in its latency (measured from when it was due, so
    a slow server cannot hide its queue by slowing the client down).
    """
    arrivals = np.asarray(arrivals_s, dtype=float)
    if (
        arrivals.ndim != 1
        or arrivals.size == 0
        or not np.all(np.isfinite(arrivals))
        or np.any(arrivals < 0)
        or np.any(np.diff(arrivals) < 0)
    ):
        raise ValueError(
            "arrivals_s is invalid: allowed a non-empty, non-decreasing sequence of finite offsets >= 0 seconds"
        )
    duration = float(arrivals[-1]) if arrivals[-1] > 0 else 1.0
    prompts, answers = _validated(prompts, expected, duration, max_in_flight, max_tokens, api)
    local = threading.local()  # one client per pool thread

    def send(index: int, due: float) -> Sample:
        if not hasattr(local, "client"):
            local.client = DeploymentsGatewayClient(gateway_url)
        return _send(local.client, api, route_name, prompts, index % len(prompts), max_tokens, due, started)

    started = time.perf_counter()
    futures = []
    with ThreadPoolExecutor(max_in_flight, thread_name_prefix="arrivals") as pool:
        try:
            for index, offset in enumerate(arrivals):
                due = started + float(offset)
                if (wait := due - time.perf_counter()) > 0:
                    time.sleep(wait)
                futures.append(pool.submit(send, index, due))
            samples = tuple(f.result() for f in futures)
        except BaseException:  # an interrupt: what is queued is not sent
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    elapsed = time.perf_counter() - started
    return LoadResult(prompts, samples, elapsed, max_in_flight, answers)


def poisson_arrivals(rate: float, duration_s: float, seed: int) -> np.ndarray:
    """Offsets (s) of a Poisson process at ``rate``/s within ``duration_s``: the cumulative
    sum of exponential gaps (mean 1/rate) drawn from ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    chunk = int(rate * duration_s * 1.2) + 16
    times = np.cumsum(rng.exponential(1.0 / rate, chunk))
    while times[-1] < duration_s:
        times = np.concatenate([times, times[-1] + np.cumsum(rng.exponential(1.0 / rate, chunk))])
    return times[times < duration_s]
