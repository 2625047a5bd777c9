"""bench-serve.png: latency against throughput, one point per level, from the report's data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.bench.report import save_figure

if TYPE_CHECKING:
    from harness.bench.serve_report import ServeReport


def write_png(report: ServeReport, path: Path) -> Path:
    """Latency (p50/p90/p99) against answered requests per second, one point per level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [(level, stats) for level in report.levels if (stats := level.e2e_s) is not None]
    fig, axis = plt.subplots(figsize=(7, 4.5))
    x = [level.requests_per_s for level, _ in levels]
    for key, style in (("p50", "-o"), ("p90", "--s"), ("p99", ":^")):
        axis.plot(x, [stats[key] * 1e3 for _, stats in levels], style, label=f"e2e {key}")
    for (level, stats), rps in zip(levels, x):
        axis.annotate(
            level.name.removeprefix("serve "),
            (rps, stats["p50"] * 1e3),
            textcoords="offset points",
            xytext=(4, -12),
            fontsize=8,
        )
    axis.set(
        xlabel="answered requests/s",
        ylabel="end-to-end latency (ms)",
        title=f"route {report.config.get('route')}: latency vs throughput",
    )
    axis.set_ylim(bottom=0)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
