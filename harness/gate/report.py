"""Versioned gate reports: data first (JSON), Markdown made from it, written atomically."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from harness._reporting import SCHEMA_DIR, atomic_write, header, package_version, require_schema, utc_now

# 1.1: `interrupted` (and the verdict "interrupted"); 1.2: `explore` (the seed and size of
# the exploration, so a run can be repeated); 1.3: `runtime` (device, dtype, the oracle's
# rule, cached reference answers); 1.4: `phases` (seconds the gate spent loading the
# candidate, preparing the reference and running the checks); earlier reports still load.
SCHEMA_VERSION = "1.5"
_READABLE = ("1.0", "1.1", "1.2", "1.3", "1.4", SCHEMA_VERSION)
SCHEMA_PATH = SCHEMA_DIR / "gate.schema.json"
_MAX_TEXT = 2000


class Status(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: Status
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
        # A reproducer stays whole (its bodies are what reruns the failure); the rest is cut.
        kept = {k: json.loads(json.dumps(v, default=str)) for k, v in self.evidence.items() if k == "reproducer"}
        object.__setattr__(self, "evidence", {**jsonable(self.evidence), **kept})

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}


@dataclass(frozen=True)
class GateReport:
    candidate: dict[str, Any]
    snapshot: dict[str, Any]
    machine: dict[str, Any]
    checks: tuple[CheckResult, ...]
    created_at: str = field(default_factory=lambda: utc_now())
    harness_version: str = field(default_factory=lambda: package_version("harness"))
    schema_version: str = SCHEMA_VERSION
    interrupted: str | None = None  # the signal that stopped the run before every check ran
    explore: dict[str, Any] | None = None  # seed, examples, sequences, database
    runtime: dict[str, Any] | None = None  # asked/candidate/reference device and dtype, rule
    phases: dict[str, float] | None = None  # seconds per phase: load, reference, checks

    def __post_init__(self) -> None:
        object.__setattr__(self, "checks", tuple(self.checks))

    @property
    def verdict(self) -> str:
        """``interrupted`` when the run was stopped early: a partial run passes nothing."""
        if self.interrupted:
            return "interrupted"
        bad = {Status.FAIL, Status.ERROR}
        return "fail" if any(c.status in bad for c in self.checks) else "pass"

    def check(self, check_id: str) -> CheckResult:
        return next(c for c in self.checks if c.id == check_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            **header(self),
            "candidate": self.candidate,
            "snapshot": self.snapshot,
            "machine": self.machine,
            "verdict": self.verdict,
            "interrupted": self.interrupted,
            "explore": self.explore,
            "runtime": self.runtime,
            "phases": self.phases,
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> GateReport:
        data = json.loads(text)
        if data.get("schema_version") not in _READABLE:
            require_schema(data, SCHEMA_VERSION)
        data.pop("verdict")
        data["checks"] = tuple(CheckResult(**c) for c in data["checks"])
        return cls(**data)

    def to_markdown(self) -> str:
        lines = [
            f"# Gate report: {self.verdict.upper()}",
            "",
            f"- candidate: `{self.candidate.get('ref')}` ({self.candidate.get('kind')}, "
            f"signature {self.candidate.get('signature')})",
            f"- snapshot: `{self.snapshot.get('path')}`"
            + (f", prompt format `{fmt['name']}`" if (fmt := self.snapshot.get("prompt_format")) else ""),
            f"- machine: {self.machine.get('device')}, torch {self.machine.get('torch')}, "
            f"transformers {self.machine.get('transformers')}, mlflow {self.machine.get('mlflow')}",
            f"- created: {self.created_at} by harness {self.harness_version}",
            *(
                [
                    f"- exploration: seed {self.explore['seed']} (`--seed`), {self.explore['examples']} "
                    f"requests and {self.explore['sequences']} sequences per run (`--explore`)"
                ]
                if self.explore
                else []
            ),
            *_runtime_lines(self.runtime),
            *(["- phases: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.phases.items())] if self.phases else []),
            *(
                [
                    f"- **interrupted by {self.interrupted}**: only the {len(self.checks)} checks "
                    "that finished are listed",
                    "",
                ]
                if self.interrupted
                else [""]
            ),
            "| check | status | time (s) | message |",
            "| --- | --- | ---: | --- |",
        ]
        for c in self.checks:
            message = c.message.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{c.id}` | {c.status.value} | {c.duration_s:.2f} | {message} |")
        return "\n".join(lines + _reproducers(self.checks)) + "\n"

    def write(self, directory: str | os.PathLike) -> tuple[Path, Path]:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        json_path, md_path = directory / "gate.json", directory / "gate.md"
        atomic_write(json_path, self.to_json())
        atomic_write(md_path, self.to_markdown())
        return json_path, md_path


def _runtime_lines(runtime: dict[str, Any] | None) -> list[str]:
    if not runtime:
        return []

    def show(side: dict[str, Any] | None) -> str:
        return f"{side['device']}/{side['dtype']}" if side else "unknown"

    rule = runtime.get("rule") or {}
    how = (
        "exact"
        if rule.get("kind") == "exact"
        else f"top-{rule.get('k')} within {rule.get('margin')} nats"
        if rule
        else "not used"
    )
    lines = [
        f"- runtime: asked {show(runtime['asked'])}, candidate ran on "
        f"{show(runtime['candidate'])}, reference on {show(runtime['reference'])}; "
        f"oracle rule: {how}; reference rows generated "
        f"{runtime.get('generated_rows', 0)}, read from the cache "
        f"{runtime.get('cached_rows', 0)}; answers accepted at a near-tie "
        f"{runtime.get('near_ties_accepted', 0)}"
    ]
    if runtime.get("mismatch"):
        lines.append(f"- **{runtime['mismatch']}**")
    return lines


def _reproducers(checks: tuple[CheckResult, ...]) -> list[str]:
    """A section per failing exploration: the smallest failing request(s), what each side
    gave, and the snippet that reruns it."""
    lines: list[str] = []
    for c in checks:
        found = c.evidence.get("reproducer")
        if not isinstance(found, dict):
            continue
        lines += ["", f"## Reproducer for `{c.id}`", ""]
        for i, step in enumerate(found.get("steps", []), 1):
            lines += [
                f"{i}. `{json.dumps(step.get('body'), ensure_ascii=False)}`",
                f"   - candidate: {step.get('got')}",
                f"   - reference: {step.get('expected')}",
            ]
        lines += ["", "```python", str(found.get("python", "")).rstrip(), "```"]
    return lines


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, size-bounded copy of evidence (long text and lists are cut)."""
    if depth > 6:
        return repr(value)[:200]
    if isinstance(value, str):
        return value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT] + "…"
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else repr(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [jsonable(v, depth + 1) for v in value[:50]]
        return items + ([f"… {len(value) - 50} more"] if len(value) > 50 else [])
    if hasattr(value, "tolist"):
        return jsonable(value.tolist(), depth + 1)
    return repr(value)[:200]
