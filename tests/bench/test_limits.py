"""The one limit grammar behind budgets, SLOs and compare thresholds: what it reads, it
writes back the same, and each user keeps its own metrics and messages."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.bench.compare import BUDGET_METRICS, Budget, Threshold
from harness.bench.limits import meets, show, split_absolute, split_relative
from harness.bench.serve_report import LATENCY_SLOS, RATE_SLOS, Slo

_numbers = st.floats(0, 1e12, allow_nan=False)


@given(st.sampled_from(BUDGET_METRICS), st.booleans(), st.sampled_from(["<=", ">="]), _numbers)
def test_a_budget_reads_back_what_it_writes(metric, in_ms, op, limit):
    text = show(f"{metric}{'_ms' if in_ms else ''}", op, limit)
    budget = Budget.parse(text)
    assert str(budget) == text and Budget.parse(str(budget)) == budget
    assert budget.scale == (1000.0 if in_ms else 1.0)


@given(st.sampled_from(LATENCY_SLOS + RATE_SLOS + ("error_rate",)), _numbers)
def test_an_slo_reads_back_what_it_writes(metric, limit):
    op = ">=" if metric in RATE_SLOS else "<="
    slo = Slo.parse(f" {show(metric, op, limit).replace(op, f' {op} ')} ")
    assert str(slo) == show(metric, op, limit) and Slo.parse(str(slo)) == slo


@given(_numbers, _numbers, st.sampled_from(["<=", ">="]))
def test_meets_is_the_operator(value, limit, op):
    assert meets(value, op, limit) == (value <= limit if op == "<=" else value >= limit)


@pytest.mark.parametrize("text", ["", "x<5", "e2e<=-1", "e2e<=1e3", "a=<1", "tpot_p50:5"])
def test_what_is_not_a_limit_is_none(text):
    assert split_absolute(text) is None and split_relative(text) is None


def test_each_user_keeps_its_metrics_and_message():
    with pytest.raises(ValueError, match=r"--budget 'e2e_p99_ms<=5' is invalid"):
        Budget.parse("e2e_p99_ms<=5")
    with pytest.raises(ValueError, match=r"slo='tokens_per_s<=5' is invalid: allowed METRIC<=N"):
        Slo.parse("tokens_per_s<=5")
    with pytest.raises(ValueError, match=r"--fail 'tpot_p50<=5' is invalid: expected METRIC:PERCENT%"):
        Threshold.parse("tpot_p50<=5")
    assert Threshold.parse(" tpot_p50:5% ") == Threshold("tpot_p50", 5.0)
