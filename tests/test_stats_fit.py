"""The goodness-of-fit tests of harness/_stats.py: exact Monte-Carlo tests whose false-alarm
probability is 1 / (draws + 1), and the binomial tail."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness._stats import (
    binomial_upper_tail,
    fewest_distinct,
    multinomial_draws,
    multinomial_fit,
    null_statistics,
    tail_mass_test,
)

_P = np.random.default_rng(7).dirichlet(np.ones(40) * 0.7)


def test_samples_from_the_distribution_are_not_rejected_at_the_stated_rate():
    """2000 samples of 160 drawn from the null itself, against a null of 9,999 draws (each
    test's false alarm 1e-4): expect 0.2 rejections; more than 3 would be 1 in 10⁴."""
    null = multinomial_draws(_P, 160, seed=1, draws=9_999)
    stats = null_statistics(null, _P)  # the same null for every sample: computed once
    samples = np.random.default_rng(2).multinomial(160, _P, size=2000)
    rejected = sum(multinomial_fit(c, _P, null, stats).rejects for c in samples)
    assert rejected <= 3


def test_statistics_given_once_are_the_ones_the_fit_computes():
    null = multinomial_draws(_P, 50, seed=3, draws=999)
    counts = np.random.default_rng(4).multinomial(50, _P)
    assert multinomial_fit(counts, _P, null, null_statistics(null, _P)) == multinomial_fit(counts, _P, null)


@settings(max_examples=20, deadline=None)
@given(mass=st.floats(0.1, 0.5), seed=st.integers(0, 2**16))
def test_a_distribution_with_its_tail_cut_is_rejected(mass, seed):
    """top-p style: the least likely outcomes holding ``mass`` never drawn, the rest renormalised:
    300 draws show it beyond a 1e-5 false-alarm bound."""
    order = np.argsort(_P)
    cut = _P.copy()
    cut[order[np.cumsum(_P[order]) <= mass]] = 0
    counts = np.random.default_rng(seed).multinomial(300, cut / cut.sum())
    bound, below, expected, _ = tail_mass_test(counts, _P)
    assert bound <= 1e-5 and below < expected


def test_the_tail_test_keeps_its_bound_on_draws_from_the_distribution():
    rejected = sum(tail_mass_test(c, _P)[0] <= 1e-3 for c in np.random.default_rng(5).multinomial(300, _P, size=2000))
    assert rejected <= 6  # a bound of 1e-3 a test: 2 expected at most, more than 6 is 1 in 10^3


def test_identical_draws_have_too_few_distinct_values():
    null = multinomial_draws(_P, 160, seed=1, draws=9_999)
    assert fewest_distinct(1, null) == pytest.approx(1e-4)
    typical = int((np.random.default_rng(4).multinomial(160, _P) > 0).sum())
    assert fewest_distinct(typical, null) > 0.01


def test_the_binomial_tail_is_exact():
    assert binomial_upper_tail(0, 10, 0.3) == pytest.approx(1.0)
    assert binomial_upper_tail(10, 10, 0.5) == pytest.approx(0.5**10)
    assert binomial_upper_tail(3, 4, 0.5) == pytest.approx(5 / 16)
