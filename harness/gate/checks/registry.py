"""The check registry, the context checks see, and how a check talks to a candidate."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.model.loading import context_length
from harness.gate.report import Status
from harness.model.signature import gateway_payload, parse_payload
from harness.gate.spy import GenerateCall, GenerateSpy


@dataclass(frozen=True)
class Outcome:
    status: Status
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


def passed(message: str, **evidence: Any) -> Outcome:
    return Outcome(Status.PASS, message, evidence)


def failed(message: str, **evidence: Any) -> Outcome:
    return Outcome(Status.FAIL, message, evidence)


def skipped(message: str, **evidence: Any) -> Outcome:
    return Outcome(Status.SKIPPED, message, evidence)


@dataclass(frozen=True)
class Row:
    """One row a check sends. Sampling by default: only params.temperature_zero sends 0, so
    a wrapper that crashes at temperature 0 fails that check alone."""

    instruction: str
    temperature: float = 1.0
    max_tokens: int = 8


@dataclass
class GateContext:
    """What every check can use: the loaded candidate and a spy on its model's generate."""

    model: Any = None  # mlflow PyFuncModel
    spy: GenerateSpy | None = None
    tokenizer: Any = None
    snapshot: Path | None = None
    provider: str = "mlflow-model-serving"
    load_error: str | None = None
    # Read from the logged model's metadata, so signature checks run even when loading fails.
    signature: Any = None
    model_uri: str | None = None
    tracking_uri: str | None = None
    route_file: Path | None = None
    serve: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    results: list[Any] = field(default_factory=list)  # CheckResults so far, for secrets.no_leak
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Stop whatever checks started (servers), last first."""
        while self.cleanups:
            self.cleanups.pop()()

    @property
    def uses_params(self) -> bool:
        """Whether the candidate takes settings as params (gateway style) or as columns."""
        sig = self.signature
        return bool(sig is not None and sig.params is not None
                    and {"temperature", "max_tokens"} <= {p.name for p in sig.params.params})

    @property
    def context_length(self) -> int:
        return context_length(self.spy.model, self.tokenizer)

    def send(self, rows: Sequence[Row]) -> Any:
        """Predict as the scoring server would: JSON payload -> MLflow parsing -> predict."""
        prompts = [r.instruction for r in rows]
        if self.uses_params:
            first = rows[0]
            if any((r.temperature, r.max_tokens) != (first.temperature, first.max_tokens) for r in rows):
                raise ValueError("params-style candidates take one setting per request")
            payload = gateway_payload(prompts, temperature=first.temperature,
                                      max_tokens=first.max_tokens)
        else:
            payload = {"dataframe_records": [
                {"prompt": r.instruction, "temperature": r.temperature, "max_tokens": r.max_tokens}
                for r in rows]}
        if self.signature is None:
            frame = pd.DataFrame(payload["dataframe_records"])
            return self.model.predict(frame)
        data, params = parse_payload(payload, self.signature)
        return self.model.predict(data, params=params)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def calls(self) -> list[GenerateCall]:
        return list(self.spy.calls)


CheckFn = Callable[[GateContext], Outcome]


@dataclass(frozen=True)
class Check:
    id: str
    fn: CheckFn
    summary: str
    needs_model: bool = True
    needs_serving: bool = False


CHECKS: dict[str, Check] = {}


def register_check(check_id: str, summary: str, needs_model: bool = True,
                   needs_serving: bool = False):
    """Decorator: add a check to the gate under ``check_id`` (ids are unique)."""

    def decorate(fn: CheckFn) -> CheckFn:
        if check_id in CHECKS:
            raise ValueError(f"check id {check_id!r} is registered twice")
        CHECKS[check_id] = Check(check_id, fn, summary, needs_model, needs_serving)
        return fn

    return decorate


def answers(raw: Any) -> list[str]:
    """The candidate's output as a list, leniently: strictness is output.type's job."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, pd.DataFrame):
        return [str(v) for v in raw.iloc[:, 0].tolist()]
    if hasattr(raw, "tolist"):
        raw = raw.tolist()
    if isinstance(raw, (list, tuple)):
        return [v if isinstance(v, str) else str(v) for v in raw]
    return [str(raw)]


__all__ = ["CHECKS", "Check", "GateContext", "Outcome", "Row", "answers",
           "failed", "passed", "register_check", "skipped"]
