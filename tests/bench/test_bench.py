"""Benchmark arithmetic, reports, thresholds and budgets (no model runs here)."""

import json
import math

import jsonschema
import numpy as np
import pytest

from harness._stats import Stats
from harness.bench.core import BenchConfig
from harness.bench.measure import Case, kv_bytes_per_step, mbu, peak_bandwidth
from harness.bench.compare import Budget, Threshold, check_budgets, compare
from harness.bench.report import SCHEMA_PATH, BenchReport, IncompatibleReports


def test_stats_percentiles_and_spread():
    stats = Stats.of([float(x) for x in range(1, 101)])
    # p50 is the median (50.5 for an even count), not the 51st value.
    assert (stats.p50, stats.p90, stats.p99, stats.mean) == (50.5, pytest.approx(90.1), pytest.approx(99.01), 50.5)
    assert math.isclose(stats.stdev, 29.011491975882016)
    assert Stats.of([2.0]).stdev == 0.0


def test_mbu_against_a_hand_computed_case():
    # MPT-7B shape, bf16, batch 1, prompt 128, 128 new tokens: mean context 192.
    class Config:
        n_layers, d_model = 32, 4096

    kv = kv_bytes_per_step(Config, batch=1, context=192, element_size=2)
    assert kv == 2 * 32 * 1 * 192 * 4096 * 2 == 100_663_296
    weights = 6_649_286_656 * 2  # MPT-7B parameters in bf16
    # 13.4 GB read per step at 5 ms on a 3.35 TB/s H100 SXM: 80.0%
    assert math.isclose(mbu(weights, kv, 0.005, 3.35e12), (13_298_573_312 + 100_663_296) / 0.005 / 3.35e12)
    assert math.isclose(mbu(weights, kv, 0.005, 3.35e12), 0.79995, rel_tol=1e-4)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("NVIDIA H100 80GB HBM3", 3.35e12),
        ("NVIDIA H100 PCIe", 2.0e12),
        ("NVIDIA H200", 4.8e12),
        ("NVIDIA A100-SXM4-80GB", 2.04e12),
        ("NVIDIA A100-SXM4-40GB", 1.56e12),
        ("Tesla T4", None),
    ],
)
def test_known_gpu_bandwidths(name, expected):
    assert peak_bandwidth(name) == expected
    assert peak_bandwidth(name, override=1e12) == 1e12


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({}, "exactly one of snapshot or shape"),
        ({"shape": "gpt"}, "shape="),
        ({"shape": "tiny", "device": "tpu"}, "device="),
        ({"shape": "tiny", "batch_sizes": (0,)}, "batch_sizes"),
        ({"shape": "tiny", "new_tokens": (1,)}, "new_tokens"),
        ({"shape": "tiny", "rounds": 0}, "rounds"),
    ],
)
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        BenchConfig(**kwargs)


def _case(path="raw", batch=1, e2e=0.1, ttft=0.01, new=10, cache=True):
    tpot = (e2e - ttft) / (new - 1)
    s = lambda v: Stats(v, v, v, v, 0.0)  # noqa: E731
    return Case(
        path,
        batch,
        64,
        new,
        cache,
        s(ttft),
        s(tpot),
        s(e2e),
        batch * new / e2e,
        batch / e2e,
        "torch",
        "dynamic" if cache else "none",
        1000,
        None,
        "pyfunc.predict" if path == "wrapped" else None,
    )


def _report(scale=1.0, device="cpu", **config):
    cases = (_case(), _case("wrapped", e2e=0.105 * scale), _case(batch=8, e2e=0.2 * scale))
    base = {
        "snapshot": None,
        "shape": "tiny",
        "device": device,
        "dtype": "auto",
        "batch_sizes": [1, 8],
        "prompt_tokens": [64],
        "new_tokens": [10],
    }
    return BenchReport({"device": device, "torch": "t", "transformers": "t", "mlflow": None}, {**base, **config}, cases)


def test_report_round_trips_and_validates(tmp_path):
    report = _report()
    assert BenchReport.from_json(report.to_json()) == report
    jsonschema.validate(json.loads(report.to_json()), json.loads(SCHEMA_PATH.read_text()))
    files = report.write(tmp_path)
    assert [f.name for f in files] == ["bench.json", "bench.md", "bench.png"]
    assert "wrapper overhead" in (tmp_path / "bench.md").read_text()


def test_overhead_ratio_is_wrapped_over_raw():
    assert _report().overhead_ratios() == {"b1 p64 n10 cache-on": pytest.approx(1.05)}


def _write(tmp_path, name, report):
    path = tmp_path / name
    path.write_text(report.to_json())
    return path


def test_identical_reports_compare_clean(tmp_path):
    base = _write(tmp_path, "a.json", _report())
    assert compare(base, base, [Threshold.parse("tpot_p50:5%")]).failures == []


def test_a_20_percent_tpot_regression_fails(tmp_path):
    base, new = _write(tmp_path, "a.json", _report()), _write(tmp_path, "b.json", _report(1.2))
    failures = compare(base, new, [Threshold.parse("tpot_p50:5%")]).failures
    assert failures and all("tpot_p50" in f for f in failures)
    assert compare(base, new, [Threshold.parse("tpot_p50:25%")]).failures == []


def test_mismatched_reports_are_refused(tmp_path):
    base = _write(tmp_path, "a.json", _report())
    with pytest.raises(IncompatibleReports, match="not comparable"):
        compare(base, _write(tmp_path, "b.json", _report(device="NVIDIA H100 80GB HBM3")), [])
    with pytest.raises(IncompatibleReports):
        compare(base, _write(tmp_path, "c.json", _report(dtype="bfloat16")), [])


def test_threshold_direction_for_throughput():
    assert Threshold("tokens_per_s", 5).fails(90, 100) is not None
    assert Threshold("tokens_per_s", 5).fails(110, 100) is None
    assert Threshold("tpot_p50", 5).fails(90, 100) is None


@pytest.mark.parametrize("text", ["tpot_p50", "tpot_p50:5", "tpot_p50:x%"])
def test_bad_thresholds_are_rejected(text):
    with pytest.raises(ValueError, match="--fail"):
        Threshold.parse(text)


def test_budgets_on_the_worst_wrapped_case(tmp_path):
    path = _write(tmp_path, "a.json", _report())
    failures, judged = check_budgets(path, [Budget.parse("e2e_p50_ms<=110"), Budget.parse("overhead_ratio<=1.10")])
    assert failures == [] and judged["e2e_p50_ms<=110"] == pytest.approx(105)
    failures, _ = check_budgets(path, [Budget.parse("overhead_ratio<=1.03")])
    assert failures == ["overhead_ratio<=1.03 missed: 1.05"]


@pytest.mark.parametrize("text", ["tpot<=3", "tpot_p50_ms<3", "latency_ms<=1"])
def test_bad_budgets_are_rejected(text):
    with pytest.raises(ValueError, match="--budget"):
        Budget.parse(text)


def _sampled_report(tmp_path, name, scale, spread):
    rng = np.random.default_rng(7)

    def stats(center):
        return Stats.of(list(center * scale * (1 + rng.normal(0, spread, 30))))

    cases = [
        Case(
            "raw",
            1,
            64,
            10,
            True,
            stats(0.01),
            stats(0.01),
            stats(0.1),
            100.0,
            10.0,
            "torch",
            "dynamic",
            1000,
            None,
            None,
            30,
        )
    ]
    report = BenchReport(
        {"device": "cpu", "torch": "t", "transformers": "t", "mlflow": None},
        {
            "snapshot": None,
            "shape": "tiny",
            "device": "cpu",
            "dtype": "auto",
            "batch_sizes": [1],
            "prompt_tokens": [64],
            "new_tokens": [10],
        },
        cases,
    )
    path = tmp_path / f"{name}.json"
    path.write_text(report.to_json())
    return path


def test_a_change_inside_both_runs_intervals_is_not_a_regression(tmp_path):
    base = _sampled_report(tmp_path, "base", 1.0, 0.2)
    noisy = _sampled_report(tmp_path, "noisy", 1.06, 0.2)
    result = compare(base, noisy, [Threshold.parse("e2e_p50:5%")])
    assert result.failures == [] and "intervals overlap" in result.within_noise[0]
    quiet_base = _sampled_report(tmp_path, "qbase", 1.0, 0.005)
    quiet_worse = _sampled_report(tmp_path, "qworse", 1.06, 0.005)
    result = compare(quiet_base, quiet_worse, [Threshold.parse("e2e_p50:5%")])
    assert len(result.failures) == 1 and result.within_noise == []


def test_samples_and_intervals_round_trip_and_noise_is_reported(tmp_path):
    report = BenchReport.from_json(_sampled_report(tmp_path, "r", 1.0, 0.3).read_text())
    e2e = report.cases[0].e2e_s
    assert len(e2e.samples) == 30 and e2e.ci_low < e2e.p50 < e2e.ci_high
    assert report.noisy() and "Noisy machine" in report.to_markdown()
    jsonschema.validate(json.loads(report.to_json()), json.loads(SCHEMA_PATH.read_text()))
