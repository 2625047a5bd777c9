"""The gate on models logged with MLflow's own transformers flavour (task llm/v1/completions),
the path most users take: it loads them, understands their completions output, and names
their real defects instead of crashing."""

import mlflow
import pytest

from harness.gate.candidate import CandidateSpec
from harness.store import log_transformers

pytestmark = pytest.mark.slow  # logs models and runs gates with a worker


@pytest.fixture(scope="module")
def flavour_uris(tiny_snapshot, gate_store):
    uris = {}
    with gate_store.activated(), mlflow.start_run():
        uris["template"] = log_transformers(tiny_snapshot).model_uri
    return uris


def test_a_completions_model_is_judged_and_its_defects_named(run_candidate, flavour_uris):
    report = run_candidate(CandidateSpec.from_uri(flavour_uris["template"]),
                           only=("output.type", "signature.payload", "params.temperature_zero",
                                 "prompt.template", "answers.reference"))
    status = {c.id: c.status.value for c in report.checks}
    assert status["load"] == "pass" and status["prompt.template"] == "pass"
    assert status["output.type"] == "pass" and "completions" in report.check("output.type").message
    payload = report.check("signature.payload")
    assert payload.status.value == "fail" and "rejected" in payload.message  # {"inputs": [...]}
    zero = report.check("params.temperature_zero")
    assert zero.status.value == "fail" and "strictly positive" in zero.message
    assert status["answers.reference"] in ("fail", "error")
    assert "temperature" in report.check("answers.reference").message
