"""Checks of what a candidate does with each row: the output container, every row answered,
the prompt ``generate`` saw, trimming, and rejection of bad settings.

Each compares what the candidate returned with what its model was asked (the spy on
transformers' ``generate``, in the candidate's process), so any wrapper can be judged.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.gate.checks.registry import (
    GateContext,
    Outcome,
    Row,
    answers,
    completion_text,
    failed,
    passed,
    check,
    skipped,
)
from harness.gate.spy import GenerateCall, Script

INSTRUCTIONS = {
    "plain": "What is machine learning?",
    "unicode": "Qu'est-ce que MLflow ? 東京 🎉 naïve café",
    "multi-line": "Write two lines:\n  first, indented\nsecond\tafter a tab",
    "long": " ".join(["Explain the route, the signature and the endpoint."] * 30),
    # Kept verbatim: leading indentation can be the point of a code question.
    "edge whitespace": "    indented = True\nWhat does this line do?\n",
}


_NO_GENERATE = (
    "skipped: the candidate does not call transformers' generate; its answers are judged by answers.reference"
)


def _sent_prompts(ctx: GateContext) -> list[str]:
    return [ctx.decode(call.prompt_ids(r)) for call in ctx.calls() for r in range(len(call.input_ids))]


def _find_row(ctx: GateContext, instruction: str) -> tuple[GenerateCall, int] | tuple[None, None]:
    for call in ctx.calls():
        for r in range(len(call.input_ids)):
            if instruction in ctx.decode(call.prompt_ids(r)):
                return call, r
    return None, None


@check("output.type", "one string per input row, matching the output schema")
def output_type(ctx: GateContext) -> Outcome:
    raw = ctx.send([Row(INSTRUCTIONS["plain"], 1.0, 4)])
    kind = type(raw).__name__
    if isinstance(raw, (pd.Series, pd.DataFrame)):
        # MLflow's scoring server sends these as records ([{"0": "..."}]), not strings.
        return failed(
            f"a 1-row input returned a pandas {kind}: the scoring server sends it as "
            "records of objects, not a list of strings; return a list",
            returned=repr(raw)[:200],
        )
    if hasattr(raw, "tolist") and not isinstance(raw, str) and getattr(raw, "ndim", 1) == 1:
        raw = raw.tolist()
    if not isinstance(raw, (list, tuple)):
        return failed(f"a 1-row input returned a {kind}, not a list of one string per row", returned=repr(raw)[:200])
    if len(raw) == 1 and completion_text(raw[0]) is not None:
        # MLflow's transformers flavour, llm/v1/completions or llm/v1/chat task: understood
        # here; whether a route can relay it is for the serving checks (the provider wants strings).
        return passed(
            "a list with one completions or chat object (choices[].text or .message.content) per row",
            returned_type=kind,
            returned=raw,
        )
    if len(raw) != 1 or not all(isinstance(a, str) for a in raw):
        return failed(
            f"a 1-row input returned {len(raw)} items of types "
            f"{sorted({type(a).__name__ for a in raw})}; expected 1 string",
            returned=raw,
        )
    return passed("a list with one string per row", returned_type=kind)


@check("rows.all", "every row of an N-row input is answered and reaches generate")
def rows_all(ctx: GateContext) -> Outcome:
    rows = [Row(f"Row {i}: name a colour number {i}.", 1.0, 4) for i in range(3)]
    ctx.reset()
    got = answers(ctx.send(rows))
    missing = (
        [r.instruction for r in rows if _find_row(ctx, r.instruction)[0] is None] if ctx.calls() else []
    )  # without generate calls, the answer count is all we can see
    evidence = {"sent": [r.instruction for r in rows], "answers": got, "generate_prompts": _sent_prompts(ctx)}
    if len(got) != len(rows):
        return failed(f"{len(rows)} rows in, {len(got)} answers out", **evidence)
    if missing:
        return failed(f"{len(missing)} of {len(rows)} rows never reached generate: {missing[0]!r}", **evidence)
    return passed(f"{len(rows)} rows in, {len(rows)} answers out, each row generated", **evidence)


@check("prompt.template", "generate sees the exact ids of the prompt format around each instruction")
def prompt_template(ctx: GateContext) -> Outcome:
    evidence: dict[str, Any] = {"format": ctx.prompt_format.describe()}
    for name, instruction in INSTRUCTIONS.items():
        ctx.reset()
        ctx.send([Row(instruction, 1.0, 2)])
        if not ctx.calls():
            return skipped(_NO_GENERATE)
        expected = ctx.prompt_ids(instruction)
        sent = [call.prompt_ids(r) for call in ctx.calls() for r in range(len(call.input_ids))]
        evidence[name] = {"expected": _shown(ctx, expected), "sent": [_shown(ctx, s) for s in sent]}
        if expected not in sent:
            got = sent[0] if sent else []
            return failed(f"{name} instruction: {_difference(ctx, expected, got)}", **evidence)
    return passed(
        f"{ctx.prompt_format.name} prompt ids exact for {len(INSTRUCTIONS)} instructions ({', '.join(INSTRUCTIONS)})",
        **evidence,
    )


def _shown(ctx: GateContext, ids: list[int]) -> str:
    """Prompt ids as text with their special tokens written out (BOS, <|im_start|>)."""
    return str(ctx.tokenizer.decode(ids, skip_special_tokens=False))


def _difference(ctx: GateContext, expected: list[int], got: list[int]) -> str:
    """Where generate's prompt parts from the format's, in ids and in text."""
    if not got:
        return "generate was not called with this instruction"
    at = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    want, have = _shown(ctx, expected), _shown(ctx, got)
    if want == have:
        return (
            f"generate saw the prompt's text tokenized differently: first different id at position {at}: "
            f"expected {expected[at : at + 6]}, got {got[at : at + 6]} ({ctx.prompt_format.name} tokenizes "
            f"with add_special_tokens={ctx.prompt_format.add_special_tokens})"
        )
    char = next((i for i, (a, b) in enumerate(zip(have, want)) if a != b), min(len(have), len(want)))
    return (
        f"generate saw a different prompt; first difference at token {at}, character {char}: "
        f"expected {want[char : char + 25]!r}, got {have[char : char + 25]!r} "
        f"(ids from {at}: expected {expected[at : at + 6]}, got {got[at : at + 6]})"
    )


def _scripts(ctx: GateContext) -> dict[str, tuple[list[int], list[int]]]:
    """Hard cases as (row 0 ids, row 1 ids) for the two rows of :data:`_TRIM_ROWS`."""
    tok, eos = ctx.tokenizer, ctx.tokenizer.eos_token_id
    text = tok.encode("The answer is 42.", add_special_tokens=False)
    spaced = tok.encode("  spaced out answer \n", add_special_tokens=False)
    unicode = tok.encode("東京 🎉 naïve", add_special_tokens=False)
    return {
        # Row 0 finishes early: text, EOS, then padding while row 1 goes on.
        "eos_then_padding": (text[:3] + [eos], text + text),
        "whitespace": (spaced, tok.encode(" \n", add_special_tokens=False) + spaced),
        # Byte-level BPE splits these characters across tokens; decoding piecewise mangles them.
        "multibyte": (unicode, text[:2] + unicode),
    }


_TRIM_ROWS = (Row("Short.", 1.0, 16), Row("A much longer instruction than the first one.", 1.0, 16))


def _script(ids_by_row: tuple[list[int], list[int]]) -> Script:
    """Answer each input row by which of :data:`_TRIM_ROWS` it holds."""
    return Script(by_marker=tuple((row.instruction, tuple(ids)) for row, ids in zip(_TRIM_ROWS, ids_by_row)))


def _generated_text(ctx: GateContext, calls: list[GenerateCall], instruction: str) -> str | None:
    """The decode of the row's new ids up to its first EOS: what the answer must be."""
    eos = ctx.tokenizer.eos_token_id
    for call in calls:
        for r in range(len(call.input_ids)):
            if instruction in ctx.decode(call.prompt_ids(r)):
                new = call.new_ids(r)
                return ctx.decode(new[: new.index(eos)] if eos in new else new)
    return None


@check("trim.exact", "each answer is the decode of exactly the ids generated after the prompt")
def trim_exact(ctx: GateContext) -> Outcome:
    # "eos_real": the real generate, row 0 made to emit EOS after 3 tokens while row 1 goes
    # on: the candidate's own EOS id and padding decide what follows it.
    cases: dict[str, Any] = {
        "real": None,
        "eos_real": Script(eos_after=((_TRIM_ROWS[0].instruction, 3),)),
        **_scripts(ctx),
    }
    evidence: dict[str, Any] = {}
    for case, ids_by_row in cases.items():
        ctx.reset(ids_by_row if isinstance(ids_by_row, Script) else _script(ids_by_row) if ids_by_row else None)
        error: Exception | None = None
        try:
            try:
                got = answers(ctx.send(list(_TRIM_ROWS)))
            except Exception as raised:  # noqa: BLE001 - judged below: unscriptable, or raised
                error = raised
            calls = ctx.calls()
        finally:
            ctx.reset()
        # A scripted generate that could not answer as generate would leaves nothing to judge.
        if (reason := next((c.unsupported for c in calls if c.unsupported), None)) is not None:
            return skipped(
                f"skipped: the {case} case was scripted, and a scripted generate "
                f"cannot honour what the candidate asked of it: {reason}",
                **evidence,
            )
        if error is not None:
            raise error
        if not calls:
            return skipped(_NO_GENERATE)
        expected = [_generated_text(ctx, calls, r.instruction) for r in _TRIM_ROWS]
        evidence[case] = {"expected": expected, "answers": got}
        for i, (answer, want) in enumerate(zip(got, expected)):
            if want is not None and answer != want:
                return failed(
                    f"{case}: row {i} answer {answer!r} is not the decode of the ids "
                    f"generated after the prompt up to EOS, {want!r}",
                    **evidence,
                )
    return passed(f"answers exact for {len(cases)} generations ({', '.join(cases)})", **evidence)


def _invalid_cases(ctx: GateContext) -> list[tuple[str, str, float, int]]:
    cases = [
        ("temperature", "-1", -1.0, 8),
        ("temperature", "3", 3.0, 8),
        ("max_tokens", "0", 1.0, 0),
        ("max_tokens", "-1", 1.0, -1),
        ("max_tokens", "beyond the context", 1.0, ctx.context_length),
    ]
    if ctx.uses_params:  # a NaN in a column reads as a missing value, which is allowed
        cases.insert(2, ("temperature", "NaN", math.nan, 8))
    return cases


@check("params.invalid", "out-of-range settings get a clear error naming the field, before generate")
def params_invalid(ctx: GateContext) -> Outcome:
    evidence: dict[str, Any] = {}
    for field, label, temperature, max_tokens in _invalid_cases(ctx):
        ctx.reset()
        row = Row("Is this accepted?", temperature, max_tokens)
        try:
            ctx.send([row])
        except Exception as error:
            message = getattr(error, "message", None) or str(error)
            evidence[f"{field}={label}"] = {
                "error": f"{type(error).__name__}: {message}"[:300],
                "generate_called": bool(ctx.calls()),
            }
            if field not in message:
                return failed(
                    f"{field}={label}: the error does not name {field!r}: {type(error).__name__}: {message[:150]}",
                    **evidence,
                )
            if ctx.calls():
                return failed(
                    f"{field}={label}: rejected only from inside generate ({type(error).__name__}: {message[:120]})",
                    **evidence,
                )
            continue
        evidence[f"{field}={label}"] = {"error": None}
        return failed(f"{field}={label} was accepted without an error", **evidence)
    return passed("every out-of-range setting rejected before generate, naming the field", **evidence)
