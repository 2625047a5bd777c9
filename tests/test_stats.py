"""Benchmark statistics against numpy/statistics on known samples, the adaptive rounds on
synthetic timers, and comparisons inside overlapping intervals."""

import itertools
import statistics

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.bench.rounds import MIN_AUTO_ROUNDS, RoundsPolicy, run_rounds
from harness._stats import Ratio, Stats, latency_stats, median_ci, relative_ci


@pytest.mark.parametrize(
    "samples", [[1.0, 2.0, 3.0, 4.0], [5.0, 1.0, 3.0], list(np.random.default_rng(1).lognormal(0, 0.3, 57))]
)
def test_stats_agree_with_numpy_and_statistics(samples):
    stats = Stats.of(samples)
    assert stats.p50 == pytest.approx(statistics.median(samples))
    assert (stats.p90, stats.p99) == pytest.approx(tuple(np.percentile(samples, [90, 99])))
    assert stats.iqr == pytest.approx(np.subtract(*np.percentile(samples, [75, 25])))
    assert (stats.min, stats.max, stats.mean) == pytest.approx((min(samples), max(samples), statistics.fmean(samples)))
    assert stats.stdev == pytest.approx(statistics.stdev(samples))
    assert list(stats.samples) == samples  # raw samples kept, in order
    assert stats.ci_low <= stats.p50 <= stats.ci_high


def test_p50_of_four_values_is_their_median():
    assert Stats.of([1.0, 2.0, 3.0, 4.0]).p50 == 2.5


def test_the_median_interval_is_order_statistics_and_narrows_with_more_samples():
    assert median_ci([3.0, 1.0, 2.0]) == (1.0, 3.0)  # too few for 95%: the whole range
    values = np.arange(1.0, 101.0)
    assert median_ci(values) == (40.0, 61.0)  # ranks 40 and 61 of 100 (n/2 ∓ 1.96·√n/2)
    rng = np.random.default_rng(0)
    small, large = rng.normal(10, 1, 20), rng.normal(10, 1, 2000)
    assert np.ptp(median_ci(large)) < np.ptp(median_ci(small)) / 5


def test_the_ratio_interval_covers_a_known_ratio_and_detects_no_overlap():
    rng = np.random.default_rng(3)
    raw = rng.normal(100, 2, 60)
    ratio = Ratio.of_medians(list(raw * 1.03), list(raw))
    assert ratio.value == pytest.approx(1.03) and ratio.ci_low <= 1.03 <= ratio.ci_high
    noisy = Ratio.of_medians(list(rng.normal(103, 30, 8)), list(rng.normal(100, 30, 8)))
    assert noisy.ci_high - noisy.ci_low > 0.2 and noisy.overlaps(ratio)
    assert not Ratio(2.0, 1.9, 2.1).overlaps(ratio)


def _timer(values):
    """A synthetic timer: returns the next value instead of timing the call."""
    feed = iter(values)
    return lambda fn: next(feed)


def _fake_clock(step=0.01):
    ticks = itertools.count()
    return lambda: next(ticks) * step


def test_auto_rounds_stop_early_on_a_quiet_timer():
    rng = np.random.default_rng(0)
    quiet = _timer(1.0 + rng.normal(0, 0.001, 10_000))
    samples = run_rounds(
        RoundsPolicy(target_ci=0.02),
        0,
        quiet,
        {"raw": lambda n: None, "wrapped": lambda n: None},
        8,
        clock=_fake_clock(),
    )
    assert len(samples["raw"].e2e) == len(samples["wrapped"].e2e) == MIN_AUTO_ROUNDS


def test_auto_rounds_on_a_noisy_timer_spend_the_budget_and_stay_wide():
    rng = np.random.default_rng(0)
    noisy = _timer(rng.lognormal(0, 1.0, 100_000))
    policy = RoundsPolicy(target_ci=0.02, max_rounds=10_000, budget_s=2.0)
    samples = run_rounds(policy, 0, noisy, {"raw": lambda n: None}, 8, clock=_fake_clock(0.05))
    rounds = len(samples["raw"].e2e)
    assert MIN_AUTO_ROUNDS < rounds < 60  # stopped by the budget, not by the interval
    assert Stats.of(samples["raw"].e2e).noisy


def test_fixed_rounds_run_exactly_that_many_after_warmup():
    calls = []
    samples = run_rounds(
        RoundsPolicy(rounds=3), 2, _timer(itertools.repeat(0.5)), {"raw": lambda n: calls.append(n)}, 8
    )
    assert len(samples["raw"].e2e) == 3 and calls == [8, 8]  # the timer never calls fn


_TIMINGS = st.lists(st.floats(1e-6, 1e3, allow_nan=False), min_size=1, max_size=200)


@given(_TIMINGS)
def test_one_relative_interval_whoever_asks(samples):
    """The rounds' stopping rule and a report's noise flag read the same number."""
    assert relative_ci(samples) == pytest.approx(Stats.of(samples).rel_ci)
    low, high = median_ci(samples)
    assert min(samples) <= low <= float(np.median(samples)) <= high <= max(samples)


@given(_TIMINGS)
def test_latency_percentiles_are_the_same_as_the_bench_statistics(samples):
    stats, latency = Stats.of(samples), latency_stats(samples)
    assert latency is not None
    assert (latency["p50"], latency["p90"], latency["p99"]) == pytest.approx((stats.p50, stats.p90, stats.p99))
    assert (latency["mean"], latency["max"]) == pytest.approx((stats.mean, stats.max))


@given(_TIMINGS)
def test_stats_round_trip_through_their_json_fields(samples):
    stats = Stats.of(samples)
    fields = {k: getattr(stats, k) for k in stats.__dataclass_fields__}
    assert Stats(**fields) == stats
