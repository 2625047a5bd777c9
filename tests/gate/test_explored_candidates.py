"""Candidates by a third author who had not seen the checks (tests/data/candidates/explored.py):
each defect shows only on inputs outside the gate's fixed lists. The exploration must fail it
with a reproducer that really reproduces it, and every correct style must pass every check."""

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from _judge import EXPLORE_CHECKS, GATE_EXPLORE, judge, load_module  # noqa: F401  (judge is a fixture)
from harness.gate.report import Status
from harness.gate.worker import CandidateError
from harness.model.signature import GATEWAY, parse_payload
from harness.model.wrapper import MPTInstruct

explored = load_module(Path(__file__).parents[1] / "data" / "candidates" / "explored.py", "candidates_explored")

# Judging 20 wrappers with every check takes longer than the fast tier allows.
pytestmark = pytest.mark.slow

CORRECT = sorted(name for name, kind in explored.KIND.items() if kind == "correct")

# defect -> the check that fails it with the gate's default exploration (seed 0, 100)
DEFECTS = {
    "BracesFormatted": "explore.answers",
    "RegexStops": "explore.answers",
    "StopsStripped": "explore.answers",
    "StopSearchedWithPrompt": "explore.answers",
    "SamplingLeaksIntoGreedy": "explore.sequences",
    "TemperatureTwoRejected": "params.boundaries",
    "MaxTokensReservesEos": "params.boundaries",
    "RoomCheckValueError": "params.error_kind",
    "InvisibleCharsDropped": "explore.answers",
    "CacheKeyStripped": "explore.answers",
}
# Real defects (explored_harm.py shows each) the default exploration does not catch with
# seed 0; each was caught by other seeds or sizes while the strategies were tuned. Kept
# listed so a change that starts catching one is seen, and a test keeps their harm real.
MISSED = {
    "NativeStopStrings": "overlapping stops where the longer starts earlier",
    "SuccessivePartition": "overlapping stops in the reversed order",
    "EmptyStopAccepted": "an empty stop string beside a newline",
    "CarriageReturnsNormalised": "\\r\\n inside an instruction",
    "StopStringsLeftAfterRejection": "a long plain request right after one refused late, "
    "whose reproducer did not replay outside the gate",
}

# Shrinking is bounded by a count of requests in the suite (the gate's default is larger).
_EXPLORE = replace(GATE_EXPLORE, shrink_requests=100)


def _fresh(cls, snapshot):
    model = cls()
    model.load_context(SimpleNamespace(artifacts={"repository": str(snapshot)}, model_config={}))
    return model


def _outcomes(model, bodies):
    """What a caller gets for each body in order: the answers, or the error's kind."""
    import torch

    seen = []
    for body in bodies:
        data, params = parse_payload(body, GATEWAY)
        torch.manual_seed(0)  # as the gate does before every request
        try:
            seen.append(("answers", list(model.predict(None, data, params))))
        except Exception as error:  # noqa: BLE001 - an error is an outcome to compare
            facts = CandidateError.of(error)
            seen.append(("error", facts.documented))
    return seen


def test_every_defect_in_the_file_is_listed_and_every_explore_check_catches_one():
    assert sorted({**DEFECTS, **MISSED}) == sorted(n for n, k in explored.KIND.items() if k == "defect")
    assert set(DEFECTS.values()) == set(EXPLORE_CHECKS)


@pytest.mark.parametrize("name", CORRECT)
def test_a_correct_style_passes_every_check(judge, name):
    results = judge(getattr(explored, name), only=EXPLORE_CHECKS + ("trim.exact",), explore=GATE_EXPLORE)
    bad = {k: r.message[:300] for k, r in results.items() if r.status in (Status.FAIL, Status.ERROR)}
    assert bad == {}
    assert all(results[c].status is Status.PASS for c in EXPLORE_CHECKS)


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_a_defect_fails_with_a_reproducer_that_reproduces_it(judge, tiny_snapshot, name):
    check = DEFECTS[name]
    result = judge(getattr(explored, name), only=(check,), explore=_EXPLORE)[check]
    assert result.status is Status.FAIL, result.message
    bodies = result.evidence["reproducer"]["bodies"]
    # Replayed on fresh instances, the candidate and the reference part ways on some body.
    got = _outcomes(_fresh(getattr(explored, name), tiny_snapshot), bodies)
    want = _outcomes(_fresh(MPTInstruct, tiny_snapshot), bodies)
    assert got != want, (bodies, got)


def test_the_same_seed_gives_the_same_verdict_and_reproducer(judge):
    # Every size is a count, so nothing here depends on how busy the machine is.
    first = judge(explored.RegexStops, only=("explore.answers",), explore=GATE_EXPLORE)
    again = judge(explored.RegexStops, only=("explore.answers",), explore=GATE_EXPLORE)
    one, two = first["explore.answers"], again["explore.answers"]
    assert one.status is two.status is Status.FAIL
    assert one.message == two.message
    assert one.evidence["reproducer"]["bodies"] == two.evidence["reproducer"]["bodies"]


@pytest.mark.parametrize("name", sorted(MISSED))
def test_a_defect_the_exploration_misses_still_does_harm(tiny_snapshot, name):
    """Listed as missed, not as correct: its own bodies still part it from the reference."""
    bodies = explored.HARM[name]
    got = _outcomes(_fresh(getattr(explored, name), tiny_snapshot), bodies)
    assert got != _outcomes(_fresh(MPTInstruct, tiny_snapshot), bodies)
