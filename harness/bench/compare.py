"""Regression thresholds (``tpot_p50:5%``) and budgets (``tpot_p50_ms<=25``) over reports.

Reads harness ``bench.json``, ``bench-serve.json`` and pytest-benchmark JSON alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.bench.limits import meets, show, split_absolute, split_relative
from harness.bench.report import HIGHER_IS_BETTER, BenchReport, IncompatibleReports

BUDGET_METRICS = (
    "ttft_p50",
    "tpot_p50",
    "e2e_p50",
    "e2e_p90",
    "tokens_per_s",
    "requests_per_s",
    "overhead_ratio",
    "mbu",
    "goodput_rps",
)


@dataclass(frozen=True)
class Threshold:
    """A regression limit on one metric, in percent of the baseline."""

    metric: str
    percent: float

    @classmethod
    def parse(cls, text: str) -> Threshold:
        parsed = split_relative(text)
        if parsed is None:
            raise ValueError(f"--fail {text!r} is invalid: expected METRIC:PERCENT%, e.g. tpot_p50:5%")
        return cls(*parsed)

    def fails(self, current: float, baseline: float) -> str | None:
        if baseline == 0:
            return None
        change = (current - baseline) / baseline * 100
        worse = -change if self.metric in {*HIGHER_IS_BETTER, "goodput_rps"} else change
        if worse > self.percent:
            return f"{self.metric} {change:+.1f}% ({baseline:.6g} -> {current:.6g}), limit {self.percent:g}%"
        return None


@dataclass(frozen=True)
class Budget:
    """An absolute limit on the deployable path's numbers (``_ms`` metrics are in ms)."""

    metric: str
    op: str
    limit: float
    scale: float = 1.0

    @classmethod
    def parse(cls, text: str) -> Budget:
        parsed = split_absolute(text)
        name, op, limit = parsed if parsed is not None else ("", "", 0.0)
        metric = name.removesuffix("_ms")
        if metric not in BUDGET_METRICS:
            raise ValueError(
                f"--budget {text!r} is invalid: expected METRIC<=N or METRIC>=N with "
                f"METRIC in {[m + ('_ms' if m.endswith(('p50', 'p90')) else '') for m in BUDGET_METRICS]}"
            )
        return cls(metric, op, limit, 1000.0 if name.endswith("_ms") else 1.0)

    def __str__(self) -> str:
        unit = "_ms" if self.scale == 1000.0 else ""
        return show(f"{self.metric}{unit}", self.op, self.limit)

    def fails(self, value: float) -> str | None:
        value *= self.scale
        return None if meets(value, self.op, self.limit) else f"{self} missed: {value:.4g}"


def load_metrics(path: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """(identity, {case: {metric: value}}) from a bench.json or a pytest-benchmark JSON."""
    data = json.loads(Path(path).read_text())
    if "benchmarks" in data:  # pytest-benchmark
        identity = {
            "device": (data.get("machine_info") or {}).get("cpu", {}).get("brand_raw"),
            "config": sorted(b["fullname"] for b in data["benchmarks"]),
        }
        metrics = {}
        for bench in data["benchmarks"]:
            values = {"e2e_p50": bench["stats"]["median"], "e2e_mean": bench["stats"]["mean"]}
            values.update({k: v for k, v in (bench.get("extra_info") or {}).items() if isinstance(v, (int, float))})
            metrics[bench["fullname"]] = values
        return identity, metrics
    if data.get("kind") == "bench-serve":  # `harness bench serve`: one case per load level
        from harness.bench.serve_report import ServeReport

        serve = ServeReport.from_json(json.dumps(data))
        return serve.identity(), serve.metrics()
    report = BenchReport.from_json(json.dumps(data))
    return report.identity(), report.metrics()


def load_intervals(path: str | Path) -> dict[str, dict[str, tuple[float, float]]]:
    """95% intervals per case and metric where the report has them (harness bench.json)."""
    data = json.loads(Path(path).read_text())
    if "cases" not in data or "benchmarks" in data:
        return {}
    return BenchReport.from_json(json.dumps(data)).intervals()


def _overlap(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool:
    return a is not None and b is not None and a[0] <= b[1] and b[0] <= a[1]


@dataclass(frozen=True)
class Comparison:
    rows: list[tuple[str, str, float, float, float]]  # case, metric, base, new, change %
    failures: list[str]
    # Past a threshold, but inside both runs' 95% intervals: not called a regression.
    within_noise: list[str] = field(default_factory=list)


def compare(base: str | Path, new: str | Path, thresholds: list[Threshold]) -> Comparison:
    base_id, base_metrics = load_metrics(base)
    new_id, new_metrics = load_metrics(new)
    if base_id != new_id:
        raise IncompatibleReports(f"reports are not comparable: base {base_id} vs new {new_id}")
    if set(base_metrics) != set(new_metrics):
        missing = sorted(set(base_metrics) ^ set(new_metrics))
        raise IncompatibleReports(f"reports have different cases: {missing[:5]}")
    rows, failures, noise = [], [], []
    limits = {t.metric: t for t in thresholds}
    base_ci, new_ci = load_intervals(base), load_intervals(new)
    for case in sorted(base_metrics):
        for metric, old in sorted(base_metrics[case].items()):
            current = new_metrics[case].get(metric)
            if current is None:
                continue
            change = (current - old) / old * 100 if old else 0.0
            rows.append((case, metric, old, current, change))
            if metric in limits and (message := limits[metric].fails(current, old)):
                if _overlap(base_ci.get(case, {}).get(metric), new_ci.get(case, {}).get(metric)):
                    noise.append(f"{case}: {message}, but the runs' 95% intervals overlap")
                else:
                    failures.append(f"{case}: {message}")
    return Comparison(rows, failures, noise)


def check_budgets(report_path: str | Path, budgets: list[Budget]) -> tuple[list[str], dict[str, float]]:
    """Failures and the values judged: the worst case of the wrapped path (raw if none)."""
    _, metrics = load_metrics(report_path)
    wrapped = {k: v for k, v in metrics.items() if k.startswith("wrapped")}
    cases = wrapped or metrics
    judged, failures = {}, []
    for budget in budgets:
        values = [m[budget.metric] for m in cases.values() if budget.metric in m]
        if not values:
            failures.append(f"{budget}: the report has no {budget.metric}")
            continue
        worst = max(values) if budget.op == "<=" else min(values)
        judged[str(budget)] = worst * budget.scale
        if message := budget.fails(worst):
            failures.append(message)
    return failures, judged
