"""The gate on models logged with MLflow's own transformers flavour (task llm/v1/completions,
and llm/v1/chat on the chat snapshot),
the path most users take: it loads them, understands their completions output, and names
their real defects instead of crashing. Three variants, registered as a user would: with
MPT-Instruct's prompt_template, without one, and with a model_config (do_sample=false) that
makes temperature 0 work."""

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.gate.candidate import CandidateSpec

pytestmark = pytest.mark.slow  # logs models and runs gates with a worker

VARIANTS = {
    "template": [],
    "no-template": ["--prompt-template", "none"],
    "do-sample-off": ["--model-config", "do_sample=false"],
}


@pytest.fixture(scope="module")
def flavour_uris(tiny_snapshot, gate_store):
    """Registered as a user would: `harness register --flavour transformers`."""
    uris = {}
    for variant, options in VARIANTS.items():
        result = CliRunner().invoke(
            main,
            [
                "register",
                "--flavour",
                "transformers",
                "--snapshot",
                str(tiny_snapshot),
                "--name",
                f"mpt-{variant}",
                "--home",
                str(gate_store.home),
                "--tracking-uri",
                gate_store.uri,
                *options,
            ],
        )
        assert result.exit_code == 0, result.output
        uris[variant] = result.stdout.strip().splitlines()[-1]
    return uris


def _judged(report) -> dict[str, str]:
    """Every check judged (pass/fail) or skipped with its reason; none errored."""
    status = {c.id: c.status.value for c in report.checks}
    assert "error" not in status.values(), [(c.id, c.message) for c in report.checks if c.status.value == "error"]
    assert all(c.message for c in report.checks if c.status.value == "skipped")
    return status


def test_a_completions_model_is_judged_and_its_defects_named(run_candidate, flavour_uris):
    # Every check but the servers' (tests/gate/test_serving_checks.py has those).
    report = run_candidate(CandidateSpec.from_uri(flavour_uris["template"]))
    status = _judged(report)
    assert len(status) >= 18
    assert status["load"] == "pass" and status["prompt.template"] == "pass"
    assert status["output.type"] == "pass" and "completions" in report.check("output.type").message
    payload = report.check("signature.payload")
    assert payload.status.value == "fail" and "rejected" in payload.message  # {"inputs": [...]}
    assert "Fix:" in payload.message and "GATEWAY" in payload.message
    zero = report.check("params.temperature_zero")
    assert zero.status.value == "fail" and "strictly positive" in zero.message
    # Nothing to compare at temperature 0: skipped, naming why, not a second failure.
    reference = report.check("answers.reference")
    assert reference.status.value == "skipped" and "temperature 0" in reference.message
    # Judged by sampling instead: the flavour takes one request's settings from its first row.
    assert "first row's settings" in report.check("params.max_tokens").message
    assert "KV cache is off" in report.check("generate.use_cache").message
    assert report.verdict == "fail"


def test_without_a_prompt_template_the_model_sees_the_bare_instruction(run_candidate, flavour_uris):
    report = run_candidate(CandidateSpec.from_uri(flavour_uris["no-template"]))
    _judged(report)
    template = report.check("prompt.template")
    assert template.status.value == "fail" and "Below is an instruction" in template.message


def test_do_sample_off_makes_temperature_zero_greedy_and_stops_sampling(run_candidate, flavour_uris):
    report = run_candidate(CandidateSpec.from_uri(flavour_uris["do-sample-off"]))
    status = _judged(report)
    assert status["params.temperature_zero"] == "pass" and status["prompt.template"] == "pass"
    sampling = report.check("params.temperature")
    assert sampling.status.value == "fail" and "sampling is off" in sampling.message
    # Greedy now, so its stop handling is judged: it runs past the earliest stop string.
    stop = report.check("params.stop")
    assert stop.status.value == "fail" and "ran past the earliest stop string" in stop.message


def test_a_chat_task_model_is_judged_and_its_doubled_bos_named(run_candidate, chat_snapshot, gate_store):
    """task="llm/v1/chat" on the chat snapshot: MLflow renders the tokenizer's template to
    text and its pipeline tokenizes that with the tokenizer's BOS added again."""
    args = ["register", "--flavour", "transformers", "--task", "llm/v1/chat", "--snapshot", str(chat_snapshot)]
    args += ["--name", "mpt-chat-task", "--home", str(gate_store.home), "--tracking-uri", gate_store.uri]
    registered = CliRunner().invoke(main, args)
    assert registered.exit_code == 0, registered.output
    uri = registered.stdout.strip().splitlines()[-1]
    report = run_candidate(CandidateSpec.from_uri(uri), snapshot=chat_snapshot, prompt_format="auto")
    status = _judged(report)
    assert "chat-task signature" in report.check("signature.present").message
    assert status["output.type"] == "pass" and "chat object" in report.check("output.type").message
    template = report.check("prompt.template")
    assert template.status.value == "fail" and "got 'endoftext|><|im_start|>" in template.message
    assert "strictly positive" in report.check("params.temperature_zero").message
    assert report.verdict == "fail"
