"""``bench-serve.json``: load through a gateway route, one level per concurrency (or
rate), every request kept raw and every statistic computed from those samples (numpy);
SLOs and goodput; Markdown, a latency-vs-throughput PNG and an MLflow run made from it.

MLflow is imported only by :func:`log_to_mlflow`, matplotlib only by
:func:`harness.bench.serve_figure.write_png`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness._reporting import SCHEMA_DIR, atomic_write, header, package_version, require_schema, utc_now
from harness._stats import latency_stats
from harness.bench.limits import meets, show, split_absolute
from harness.bench.report import log_run

if TYPE_CHECKING:
    from harness.store import StoreConfig

SCHEMA_VERSION = "1.1"  # 1.1: a level's `engine` (Locust's own statistics of the same requests)
READABLE_VERSIONS = ("1.0", SCHEMA_VERSION)
SCHEMA_PATH = SCHEMA_DIR / "bench-serve.schema.json"
KIND = "bench-serve"
LATENCY_SLOS = ("e2e_p50_ms", "e2e_p90_ms", "e2e_p99_ms", "e2e_max_ms")
RATE_SLOS = ("requests_per_s", "tokens_per_s", "goodput_rps")
SLO_METRICS = LATENCY_SLOS + RATE_SLOS + ("error_rate",)
_NO_STATUS = "none"  # the JSON key of failures that got no HTTP answer (timeout, refused)


@dataclass(frozen=True)
class Slo:
    """``e2e_p90_ms<=500``: latencies (ms) and the error rate have upper limits, the rates
    (per second) lower ones. A latency SLO also has a per-request reading (that request
    took at most the limit), which is what goodput counts."""

    metric: str
    op: str
    limit: float

    @classmethod
    def parse(cls, text: str) -> Slo:
        metric, op, limit = split_absolute(text) or ("", "", 0.0)
        wanted = ">=" if metric in RATE_SLOS else "<="
        if metric not in SLO_METRICS or op != wanted:
            raise ValueError(
                f"slo={str(text)[:60]!r} is invalid: allowed METRIC<=N for "
                f"{list(LATENCY_SLOS) + ['error_rate']} or METRIC>=N for "
                f"{list(RATE_SLOS)}, N a number >= 0"
            )
        return cls(metric, op, limit)

    def __str__(self) -> str:
        return show(self.metric, self.op, self.limit)

    def met(self, value: float | None) -> bool:
        if value is None:  # no answered request: no latency can meet a limit
            return False
        return meets(value, self.op, self.limit)


@dataclass(frozen=True)
class RequestSample:
    """One request as sent: its prompt (index into the report's prompts), when it was sent
    (due, in an open loop) after the level started, its latency, its HTTP status (None
    when no answer came) and the answer's length in tokens (None when it failed)."""

    prompt: int
    prompt_tokens: int
    sent_s: float
    latency_s: float
    status: int | None
    output_tokens: int | None

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class Level:
    """One load level; every number is derived from ``samples``."""

    name: str  # "serve c=4", or "serve rate=5 c=64" in an open loop
    concurrency: int  # closed loop: workers; open loop: the cap on requests in flight
    rate: float | None  # open loop: mean arrivals per second (Poisson)
    duration_s: float
    elapsed_s: float  # from the first request sent to the last answer
    samples: tuple[RequestSample, ...]
    slos: tuple[str, ...] = ()
    mismatches: int | None = None  # answers other than their prompt's expected one
    error_examples: dict[str, str] = field(default_factory=dict)  # status -> a message
    # The load engine's own view of the same requests (Locust: its count and percentiles);
    # None for the in-process thread pool, whose samples are the only record.
    engine: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "samples", tuple(self.samples))
        object.__setattr__(self, "slos", tuple(self.slos))

    @property
    def answered(self) -> list[RequestSample]:
        return [s for s in self.samples if s.ok]

    @property
    def errors(self) -> dict[str, int]:
        counts = Counter(_NO_STATUS if s.status is None else str(s.status) for s in self.samples if not s.ok)
        return dict(sorted(counts.items()))

    @property
    def e2e_s(self) -> dict[str, float] | None:
        return latency_stats([s.latency_s for s in self.answered])

    def _per_s(self, count: float) -> float:
        return count / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def requests_per_s(self) -> float:
        """Answered requests per second (failures are not throughput)."""
        return self._per_s(len(self.answered))

    @property
    def tokens_per_s(self) -> float:
        """Output tokens (counted with the snapshot's tokenizer) per second."""
        return self._per_s(sum(s.output_tokens or 0 for s in self.answered))

    @property
    def error_rate(self) -> float:
        return (len(self.samples) - len(self.answered)) / len(self.samples) if self.samples else 0.0

    @property
    def goodput_rps(self) -> float:
        """Answered requests per second whose own latency meets every latency SLO."""
        limits = [Slo.parse(s).limit / 1000.0 for s in self.slos if Slo.parse(s).metric in LATENCY_SLOS]
        bound = min(limits, default=float("inf"))
        return self._per_s(sum(1 for s in self.answered if s.latency_s <= bound))

    def value(self, metric: str) -> float | None:
        """An SLO metric's value at this level (latencies in ms)."""
        if metric in LATENCY_SLOS:
            stats = self.e2e_s
            return None if stats is None else stats[metric.split("_")[1]] * 1000.0
        return getattr(self, metric)

    def slo_results(self) -> list[dict[str, Any]]:
        results = []
        for text in self.slos:
            slo = Slo.parse(text)
            value = self.value(slo.metric)
            results.append({"slo": str(slo), "value": value, "met": slo.met(value)})
        return results

    def summary(self) -> str:
        stats = self.e2e_s
        latency = (
            f"p50 {stats['p50'] * 1e3:.1f} ms, p90 {stats['p90'] * 1e3:.1f} ms, p99 {stats['p99'] * 1e3:.1f} ms"
            if stats
            else "no answered request"
        )
        return (
            f"{self.name}: {len(self.samples)} requests in {self.elapsed_s:.1f} s, "
            f"{self.requests_per_s:.1f} req/s, {self.tokens_per_s:.0f} tok/s, {latency}, "
            f"{len(self.samples) - len(self.answered)} errors"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mode": "closed" if self.rate is None else "open",
            "concurrency": self.concurrency,
            "rate": self.rate,
            "duration_s": self.duration_s,
            "elapsed_s": self.elapsed_s,
            "requests": len(self.samples),
            "ok": len(self.answered),
            "errors": self.errors,
            "error_examples": dict(self.error_examples),
            "mismatches": self.mismatches,
            "e2e_s": self.e2e_s,
            "requests_per_s": self.requests_per_s,
            "tokens_per_s": self.tokens_per_s,
            "goodput_rps": self.goodput_rps,
            "error_rate": self.error_rate,
            "slos": self.slo_results(),
            "engine": self.engine,
            "samples": [asdict(s) for s in self.samples],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Level:
        return cls(
            data["name"],
            data["concurrency"],
            data["rate"],
            data["duration_s"],
            data["elapsed_s"],
            tuple(RequestSample(**s) for s in data["samples"]),
            tuple(r["slo"] for r in data["slos"]),
            data["mismatches"],
            dict(data["error_examples"]),
            data.get("engine"),  # absent before 1.1
        )


@dataclass(frozen=True)
class ServeReport:
    machine: dict[str, Any]
    config: dict[str, Any]
    prompts: tuple[dict[str, Any], ...]  # {"text", "tokens"}: what the samples' prompt indexes
    levels: tuple[Level, ...]
    notes: tuple[str, ...] = ()
    created_at: str = field(default_factory=utc_now)
    harness_version: str = field(default_factory=lambda: package_version("harness"))
    schema_version: str = SCHEMA_VERSION

    def __post_init__(self) -> None:
        for name in ("prompts", "levels", "notes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def slo_met(self) -> bool:
        return all(r["met"] for level in self.levels for r in level.slo_results())

    def missed(self) -> list[str]:
        return [
            f"{level.name}: {r['slo']} missed ("
            + ("no answered request" if r["value"] is None else f"{r['value']:.4g}")
            + ")"
            for level in self.levels
            for r in level.slo_results()
            if not r["met"]
        ]

    def metrics(self) -> dict[str, dict[str, float]]:
        """Per level, as ``bench compare`` and budgets read them (latencies in seconds, as
        in bench.json: the budget ``e2e_p90_ms<=500`` reads ``e2e_p90``)."""
        out = {}
        for level in self.levels:
            values = {
                "requests_per_s": level.requests_per_s,
                "tokens_per_s": level.tokens_per_s,
                "goodput_rps": level.goodput_rps,
                "error_rate": level.error_rate,
            }
            if (stats := level.e2e_s) is not None:
                values.update({f"e2e_{k}": stats[k] for k in ("p50", "p90", "p99")})
            out[level.name] = values
        return out

    def identity(self) -> dict[str, Any]:
        keep = ("route", "api", "prompt_tokens", "max_tokens", "rate", "snapshot")
        return {"kind": KIND, "device": self.machine.get("device"), "config": {k: self.config.get(k) for k in keep}}

    def to_dict(self) -> dict[str, Any]:
        return {
            **header(self),
            "kind": KIND,
            "machine": self.machine,
            "config": self.config,
            "slo_met": self.slo_met,
            "prompts": [dict(p) for p in self.prompts],
            "levels": [level.to_dict() for level in self.levels],
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ServeReport:
        data = json.loads(text)
        require_schema(data, READABLE_VERSIONS)
        if data.get("kind") != KIND:
            raise ValueError(f"kind={str(data.get('kind'))[:40]!r} is not supported: expected {KIND!r}")
        return cls(
            data["machine"],
            data["config"],
            tuple(data["prompts"]),
            tuple(Level.from_dict(level) for level in data["levels"]),
            tuple(data.get("notes", ())),
            data["created_at"],
            data["harness_version"],
            data["schema_version"],
        )

    def to_table(self) -> str:
        rows: list[tuple[str, ...]] = [
            ("level", "requests", "errors", "p50 ms", "p90 ms", "p99 ms", "req/s", "tok/s", "goodput/s", "SLO")
        ]
        for level in self.levels:
            stats = level.e2e_s or {}
            results = level.slo_results()
            rows.append(
                (
                    level.name,
                    str(len(level.samples)),
                    ",".join(f"{k}:{v}" for k, v in level.errors.items()) or "0",
                    *(f"{stats[k] * 1e3:.1f}" if stats else "-" for k in ("p50", "p90", "p99")),
                    f"{level.requests_per_s:.1f}",
                    f"{level.tokens_per_s:.0f}",
                    f"{level.goodput_rps:.1f}",
                    ("met" if all(r["met"] for r in results) else "MISSED") if results else "-",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return "\n".join(
            "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
            for row in rows
        )

    def to_markdown(self) -> str:
        cfg = self.config
        lines = [
            f"# Serving benchmark: route {cfg.get('route')} ({cfg.get('api')})",
            "",
            f"- config: `{json.dumps(cfg, sort_keys=True)}`",
            f"- client: {self.machine.get('device')}, mlflow {self.machine.get('mlflow')}, "
            f"commit {self.machine.get('git_commit')}",
            f"- created {self.created_at} by harness {self.harness_version}",
            "",
            "| level | requests | errors | e2e p50 ms | e2e p90 ms | e2e p99 ms | req/s "
            "| output tok/s | goodput req/s | SLOs |",
            "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for level in self.levels:
            stats = level.e2e_s
            ms = [f"{stats[k] * 1e3:.1f}" if stats else "-" for k in ("p50", "p90", "p99")]
            slos = ", ".join(f"{r['slo']} {'met' if r['met'] else '**missed**'}" for r in level.slo_results()) or "-"
            lines.append(
                f"| {level.name} | {len(level.samples)} | "
                f"{', '.join(f'{k}: {v}' for k, v in level.errors.items()) or '0'} | "
                f"{' | '.join(ms)} | {level.requests_per_s:.1f} | "
                f"{level.tokens_per_s:.0f} | {level.goodput_rps:.1f} | {slos} |"
            )
        lines += self._engine_markdown()
        lines += [""] + [f"> {note}" for note in self.notes] if self.notes else []
        return "\n".join(lines) + "\n"

    def _engine_markdown(self) -> list[str]:
        """Locust's own record of the same requests, level by level, beside the samples' one."""
        levels = [level for level in self.levels if level.engine]
        if not levels:
            return []
        lines = [
            "",
            "Locust's own statistics of the same requests:",
            "",
            "| level | workers | requests (samples) | failures (errors) | p50 ms | p90 ms | p99 ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for level in levels:
            engine = level.engine or {}
            ms = [f"{engine[k]:.0f}" if engine.get(k) is not None else "-" for k in ("p50_ms", "p90_ms", "p99_ms")]
            errors = len(level.samples) - len(level.answered)
            lines.append(
                f"| {level.name} | {engine.get('workers')} | {engine.get('requests')} ({len(level.samples)}) | "
                f"{engine.get('failures')} ({errors}) | {' | '.join(ms)} |"
            )
        return lines

    def write(self, directory: str | Path) -> tuple[ServeReport, list[Path]]:
        """bench-serve.json, .md and (with matplotlib) .png, each written atomically; returns
        the report as written (with a note when the PNG was skipped) and the files."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        report, written = self, []
        try:
            from harness.bench.serve_figure import write_png

            written.append(write_png(self, directory / "bench-serve.png"))
        except ImportError:
            report = replace(self, notes=self.notes + ("no bench-serve.png: matplotlib is not installed",))
        atomic_write(directory / "bench-serve.json", report.to_json())
        atomic_write(directory / "bench-serve.md", report.to_markdown())
        return report, [directory / "bench-serve.json", directory / "bench-serve.md", *written]


def log_to_mlflow(report: ServeReport, files: list[Path], store: StoreConfig) -> str:
    """Params, metrics per level (latencies in ms) and the files as one run; the run id."""
    metrics: dict[str, dict[str, float]] = {}
    for level in report.levels:
        values = {
            "requests": len(level.samples),
            "requests_per_s": level.requests_per_s,
            "tokens_per_s": level.tokens_per_s,
            "goodput_rps": level.goodput_rps,
            "error_rate": level.error_rate,
        }
        if (stats := level.e2e_s) is not None:
            values.update({f"e2e_{k}_ms": stats[k] * 1e3 for k in ("p50", "p90", "p99")})
        metrics[level.name] = values
    tags = {"harness.kind": KIND, "slo_met": str(report.slo_met).lower()}
    return log_run(store, "bench-serve", report.config, tags, metrics, files)
