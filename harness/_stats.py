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
