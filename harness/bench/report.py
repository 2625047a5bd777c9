"""Benchmark reports: JSON first, then Markdown and a PNG made from it, written
atomically. Comparison and budgets live in ``harness.bench.compare``. MLflow is imported
only by :func:`log_to_mlflow`, so a report can be written where MLflow is absent."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.bench.core import Case
from harness._stats import Ratio, Stats
from harness._reporting import SCHEMA_DIR, atomic_write, header, machine_info, package_version, require_schema, utc_now

if TYPE_CHECKING:
    from harness.store import StoreConfig

# 1.1: raw samples, min/max/IQR and the median's interval per metric; rounds per case;
# overhead intervals. 1.0 reports still load.
SCHEMA_VERSION = "1.1"
SCHEMA_PATH = SCHEMA_DIR / "bench.schema.json"
HIGHER_IS_BETTER = {"tokens_per_s", "requests_per_s", "mbu"}


class IncompatibleReports(ValueError):
    """Two reports from different machines or configs: their numbers do not compare."""


def bench_machine() -> dict[str, Any]:
    info = machine_info()
    info["driver"] = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    info["git_commit"] = _run(["git", "rev-parse", "HEAD"])
    return info


def _run(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def case_key(case: Case) -> str:
    return (
        f"{case.path} b{case.batch_size} p{case.prompt_tokens} n{case.new_tokens} "
        f"cache-{'on' if case.use_cache else 'off'}"
    )


@dataclass(frozen=True)
class BenchReport:
    machine: dict[str, Any]
    config: dict[str, Any]
    cases: tuple[Case, ...]
    notes: tuple[str, ...] = ()
    created_at: str = field(default_factory=utc_now)
    harness_version: str = field(default_factory=lambda: package_version("harness"))
    schema_version: str = SCHEMA_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "cases", tuple(self.cases))
        object.__setattr__(self, "notes", tuple(self.notes))

    def overhead(self) -> dict[str, Ratio]:
        """Wrapped e2e median / raw e2e median per (batch, prompt, new tokens) with the cache
        on, with a bootstrap 95% interval over the interleaved rounds."""
        raw = {case_key(c).split(" ", 1)[1]: c for c in self.cases if c.path == "raw"}
        found = {}
        for c in self.cases:
            if c.path == "wrapped" and (key := case_key(c).split(" ", 1)[1]) in raw:
                base = raw[key].e2e_s
                found[key] = (
                    Ratio.of_medians(list(c.e2e_s.samples), list(base.samples))
                    if c.e2e_s.samples and base.samples
                    else Ratio(c.e2e_s.p50 / base.p50, c.e2e_s.p50 / base.p50, c.e2e_s.p50 / base.p50)
                )
        return found

    def overhead_ratios(self) -> dict[str, float]:
        return {key: ratio.value for key, ratio in self.overhead().items()}

    def intervals(self) -> dict[str, dict[str, tuple[float, float]]]:
        """95% intervals of the metrics that have one (same keys as :meth:`metrics`)."""
        out = {}
        for c in self.cases:
            e2e = c.e2e_s
            work = c.batch_size * c.new_tokens
            found = {
                "e2e_p50": (e2e.ci_low, e2e.ci_high),
                "ttft_p50": (c.ttft_s.ci_low, c.ttft_s.ci_high),
                "tpot_p50": (c.tpot_s.ci_low, c.tpot_s.ci_high),
            }
            if e2e.ci_low > 0:
                found["tokens_per_s"] = (work / e2e.ci_high, work / e2e.ci_low)
                found["requests_per_s"] = (c.batch_size / e2e.ci_high, c.batch_size / e2e.ci_low)
            out[case_key(c)] = {k: v for k, v in found.items() if v[1] > 0}
        for key, ratio in self.overhead().items():
            out[f"wrapped {key}"]["overhead_ratio"] = (ratio.ci_low, ratio.ci_high)
        return out

    def noisy(self) -> list[str]:
        """Cases whose e2e median is known no better than ±10%: their numbers are weak."""
        return [
            f"{case_key(c)}: e2e median ±{c.e2e_s.rel_ci:.0%} after {len(c.e2e_s.samples)} rounds"
            for c in self.cases
            if c.e2e_s.samples and c.e2e_s.noisy
        ]

    def metrics(self) -> dict[str, dict[str, float]]:
        out = {}
        for c in self.cases:
            values = {
                "ttft_p50": c.ttft_s.p50,
                "tpot_p50": c.tpot_s.p50,
                "e2e_p50": c.e2e_s.p50,
                "e2e_p90": c.e2e_s.p90,
                "tokens_per_s": c.tokens_per_s,
                "requests_per_s": c.requests_per_s,
            }
            if c.mbu is not None:
                values["mbu"] = c.mbu
            out[case_key(c)] = values
        for key, ratio in self.overhead_ratios().items():
            out[f"wrapped {key}"]["overhead_ratio"] = ratio
        return out

    def identity(self) -> dict[str, Any]:
        keep = ("snapshot", "shape", "model_uri", "device", "dtype")
        return {"device": self.machine.get("device"), "config": {k: self.config.get(k) for k in keep}}

    def to_dict(self) -> dict[str, Any]:
        return {
            **header(self),
            "machine": self.machine,
            "config": self.config,
            "cases": [asdict(c) for c in self.cases],
            "overhead_ratios": self.overhead_ratios(),
            "overhead_intervals": {k: [r.ci_low, r.ci_high] for k, r in self.overhead().items()},
            "noisy": self.noisy(),
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> BenchReport:
        data = json.loads(text)
        if data.get("schema_version") != "1.0":
            require_schema(data, SCHEMA_VERSION)
        cases = []
        for c in data["cases"]:
            stats = {k: Stats(**c[k]) for k in ("ttft_s", "tpot_s", "e2e_s")}
            cases.append(Case(**{**c, **stats}))
        return cls(
            data["machine"],
            data["config"],
            tuple(cases),
            tuple(data.get("notes", ())),
            data["created_at"],
            data["harness_version"],
            data["schema_version"],
        )

    def to_markdown(self) -> str:
        lines = [
            f"# Benchmark: {self.machine.get('device')}",
            "",
            f"- config: `{json.dumps(self.config, sort_keys=True)}`",
            f"- torch {self.machine.get('torch')}, transformers {self.machine.get('transformers')}, "
            f"mlflow {self.machine.get('mlflow')}, commit {self.machine.get('git_commit')}",
            f"- created {self.created_at} by harness {self.harness_version}",
            "",
            "| path | batch | prompt | new | cache | rounds | TTFT p50 ms | TPOT p50 ms "
            "| e2e p50 ms (95% CI) | e2e p99 ms | tokens/s | peak memory MB | MBU | attention "
            "| KV cache |",
            "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
        ]
        for c in self.cases:
            use = f"{c.mbu:.1%}" if c.mbu is not None else "n/a"
            memory = f"{c.peak_memory_bytes / 1e6:.1f}" if c.peak_memory_bytes is not None else "n/a"
            e2e = c.e2e_s
            lines.append(
                f"| {c.path} | {c.batch_size} | {c.prompt_tokens} | {c.new_tokens} | "
                f"{'on' if c.use_cache else 'off'} | {c.rounds or len(e2e.samples)} | "
                f"{c.ttft_s.p50 * 1e3:.2f} | {c.tpot_s.p50 * 1e3:.2f} | "
                f"{e2e.p50 * 1e3:.2f} ({e2e.ci_low * 1e3:.2f}–{e2e.ci_high * 1e3:.2f}) | "
                f"{e2e.p99 * 1e3:.1f} | {c.tokens_per_s:.0f} | {memory} | {use} | "
                f"{c.attn_impl} | {c.cache_impl} |"
            )
        lines += ["", "| case | wrapper overhead (wrapped e2e / raw e2e medians) | 95% CI |", "| --- | ---: | ---: |"]
        lines += [f"| {k} | {r.value:.3f}x | {r.ci_low:.3f}–{r.ci_high:.3f} |" for k, r in self.overhead().items()]
        if noisy := self.noisy():
            lines += [
                "",
                f"> **Noisy machine**: {len(noisy)} case(s) did not reach a ±10% interval "
                "on the median; treat their numbers as weak:",
            ]
            lines += [f"> - {n}" for n in noisy]
        lines += [""] + [f"> {note}" for note in self.notes] if self.notes else []
        return "\n".join(lines) + "\n"

    def write(self, directory: str | Path) -> list[Path]:
        """bench.json, bench.md and (with matplotlib) bench.png, each written atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written = [directory / "bench.json", directory / "bench.md"]
        atomic_write(written[0], self.to_json())
        atomic_write(written[1], self.to_markdown())
        try:
            written.append(write_png(self, directory / "bench.png"))
        except ImportError:
            pass  # the GPU machine may lack matplotlib: `harness bench plot` makes it later
        return written


def remake_figures(report_json: Path) -> list[Path]:
    """bench.md and bench.png again beside ``report_json`` (a GPU machine may lack matplotlib)."""
    report = BenchReport.from_json(Path(report_json).read_text())
    markdown = Path(report_json).with_name("bench.md")
    atomic_write(markdown, report.to_markdown())
    return [markdown, write_png(report, Path(report_json).with_name("bench.png"))]


def write_png(report: BenchReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    groups: dict[tuple[str, int, int], list[Case]] = {}
    for c in report.cases:
        if c.use_cache:
            groups.setdefault((c.path, c.prompt_tokens, c.new_tokens), []).append(c)
    for (path_, prompt, new), cases in sorted(groups.items()):
        cases.sort(key=lambda c: c.batch_size)
        label = f"{path_} p{prompt} n{new}"
        style = {"raw": "-o", "wrapped": "--s"}.get(path_, ":^")
        left.plot([c.batch_size for c in cases], [c.e2e_s.p50 * 1e3 for c in cases], style, label=label)
        right.plot([c.batch_size for c in cases], [c.tokens_per_s for c in cases], style, label=label)
    left.set(xlabel="batch size", ylabel="end-to-end p50 (ms)", title="Latency")
    right.set(xlabel="batch size", ylabel="output tokens/s", title="Throughput")
    sizes = sorted({c.batch_size for c in report.cases})
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_xticks(sizes, [str(b) for b in sizes])
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    fig.suptitle(f"{report.machine.get('device')}: raw generate vs wrapped predict (KV cache on)")
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig: Any, path: Path) -> Path:
    """A matplotlib figure to ``path`` via a temporary file: never a half-written PNG."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def log_run(
    store: StoreConfig,
    run_name: str,
    config: dict[str, Any],
    tags: dict[str, str],
    metrics: dict[str, dict[str, float]],
    files: list[Path],
) -> str:
    """One MLflow run in the store: config as params (redacted, like every output), metrics
    as ``<case>.<metric>``, the report files as artifacts; returns the run id.

    MLflow is imported here only: benchmarks run where MLflow is absent.
    """
    import mlflow

    from harness._redact import redact

    with store.activated() as experiment_id, mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.log_params(
            {
                k: redact(json.dumps(v))
                if isinstance(v, (list, tuple, dict))
                else redact(v)
                if isinstance(v, str)
                else v
                for k, v in config.items()
            }
        )
        mlflow.set_tags(tags)
        for case, values in metrics.items():
            name = re.sub(r"[^A-Za-z0-9_.\-/ ]", "_", case).replace(" ", "_")
            mlflow.log_metrics({f"{name}.{metric}": value for metric, value in values.items()})
        for file in files:
            mlflow.log_artifact(str(file))
        return run.info.run_id


def log_to_mlflow(report: BenchReport, files: list[Path], store: StoreConfig) -> str:
    return log_run(
        store,
        "bench",
        report.config,
        {"harness.kind": "bench", "device": str(report.machine.get("device"))},
        report.metrics(),
        files,
    )
