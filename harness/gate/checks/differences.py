"""Why an answer differs from the reference's, in a user's words: out of order, cached by
prompt, ran past max_tokens, ran on past the format's end of turn, kept it as text, the batch
changes answers; with both answers, the answer the row gets alone and the prompt ids seen."""

from __future__ import annotations

from harness.gate.checks.registry import GateContext, Outcome, Row, answers, failed


def reference_answer(ctx: GateContext, row: Row) -> str:
    """The reference's exact answer for this row, at temperature 0."""
    return ctx.reference_answers.answer(row.instruction, row.max_tokens, row.stop)


def explain_difference(ctx: GateContext, label: str, rows: list[Row], got: list[str], i: int) -> Outcome:
    want = [reference_answer(ctx, r) for r in rows]
    # The ids the model saw for this row in the batch: the last call that held it.
    seen = [
        c.prompt_ids(r)
        for c in ctx.calls()
        for r in range(len(c.input_ids))
        if rows[i].instruction in ctx.decode(c.prompt_ids(r))
    ]
    ctx.reset()
    alone = answers(ctx.send([rows[i]]))
    evidence = {
        "batch": label,
        "row": i,
        "instruction": rows[i].instruction[:200],
        "max_tokens": rows[i].max_tokens,
        "expected": want[i],
        "got": got[i],
        "alone": alone,
        "generate_prompt_ids": seen[-1:],
    }
    where = f"row {i} of a {len(rows)}-row batch ({label})"
    earlier = {
        answer
        for settings, answer in ctx.answers_by_instruction.get(rows[i].instruction, {}).items()
        if settings != rows[i].settings
    }
    if got[i] in want and want.index(got[i]) != i:
        return failed(f"{where} got row {want.index(got[i])}'s answer: answers are returned out of order", **evidence)
    if got[i] in earlier:
        return failed(
            f"{where} got the answer given earlier to the same instruction with other "
            "settings: answers are cached by prompt?",
            **evidence,
        )
    # A longer answer that extends the reference's (a split character at its end aside).
    if len(got[i]) > len(want[i]) and got[i].startswith(want[i].rstrip("\ufffd")):
        end = ended_at(ctx, rows[i])
        if end is not None and got[i][len(want[i]) :] == end.split(" (id")[0]:
            return failed(
                f"{where} keeps the end-of-turn token as text: {got[i]!r} where the reference "
                f"answers {want[i]!r} (decoded with special tokens kept?)",
                **evidence,
            )
        if end is not None:
            return failed(
                f"{where} ran on past the end of the answer: the reference stops at {end} (expected "
                f"{want[i]!r}): an end-of-turn id the model's generation config names was ignored?",
                **evidence,
            )
        return failed(
            f"{where} ran past max_tokens={rows[i].max_tokens} (expected "
            f"{want[i]!r}): settings ignored for this batch?",
            **evidence,
        )
    if got[i] == "" and want[i]:
        return failed(f"{where} got an empty answer (expected {want[i]!r}): the row was not generated?", **evidence)
    if len(rows) > 1 and alone == [want[i]]:
        return failed(
            f"{where} got a different answer than alone: the batch changes answers "
            "(padded on the right, or the attention mask dropped?)",
            **evidence,
        )
    at = next((k for k, (a, b) in enumerate(zip(got[i], want[i])) if a != b), min(len(got[i]), len(want[i])))
    return failed(
        f"{where} differs from the reference at character {at}: expected "
        f"{want[i][at : at + 30]!r}, got {got[i][at : at + 30]!r}",
        **evidence,
    )


def ended_at(ctx: GateContext, row: Row) -> str | None:
    """The end id the reference's answer for ``row`` stopped at, if any."""
    reference = ctx.reference_answers
    ids = reference.trace(row.instruction, row.max_tokens).ids
    if ids and ids[-1] in reference.eos:
        token = ctx.tokenizer.convert_ids_to_tokens(ids[-1])
        return f"{token} (id {ids[-1]}) after {len(ids) - 1} tokens"
    return None
