"""``open.inputs``: each input the contract leaves open (:mod:`harness.gate.open_inputs`) is
sent once, and any accepted behaviour passes; the report names the one the candidate chose.

Answers are compared with the candidate's own answers to the same request without the open
part (an ignored empty stop string must give the answers without it; a row beside blank rows
must get what it gets alone): whether its answers are right at all is answers.reference's
question. A crash, a 5xx or an undocumented exception fails on every input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.gate.checks.registry import GateContext, Outcome, Row, check, failed, passed, skipped
from harness.gate.open_inputs import OPEN_INPUTS, Choice, open_input
from harness.gate.explore.requests import Observed
from harness.gate.worker import CandidateError

_ROWS = ("What is MLflow?", "Name a colour.")
_MAX_TOKENS = 12


@dataclass(frozen=True)
class _Sent:
    """A body and what the candidate gave for it."""

    body: dict[str, Any]
    observed: Observed

    @property
    def got(self) -> list[str] | None:
        return None if self.observed.answers is None else list(self.observed.answers)

    @property
    def error(self) -> CandidateError | None:
        return self.observed.error

    def show(self) -> str:
        return self.observed.show()


def _send(ctx: GateContext, body: dict[str, Any]) -> _Sent:
    return _Sent(body, ctx.observe(body))


def _refusal(sent: _Sent, field: str) -> str | None:
    """None when the refusal is the documented kind; else why it is not."""
    assert sent.error is not None
    if not sent.error.documented:
        return (
            f"refused with {sent.error.describe()}: the scoring server answers that with a 500 "
            f"and a stack trace; raise MlflowException(..., error_code=INVALID_PARAMETER_VALUE) "
            f"naming {field}"
        )
    return None


def _same_as(ctx: GateContext, sent: _Sent, baseline: dict[str, Any]) -> str | None:
    """Why ``sent``'s answers are not the candidate's own answers to ``baseline`` (the same
    request without the open part), or None. The candidate is its own oracle here: whether
    its answers are right at all is answers.reference's question."""
    assert sent.got is not None
    again = _send(ctx, baseline)
    if again.error is not None or again.got is None:
        return None  # it refuses the plain request too: nothing here to judge
    if len(sent.got) != len(again.got):
        return f"{len(again.got)} rows in, {len(sent.got)} answers out"
    for i, (got, own) in enumerate(zip(sent.got, again.got)):
        if got != own:
            return f"row {i} got {got[:80]!r}, and {own[:80]!r} without it"
    return None


def _cut_from_answer(ctx: GateContext) -> str:
    """A stop string the candidate's own answer to the first row meets, so a stop list that
    ignores its empty string still has a stop to cut at."""
    plain = _send(ctx, _body(ctx, [_ROWS[0]]))
    text = plain.got[0] if plain.got else ""
    # Met past the first character, so an answer cut at it is not empty.
    pieces = [p for p in text.split() if "\ufffd" not in p and text.find(p) > 0]
    return pieces[len(pieces) // 2] if pieces else "\n"


def _stop_case(ctx: GateContext, input_id: str) -> tuple[Choice | None, str, _Sent]:
    stop = [_cut_from_answer(ctx), ""] if input_id == "stop.empty" else []
    sent = _send(ctx, _body(ctx, list(_ROWS), stop=stop))
    if sent.error is not None:
        return (None, why, sent) if (why := _refusal(sent, "stop")) else (Choice.REFUSED, "", sent)
    without = [s for s in stop if s]
    if (why := _same_as(ctx, sent, _body(ctx, list(_ROWS), stop=without or None))) is not None:
        return None, f"answered, but not as if the empty stop were absent: {why}", sent
    return Choice.IGNORED, "", sent


def _blank_case(ctx: GateContext) -> tuple[Choice | None, str, _Sent]:
    rows = ["", "  \n", _ROWS[1]]
    sent = _send(ctx, _body(ctx, rows))
    if sent.error is not None:
        return (None, why, sent) if (why := _refusal(sent, "prompt")) else (Choice.REFUSED, "", sent)
    if len(sent.got or []) != len(rows):
        return None, f"answered, but {len(rows)} rows in, {len(sent.got or [])} answers out", sent
    # The row that is not blank: what it gets beside blank rows is what it gets alone.
    alone = _send(ctx, _body(ctx, rows[2:]))
    if alone.got and sent.got is not None and alone.got[0] != sent.got[2]:
        return None, f"answered, but row 2 got {sent.got[2][:80]!r}, and {alone.got[0][:80]!r} alone", sent
    return Choice.ANSWERED, "", sent


def _zero_rows_case(ctx: GateContext) -> tuple[Choice | None, str, _Sent]:
    sent = _send(ctx, _body(ctx, []))
    if sent.error is not None:
        return (None, why, sent) if (why := _refusal(sent, "prompt")) else (Choice.REFUSED, "", sent)
    if sent.got:
        return None, f"zero rows got {len(sent.got)} answer(s): {sent.show()}", sent
    return Choice.EMPTY, "", sent


def _absent_case(ctx: GateContext) -> tuple[Choice | None, str, _Sent]:
    sent = _send(ctx, {"inputs": [_ROWS[0]]})
    if sent.error is not None:
        return (None, why, sent) if (why := _refusal(sent, "max_tokens")) else (Choice.REFUSED, "", sent)
    if sent.got is None or len(sent.got) != 1:
        return None, f"one row in, {len(sent.got or [])} answers out", sent
    return Choice.DEFAULTS, "", sent


def _body(ctx: GateContext, rows: list[str], stop: list[str] | None = None) -> dict[str, Any]:
    if ctx.uses_params:
        params: dict[str, Any] = {"temperature": 0.0, "max_tokens": _MAX_TOKENS}
        if stop is not None:
            params["stop"] = stop
        return {"inputs": rows, "params": params}
    return ctx.payload([Row(r, 0.0, _MAX_TOKENS, tuple(stop or ())) for r in rows])


_Case = Callable[[GateContext], tuple[Choice | None, str, _Sent]]


def _cases(ctx: GateContext) -> dict[str, _Case | None]:
    """What this candidate can be sent: a column signature (the seed's) takes no params,
    and MLflow refuses zero records for it before the model runs."""
    columns = not ctx.uses_params
    return {
        "stop.empty": (lambda c: _stop_case(c, "stop.empty")) if ctx.accepts_stop and not columns else None,
        "stop.empty_list": (lambda c: _stop_case(c, "stop.empty_list")) if ctx.accepts_stop and not columns else None,
        "prompt.blank": _blank_case,
        "rows.zero": None if columns else _zero_rows_case,
        "params.absent": None if columns else _absent_case,
    }


@check(
    "open.inputs",
    "inputs the contract leaves open (an empty stop string or list, a blank instruction, zero rows, "
    "no settings) get one of the accepted behaviours; the report names the candidate's choice",
)
def open_inputs(ctx: GateContext) -> Outcome:
    if ctx.temperature_zero_error() is not None:
        return skipped("skipped: judged at temperature 0, which raises in this candidate (params.temperature_zero)")
    choices: dict[str, str] = {}
    cases: dict[str, Any] = {}
    for item in OPEN_INPUTS:
        case = _cases(ctx)[item.id]
        if case is None:
            choices[item.id] = Choice.UNREACHABLE.value
            continue
        choice, why, sent = case(ctx)
        cases[item.id] = {"body": sent.body, "got": sent.show()}
        if choice is None:
            accepted = " or ".join(c.value for c in open_input(item.id).accepted)
            return failed(
                f"{item.id} ({item.sent}): {why}; accepted: {accepted}"[:900],
                choices=choices,
                cases=cases,
                reproducer={"body": sent.body},
            )
        choices[item.id] = choice.value
    judged = [k for k, v in choices.items() if v != Choice.UNREACHABLE.value]
    if not judged:
        return skipped("skipped: no open input reaches this candidate", choices=choices)
    shown = "; ".join(f"{k}: {v}" for k, v in choices.items() if k in judged)
    return passed(f"{len(judged)} open inputs, each an accepted choice: {shown}", choices=choices, cases=cases)


__all__ = ["open_inputs"]
