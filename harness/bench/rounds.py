"""How many rounds a case runs: a fixed number, or (``auto``) until every path's median
end-to-end time is known to the target interval or the case's time budget is spent, as
pyperf calibrates. Paths run interleaved within a round, so drift hits them alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any

from harness._stats import relative_ci
from harness._validation import IntIn, Number, settings

MIN_AUTO_ROUNDS = 6  # the fewest samples with a real 95% interval for the median


@settings()
class RoundsPolicy:
    rounds: Annotated[int | None, IntIn(1, 1000, "1-1000 or 'auto'")] = None  # None: auto
    target_ci: Annotated[float, Number(0.0, 0.5, "(0, 50%]")] = 0.02  # ±2% on the median
    max_rounds: Annotated[int, IntIn(MIN_AUTO_ROUNDS, 10_000)] = 300
    budget_s: Annotated[float, Number(0.0, 3600.0, "(0, 3600] seconds")] = 30.0  # per case, measured rounds only


@dataclass
class Samples:
    ttft: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    rss_peak: int = 0  # the most resident memory seen after a round (CPU)


def settled(policy: RoundsPolicy, samples: dict[str, Samples]) -> bool:
    """Whether another round is not needed."""
    done = len(next(iter(samples.values())).e2e)
    if policy.rounds is not None:
        return done >= policy.rounds
    if done >= policy.max_rounds:
        return True
    return done >= MIN_AUTO_ROUNDS and all(relative_ci(s.e2e) <= policy.target_ci for s in samples.values())


def run_rounds(
    policy: RoundsPolicy,
    warmup: int,
    timer: Callable[[Callable[[], Any]], float],
    fns: dict[str, Callable[[int], Any]],
    new: int,
    memory: Callable[[], int] = lambda: 0,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Samples]:
    """Warm-up, then rounds until :func:`settled` or (auto) the budget is spent; within a
    round every path runs its TTFT call (1 token) and its end-to-end call in turn."""
    samples = {path: Samples() for path in fns}
    for _ in range(warmup):
        for fn in fns.values():
            fn(new)
    start = clock()
    while not settled(policy, samples):
        for path, fn in fns.items():
            samples[path].ttft.append(timer(partial(fn, 1)))
            samples[path].e2e.append(timer(partial(fn, new)))
            samples[path].rss_peak = max(samples[path].rss_peak, memory())
        if policy.rounds is None and clock() - start > policy.budget_s and len(samples[path].e2e) >= 2:
            break
    return samples
