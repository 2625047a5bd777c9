"""The gate in each prompt format: the reference passes; correct wrappers written for the
format by an author who had not read the checks (tests/data/candidates/formats.py) pass;
each defect in the format's own handling fails with a message that names it. Judged in
process, every model check (see _judge.py); the whole CLI gate on the chat snapshot with a
chat route, once."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from _judge import judge, load_module  # noqa: F401  (judge is a fixture)
from harness.cli import main
from harness.gate.report import Status
from harness.model.wrapper import MPTInstruct

pytestmark = pytest.mark.slow  # each judge runs every model check

formats = load_module(Path(__file__).parents[1] / "data" / "candidates" / "formats.py", "candidates_formats")

CORRECT = {  # class -> its format
    "ChatDictPerRow": "chat-template",
    "RenderedLeftPadded": "chat-template",
    "ChatPipeline": "chat-template",
    "EosSetLoop": "chat-template",
    "FalconHandPadded": "falcon-instruct",
}
# defect -> (its format, the check that must fail, words its message must contain)
DEFECTS = {
    "TemplateTwice": ("chat-template", "prompt.template", "generate saw a different prompt"),
    "BosDoubled": ("chat-template", "prompt.template", "got 'endoftext|><|im_start"),
    "NoGenerationPrompt": ("chat-template", "prompt.template", "expected '<|im_start|>assistant\\n', got ''"),
    "FormatEosIgnored": ("chat-template", "answers.reference", "ran on past the end of the answer"),
    "SystemRoleInvented": ("chat-template", "prompt.template", "got 'system\\nYou are"),
    "SpecialTokensKept": ("chat-template", "answers.reference", "keeps the end-of-turn token as text"),
    "PromptSlicedByText": ("chat-template", "trim.exact", "is not the decode of the ids generated"),
    "ChatContentStripped": ("chat-template", "prompt.template", "edge whitespace instruction"),
    "FalconTrailingSpace": ("falcon-instruct", "prompt.template", "got ' '"),
    "FalconBosPrepended": ("falcon-instruct", "prompt.template", "got '<|endoftext|>User:"),
}


# defect -> (an instruction, max_tokens) where a caller sees its harm (measured in formats.md)
HARM = {
    "TemplateTwice": ("What is MLflow?", 8),
    "BosDoubled": ("Name a colour.", 8),
    "NoGenerationPrompt": ("What is MLflow?", 8),
    "FormatEosIgnored": ("  leading spaces", 16),
    "SystemRoleInvented": ("Name a colour.", 8),
    "SpecialTokensKept": ("  leading spaces", 8),
    "PromptSlicedByText": ("What is MLflow?", 8),
    "ChatContentStripped": ("\ttab first", 8),
    "FalconTrailingSpace": ("What is MLflow?", 8),
    "FalconBosPrepended": ("Name a colour.", 8),
}


def _snapshot(fmt, tiny_snapshot, chat_snapshot):
    return chat_snapshot if fmt == "chat-template" else tiny_snapshot


def _not_passed(results):
    return {k: r.message[:200] for k, r in results.items() if r.status in (Status.FAIL, Status.ERROR)}


@pytest.mark.parametrize("fmt", ["chat-template", "falcon-instruct"])
def test_the_reference_passes_in_each_format(judge, fmt, tiny_snapshot, chat_snapshot):
    results = judge(
        MPTInstruct,
        snapshot=_snapshot(fmt, tiny_snapshot, chat_snapshot),
        prompt_format=fmt,
        model_config={"prompt_format": fmt},
    )
    assert _not_passed(results) == {}
    assert results["prompt.template"].status is Status.PASS and fmt in results["prompt.template"].message
    assert results["answers.reference"].status is Status.PASS


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_a_correct_wrapper_written_for_the_format_passes(judge, name, tiny_snapshot, chat_snapshot):
    fmt = CORRECT[name]
    results = judge(getattr(formats, name), snapshot=_snapshot(fmt, tiny_snapshot, chat_snapshot), prompt_format=fmt)
    assert _not_passed(results) == {}
    for result in results.values():  # a check that could not judge says so
        assert result.status is Status.PASS or result.message.startswith("skipped: ")


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_a_defect_in_the_format_fails_with_a_message_that_names_it(judge, name, tiny_snapshot, chat_snapshot):
    fmt, check_id, words = DEFECTS[name]
    snapshot = _snapshot(fmt, tiny_snapshot, chat_snapshot)
    result = judge(getattr(formats, name), snapshot=snapshot, prompt_format=fmt, only=(check_id,))[check_id]
    assert result.status is Status.FAIL, result.message
    assert words in result.message, result.message


@pytest.mark.parametrize("name", sorted(HARM))
def test_each_defect_s_harm_is_what_a_caller_gets(name, tiny_snapshot, chat_snapshot):
    """Without the gate: the defect's answer differs from the format's reference answer."""
    from types import SimpleNamespace

    import pandas as pd

    from harness.model.generation import Generator, Request
    from harness.model.loading import LoadConfig
    from harness.model.settings import GenerationSettings

    fmt = DEFECTS[name][0]
    snapshot = str(_snapshot(fmt, tiny_snapshot, chat_snapshot))
    instruction, max_tokens = HARM[name]
    reference = Generator.from_pretrained(snapshot, LoadConfig(device="cpu", prompt_format=fmt))
    want = reference.generate([Request(instruction, GenerationSettings(0.0, max_tokens))])
    candidate = getattr(formats, name)()
    candidate.load_context(SimpleNamespace(artifacts={"repository": snapshot}, model_config={}))
    got = candidate.predict(
        None, pd.DataFrame({"prompt": [instruction]}), {"temperature": 0.0, "max_tokens": max_tokens}
    )
    assert list(got) != want, (name, got, want)


def test_the_same_correct_chat_wrapper_fails_when_judged_in_the_wrong_format(judge, chat_snapshot):
    """The format is what the oracle renders: a chat wrapper judged as MPT-Instruct is told so."""
    result = judge(formats.RenderedLeftPadded, snapshot=chat_snapshot, only=("prompt.template",))["prompt.template"]
    assert result.status is Status.FAIL and "<|im_start|>" in result.message


@pytest.mark.xdist_group("chat-gate")
def test_the_gate_on_the_chat_snapshot_with_auto_and_a_chat_route_passes_the_reference(
    chat_snapshot, gate_store, tmp_path
):
    """The issue's own command, its real scoring server and gateway with an llm/v1/chat route."""
    route = tmp_path / "chat-route.yaml"
    route.write_text(
        "endpoints:\n  - name: chat-mpt\n    endpoint_type: llm/v1/chat\n    model:\n"
        "      provider: mlflow-model-serving\n      name: mpt-7b-instruct\n"
        "      config:\n        model_server_url: http://127.0.0.1:5001\n"
    )
    folder = tmp_path / "report"
    args = ["gate", "--snapshot", str(chat_snapshot), "--prompt-format", "auto", "--route", str(route)]
    args += ["--home", str(gate_store.home), "--report-dir", str(folder), "--explore", "4"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads((folder / "gate.json").read_text())
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["prompt.template"]["evidence"]["format"]["name"] == "chat-template"
    assert report["snapshot"]["prompt_format"] == {"name": "chat-template", "system": None, "add_special_tokens": False}
    assert "prompt format `chat-template`" in (folder / "gate.md").read_text()
    gateway = checks["route.gateway"]
    assert gateway["status"] == "pass" and gateway["evidence"]["shape"] == "messages"
    assert gateway["evidence"]["endpoints_path"] == gateway["evidence"]["direct"]
    assert gateway["evidence"]["several_messages"]["status"] == 422


def test_a_chat_defect_fails_the_cli_gate(chat_snapshot, gate_store, tmp_path):
    args = ["gate", "--snapshot", str(chat_snapshot), "--prompt-format", "auto", "--only", "prompt.template"]
    args += ["--python-model", f"{formats.__file__}:BosDoubled", "--home", str(gate_store.home)]
    result = CliRunner().invoke(main, [*args, "--report-dir", str(tmp_path / "report")])
    assert result.exit_code == 1, result.output
    assert "FAIL  prompt.template" in result.output and "verdict: FAIL" in result.output


def test_chat_template_on_a_snapshot_without_one_is_a_usage_error_naming_the_option(tiny_snapshot, tmp_path):
    args = ["gate", "--snapshot", str(tiny_snapshot), "--prompt-format", "chat-template", "--no-serve"]
    result = CliRunner().invoke(main, [*args, "--home", str(tmp_path / "h"), "--report-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--prompt-format" in result.output and "no chat_template" in result.output


def test_a_system_prompt_for_mpt_instruct_is_a_usage_error_naming_the_option(tmp_path):
    args = ["gate", "--system-prompt", "Be brief.", "--no-serve", "--home", str(tmp_path / "h")]
    result = CliRunner().invoke(main, [*args, "--report-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--system-prompt" in result.output and "mpt-instruct" in result.output
