"""The gate's route, server and secret checks."""

import json

import pytest

from harness.gate.candidate import CandidateSpec
from harness.serving.route import RouteSpec

# Every test here runs a whole gate with real servers.
pytestmark = pytest.mark.slow

TOKEN = "dapi-harness-canary-4242"
DATABRICKS_ROUTE = RouteSpec.from_dict(
    {
        "name": "completions-mpt-7b-instruct",
        "route_type": "llm/v1/completions",
        "model": {
            "name": "mpt-endpoint",
            "provider": "databricks-model-serving",
            "config": {
                "databricks_api_token": "$HARNESS_TEST_TOKEN",
                "databricks_workspace_url": "https://example.cloud.databricks.com",
            },
        },
    }
)

CANDIDATES = '''
import os
import mlflow
from harness.model.wrapper import MPTInstruct


class LeaksToken(MPTInstruct):
    def load_context(self, context):
        super().load_context(context)
        mlflow.log_param("debug_token", os.environ.get("HARNESS_TEST_TOKEN", ""))


class BareString(MPTInstruct):
    def predict(self, context, model_input, params=None):
        return super().predict(context, model_input, params)[0]


class SwallowsErrors(MPTInstruct):
    """Turns any failure into empty answers: the caller sees 200 and nothing."""

    def predict(self, context, model_input, params=None):
        try:
            return super().predict(context, model_input, params)
        except Exception:
            return [""] * len(model_input)


class SharedSettings(MPTInstruct):
    """Keeps the request's settings on the instance: concurrent requests read each other's."""

    def predict(self, context, model_input, params=None):
        import time

        self.current = dict(params or {})
        time.sleep(0.2)
        return super().predict(context, model_input, self.current)


class SwallowsAndShares(SwallowsErrors, SharedSettings):
    """Both serving defects at once: one server start judges both checks."""

'''


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serving-candidates")
    (folder / "serving_candidates.py").write_text(CANDIDATES)
    (folder / "databricks.yaml").write_text(DATABRICKS_ROUTE.to_gateway_yaml())
    (folder / "literal.yaml").write_text(DATABRICKS_ROUTE.to_gateway_yaml().replace("$HARNESS_TEST_TOKEN", TOKEN))
    return folder


def test_a_route_with_a_literal_token_fails_route_spec_without_showing_it(run_candidate, files):
    report = run_candidate(route_file=files / "literal.yaml", only=("route.spec",))
    spec = report.check("route.spec")
    assert spec.status.value == "fail" and "environment reference" in spec.message
    assert TOKEN not in report.to_json()


def test_a_candidate_that_logs_the_token_fails_secrets_no_leak(run_candidate, files, monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_TOKEN", TOKEN)
    report = run_candidate(
        CandidateSpec.from_file(f"{files / 'serving_candidates.py'}:LeaksToken"),
        route_file=files / "databricks.yaml",
        only=("load", "secrets.no_leak"),
    )
    leak = report.check("secrets.no_leak")
    # The candidate only ever saw a canary in place of the token, and logged that.
    assert leak.status.value == "fail" and "$HARNESS_TEST_TOKEN (canary) in run" in leak.message
    assert TOKEN not in report.to_json()


def test_the_reference_does_not_leak_and_databricks_routes_are_not_called(run_candidate, files, monkeypatch, tmp_path):
    from harness.store import StoreConfig

    monkeypatch.setenv("HARNESS_TEST_TOKEN", TOKEN)
    report = run_candidate(
        route_file=files / "databricks.yaml",
        serve=True,
        store=StoreConfig(home=tmp_path),  # a store no leaky run wrote to
        only=("serving.scoring", "route.spec", "route.gateway", "secrets.no_leak"),
    )
    assert report.check("secrets.no_leak").status.value == "pass"
    assert report.check("route.spec").status.value == "pass"
    gateway = report.check("route.gateway")
    assert gateway.status.value == "skipped" and "not reachable" in gateway.message
    assert report.check("serving.scoring").status.value == "pass"
    assert TOKEN not in json.dumps(report.to_dict())


def test_a_bare_string_candidate_fails_serving_and_the_gateway(run_candidate, files):
    # A check timeout shorter than a server start (about 8 s here, more on a busy runner): starting servers is the
    # gate's time, so the verdicts must still be about the candidate, not "it hung".
    report = run_candidate(
        CandidateSpec.from_file(f"{files / 'serving_candidates.py'}:BareString"),
        serve=True,
        only=("serving.scoring", "route.gateway"),
        check_timeout=6.0,
    )
    assert report.check("serving.scoring").status.value == "fail"
    gateway = report.check("route.gateway")
    assert gateway.status.value == "fail" and "502" in gateway.message


def test_serving_defects_fail_their_checks(run_candidate, files):
    report = run_candidate(
        CandidateSpec.from_file(f"{files / 'serving_candidates.py'}:SwallowsAndShares"),
        serve=True,
        only=("serving.scoring", "serving.errors", "serving.concurrent"),
    )
    for check_id, words in (
        ("serving.errors", "swallows errors"),
        ("serving.concurrent", "leak between concurrent requests"),
    ):
        result = report.check(check_id)
        assert result.status.value == "fail" and words in result.message, result.message
