"""What one exploration sends and judges: single requests drawn by hypothesis, and request
sequences run by a hypothesis state machine, each request judged by the :class:`Oracle`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from harness.gate.explore.oracle import Oracle
from harness.gate.explore.requests import Observed, ExploreRequest, Step
from harness.gate.explore.search import DEFAULT_REPLAYS, DEFAULT_SAFETY_S, Finding, Mismatch, SearchLimits
from harness.gate.explore.strategies import WHITESPACE, Limits, answer_stops, requests, stops


@dataclass
class Session:
    """``send`` asks the candidate (a fresh RNG state first, so every verdict repeats);
    ``pool`` holds pieces of real answers for stop strings."""

    send: Callable[[dict[str, Any]], Observed]
    oracle: Oracle
    payload: Callable[[ExploreRequest], dict[str, Any]] = ExploreRequest.body
    reload: Callable[[], bool] = lambda: False  # a freshly loaded candidate; False: cannot
    takes_stop: bool = True
    limits: Limits | None = None
    pool: tuple[str, ...] = ()
    judged: int = 0
    requests_sent: int = 0
    search_limits: SearchLimits = field(default_factory=lambda: SearchLimits(200, DEFAULT_SAFETY_S))
    replays: int = DEFAULT_REPLAYS
    # Every body this check sent the candidate so far, in order (each check starts on a
    # freshly loaded candidate, so nothing another check sent can matter).
    history: list[dict[str, Any]] = field(default_factory=list)

    def adapt(self, request: ExploreRequest) -> ExploreRequest:
        """What this candidate can be asked: without stop strings when its signature takes
        none (the seed's column signature), so no answer is judged by a stop it never got."""
        return request if self.takes_stop else replace(request, stop=None)

    def run(self, request: ExploreRequest) -> tuple[Step, str | None]:
        """Send one request and judge it: the step as a reproducer shows it, and why the
        candidate's outcome is wrong (None when it is right)."""
        request = self.adapt(request)
        body = self.payload(request)
        if self.search_limits.skip():
            return Step(request, body, "not sent: the search reached its limit", ""), None
        observed = self.send(body)
        self.requests_sent += 1
        self.search_limits.sent()
        why, expected = self.oracle.judge(request, observed)
        return Step(request, body, observed.show(), expected), why


def _replay(session: Session, before: list[dict[str, Any]], requests: list[ExploreRequest]) -> Finding | None:
    """On a freshly loaded candidate, ``before`` as sent then ``requests`` in order, judged:
    the steps up to the first wrong outcome, or None when every outcome is right."""
    if not session.reload():
        raise _CannotReload
    steps = []
    for body in before:
        steps.append(Step(None, body, session.send(body).show(), "not judged: an earlier request the failure needs"))
    for request in map(session.adapt, requests):
        body = session.payload(request)
        observed = session.send(body)
        why, expected = session.oracle.judge(request, observed)
        steps.append(Step(request, body, observed.show(), expected))
        if why is not None:
            where = "" if len(steps) == 1 else f"request {len(steps)} of a sequence of {len(steps)}: "
            return Finding(where + why, tuple(steps), fresh=True)
    return None


class _CannotReload(Exception):
    pass


def reproduce(session: Session, finding: Finding) -> Finding:
    """The finding as it replays on a freshly loaded candidate. State that earlier requests
    of this check left in the candidate (a cache, a setting kept on a shared object) can make
    a request fail that would not fail alone: then the fewest earlier requests it needs are
    found (the last 1, 2, 4, ... sent before it, then each left out in turn) and put before
    it, so the reproducer is what a user can really rerun. At most ``session.replays`` fresh
    replays: a count, so the reproducer does not depend on the machine's speed."""
    failing = [step.request for step in finding.steps if step.request is not None]
    before_all = session.history[: max(0, len(session.history) - len(failing))]
    left = [session.replays]

    def replay(before: list[dict[str, Any]]) -> Finding | None:
        left[0] -= 1
        return _replay(session, before, failing)

    try:
        if (found := replay([])) is not None:
            return replace(found, flaky=finding.flaky)
        k = 1
        while left[0] > 0:
            kept = before_all[-k:]
            if replay(kept) is not None:
                for item in list(kept):
                    fewer = [b for b in kept if b is not item]
                    if left[0] > 1 and replay(fewer):
                        kept = fewer
                if left[0] > 0 and (found := replay(kept)) is not None:
                    return replace(found, flaky=finding.flaky)
            if k >= len(before_all):
                break
            k *= 2
    except _CannotReload:
        return finding
    return replace(finding, fresh=False)


def _valid(session: Session, request: ExploreRequest) -> bool:
    return request.max_tokens >= 1 and session.oracle.expected(request).rejects is None


def answers_body(session: Session) -> Callable[[Any], None]:
    """One request per example; half the time its stop strings are cut from the reference's
    own answer to its first row, so stops are met where the answer has text."""

    seen: dict[ExploreRequest, tuple[Step, str | None]] = {}

    def body(data: Any) -> None:
        request = data.draw(requests(session.limits, session.pool), label="request")
        from_answer = data.draw(st.integers(0, 3), label="stop from the answer") > 0
        if from_answer and _valid(session, request):
            answer = session.oracle.greedy_text(session.oracle.parse(request)[0], request.max_tokens)
            cut = data.draw(answer_stops(answer), label="stop")
            request = replace(request, stop=tuple(dict.fromkeys((*(request.stop or ()), *cut))))
        if request not in seen:  # hypothesis draws some requests twice: judged once
            session.judged += 1
            seen[request] = session.run(request)
        step, why = seen[request]
        if why is not None:
            session.search_limits.failed = True
            raise Mismatch(Finding(why, (step,)))

    return body


def _invalid_requests(limits: Limits | None, pool: tuple[str, ...]) -> st.SearchStrategy[ExploreRequest]:
    """A request that must be refused, with stop strings most of the time: one invalid
    setting (refused before anything runs), or a prompt or max_tokens past the context
    (refused only once the prompt is tokenized). Either must leave nothing behind."""
    early = st.builds(
        ExploreRequest,
        st.just(("Name a colour.",)),
        st.sampled_from((-0.5, 2.5, 0.0, 1.0)),
        st.sampled_from((0, -1, 4)),
        stops(pool),
    ).filter(lambda r: not 0 <= r.temperature <= 2 or r.max_tokens < 1)
    if limits is None:
        return early
    late = st.builds(
        ExploreRequest,
        st.sampled_from(((limits.too_long,), ("Hi.", limits.too_long))),
        st.sampled_from((0.0, 1.0)),
        st.integers(1, 8),
        stops(pool),
    )
    return st.one_of(early, late)


def sequence_machine(session: Session) -> type[RuleBasedStateMachine]:
    """A state machine over request sequences: valid requests with varying settings,
    invalid ones, and repeats. Every answer is judged against the reference's answer for
    that request alone, so a setting that leaks from one request into the next, or state
    an error leaves behind, fails."""

    class RequestSequence(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.steps: list[Step] = []
            self.last: ExploreRequest | None = None
            session.judged += 1

        def _step(self, request: ExploreRequest) -> None:
            step, why = session.run(request)
            self.steps.append(step)
            self.last = request
            if why is not None:
                session.search_limits.failed = True
                where = f"request {len(self.steps)} of a sequence of {len(self.steps)}"
                raise Mismatch(Finding(f"{where}: {why}", tuple(self.steps)))

        @rule(request=requests(session.limits, session.pool, max_rows=3))
        def send(self, request: ExploreRequest) -> None:
            self._step(request)

        @rule(request=requests(session.limits, session.pool, max_rows=2))
        def send_without_stop(self, request: ExploreRequest) -> None:
            """The most common request sends no stop: one left over from before shows."""
            self._step(replace(request, stop=None))

        @rule(request=_invalid_requests(session.limits, session.pool))
        def send_invalid(self, request: ExploreRequest) -> None:
            self._step(request)

        @rule(
            refused=_invalid_requests(session.limits, session.pool),
            then=requests(None, session.pool, max_rows=1),
            length=st.integers(16, 48),
        )
        def send_after_error(self, refused: ExploreRequest, then: ExploreRequest, length: int) -> None:
            """A refused request, then a plain one of a typical length (no stop, temperature
            0): whatever the refused one set must be gone by then."""
            self._step(refused)
            self._step(replace(then, temperature=0.0, max_tokens=length, stop=None))

        @precondition(lambda self: self.last is not None)
        @rule()
        def repeat(self) -> None:
            assert self.last is not None
            self._step(self.last)

        @precondition(lambda self: self.last is not None)
        @rule(edge=st.sampled_from(WHITESPACE), before=st.booleans())
        def repeat_with_whitespace(self, edge: str, before: bool) -> None:
            """The same instructions with whitespace at one end: another prompt, so another
            answer (a cache keyed by stripped or normalised text answers the old one)."""
            assert self.last is not None
            varied = tuple(edge + i if before else i + edge for i in self.last.instructions)
            self._step(replace(self.last, instructions=varied))

    return RequestSequence


__all__ = ["Session", "answers_body", "reproduce", "sequence_machine"]
