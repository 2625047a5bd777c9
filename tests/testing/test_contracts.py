"""Consumer side of the recorded contracts: every interaction recorded from a real MLflow
gateway, replayed against the mock of its profile, gets the recorded status, content type,
redirect and body shape (and, at temperature 0, the recorded greedy text)."""

import pytest

from dataclasses import replace

from harness.serving.route import RouteType, seed_route
from harness.testing import contracts
from harness.testing.contracts import RecordedResponse
from harness.testing.mock_gateway import MockGateway


@pytest.fixture
def mock_for(candidate):
    def start(profile):
        mock = MockGateway(profile=profile)
        mock.serve_model("mpt-7b-instruct", candidate)
        mock.add_route(seed_route("http://127.0.0.1:1"))
        mock.add_route(replace(seed_route("http://127.0.0.1:1"), name=contracts.CHAT_ROUTE, route_type=RouteType.CHAT))
        return mock

    return start


def _replay(mock_for, recording, profile):
    """Each problem replaying ``recording``'s interactions against a mock of ``profile``."""
    with mock_for(profile) as mock:
        return {
            i.case: p
            for i in contracts.load(recording)
            if (p := contracts.mismatch(i, contracts.send(mock.base_url, i.request)))
        }


@pytest.mark.parametrize("profile", list(contracts.RECORDINGS))
def test_the_mock_keeps_every_recorded_contract(profile, mock_for, record_property):
    recorded = contracts.load(profile)
    assert len(recorded) >= 45, "the committed recording is missing"
    assert {i.case for i in recorded} == {c.name for c in contracts.CASES[profile]()}
    problems = _replay(mock_for, profile, profile)
    record_property(
        "measured",
        f"{profile}: {len(recorded) - len(problems)} of {len(recorded)} recorded interactions matched by the mock",
    )
    assert not problems, "\n".join(problems.values())


_PAIRS = [(r, m) for r in contracts.RECORDINGS for m in contracts.RECORDINGS if r != m]


@pytest.mark.parametrize(("recording", "wrong_profile"), _PAIRS)
def test_a_recording_fails_against_another_profile(recording, wrong_profile, mock_for, record_property):
    """The replay can fail: every profile knows only its own server."""
    problems = _replay(mock_for, recording, wrong_profile)
    total = len(contracts.load(recording))
    record_property(
        "measured", f"{recording} recording against the {wrong_profile} mock: {total - len(problems)} of {total} match"
    )
    assert problems
    if {recording, wrong_profile} == {"legacy", "legacy-pydantic2"}:
        # The coercions pydantic 1 made and pydantic 2 refuses: a different status, not only words.
        for case in ("query-prompt-number", "query-max-tokens-fraction", "query-stop-numbers"):
            assert "status" in problems[case], problems[case]
        # Every refusal's error list has the other pydantic's shape.
        for case in ("query-temperature-1.5", "query-empty-body", "query-prompt-missing"):
            assert "body shape differs" in problems[case], problems[case]


def test_a_mismatch_names_the_case_and_shows_both_bodies():
    recorded = next(i for i in contracts.load("legacy") if i.case == "query-temperature-1.5")
    got = RecordedResponse(status=400, content_type="application/json", body={"detail": "temperature bad"})
    problem = contracts.mismatch(recorded, got)
    assert problem.startswith("query-temperature-1.5: status 400 != recorded 422")
    assert "body shape differs" in problem and '"temperature bad"' in problem
    assert "ensure this value is less than or equal to 1" in problem


def test_a_redirect_to_elsewhere_is_a_mismatch():
    recorded = next(i for i in contracts.load("legacy-pydantic2") if i.case == "list-routes-redirect")
    assert recorded.response.status == 307 and recorded.response.location == "/api/2.0/gateway/routes/"
    got = RecordedResponse(status=307, content_type="", body="", location="/api/2.0/gateway/routes")
    assert "redirect to '/api/2.0/gateway/routes' != recorded '/api/2.0/gateway/routes/'" in contracts.mismatch(
        recorded, got
    )


def test_shapes_ignore_values_but_not_structure():
    assert contracts.shape({"a": [1, 2], "b": "x"}) == contracts.shape({"b": "y", "a": [3.5]})
    assert contracts.shape({"a": [1]}) != contracts.shape({"a": ["1"]})
    assert contracts.shape({"a": None}) != contracts.shape({"a": {}})
