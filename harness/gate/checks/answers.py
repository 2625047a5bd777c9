"""Checks that judge answers, not code: each compares what a caller gets with the oracle,
our reference Generator on the same weights, or observes a setting's effect.

At temperature 0 a correct wrapper's answer is a function of (instruction, max_tokens,
stop) alone, whatever its batching, padding, call style or return container.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from harness.gate.checks.differences import explain_difference, reference_answer
from harness.gate.checks.registry import GateContext, Outcome, Row, answers, failed, passed, check, skipped
from harness.gate.spy import Script

SHORT = [
    "Hi.",
    "Name a colour.",
    "What is MLflow?",
    "Explain the KV cache in one line.",
    " ".join(["Describe the route, the signature and the endpoint."] * 6),
]
UNICODE = [
    unicodedata.normalize("NFC", "Café crème, naïve?"),
    unicodedata.normalize("NFD", "Café crème, naïve?"),
    "Ｆｕｌｌ ｗｉｄｔｈ ﬁ ligature",
]


def _agrees(ctx: GateContext, row: Row, got: str) -> bool:
    """Whether ``got`` is the reference's answer for the row, under the judged runtime's
    rule (exact on float32 on a CPU, tolerant of near-ties elsewhere)."""
    return ctx.reference_answers.agree(got, row.instruction, row.max_tokens, row.stop).ok


def same_weights(ctx: GateContext) -> str | None:
    """None when the candidate runs the snapshot's weights (in the dtype it runs them in,
    which the reference then runs too); else why not."""
    facts = ctx.candidate.model_facts()
    if not facts:
        # A file candidate was handed the snapshot as its artifact: judge its answers even if
        # it decodes without generate. A logged model may hold any weights.
        if ctx.candidate_kind != "uri":
            return None
        return "the candidate never called transformers' generate, so its weights are unknown"
    if ctx.candidate_runtime() is None:
        return (
            f"the candidate's model runs on {facts['device']} in {facts['dtype']}, which the "
            "reference cannot run in (allowed: cpu or cuda; float32, bfloat16 or float16)"
        )
    if facts["fingerprint"] != ctx.reference_answers.fingerprint:
        return (
            f"the candidate's model ({facts['class']}, {facts['dtype']}) does not hold the "
            f"snapshot's weights; pass --snapshot with its own weights"
        )
    return None


def near_limit(ctx: GateContext, room: int) -> str:
    """The longest run of "route"s whose prompt leaves at least ``room`` tokens of context
    (exactly ``room`` where one more word costs one token). Found by bisection: a prompt's
    length never falls as words are added, and tokenizing every length one by one cost a
    gate seconds on a 512-token context."""

    def fits(n: int) -> bool:
        return len(ctx.prompt_ids(" ".join(["route"] * n))) + room <= ctx.context_length

    fitting, over = 0, 1
    while fits(over):
        fitting, over = over, over * 2
    while over - fitting > 1:
        middle = (fitting + over) // 2
        fitting, over = (middle, over) if fits(middle) else (fitting, middle)
    return " ".join(["route"] * fitting)


def _differential_cases(ctx: GateContext) -> list[tuple[str, list[Row]]]:
    room = 6
    near = near_limit(ctx, room)
    cases = [
        ("mixed lengths, short first", [Row(i, 0.0, 12) for i in SHORT]),
        ("mixed lengths, long first", [Row(i, 0.0, 12) for i in reversed(SHORT)]),
        ("repeated instructions", [Row(SHORT[k], 0.0, 10) for k in (1, 3, 1, 1)]),
        ("one row", [Row(SHORT[2], 0.0, 16)]),
        ("more rows than a batch", [Row(f"Item {k}: {SHORT[k % 4]}", 0.0, 6) for k in range(11)]),
        ("unicode forms", [Row(i, 0.0, 8) for i in UNICODE]),
    ]
    cases += [(f"max_tokens={k}", [Row(SHORT[1], 0.0, k), Row(SHORT[3], 0.0, k)]) for k in (1, 2, 3, 5, 9, 17, 33)]
    cases += [(f"near the context, max_tokens={k}", [Row(near, 0.0, k)]) for k in range(1, room + 1)]
    return cases


def reference_rows(ctx: GateContext) -> list[tuple[str, int]]:
    """The rows answers.reference judges, as (instruction, max_tokens): the gate computes
    their reference answers before any check runs."""
    return [(r.instruction, r.max_tokens) for _, rows in _differential_cases(ctx) for r in rows]


@check(
    "answers.reference",
    "every answer equals the reference's answer for that row alone, whatever the batch (temperature 0, same weights)",
)
def answers_reference(ctx: GateContext) -> Outcome:
    ctx.reset()
    probe = Row(SHORT[0], 0.0, 2)
    seen = ctx.answers_by_instruction
    first = answers(ctx.send([probe]))
    if (why := same_weights(ctx)) is not None:
        return skipped(f"skipped: {why}")
    if first == [reference_answer(ctx, probe)]:  # only right answers count as "given earlier"
        seen[probe.instruction] = {probe.settings: first[0]}
    cases = _differential_cases(ctx)
    # Every expected answer at once: batched on the candidate's device where the rule allows.
    ctx.reference_answers.traces([(r.instruction, r.max_tokens) for _, rows in cases for r in rows])
    for label, rows in cases:
        got = answers(ctx.send(rows))
        if len(got) != len(rows):
            return failed(f"{label}: {len(rows)} rows in, {len(got)} answers out", answers=got)
        for i, (row, answer) in enumerate(zip(rows, got)):
            if not _agrees(ctx, row, answer):
                return explain_difference(ctx, label, rows, got, i)
        for row, answer in zip(rows, got):
            seen.setdefault(row.instruction, {})[row.settings] = answer
    total = sum(len(rows) for _, rows in cases)
    rule = ctx.reference_answers.rule
    how = "exactly" if rule.exact else f"under the tolerant rule ({rule.describe()})"
    return passed(
        f"{total} answers in {len(cases)} batches agree with the reference's, {how}",
        cases=[label for label, _ in cases],
        reference=ctx.reference_answers.facts(),
    )


def _generated_counts(ctx: GateContext, rows: list[Row]) -> list[int | None]:
    counts = []
    for row in rows:
        found = [
            len(c.new_ids(r))
            for c in ctx.calls()
            for r in range(len(c.input_ids))
            if row.instruction in ctx.decode(c.prompt_ids(r))
        ]
        counts.append(found[0] if found else None)
    return counts


@check(
    "params.max_tokens", "max_tokens bounds the tokens generated at every temperature and is reached when no EOS comes"
)
def params_max_tokens(ctx: GateContext) -> Outcome:
    evidence: dict[str, Any] = {}
    # Sampling first: a candidate that cannot run temperature 0 is still judged there.
    for temperature in (0.8, 0.0):
        for k in (1, 4, 11):
            # Columns candidates take settings per row: give the second row its own.
            other = k if ctx.uses_params else k + 3
            rows = [Row("Count slowly to ten.", temperature, k), Row("Name the planets.", temperature, other)]
            ctx.reset(Script(suppress_eos=True))
            ctx.send(rows)
            counts = _generated_counts(ctx, rows)
            evidence[f"t={temperature} max_tokens={k}"] = counts
            if all(c is None for c in counts):
                return skipped(
                    "skipped: no generate call held these rows (the candidate "
                    "decodes without generate, or answered from a cache); max_tokens "
                    "is judged by answers.reference",
                    **evidence,
                )
            for i, (row, count) in enumerate(zip(rows, counts)):
                if count is None:
                    return failed(f"row {i} of {len(rows)} never reached generate", **evidence)
                if count != row.max_tokens:
                    first = (
                        ": it got row 0's max_tokens, so one request's rows share the first row's settings"
                        if i and count == rows[0].max_tokens
                        else ""
                    )
                    return failed(
                        f"max_tokens={row.max_tokens} at temperature {temperature}: "
                        f"row {i} generated {count} tokens with EOS withheld (expected "
                        f"exactly {row.max_tokens}){first}",
                        **evidence,
                    )
    ctx.reset()
    return passed("exactly max_tokens generated when no EOS comes, at temperature 0 and 0.8", **evidence)


@check("params.temperature_zero", "temperature 0 works, is greedy and repeats exactly")
def params_temperature_zero(ctx: GateContext) -> Outcome:
    rows = [Row("Say something.", 0.0, 6), Row("Say something else, please.", 0.0, 6)]
    ctx.reset()
    try:
        first, second = answers(ctx.send(rows)), answers(ctx.send(rows))
    except Exception as error:  # the published wrapper raises inside generate here
        return failed(f"temperature 0 raised {type(error).__name__}: {error}"[:500])
    evidence = {"first": first, "second": second}
    if first != second:
        return failed("temperature 0 gave different answers on a second call", **evidence)
    if same_weights(ctx) is None:
        greedy = [reference_answer(ctx, r) for r in rows]
        evidence["greedy"] = greedy
        if len(first) != len(rows) or not all(_agrees(ctx, r, a) for r, a in zip(rows, first)):
            if [a.strip() for a in first] == [g.strip() for g in greedy]:
                return passed(
                    "repeatable, and greedy: equal to the greedy reference but for "
                    "whitespace at the ends (trim.exact judges that)",
                    **evidence,
                )
            return failed(
                "temperature 0 is repeatable, but its answers differ from greedy "
                "decoding of the same instructions: not greedy, or the prompt, length "
                "or trim differ (answers.reference, prompt.template and trim.exact "
                "say which)",
                **evidence,
            )
    return passed("repeatable, and equal to greedy decoding", **evidence)


@check("params.temperature", "a positive temperature samples: answers vary across calls")
def params_temperature(ctx: GateContext) -> Outcome:
    row = Row("Tell a story about a lighthouse.", 1.0, 12)
    ctx.reset()
    got = [answers(ctx.send([row]))[0] for _ in range(4)]
    evidence = {"answers": got}
    if len(set(got)) == 1:
        return failed(
            f"temperature {row.temperature} gave the same answer in {len(got)} calls: "
            "sampling is off, or a fixed seed is set",
            **evidence,
        )
    return passed(f"{len(set(got))} different answers in {len(got)} calls at temperature {row.temperature}", **evidence)


_LOW_T = 0.01
_RISK = 1e-6  # at most this chance that a correct sampler leaves greedy's path in 3 calls
_POOL = ("Count slowly to ten.", "Name the planets.", "What is MLflow?", "Tell a story about a lighthouse.")


def _decisive(ctx: GateContext) -> tuple[str, int] | None:
    found: tuple[str, int] | None = ctx.reference_kept("decisive", lambda: _find_decisive(ctx))
    return found


def _find_decisive(ctx: GateContext) -> tuple[str, int] | None:
    """An instruction and a token count over which sampling at :data:`_LOW_T` from the
    reference's own distribution reproduces greedy decoding in 3 calls but with a chance
    below :data:`_RISK` (each step's chance of another token, summed, from the scores)."""
    import torch

    reference = ctx.reference
    for instruction in _POOL:
        with torch.inference_mode():
            out = reference.model.generate(
                **reference.encode([instruction]),
                do_sample=False,
                max_new_tokens=8,
                output_scores=True,
                return_dict_in_generate=True,
                pad_token_id=reference.tokenizer.pad_token_id,
            )
        risk, steps = 0.0, 0
        for scores in out.scores:
            risk += 3 * (1.0 - float(torch.softmax(scores[0].double() / _LOW_T, -1).max()))
            if risk > _RISK:
                break
            steps += 1
        if steps >= 3:
            return instruction, steps
    return None


@check(
    "params.temperature_low",
    "a low temperature is applied: at 0.01 the answers are greedy's where greedy decoding is decisive",
)
def params_temperature_low(ctx: GateContext) -> Outcome:
    if (found := _decisive(ctx)) is None:
        return skipped("skipped: no instruction whose greedy choices are decisive enough to judge a low temperature by")
    instruction, steps = found
    ctx.reset()
    greedy = answers(ctx.send([Row(instruction, 0.0, steps)]))
    evidence: dict[str, Any] = {"instruction": instruction, "max_tokens": steps, "greedy": greedy}
    if len(greedy) != 1 or not _agrees(ctx, Row(instruction, 0.0, steps), greedy[0]):
        return skipped(
            "skipped: the temperature-0 answer differs from the reference's "
            "(answers.reference judges that), so closeness to it cannot be read",
            **evidence,
        )
    got = [answers(ctx.send([Row(instruction, _LOW_T, steps)]))[0] for _ in range(3)]
    evidence["low_temperature"] = got
    if any(answer != greedy[0] for answer in got):
        return failed(
            f"temperature {_LOW_T} gave {got!r}, not the greedy {greedy[0]!r}, over "
            f"{steps} steps where a correct sampler keeps to greedy's path but with a "
            f"chance below {_RISK:g}: the requested temperature is not applied (a "
            "fixed one instead?)"[:500],
            **evidence,
        )
    return passed(f"3 answers at temperature {_LOW_T} equal greedy's over {steps} decisive steps", **evidence)


@check(
    "prompt.context", "an instruction that cannot fit the context is rejected naming `prompt`, never silently truncated"
)
def prompt_context(ctx: GateContext) -> Outcome:
    words = ["route"] * ctx.context_length
    ctx.reset()
    try:
        # Sampling: a candidate broken at temperature 0 must not look rejected for the prompt.
        got = answers(ctx.send([Row(" ".join(words), max_tokens=4)]))
    except Exception as error:
        message = getattr(error, "message", None) or str(error)
        if "prompt" not in message:
            return failed(
                "not rejected up front: the error does not name 'prompt' (it may "
                f"have failed inside the model): {message[:150]}"
            )
        return passed("rejected, naming prompt", error=message[:300])
    return failed(
        f"an instruction of {len(words)} words (context {ctx.context_length} tokens) "
        "was answered: the prompt is silently truncated",
        answers=got,
    )


@check("generate.use_cache", "decoding uses the KV cache: each step feeds one new position")
def generate_use_cache(ctx: GateContext) -> Outcome:
    ctx.reset(Script(suppress_eos=True))
    ctx.send([Row("Cache check.", max_tokens=6)])  # any temperature: the widths are the point
    widths = [c.forward_widths for c in ctx.calls() if len(c.forward_widths) >= 3]
    ctx.reset()
    if not widths:
        return skipped("skipped: no generate call with several decoding steps was seen")
    steps = widths[0][1:]
    if any(w != 1 for w in steps):
        return failed(
            f"each decoding step re-ran the whole sequence (widths {widths[0][:6]}): "
            "the KV cache is off (MPT's published generation config says use_cache: "
            "false; pass use_cache=True to generate, or set it in the model's "
            "generation config)",
            forward_widths=widths[0],
        )
    return passed(f"after the prompt, each of {len(steps)} steps fed one position", forward_widths=widths[0])
