"""`harness bench serve` on Locust with 1 and with 2 local worker processes, against the
same servers (the reference on the tiny snapshot behind the real AI Gateway), one after
the other; both reports are written, and a comparison of the two and of each level's
samples against Locust's own count and percentiles of the same requests.

    python benchmarks/serve_processes.py --out reports/bench-serve/processes-DATE \
        [--concurrency 4,16] [--duration 15] [--scoring-workers 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from harness._reporting import atomic_write
from harness.bench.serve import ServeBenchConfig, run_serve_bench
from harness.bench.serve_report import Level
from harness.gate.candidate import CandidateSpec, log_candidate
from harness.model.snapshot import cached_tiny
from harness.serving.processes import stop_on_signals
from harness.serving.servers import start_loopback
from harness.store import StoreConfig


def _row(processes: int, level: Level) -> dict[str, object]:
    stats = level.e2e_s or {}
    engine = level.engine or {}
    return {
        "processes": processes,
        "level": level.name,
        "samples": len(level.samples),
        "locust_requests": engine.get("requests"),
        "errors": len(level.samples) - len(level.answered),
        "requests_per_s": level.requests_per_s,
        "p50_ms": stats.get("p50", 0) * 1e3,
        "locust_p50_ms": engine.get("p50_ms"),
        "p99_ms": stats.get("p99", 0) * 1e3,
        "locust_p99_ms": engine.get("p99_ms"),
    }


def _markdown(rows: list[dict[str, object]], command: str) -> str:
    head = "| processes | level | samples | Locust requests | errors | req/s | p50 ms (Locust) | p99 ms (Locust) |"
    lines = [f"# bench serve: 1 vs 2 Locust worker processes\n\n`{command}`\n", head, "|" + " --- |" * 8]
    for r in rows:
        lines.append(
            f"| {r['processes']} | {r['level']} | {r['samples']} | {r['locust_requests']} | {r['errors']} | "
            f"{r['requests_per_s']:.1f} | {r['p50_ms']:.1f} ({r['locust_p50_ms']}) | "
            f"{r['p99_ms']:.1f} ({r['locust_p99_ms']}) |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--concurrency", default="4,16")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--scoring-workers", type=int, default=1)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="harness-processes-"))
    store = StoreConfig(home=home / "store")
    with store.activated():
        uri = log_candidate(CandidateSpec(), cached_tiny(progress=print))
    rows = []
    with stop_on_signals():
        loopback = start_loopback({"reference": uri}, store.uri, home, workers=args.scoring_workers, progress=print)
        try:
            for processes in (1, 2):
                cfg = ServeBenchConfig(
                    url=loopback.gateway.url,
                    concurrency=tuple(int(c) for c in args.concurrency.split(",")),
                    duration_s=args.duration,
                    prompt_tokens=(32,),
                    max_tokens=16,
                    processes=processes,
                )
                report = run_serve_bench(cfg, progress=print, log_dir=home / "logs")
                report.write(args.out / f"processes-{processes}")
                rows += [_row(processes, level) for level in report.levels]
        finally:
            loopback.stop()
    command = (
        f"python benchmarks/serve_processes.py --out {args.out} --concurrency {args.concurrency} "
        f"--duration {args.duration:g} --scoring-workers {args.scoring_workers}"
    )
    atomic_write(args.out / "comparison.json", json.dumps({"command": command, "rows": rows}, indent=1))
    atomic_write(args.out / "comparison.md", _markdown(rows, command))
    print(_markdown(rows, command))


if __name__ == "__main__":
    main()
