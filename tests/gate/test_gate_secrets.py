"""Secrets never reach what `harness gate` prints or writes: URL credentials in any scheme,
a token pasted into a URL field, route secrets, and a candidate's leaked canary (which
secrets.no_leak still fails on). Each case greps every stream and file the gate produced."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main

SECRET = "s3cr3t-route-value-5b1f"

ROUTE = """endpoints:
- name: completions-mpt-7b-instruct
  endpoint_type: llm/v1/completions
  model:
    provider: databricks-model-serving
    name: mpt-endpoint
    config:
      databricks_api_token: $HARNESS_TEST_ROUTE_SECRET
      databricks_workspace_url: {url}
"""

LEAKER = '''
import os
from harness.model.wrapper import MPTInstruct


class LeaksCanary(MPTInstruct):
    """Prints a credential it was given and answers with it."""

    def predict(self, context, model_input, params=None):
        token = os.environ["HARNESS_CANARY_TOKEN"]
        print("debug token", token, flush=True)
        return [token for _ in super().predict(context, model_input, params)]
'''


def _everything(result, *folders: Path) -> bytes:
    blobs = [result.output.encode()]
    for folder in folders:
        blobs += [f.read_bytes() for f in folder.rglob("*") if f.is_file()]
    return b"\n".join(blobs)


def _gate(tmp_path, tiny_snapshot, *args):
    return CliRunner().invoke(
        main,
        [
            "gate",
            "--snapshot",
            str(tiny_snapshot),
            "--home",
            str(tmp_path / "home"),
            "--report-dir",
            str(tmp_path / "report"),
            "--explore",
            "4",
            *args,
        ],
    )


@pytest.mark.parametrize(
    "url", [f"ftp://user:{SECRET}@files.example.com", f"https://token:{SECRET}@example.cloud.databricks.com", SECRET]
)  # the token pasted into the URL field
def test_a_route_secret_in_any_field_is_never_printed_or_written(tmp_path, tiny_snapshot, monkeypatch, url):
    monkeypatch.setenv("HARNESS_TEST_ROUTE_SECRET", "another-secret-9d2e")
    (tmp_path / "route.yaml").write_text(ROUTE.format(url=url))
    result = _gate(tmp_path, tiny_snapshot, "--route", str(tmp_path / "route.yaml"), "--only", "route.spec")
    assert result.exit_code == 1, result.output  # route.spec fails: the URL is not valid
    assert "databricks_workspace_url" in result.output
    everything = _everything(result, tmp_path / "report")
    assert SECRET.encode() not in everything and b"another-secret-9d2e" not in everything


def test_route_secret_values_are_masked_whatever_their_variable_is_called(tmp_path, monkeypatch):
    """Once the gate has read the route, the values it references are masked in all output,
    although their variable's name does not look like a credential."""
    from harness._redact import redact
    from harness.gate.runner import _parse_route

    (tmp_path / "route.yaml").write_text(
        ROUTE.format(url="https://x.cloud.databricks.com").replace("$HARNESS_TEST_ROUTE_SECRET", "$ROUTE_VALUE_PLAIN")
    )
    monkeypatch.setenv("ROUTE_VALUE_PLAIN", "plain-name-value-77")
    assert redact("a plain-name-value-77 b") == "a plain-name-value-77 b"
    _parse_route(tmp_path / "route.yaml")
    assert redact("a plain-name-value-77 b") == "a *** b"


@pytest.mark.slow  # loads a candidate in its worker
def test_a_candidate_that_leaks_a_canary_fails_and_the_canary_is_written_nowhere(tmp_path, tiny_snapshot):
    (tmp_path / "leaker.py").write_text(LEAKER)
    result = _gate(
        tmp_path,
        tiny_snapshot,
        "--python-model",
        f"{tmp_path / 'leaker.py'}:LeaksCanary",
        "--no-serve",
        "--only",
        "output.type",
        "--only",
        "answers.reference",
        "--only",
        "secrets.no_leak",
    )
    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "report" / "gate.json").read_text())
    leak = next(c for c in report["checks"] if c["id"] == "secrets.no_leak")
    assert leak["status"] == "fail", leak
    assert "in answers" in leak["message"] and "in candidate log" in leak["message"]
    # Answers are quoted in evidence, and the log keeps the line: both masked.
    assert (
        "***" in json.dumps(report)
        and "debug token ***" in next((tmp_path / "home" / "logs").rglob("candidate.log")).read_text()
    )
    assert b"harness-canary-" not in _everything(result, tmp_path / "report", tmp_path / "home" / "logs")


def test_an_unwritable_report_folder_is_a_usage_error_before_any_check(tmp_path, tiny_snapshot):
    (tmp_path / "a-file").write_text("")
    result = CliRunner().invoke(
        main,
        [
            "gate",
            "--snapshot",
            str(tiny_snapshot),
            "--home",
            str(tmp_path / "home"),
            "--report-dir",
            str(tmp_path / "a-file" / "report"),
        ],
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "is not writable" in lines[0], result.output
    assert not (tmp_path / "home" / "logs").exists()  # nothing ran
