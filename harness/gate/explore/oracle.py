"""The oracle of the exploration: our reference on the same weights, row by row.

At temperature 0 a correct wrapper's answer to a row is a function of (instruction,
max_tokens, stop) alone: the reference's greedy answer for that row asked alone, cut before
the earliest stop string in it. A request the reference rejects must be rejected the
documented way; a valid one, including the ends of every range, must be answered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.gate.explore.requests import Observed, ExploreRequest
from harness.model.generation import Request as RowRequest
from harness.model.prompt import PromptError
from harness.model.settings import GenerationSettings, InvalidParameter


@dataclass(frozen=True)
class Expected:
    """The reference's outcome: the field it rejects, or per row its answer at temperature
    0 (``None`` for sampled rows, judged by their stop strings alone)."""

    rejects: str | None = None
    reason: str = ""
    answers: tuple[str | None, ...] = ()
    blank: bool = False  # a blank instruction: rejecting it or answering it are both fine
    # An input the contract leaves open (harness.gate.open_inputs): the reference refuses
    # it, and answering it the way this alternative request is answered is right too.
    open_input: str | None = None
    alternative: ExploreRequest | None = None


class Oracle:
    """``reference`` is the gate's :class:`harness.gate.reference.ReferenceAnswers` on the
    candidate's weights, device and dtype; ``parse`` turns a request's instructions into
    what the candidate receives after MLflow's parsing (numpy casts), so the oracle answers
    the same text."""

    def __init__(self, reference: Any, parse: Callable[[ExploreRequest], Sequence[str]] | None = None):
        self.reference = reference
        self.parse = parse or (lambda request: request.instructions)
        self._first_generated = reference.generated

    @property
    def calls(self) -> int:
        """Reference rows decoded since this oracle was made (the rest came from a cache)."""
        return self.reference.generated - self._first_generated

    # -- the reference's answers ---------------------------------------------------------
    def greedy_text(self, instruction: str, max_tokens: int) -> str:
        return self.reference.answer(instruction, max_tokens)

    def answer(self, instruction: str, max_tokens: int, stop: Sequence[str]) -> str:
        """The one right answer: the whole greedy answer cut before the earliest stop string
        in it. A wrapper that stops generating early (a ``StoppingCriteria``) must not stop
        before the earliest stop string is settled: with overlapping stops, the first stop
        to complete is not always the earliest to start."""
        return self.reference.answer(instruction, max_tokens, stop)

    # -- expectations and verdicts ---------------------------------------------------------
    def expected(self, request: ExploreRequest) -> Expected:
        instructions = list(self.parse(request))
        try:
            settings = GenerationSettings(request.temperature, request.max_tokens, request.stop or ())
            rows = [RowRequest(i, settings) for i in instructions]
            self.reference.generator.validate(rows)
        except (InvalidParameter, PromptError) as error:
            if (alternative := stop_as_absent(request)) is not None and self.expected(alternative).rejects is None:
                return Expected(
                    rejects="stop", reason=str(error)[:200], open_input="stop.empty", alternative=alternative
                )
            return Expected(
                rejects=getattr(error, "field", "prompt"),
                reason=str(error)[:200],
                blank=isinstance(error, PromptError) and all(isinstance(i, str) for i in instructions),
            )
        if not request.greedy:
            return Expected(answers=tuple(None for _ in instructions))
        self.reference.traces([(i, request.max_tokens) for i in instructions])  # one batch
        return Expected(answers=tuple(self.answer(i, request.max_tokens, request.stop or ()) for i in instructions))

    def judge(self, request: ExploreRequest, observed: Observed) -> tuple[str | None, str]:
        """(why the candidate's outcome is wrong, or None; what the reference gives)."""
        want = self.expected(request)
        instructions = list(self.parse(request))
        if want.rejects is not None:
            if want.alternative is not None and observed.error is None:
                # Answered: right when it is the answer to the request without the open part.
                why, shown = self.judge(want.alternative, observed)
                return why, f"rejected naming {want.rejects}, or as if sent without the empty stop: {shown}"
            return self._judge_rejection(want, observed), f"rejected naming {want.rejects}: {want.reason}"
        shown = f"answers {list(want.answers)!r}"[:400] if request.greedy else "any answers without a stop string"
        if observed.error is not None:
            return (f"a valid request was refused: {observed.error.describe()}"), shown
        got = list(observed.answers or ())
        if len(got) != len(want.answers):
            return f"{len(want.answers)} rows in, {len(got)} answers out", shown
        stop = request.stop or ()
        for i, (answer, right) in enumerate(zip(got, want.answers)):
            if (
                right is not None
                and not (agreement := self.reference.agree(answer, instructions[i], request.max_tokens, stop)).ok
            ):
                alone = " alone" if agreement.exact or self.reference.rule.exact else ""
                return (
                    f"row {i} got {answer[:80]!r}, the reference's answer for that row{alone} is {right[:80]!r}"
                ), shown
            if hit := [s for s in request.stop or () if s in answer]:
                return (
                    f"row {i} at temperature {request.temperature:g} still holds the stop "
                    f"string {hit[0]!r}: {answer[:80]!r}"
                ), shown
        return None, shown

    @staticmethod
    def _judge_rejection(want: Expected, observed: Observed) -> str | None:
        if observed.error is None:
            if want.blank:
                return None  # answering a blank instruction is the wrapper's choice
            return f"accepted a request the reference rejects ({want.reason}); it answered {observed.show()[:120]}"
        if not observed.error.documented:
            return (
                f"rejected with {observed.error.describe()}, which the scoring server answers "
                "with a generic error and a stack trace, not this message: raise "
                "MlflowException(..., error_code=INVALID_PARAMETER_VALUE) (a 400 naming "
                f"{want.rejects})"
            )
        return None


def stop_as_absent(request: ExploreRequest) -> ExploreRequest | None:
    """The request as if its empty stop strings were not sent (None when it has none): an
    empty stop string is an open input, and ignoring it is one accepted answer to it."""
    if not request.stop or "" not in request.stop:
        return None
    return replace(request, stop=tuple(s for s in request.stop if s != ""))


__all__ = ["Expected", "Oracle", "stop_as_absent"]
