"""``predict.concurrent``: ``predict`` called from several threads at once in the candidate's
own process, as the scoring server's thread pool calls it, so it runs under ``--no-serve``
too. Many overlapping requests of different settings, over repeated rounds; each answer is
compared with the answer the same request gets alone."""

from __future__ import annotations

from typing import Any

from harness.gate.checks.answers import SHORT
from harness.gate.checks.registry import GateContext, Outcome, Row, answers, check, failed, passed, skipped
from harness.gate.worker import CandidateError

THREADS = 4  # calls released together by a barrier
ROUNDS = 5
# (instruction, max_tokens, stop) at temperature 0: every setting a request could leave behind.
_GREEDY: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    (SHORT[0], 3, ()),
    (SHORT[1], 12, (" ",)),
    (SHORT[2], 9, ("e",)),
    (SHORT[3], 16, ("\n", "a")),
    (SHORT[4], 6, ()),
    (SHORT[2], 20, (" t", "o")),
    (SHORT[1], 5, ("d",)),
    (SHORT[0], 24, ()),
    (SHORT[3], 7, (" ",)),
    (SHORT[4], 14, ("s",)),
    (SHORT[2], 2, ()),
    (SHORT[1], 18, ("i", "n")),
)
# Sampled requests between them, judged by what any sample must satisfy (no stop string left).
_SAMPLED: tuple[tuple[str, float, int, tuple[str, ...]], ...] = (
    (SHORT[2], 1.0, 10, (" ",)),
    (SHORT[1], 0.7, 8, ("e",)),
    (SHORT[3], 1.0, 12, ()),
    (SHORT[0], 0.5, 6, ("a",)),
)


def _cases() -> list[Row]:
    rows = [Row(i, 0.0, n, stop) for i, n, stop in _GREEDY]
    rows += [Row(i, t, n, stop) for i, t, n, stop in _SAMPLED]
    return rows


def _outcome(kind: str, raw: Any) -> tuple[str, Any]:
    if kind == "raised":
        error = raw if isinstance(raw, CandidateError) else CandidateError.of(raw)
        return "error", error.describe()
    return "answers", answers(raw)


@check(
    "predict.concurrent",
    "requests sent from several threads at once (as the scoring server's pool sends them) each get "
    "the answer they get alone",
)
def predict_concurrent(ctx: GateContext) -> Outcome:
    if not hasattr(ctx.candidate, "predict_many"):
        return skipped("skipped: this candidate cannot be called from threads here")
    if ctx.temperature_zero_error() is not None:
        return skipped("skipped: judged at temperature 0, which raises in this candidate (params.temperature_zero)")
    rows = _cases()
    bodies = [ctx.payload([row]) for row in rows]
    alone: list[tuple[str, Any]] = []
    for body in bodies:
        ctx.candidate.seed(0)
        try:
            alone.append(("answers", answers(ctx.send_body(body))))
        except Exception as error:  # noqa: BLE001 - a refusal alone is compared like an answer
            alone.append(("error", CandidateError.of(error).describe()))
    groups = 0
    for round_ in range(ROUNDS):
        order = [(k * 5 + round_ * 3) % len(rows) for k in range(len(rows))]  # another mix each round
        got = ctx.send_many([bodies[k] for k in order], THREADS)
        groups += len(rows) // THREADS
        for k, (kind, raw) in zip(order, got):
            seen, row = _outcome(kind, raw), rows[k]
            if row.temperature == 0.0 and seen != alone[k]:
                return failed(
                    f"round {round_ + 1}: {row.instruction[:40]!r} (max_tokens {row.max_tokens}, stop "
                    f"{list(row.stop)}) sent with {THREADS - 1} others at once got {seen[1]!r:.160}; alone "
                    f"{alone[k][1]!r:.160}: state shared between calls (settings or stop strings kept on "
                    "the wrapper?)",
                    reproducer={"bodies": [bodies[j] for j in order], "threads": THREADS},
                )
            sent_stop = row.stop if ctx.accepts_stop else ()  # a signature without stop gets none
            if seen[0] == "answers" and (hit := [s for a in seen[1] for s in sent_stop if s in a]):
                return failed(
                    f"round {round_ + 1}: a sampled answer sent with others at once still holds its stop "
                    f"string {hit[0]!r}: {seen[1]!r:.160}",
                    reproducer={"bodies": [bodies[j] for j in order], "threads": THREADS},
                )
    # A race that corrupts a call with probability q whenever calls overlap is missed by
    # every group with probability (1 - q) ** groups.
    return passed(
        f"{ROUNDS} rounds of {len(rows)} requests, {THREADS} at a time, each as answered alone "
        f"(a race that shows in half of the overlapping groups is missed with probability {0.5**groups:.0e})",
        groups=groups,
        missed_if_half=0.5**groups,
    )


__all__ = ["predict_concurrent"]
