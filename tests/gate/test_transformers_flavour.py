"""The gate on models logged with MLflow's own transformers flavour (task llm/v1/completions),
the path most users take: it loads them, understands their completions output, and names
their real defects instead of crashing."""

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.gate.candidate import CandidateSpec

pytestmark = pytest.mark.slow  # logs models and runs gates with a worker


@pytest.fixture(scope="module")
def flavour_uris(tiny_snapshot, gate_store):
    """Registered as a user would: `harness register --flavour transformers`."""
    result = CliRunner().invoke(main, ["register", "--flavour", "transformers", "--snapshot",
                                       str(tiny_snapshot), "--name", "mpt-flavour",
                                       "--home", str(gate_store.home),
                                       "--tracking-uri", gate_store.uri])
    assert result.exit_code == 0, result.output
    return {"template": result.stdout.strip().splitlines()[-1]}


def test_a_completions_model_is_judged_and_its_defects_named(run_candidate, flavour_uris):
    report = run_candidate(CandidateSpec.from_uri(flavour_uris["template"]),
                           only=("output.type", "signature.payload", "params.temperature_zero",
                                 "prompt.template", "answers.reference"))
    status = {c.id: c.status.value for c in report.checks}
    assert status["load"] == "pass" and status["prompt.template"] == "pass"
    assert status["output.type"] == "pass" and "completions" in report.check("output.type").message
    payload = report.check("signature.payload")
    assert payload.status.value == "fail" and "rejected" in payload.message  # {"inputs": [...]}
    assert "Fix:" in payload.message and "GATEWAY" in payload.message
    zero = report.check("params.temperature_zero")
    assert zero.status.value == "fail" and "strictly positive" in zero.message
    assert status["answers.reference"] in ("fail", "error")
    assert "temperature" in report.check("answers.reference").message
