"""``bench.budget``: a benchmark report must meet the user's budgets."""

from __future__ import annotations

from harness.bench.compare import Budget, check_budgets
from harness.gate.checks.registry import GateContext, Outcome, failed, passed, check, skipped


@check("bench.budget", "the benchmark report meets every --budget", needs_model=False, needs_candidate=False)
def bench_budget(ctx: GateContext) -> Outcome:
    report, budgets = ctx.bench_report, ctx.budgets
    if report is None:
        return skipped("skipped: no --bench-report given")
    if not budgets:
        return skipped("skipped: no --budget given")
    failures, judged = check_budgets(report, [Budget.parse(b) for b in budgets])
    if failures:
        return failed("; ".join(failures), judged=judged, report=str(report))
    return passed(
        f"{len(budgets)} budget(s) met: " + ", ".join(f"{k} ({v:.4g})" for k, v in judged.items()),
        judged=judged,
        report=str(report),
    )
