"""Checks that explore instead of enumerating: hypothesis draws requests and request
sequences, the reference on the same weights judges each, and every failure shrinks to
the smallest request (or sequence) that still fails, reported with a reproducer.

``params.boundaries`` and ``params.error_kind`` judge the ends of every range and how a
bad request fails, on fixed cases: there are few enough to send them all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from harness.gate.checks.answers import near_limit, same_weights
from harness.gate.checks.registry import (
    GateContext,
    Outcome,
    Row,
    check,
    failed,
    no_verdict,
    passed,
    skipped,
)
from harness.gate.explore.oracle import Oracle
from harness.gate.explore.reproducer import evidence
from harness.gate.explore.requests import Observed, ExploreRequest, Step
from harness.gate.explore.search import Finding, SearchLimits, SearchResult, search, search_sequences
from harness.gate.explore.session import Session, answers_body, reproduce, sequence_machine
from harness.gate.explore.strategies import Limits
from harness.model.signature import parse_payload

_POOL_PROMPTS = ("What is MLflow?", "Name a colour.", "Explain the KV cache in one line.")


def _payload(ctx: GateContext) -> Callable[[ExploreRequest], dict[str, Any]]:
    def payload(request: ExploreRequest) -> dict[str, Any]:
        if ctx.uses_params:
            return request.body()
        return ctx.payload(
            [Row(i, request.temperature, request.max_tokens, request.stop or ()) for i in request.instructions]
        )

    return payload


def _parse(
    ctx: GateContext, payload: Callable[[ExploreRequest], dict[str, Any]]
) -> Callable[[ExploreRequest], list[str]]:
    """The instructions as the candidate receives them, after MLflow's parsing (its numpy
    casts), so the oracle answers the same text."""

    def parse(request: ExploreRequest) -> list[str]:
        try:
            data, _ = parse_payload(payload(request), ctx.signature)
            parsed = data["prompt"].tolist()
        except Exception:  # noqa: BLE001 - MLflow refusing the body is the candidate's verdict
            return list(request.instructions)
        return parsed if len(parsed) == len(request.instructions) else list(request.instructions)

    return parse


def prepare_exploration(ctx: GateContext) -> None:
    """The exploration's oracle, limits and stop pool (the reference's answers to a few
    prompts), made before any check runs."""
    _session(ctx)


def _session(ctx: GateContext) -> Session:
    """One oracle per gate run (its cache of reference answers is shared by the checks);
    a fresh time budget per check."""
    if ctx.explore_state is None:
        payload = _payload(ctx)
        oracle = Oracle(ctx.reference_answers, _parse(ctx, payload))
        near = {room: near_limit(ctx, room) for room in range(1, 7)}
        limits = Limits(near=near, too_long=near[1] + " route" * 8)
        pool = tuple(
            dict.fromkeys(
                piece
                for p in _POOL_PROMPTS
                for piece in oracle.greedy_text(p, 10).split()
                if piece and "\ufffd" not in piece
            )
        )[:12]
        ctx.explore_state = (oracle, limits, pool)
    oracle, limits, pool = ctx.explore_state
    return Session(
        send=ctx.observe,
        oracle=oracle,
        payload=_payload(ctx),
        reload=lambda: bool(ctx.candidate.reload()),
        limits=limits,
        pool=pool,
        search_limits=SearchLimits(ctx.explore.shrink_requests, ctx.explore.safety_s, ctx.clock),
        replays=ctx.explore.replays,
        history=ctx.sent,
        takes_stop=ctx.signature is None or ctx.accepts_stop,
    )


def _cannot_judge(ctx: GateContext) -> Outcome | None:
    ctx.reset()
    try:
        ctx.send([Row("Hi.", 1.0, 2)])  # so the weights are known before judging them
    except Exception:  # noqa: BLE001 - a candidate that always raises is judged by the search
        pass
    if (why := same_weights(ctx)) is not None:
        return skipped(f"skipped: {why}")
    if (error := ctx.temperature_zero_error()) is not None:
        return skipped(
            "skipped: judged at temperature 0, which raises in this candidate while "
            f"sampling works (params.temperature_zero fails for it): {error}"[:500]
        )
    return None


def _verdict(ctx: GateContext, result: SearchResult, session: Session, what: str, asked: int) -> Outcome:
    limits = session.search_limits
    if result.finding is not None and not limits.out_of_time:
        result.finding = reproduce(session, result.finding)
    tried = {
        "seed": ctx.explore.seed,
        "examples": session.judged,
        "asked": asked,
        "requests": session.requests_sent,
        "reference_generations": session.oracle.calls,
        "replayed_from_database": result.replayed,
        "shrinking_cut": limits.shrink_cut,
    }
    replayed = f"; {result.replayed} example(s) replayed from the example database" if result.replayed else ""
    if limits.out_of_time:
        found = "" if result.finding is None else f"; a failure was found but not shrunk: {result.finding.message}"
        return no_verdict(
            f"no verdict: ran out of time after {session.judged} of {asked} {what} "
            f"(the {limits.safety_s:g}s safety net){found}"[:900],
            tried=tried,
        )
    if (finding := result.finding) is None:
        return passed(
            f"{session.judged} {what} (seed {ctx.explore.seed}, {session.requests_sent} "
            f"requests) all agree with the reference{replayed}",
            tried=tried,
        )
    smallest = (
        "the smallest failing request"
        if len(finding.steps) == 1
        else f"the smallest failing sequence, {len(finding.steps)} requests"
    )
    if limits.shrink_cut:
        smallest = smallest.replace("the smallest", f"after {limits.shrink_requests} shrinking requests, the smallest")
    flaky = " (it did not fail again on replay: the candidate is not deterministic)" if finding.flaky else ""
    if finding.fresh is False:
        flaky += (
            " (it did not fail again on a freshly loaded candidate: it needs state that "
            "earlier requests left behind, which the replay could not pin down)"
        )
    last = finding.steps[-1]
    return failed(
        f"{finding.message}{flaky}; {smallest}: {last.show_request()}{replayed}"[:900],
        tried=tried,
        **evidence(finding, ctx.model_uri, ctx.tracking_uri),
    )


def _one_body(ctx: GateContext, body: dict[str, Any], observed: Observed) -> dict[str, Any]:
    """A fixed case's reproducer: its body (whole: a near-limit prompt is long)."""
    step = Step(None, body, observed.show(), "see the message")
    return evidence(Finding("", (step,)), ctx.model_uri, ctx.tracking_uri)


def _key(ctx: GateContext, check_id: str) -> str:
    """Separates examples in hypothesis' database by everything a verdict depends on: the
    candidate's code, the weights, the seed, the check and the provider."""
    fingerprint = ctx.reference_answers.fingerprint
    return f"{ctx.candidate_key}|{fingerprint}|seed={ctx.explore.seed}|{check_id}|{ctx.provider}"


@check(
    "explore.answers",
    "requests drawn by hypothesis (special characters, unicode "
    "forms, code, stop strings, range ends) get the reference's answers",
)
def explore_answers(ctx: GateContext) -> Outcome:
    if (outcome := _cannot_judge(ctx)) is not None:
        return outcome
    session = _session(ctx)
    result = search(answers_body(session), ctx.explore, _key(ctx, "explore.answers"))
    return _verdict(ctx, result, session, "requests", ctx.explore.examples)


@check(
    "explore.sequences",
    "request sequences (settings that could leak, repeats, "
    "requests after an error) each get the answer the request gets alone",
)
def explore_sequences(ctx: GateContext) -> Outcome:
    if (outcome := _cannot_judge(ctx)) is not None:
        return outcome
    session = _session(ctx)
    result = search_sequences(sequence_machine(session), ctx.explore, _key(ctx, "explore.sequences"))
    return _verdict(ctx, result, session, "sequences", ctx.explore.sequences)


@check(
    "params.boundaries",
    "both ends of every range are accepted, and the first value past each end is refused naming the field",
)
def params_boundaries(ctx: GateContext) -> Outcome:
    if (outcome := _cannot_judge(ctx)) is not None:
        return outcome
    session = _session(ctx)
    near = near_limit(ctx, 3)
    valid = [
        ("temperature=0", ExploreRequest(("Name a colour.",), 0.0, 6)),
        ("temperature=2 (the upper end)", ExploreRequest(("Name a colour.",), 2.0, 6)),
        ("max_tokens=1", ExploreRequest(("What is MLflow?",), 0.0, 1)),
        ("max_tokens = the room left (3)", ExploreRequest((near,), 0.0, 3)),
    ]
    invalid = [
        ("temperature", "just below 0", ExploreRequest(("Name a colour.",), math.nextafter(0.0, -1.0), 4)),
        ("temperature", "just above 2", ExploreRequest(("Name a colour.",), math.nextafter(2.0, 3.0), 4)),
        ("max_tokens", "0", ExploreRequest(("Name a colour.",), 0.0, 0)),
        ("max_tokens", "one past the room left (4)", ExploreRequest((near,), 0.0, 4)),
    ]
    seen: dict[str, Any] = {}
    for label, request in valid:
        step, why = session.run(request)
        seen[label] = step.to_dict()
        if why is not None:
            return failed(
                f"{label}: {why}", cases=seen, **evidence(Finding(why, (step,)), ctx.model_uri, ctx.tracking_uri)
            )
    for field, label, request in invalid:
        observed = ctx.observe(session.payload(request))
        seen[f"{field} {label}"] = {"body": session.payload(request), "got": observed.show()}
        if observed.error is None:
            return failed(
                f"{field} {label} ({getattr(request, field)!r}) was accepted: {observed.show()[:100]}",
                cases=seen,
                **_one_body(ctx, session.payload(request), observed),
            )
        if field not in observed.error.message:
            return failed(
                f"{field} {label}: the error does not name {field!r}: {observed.error.describe()}",
                cases=seen,
                **_one_body(ctx, session.payload(request), observed),
            )
    return passed(
        f"{len(valid)} values at the ends of the ranges accepted, {len(invalid)} "
        "just past them refused naming the field",
        cases=seen,
    )


@check(
    "params.error_kind",
    "a bad request is refused as MlflowException "
    "(INVALID_PARAMETER_VALUE), which the scoring server answers 400 with the message",
)
def params_error_kind(ctx: GateContext) -> Outcome:
    cases = [
        ("temperature=-1", ExploreRequest(("Is this accepted?",), -1.0, 8)),
        ("temperature=3", ExploreRequest(("Is this accepted?",), 3.0, 8)),
        ("max_tokens=0", ExploreRequest(("Is this accepted?",), 0.0, 0)),
        ("max_tokens beyond the context", ExploreRequest(("Is this accepted?",), 0.0, ctx.context_length)),
        ("max_tokens one past the room the prompt leaves", ExploreRequest((near_limit(ctx, 3),), 0.0, 4)),
        ("prompt beyond the context", ExploreRequest((near_limit(ctx, 1) + " route" * 8,), 0.0, 4)),
    ]
    payload = _payload(ctx)
    seen: dict[str, Any] = {}
    for label, request in cases:
        observed = ctx.observe(payload(request))
        seen[label] = observed.show()
        if observed.error is None:
            continue  # accepted: params.invalid and prompt.context judge that
        if not observed.error.documented:
            return failed(
                f"{label} was refused with {observed.error.describe()}: the scoring "
                "server answers any exception but an MlflowException with a generic "
                "'unexpected error' and a stack trace, so the caller never learns which "
                "field; raise MlflowException(..., error_code=INVALID_PARAMETER_VALUE)",
                cases=seen,
                **_one_body(ctx, payload(request), observed),
            )
    refused = [k for k, v in seen.items() if v.startswith("error")]
    if not refused:
        return skipped("skipped: every bad request was accepted (params.invalid judges that)", cases=seen)
    return passed(
        f"{len(refused)} bad requests refused the documented way (MlflowException, a 4xx with the candidate's message)",
        cases=seen,
    )
