"""Consumer side of the recorded contracts: every interaction recorded from a real MLflow
gateway, replayed against the mock of its profile, gets the recorded status, content type
and body shape (and, at temperature 0, the recorded greedy text)."""

import pytest

from harness.serving.route import seed_route
from harness.testing import contracts
from harness.testing.mock_gateway import MockGateway


@pytest.fixture
def mock_for(candidate):
    def start(profile):
        mock = MockGateway(profile=profile)
        mock.serve_model("mpt-7b-instruct", candidate)
        mock.add_route(seed_route("http://127.0.0.1:1"))
        return mock

    return start


@pytest.mark.parametrize("profile", ["legacy", "current"])
def test_the_mock_keeps_every_recorded_contract(profile, mock_for, record_property):
    recorded = contracts.load(profile)
    assert len(recorded) >= 40, "the committed recording is missing"
    assert {i.case for i in recorded} == {c.name for c in contracts.CASES[profile]()}
    with mock_for(profile) as mock:
        problems = [p for i in recorded if (p := contracts.mismatch(i, *contracts.send(mock.base_url, i.request)))]
    record_property(
        "measured",
        f"{profile}: {len(recorded) - len(problems)} of {len(recorded)} recorded interactions matched by the mock",
    )
    assert not problems, "\n".join(problems)


def test_a_mismatch_names_the_case_and_shows_both_bodies():
    recorded = next(i for i in contracts.load("legacy") if i.case == "query-temperature-1.5")
    problem = contracts.mismatch(recorded, 400, "application/json", {"detail": "temperature bad"})
    assert problem.startswith("query-temperature-1.5: status 400 != recorded 422")
    assert "body shape differs" in problem and '"temperature bad"' in problem
    assert "ensure this value is less than or equal to 1" in problem


def test_shapes_ignore_values_but_not_structure():
    assert contracts.shape({"a": [1, 2], "b": "x"}) == contracts.shape({"b": "y", "a": [3.5]})
    assert contracts.shape({"a": [1]}) != contracts.shape({"a": ["1"]})
    assert contracts.shape({"a": None}) != contracts.shape({"a": {}})
