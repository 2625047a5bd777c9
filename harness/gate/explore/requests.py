"""What the exploration sends and what it sees: plain data, so a failing request can be
printed, shrunk, replayed and written into a report as it was sent."""

from __future__ import annotations

import json
from dataclasses import dataclass

from harness.gate.worker import CandidateError


@dataclass(frozen=True)
class ExploreRequest:
    """One request: instructions (one per row) and the settings every row shares, as the
    gateway sends them (one ``params`` object per request). ``stop=None`` sends no stop."""

    instructions: tuple[str, ...]
    temperature: float = 0.0
    max_tokens: int = 8
    stop: tuple[str, ...] | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def params(self) -> dict[str, object]:
        params: dict[str, object] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.stop is not None:
            params["stop"] = list(self.stop)
        return params

    def body(self) -> dict[str, object]:
        """The scoring server's JSON body for this request (what a route's
        ``mlflow-model-serving`` provider sends)."""
        return {"inputs": list(self.instructions), "params": self.params()}

    def show(self) -> str:
        """Short enough for a message: long instructions are cut, with their length."""
        shown = [i if len(i) <= 60 else f"{i[:40]!r}…({len(i)} chars)" for i in self.instructions]
        stop = "" if self.stop is None else f", stop={list(self.stop)!r}"
        return (
            f"{len(self.instructions)} row(s) {json.dumps(shown, ensure_ascii=False)[:300]}, "
            f"temperature={self.temperature!r}, max_tokens={self.max_tokens}{stop}"
        )


@dataclass(frozen=True)
class Observed:
    """What the candidate gave for one request: answers, or the error a caller would see."""

    answers: tuple[str, ...] | None = None
    error: CandidateError | None = None

    def show(self) -> str:
        if self.error is not None:
            return f"error {self.error.describe()}"
        return json.dumps(list(self.answers or ()), ensure_ascii=False)[:400]


@dataclass(frozen=True)
class Step:
    """One request of a failing example: the JSON body the candidate got, and what each side
    gave."""

    request: ExploreRequest | None  # None: an earlier request the failure needs, sent as it was
    body: dict[str, object]
    got: str
    expected: str

    def show_request(self) -> str:
        return self.request.show() if self.request is not None else "an earlier request"

    def to_dict(self) -> dict[str, object]:
        return {"request": self.show_request(), "body": self.body, "got": self.got, "expected": self.expected}


__all__ = ["Observed", "ExploreRequest", "Step"]
