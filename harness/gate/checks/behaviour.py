"""Checks of what a candidate does: rows, prompt, trimming, settings, cache.

Each compares what the candidate returned with what it asked ``generate`` (the
spy), so any wrapper around transformers can be judged, not only ours.
"""

from __future__ import annotations

import math
from typing import Any

from harness.gate.checks.registry import GateContext, Outcome, Row, answers, failed, passed, \
    register_check
from harness.model.prompt import build_prompt

INSTRUCTIONS = {
    "plain": "What is machine learning?",
    "unicode": "Qu'est-ce que MLflow ? 東京 🎉 naïve café",
    "multi-line": "Write two lines:\n  first, indented\nsecond\tafter a tab",
    "long": " ".join(["Explain the route, the signature and the endpoint."] * 30),
}


def _sent_prompts(ctx: GateContext) -> list[str]:
    return [ctx.decode(call.prompt_ids(r)) for call in ctx.calls()
            for r in range(len(call.input_ids))]


def _find_row(ctx: GateContext, instruction: str):
    for call in ctx.calls():
        for r in range(len(call.input_ids)):
            if instruction in ctx.decode(call.prompt_ids(r)):
                return call, r
    return None, None


@register_check("output.type", "one string per input row, matching the output schema")
def output_type(ctx: GateContext) -> Outcome:
    raw = ctx.send([Row(INSTRUCTIONS["plain"], 1.0, 4)])
    kind = type(raw).__name__
    if hasattr(raw, "tolist") and not isinstance(raw, str) and getattr(raw, "ndim", 1) == 1:
        raw = raw.tolist()
    if not isinstance(raw, (list, tuple)):
        return failed(f"a 1-row input returned a {kind}, not a list of one string per row",
                      returned=repr(raw)[:200])
    if len(raw) != 1 or not all(isinstance(a, str) for a in raw):
        return failed(f"a 1-row input returned {len(raw)} items of types "
                      f"{sorted({type(a).__name__ for a in raw})}; expected 1 string", returned=raw)
    return passed("a list with one string per row", returned_type=kind)


@register_check("rows.all", "every row of an N-row input is answered and reaches generate")
def rows_all(ctx: GateContext) -> Outcome:
    rows = [Row(f"Row {i}: name a colour number {i}.", 1.0, 4) for i in range(3)]
    got = answers(ctx.send(rows))
    missing = [r.instruction for r in rows if _find_row(ctx, r.instruction)[0] is None]
    evidence = {"sent": [r.instruction for r in rows], "answers": got, "generate_prompts": _sent_prompts(ctx)}
    if len(got) != len(rows):
        return failed(f"{len(rows)} rows in, {len(got)} answers out", **evidence)
    if missing:
        return failed(f"{len(missing)} of {len(rows)} rows never reached generate: {missing[0]!r}",
                      **evidence)
    return passed(f"{len(rows)} rows in, {len(rows)} answers out, each row generated", **evidence)


@register_check("prompt.template", "generate sees the exact MPT-Instruct template around each instruction")
def prompt_template(ctx: GateContext) -> Outcome:
    evidence: dict[str, Any] = {}
    for name, instruction in INSTRUCTIONS.items():
        ctx.spy.reset()
        ctx.send([Row(instruction, 1.0, 2)])
        sent = _sent_prompts(ctx)
        expected = build_prompt(instruction)
        evidence[name] = {"expected": expected, "sent": sent}
        if expected not in sent:
            got = sent[0] if sent else "<generate not called>"
            at = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b),
                      min(len(got), len(expected)))
            return failed(f"{name} instruction: generate saw a different prompt; first difference "
                          f"at character {at}: expected {expected[at:at + 25]!r}, "
                          f"got {got[at:at + 25]!r}", **evidence)
    return passed(f"template exact for {len(INSTRUCTIONS)} instructions "
                  f"({', '.join(INSTRUCTIONS)})", **evidence)


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


def _script_by_row(ctx: GateContext, ids_by_row: tuple[list[int], list[int]]):
    """A spy script answering each input row by which instruction it holds."""

    def script(input_ids: list[list[int]]) -> list[list[int]]:
        picked = []
        for ids in input_ids:
            text = ctx.decode(ids)
            index = next((i for i, r in enumerate(_TRIM_ROWS) if r.instruction in text), 0)
            picked.append(ids_by_row[index])
        return picked

    return script


def _generated_text(ctx: GateContext, calls, instruction: str) -> str | None:
    for call in calls:
        for r in range(len(call.input_ids)):
            if instruction in ctx.decode(call.prompt_ids(r)):
                return ctx.decode(call.new_ids(r))
    return None


@register_check("trim.exact", "each answer is the decode of exactly the ids generated after the prompt")
def trim_exact(ctx: GateContext) -> Outcome:
    cases: dict[str, Any] = {"real": None, **_scripts(ctx)}
    evidence: dict[str, Any] = {}
    for case, ids_by_row in cases.items():
        ctx.spy.reset(script=_script_by_row(ctx, ids_by_row) if ids_by_row else None)
        try:
            got = answers(ctx.send(list(_TRIM_ROWS)))
            calls = ctx.calls()
        finally:
            ctx.spy.reset()
        expected = [_generated_text(ctx, calls, r.instruction) for r in _TRIM_ROWS]
        evidence[case] = {"expected": expected, "answers": got}
        for i, (answer, want) in enumerate(zip(got, expected)):
            if want is not None and answer != want:
                return failed(f"{case}: row {i} answer {answer!r} is not the decode of the ids "
                              f"generated after the prompt, {want!r}", **evidence)
    return passed(f"answers exact for {len(cases)} generations ({', '.join(cases)})", **evidence)


@register_check("params.max_tokens", "max_new_tokens passed to generate equals the requested max_tokens")
def params_max_tokens(ctx: GateContext) -> Outcome:
    rows = [Row("Count slowly to ten.", 1.0, 3), Row("Name the planets in order.", 1.0, 7)]
    ctx.spy.reset()
    if ctx.uses_params:
        got = [a for r in rows for a in answers(ctx.send([r]))]
    else:
        got = answers(ctx.send(rows))  # one request: each row's own setting must be honoured
    evidence: dict[str, Any] = {"answers": got, "requested": [r.max_tokens for r in rows]}
    for i, row in enumerate(rows):
        call, r = _find_row(ctx, row.instruction)
        if call is None:
            return failed(f"row {i} never reached generate", **evidence)
        asked = call.kwargs.get("max_new_tokens")
        new = len(call.new_ids(r))
        evidence[f"row{i}"] = {"max_new_tokens": asked, "generated_ids": new}
        if asked != row.max_tokens:
            return failed(f"row {i} asked for max_tokens={row.max_tokens} but generate got "
                          f"max_new_tokens={asked!r}", **evidence)
        if new > row.max_tokens:
            return failed(f"row {i}: {new} tokens generated for max_tokens={row.max_tokens}", **evidence)
        if i < len(got) and len(got[i]) > len(ctx.decode(call.new_ids(r))):
            return failed(f"row {i}: the answer is longer than what was generated", **evidence)
    return passed("max_new_tokens matched max_tokens for every row; no answer longer", **evidence)


def _greedy(call, model) -> bool:
    sample = call.kwargs.get("do_sample", getattr(model.generation_config, "do_sample", False))
    return sample is False


@register_check("params.temperature_zero", "temperature 0 works, decodes greedily, repeats exactly")
def params_temperature_zero(ctx: GateContext) -> Outcome:
    rows = [Row("Say something.", 0.0, 6), Row("Say something else, please.", 0.0, 6)]
    ctx.spy.reset()
    try:
        first = answers(ctx.send(rows))
        second = answers(ctx.send(rows))
    except Exception as error:  # the published wrapper raises inside generate here
        return failed(f"temperature 0 raised {type(error).__name__}: {error}"[:500])
    calls = ctx.calls()
    evidence = {"first": first, "second": second, "generate_kwargs": [c.kwargs for c in calls]}
    if not calls:
        return failed("generate was never called", **evidence)
    if not all(_greedy(c, ctx.spy.model) for c in calls):
        return failed("temperature 0 did not decode greedily (do_sample was not False)", **evidence)
    if first != second:
        return failed("temperature 0 gave different answers on a second call", **evidence)
    return passed("greedy (do_sample=False) and repeatable", **evidence)


@register_check("params.temperature", "a positive temperature reaches generate with sampling on")
def params_temperature(ctx: GateContext) -> Outcome:
    ctx.spy.reset()
    ctx.send([Row("Tell a story.", 0.7, 4)])
    calls = ctx.calls()
    evidence = {"generate_kwargs": [c.kwargs for c in calls]}
    if not calls:
        return failed("generate was never called", **evidence)
    kwargs = calls[0].kwargs
    if kwargs.get("do_sample") is not True or kwargs.get("temperature") != 0.7:
        return failed(f"temperature 0.7 reached generate as do_sample={kwargs.get('do_sample')!r}, "
                      f"temperature={kwargs.get('temperature')!r}", **evidence)
    return passed("do_sample=True, temperature=0.7", **evidence)


def _invalid_cases(ctx: GateContext) -> list[tuple[str, str, float, int]]:
    cases = [("temperature", "-1", -1.0, 8), ("temperature", "3", 3.0, 8),
             ("max_tokens", "0", 1.0, 0), ("max_tokens", "-1", 1.0, -1),
             ("max_tokens", "beyond the context", 1.0, ctx.context_length)]
    if ctx.uses_params:  # a NaN in a column reads as a missing value, which is allowed
        cases.insert(2, ("temperature", "NaN", math.nan, 8))
    return cases


@register_check("params.invalid", "out-of-range settings get a clear error naming the field, before generate")
def params_invalid(ctx: GateContext) -> Outcome:
    evidence: dict[str, Any] = {}
    for field, label, temperature, max_tokens in _invalid_cases(ctx):
        ctx.spy.reset()
        row = Row("Is this accepted?", temperature, max_tokens)
        try:
            ctx.send([row])
        except Exception as error:
            message = getattr(error, "message", None) or str(error)
            evidence[f"{field}={label}"] = {"error": f"{type(error).__name__}: {message}"[:300],
                                            "generate_called": bool(ctx.calls())}
            if field not in message:
                return failed(f"{field}={label}: the error does not name {field!r}: "
                              f"{type(error).__name__}: {message[:150]}", **evidence)
            if ctx.calls():
                return failed(f"{field}={label}: rejected only from inside generate "
                              f"({type(error).__name__}: {message[:120]})", **evidence)
            continue
        evidence[f"{field}={label}"] = {"error": None}
        return failed(f"{field}={label} was accepted without an error", **evidence)
    return passed("every out-of-range setting rejected before generate, naming the field",
                  **evidence)


@register_check("generate.use_cache", "generate runs with the KV cache on")
def generate_use_cache(ctx: GateContext) -> Outcome:
    ctx.spy.reset()
    ctx.send([Row("Cache check.", 1.0, 3)])
    calls = ctx.calls()
    if not calls:
        return failed("generate was never called")
    default = getattr(ctx.spy.model.generation_config, "use_cache", True)
    used = calls[0].kwargs.get("use_cache", default)
    evidence = {"use_cache_kwarg": calls[0].kwargs.get("use_cache"), "generation_config": default}
    if used is not True:
        return failed("generate ran with use_cache off (the published generation_config sets "
                      "use_cache false; every step recomputes the whole sequence)", **evidence)
    return passed("use_cache=True", **evidence)
