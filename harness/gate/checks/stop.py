"""params.stop: stop strings cut each answer before the earliest one, which is dropped.

Judged against the candidate's own answers without stop, so a wrong template or trim
(which answers.reference judges) does not read as a stop defect.
"""

from __future__ import annotations

from harness.gate.checks.answers import SHORT
from harness.gate.checks.registry import GateContext, Outcome, Row, answers, failed, passed, check, skipped
from harness.model.generation import cut_at_stop  # the contract's cut, as the reference does it


def _pieces(answer: str) -> list[str]:
    """Two-character printable pieces of an answer (no whitespace, no replacement character),
    past its first third, in text order: the candidates for stop strings (the first third
    stays, so a cut is never trivially empty)."""
    found = []
    for start in range(max(1, len(answer) // 3), len(answer) - 2):
        piece = answer[start : start + 2]
        if piece.isprintable() and not any(c.isspace() or c == "\ufffd" for c in piece) and piece not in found:
            found.append(piece)
    return found


def _stops_for(own: list[str]) -> tuple[str, ...] | None:
    """Stop strings that cut every answer: per answer, its piece found earliest and a later
    one; listed later-first, so a cut at the first *listed* stop differs from a cut at the
    earliest in the text. A piece repeated in the answer is preferred (first, not last)."""
    stops: list[str] = []
    for answer in own:
        pieces = sorted(_pieces(answer), key=lambda p: (answer.count(p) < 2, answer.find(p)))
        if not pieces:
            return None
        early = pieces[0]
        later = [p for p in _pieces(answer) if answer.find(p) > answer.find(early) + 1]
        stops += [*later[-1:], early]
    return tuple(dict.fromkeys(stops))


def _stop_diagnosis(own: str, got: str, want: str, stops: tuple[str, ...]) -> str:
    if got == own:
        return "the stop strings were ignored"
    if any(got == want + s for s in stops):
        return "the stop string was kept"
    if got == cut_at_stop(own, stops[:1]) or got == cut_at_stop(own, stops[-1:]):
        return "cut at one stop string of the list, not at the earliest in the text"
    kept = next((f"; it ends with {s!r}, kept" for s in stops if got.endswith(s)), "")
    if len(got) > len(want) and got.startswith(want):
        earliest = min((s for s in stops if s in own), key=own.find)
        return f"it ran past the earliest stop string {earliest!r}{kept}"
    return "cut at the wrong place" + kept


@check("params.stop", "stop cuts each answer before the earliest stop string and drops it")
def params_stop(ctx: GateContext) -> Outcome:
    if not ctx.accepts_stop:
        return skipped("skipped: the signature takes no `stop` param or column")
    # Judged against the candidate's own answers without stop: whatever else differs from the
    # reference (answers.reference judges that), the stop must cut exactly these texts.
    rows = [Row(SHORT[2], 0.0, 24), Row(SHORT[3], 0.0, 24)]
    ctx.reset()
    own = answers(ctx.send(rows))
    stops = _stops_for(own) if len(own) == len(rows) else None
    if stops is None:
        return skipped("skipped: no answer long enough to place a stop string in", answers=own)
    want = [cut_at_stop(o, stops) for o in own]
    ctx.reset()
    got = answers(ctx.send([Row(r.instruction, 0.0, 24, stops) for r in rows]))
    evidence = {"without_stop": own, "stop": list(stops), "expected": want, "got": got}
    for i, (o, g, w) in enumerate(zip(own, got, want)):
        if g != w:
            return failed(
                f"row {i}: with stop {list(stops)} the answer should be {w!r}, got "
                f"{g!r}: {_stop_diagnosis(o, g, w, stops)}"[:500],
                **evidence,
            )
    if len(got) != len(rows):
        return failed(f"{len(rows)} rows with stop, {len(got)} answers", **evidence)
    return passed(f"each answer cut before the earliest of {list(stops)}, the stop string dropped", **evidence)
