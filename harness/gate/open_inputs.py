"""Inputs the contract leaves open, and the behaviours the gate accepts for each.

The contract is what MLflow's scoring server, the gateway's request models and the documented
settings fix. Where they leave a behaviour open, every harmless choice passes: the
reference's choice is one of them, not the rule. What is never accepted, on any input: a
crash, a 5xx, or an exception that is not the documented kind (an ``MlflowException`` the
scoring server answers with a 4xx and its message).

This table is the one place that says so: the oracles (``harness.gate.explore.oracle``) and
the ``open.inputs`` check read it, the report names the choice a candidate made, and the
README's table is tested against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Choice(str, Enum):
    """What a candidate did with an open input (the report's words)."""

    REFUSED = "refused the documented way"
    IGNORED = "answered as if it were absent"
    ANSWERED = "answered"
    EMPTY = "answered with an empty list"
    DEFAULTS = "answered with its signature's defaults"
    UNREACHABLE = "not reachable: MLflow's parsing decides before the model"


@dataclass(frozen=True)
class OpenInput:
    id: str
    sent: str  # what is sent, in a user's words
    why_open: str  # where the contract leaves it open
    accepted: tuple[Choice, ...]
    never: str  # what fails, beyond the crash, 5xx or undocumented error no input may give


OPEN_INPUTS: tuple[OpenInput, ...] = (
    OpenInput(
        "stop.empty",
        'an empty string among the stop strings (`"stop": ["\\n", ""]`)',
        'the gateway\'s request model asks only for a non-empty list, and passes `[""]` through',
        (Choice.REFUSED, Choice.IGNORED),
        "cutting every answer to `''` (an empty stop matched at position 0), or letting the other stops go",
    ),
    OpenInput(
        "stop.empty_list",
        'an empty stop list (`"stop": []`), sent straight to the scoring server',
        "the gateway refuses it (422), the scoring server passes it on",
        (Choice.REFUSED, Choice.IGNORED),
        "answers that differ from the answers with no stop",
    ),
    OpenInput(
        "prompt.blank",
        'a blank instruction (`""`, or whitespace only)',
        "the gateway's `prompt` is any string; MLflow enforces only its type",
        (Choice.REFUSED, Choice.ANSWERED),
        "another row of the same request answered differently from the same row alone",
    ),
    OpenInput(
        "rows.zero",
        'a request of zero rows (`"inputs": []`), sent straight to the scoring server',
        "MLflow's schema enforcement passes an empty frame to `predict`",
        (Choice.REFUSED, Choice.EMPTY),
        "any answer at all (zero rows ask for zero answers)",
    ),
    OpenInput(
        "params.absent",
        "a request with no `temperature` and no `max_tokens` (the gateway sends none when its caller sets none)",
        "MLflow fills in the signature's defaults, which are the wrapper's to choose",
        (Choice.REFUSED, Choice.DEFAULTS),
        "a number of answers other than the number of rows",
    ),
)


def open_input(input_id: str) -> OpenInput:
    for item in OPEN_INPUTS:
        if item.id == input_id:
            return item
    raise KeyError(f"no open input {input_id!r}: known {[i.id for i in OPEN_INPUTS]}")


def markdown_table() -> str:
    """The README's table, made from the data (a test holds the README to it)."""
    lines = ["| open input | why it is open | accepted | fails |", "| --- | --- | --- | --- |"]
    for item in OPEN_INPUTS:
        accepted = "; ".join(c.value for c in item.accepted)
        lines.append(f"| `{item.id}`: {item.sent} | {item.why_open} | {accepted} | {item.never} |")
    return "\n".join(lines)


__all__ = ["Choice", "OPEN_INPUTS", "OpenInput", "markdown_table", "open_input"]
