"""The one statistics module: percentiles and intervals of timing samples, from numpy and
``statistics`` (never hand-rolled), for the model bench, the serving bench and the load
test alike, with the raw samples kept and the median's 95% confidence interval, so a reader can tell a
difference from noise.

The median's interval is the distribution-free order-statistic one: the ranks
``n/2 ∓ z·√n/2`` of the sorted samples (z = 1.96), clipped to the samples; with fewer
than 6 samples it is the whole range. The ratio of two medians (the wrapper's overhead)
gets a seeded bootstrap interval over the interleaved rounds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

CONFIDENCE = 0.95
_Z = statistics.NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
NOISY_CI = 0.10  # a median known no better than ±10% is reported as noisy


def median_ci(samples: Sequence[float] | np.ndarray) -> tuple[float, float]:
    ordered = np.sort(np.asarray(samples, dtype=float))
    n = len(ordered)
    if n < 6:
        return float(ordered[0]), float(ordered[-1])
    low = max(0, math.floor(n / 2 - _Z * math.sqrt(n) / 2) - 1)
    high = min(n - 1, math.ceil(n / 2 + _Z * math.sqrt(n) / 2))
    return float(ordered[low]), float(ordered[high])


def relative_ci(samples: Sequence[float] | np.ndarray) -> float:
    """Half the median's 95% interval, relative to the median (0.02 = ±2%); inf at a zero median."""
    low, high = median_ci(samples)
    middle = float(np.median(np.asarray(samples, dtype=float)))
    return (high - low) / 2 / middle if middle else math.inf


def latency_stats(latencies: list[float] | np.ndarray) -> dict[str, float] | None:
    """p50/p90/p99 (numpy's linear percentiles), mean and max, in the samples' unit; None
    when there are none."""
    values = np.asarray(latencies, dtype=float)
    if values.size == 0:
        return None
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "mean": float(values.mean()),
        "max": float(values.max()),
    }


@dataclass(frozen=True)
class Stats:
    p50: float
    p90: float
    p99: float
    mean: float
    stdev: float
    min: float = 0.0
    max: float = 0.0
    iqr: float = 0.0
    ci_low: float = 0.0  # the median's 95% interval
    ci_high: float = 0.0
    samples: tuple[float, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "samples", tuple(float(s) for s in self.samples))

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        values = np.asarray(samples, dtype=float)
        if values.size == 0:
            raise ValueError("samples is empty: allowed one or more timings")
        p25, p50, p75, p90, p99 = np.percentile(values, [25, 50, 75, 90, 99])
        low, high = median_ci(values)
        stdev = statistics.stdev(values.tolist()) if values.size > 1 else 0.0
        return cls(
            float(p50),
            float(p90),
            float(p99),
            float(values.mean()),
            stdev,
            float(values.min()),
            float(values.max()),
            float(p75 - p25),
            low,
            high,
            tuple(values.tolist()),
        )

    @property
    def rel_ci(self) -> float:
        """Half the median's interval, relative to the median (0.02 = ±2%): :func:`relative_ci`
        of the samples, from the interval and median kept with them."""
        return (self.ci_high - self.ci_low) / 2 / self.p50 if self.p50 else math.inf

    @property
    def noisy(self) -> bool:
        return self.rel_ci > NOISY_CI


@dataclass(frozen=True)
class Ratio:
    """``numerator`` median / ``denominator`` median, with a bootstrap 95% interval."""

    value: float
    ci_low: float
    ci_high: float

    @classmethod
    def of_medians(
        cls, numerator: list[float], denominator: list[float], resamples: int = 2000, seed: int = 0
    ) -> Ratio:
        top, bottom = np.asarray(numerator, float), np.asarray(denominator, float)
        value = float(np.median(top) / np.median(bottom))
        if min(top.size, bottom.size) < 2:
            return cls(value, value, value)
        rng = np.random.default_rng(seed)
        # Paired by round when the counts agree (interleaved rounds share the machine's state).
        if top.size == bottom.size:
            idx = rng.integers(0, top.size, (resamples, top.size))
            ratios = np.median(top[idx], axis=1) / np.median(bottom[idx], axis=1)
        else:
            ratios = np.median(rng.choice(top, (resamples, top.size)), axis=1) / np.median(
                rng.choice(bottom, (resamples, bottom.size)), axis=1
            )
        low, high = np.percentile(ratios, [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2])
        return cls(value, float(low), float(high))

    def overlaps(self, other: Ratio) -> bool:
        return self.ci_low <= other.ci_high and other.ci_low <= self.ci_high


# --- Goodness of fit for sampled answers ---------------------------------------------------
# An exact Monte-Carlo test: ``draws`` samples of the statistic under the null (numpy's
# seeded multinomial), and the observed value is significant only when no draw reaches it.
# Its false-alarm probability is then at most 1 / (draws + 1), exactly, whatever the
# statistic's distribution (the observed value and the draws are exchangeable under the null).
MC_DRAWS = 99_999


def g_statistic(counts: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The likelihood-ratio (G) statistic of each row of ``counts`` against ``probs``."""
    counts = np.atleast_2d(counts).astype(float)
    n = counts.sum(axis=1, keepdims=True)
    expected = n * probs[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(counts > 0, counts * np.log(counts / expected), 0.0)
    return 2.0 * terms.sum(axis=1)


@dataclass(frozen=True)
class FitTest:
    """One goodness-of-fit test of ``n`` samples: the observed statistic, the largest of the
    null's draws (the quantile it must pass), the Monte-Carlo p-value, and the false-alarm
    probability the decision carries (1 / (draws + 1))."""

    n: int
    statistic: float
    null_max: float
    p_value: float
    false_alarm: float
    tv_distance: float

    @property
    def rejects(self) -> bool:
        return self.statistic > self.null_max

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 6) for k, v in self.__dict__.items()} | {"rejects": self.rejects}


def tail_bins(probs: Sequence[float], n: int, least: float = 5.0) -> list[int]:
    """A bin per outcome, the least likely merged into one tail bin until every bin expects at
    least ``least`` of ``n`` draws: fewer, fuller bins give the test its power against a
    sampler that drops or thins the tail (top-p), and cost nothing against the others.
    Returns each outcome's bin (0 is the tail when there is one)."""
    p = np.asarray(probs, dtype=float)
    order = np.argsort(p, kind="stable")
    merged, tail = 0.0, set()
    for index in order:
        if merged * n >= least and p[index] * n >= least:
            break
        merged += p[index]
        tail.add(int(index))
    bins, next_bin = [], 1
    for index in range(len(p)):
        if index in tail:
            bins.append(0)
        else:
            bins.append(next_bin)
            next_bin += 1
    return bins


def binned(values: Sequence[float], bins: Sequence[int]) -> np.ndarray:
    """``values`` (counts or probabilities) summed per bin of :func:`tail_bins`."""
    out = np.zeros(max(bins) + 1)
    np.add.at(out, np.asarray(bins), np.asarray(values, dtype=float))
    return out


def multinomial_draws(probs: Sequence[float], n: int, seed: int = 0, draws: int = MC_DRAWS) -> np.ndarray:
    """``draws`` count vectors of ``n`` independent draws from ``probs`` (seeded): the null
    every test of those draws is judged against."""
    p = np.asarray(probs, dtype=float)
    return np.random.default_rng(seed).multinomial(n, p / p.sum(), size=draws)


def null_statistics(null: np.ndarray, probs: Sequence[float]) -> np.ndarray:
    """The G statistic of each of ``null``'s draws against ``probs``: what
    :func:`multinomial_fit` compares with, computed once when many counts meet one null."""
    p = np.asarray(probs, dtype=float)
    return g_statistic(null, p / p.sum())


def multinomial_fit(
    counts: Sequence[int] | np.ndarray, probs: Sequence[float], null: np.ndarray, stats: np.ndarray | None = None
) -> FitTest:
    """Do ``counts`` come from a multinomial with ``probs``? The G statistic against the
    same statistic of each of ``null``'s draws (:func:`multinomial_draws`, same n);
    ``stats``: those statistics already computed (:func:`null_statistics`)."""
    observed, p = np.asarray(counts, dtype=float), np.asarray(probs, dtype=float)
    p = p / p.sum()
    n, draws = int(observed.sum()), len(null)
    stats = null_statistics(null, p) if stats is None else stats
    g = float(g_statistic(observed, p)[0])
    tv = float(np.abs(observed / max(n, 1) - p).sum() / 2)
    return FitTest(n, g, float(stats.max()), (1 + int((stats >= g).sum())) / (draws + 1), 1 / (draws + 1), tv)


def fewest_distinct(distinct: int, null: np.ndarray) -> float:
    """Monte-Carlo p-value of seeing at most ``distinct`` different values among the draws
    (too few distinct answers: draws that are not independent), against ``null``'s draws."""
    counts = (null > 0).sum(axis=1)
    return (1 + int((counts <= distinct).sum())) / (len(null) + 1)


def tail_mass_test(counts: Sequence[int], probs: Sequence[float]) -> tuple[float, int, float, int]:
    """Too few or too many draws among the least likely outcomes: for each cut of the outcomes
    sorted by probability, the draws below it are Binomial(n, mass below it) under the null,
    and the smallest exact two-sided tail, times the number of tails tried (Bonferroni), bounds
    the false-alarm probability. Catches a sampler that drops its tail (top-p) or sharpens or
    flattens it (a wrong temperature). Returns (p-value bound, draws below the most telling
    cut, their expected number, outcomes below it)."""
    from scipy.stats import binom

    p, c = np.asarray(probs, dtype=float), np.asarray(counts, dtype=float)
    p = p / p.sum()
    order = np.argsort(p, kind="stable")
    n = int(c.sum())
    mass, seen = np.cumsum(p[order])[:-1], np.cumsum(c[order])[:-1]
    tails = np.minimum(binom.cdf(seen, n, mass), binom.sf(seen - 1, n, mass))
    best = int(np.argmin(tails))
    bound = min(1.0, float(tails[best]) * 2 * len(tails))
    return bound, int(seen[best]), float(mass[best] * n), best + 1


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exactly (scipy)."""
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, p))
