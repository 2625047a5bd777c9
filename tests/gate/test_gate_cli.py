"""`harness gate` as users run it: exit codes, usage errors, reports on disk."""

import json

import jsonschema
import pytest
from click.testing import CliRunner

from conftest import MUTANTS_FILE
from harness.cli import main
from harness.gate.report import SCHEMA_PATH


@pytest.fixture
def gate_cli(tiny_snapshot, gate_store, tmp_path):
    def invoke(*args):
        return CliRunner().invoke(
            main,
            [
                "gate",
                "--snapshot",
                str(tiny_snapshot),
                "--home",
                str(gate_store.home),
                "--report-dir",
                str(tmp_path / "report"),
                "--explore",
                "4",
                *args,
            ],
        )

    return invoke


@pytest.mark.slow
@pytest.mark.xdist_group("reference-gate")
def test_reference_exits_0_and_writes_valid_reports(reference_gate):
    """The whole gate, real scoring server and gateway included (run once, shared)."""
    result, folder = reference_gate.result, reference_gate.folder
    assert result.exit_code == 0, result.output
    for check in ("serving.scoring", "serving.errors", "serving.concurrent", "route.gateway", "secrets.no_leak"):
        assert f"PASS  {check}" in result.stdout
    assert "verdict: PASS" in result.stdout
    report = json.loads((folder / "gate.json").read_text())
    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text()))
    assert report["verdict"] == "pass" and report["candidate"]["kind"] == "reference"
    assert set(report["phases"]) == {"load", "reference", "checks"}
    assert (folder / "gate.md").read_text().startswith("# Gate report: PASS")


@pytest.mark.slow
def test_broken_candidate_exits_1_naming_the_failing_check(gate_cli, tmp_path):
    only = ("--only", "prompt.template", "--only", "answers.reference")
    result = gate_cli("--python-model", f"{MUTANTS_FILE}:IndentedPrompt", "--no-serve", *only)
    assert result.exit_code == 1, result.output
    assert "FAIL  prompt.template" in result.stdout
    assert "verdict: FAIL (failing: prompt.template, answers.reference" in result.stdout
    assert json.loads((tmp_path / "report" / "gate.json").read_text())["verdict"] == "fail"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--python-model", "missing.py:X"], "file not found"),
        (["--python-model", f"{MUTANTS_FILE}:Nope"], "class 'Nope' not found"),
        (["--python-model", f"{MUTANTS_FILE}:CAUGHT_BY"], "is not a class: expected a mlflow.pyfunc.PythonModel"),
        (["--python-model", "no-colon.py"], "FILE.py:CLASS"),
        (["--python-model", f"{MUTANTS_FILE}:OffByOne", "--model-uri", "models:/x/1"], "not both"),
        (["--check-timeout", "0"], "--check-timeout"),
        (["--signature", "xml"], "--signature"),
        (["--route", "no-such-route.yaml"], "--route"),
        (["--only", "x" * 5000], "--only: unknown check ids ['" + "x" * 40 + "…']"),
    ],
)
def test_usage_errors_exit_2_with_one_line(gate_cli, args, message):
    result = gate_cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output) < 2000


@pytest.mark.slow
def test_registered_model_uri_keeps_its_own_signature(gate_cli, tiny_snapshot, gate_store):
    from harness.store import RegisterConfig, register

    reg = register(RegisterConfig(snapshot=tiny_snapshot, signature="columns", store=gate_store, name="cols-model"))
    only = ("--only", "signature.present", "--only", "signature.payload", "--only", "rows.all")
    result = gate_cli("--model-uri", reg.model_uri, "--no-serve", *only)
    assert result.exit_code == 1
    assert "FAIL  signature.payload" in result.stdout
    assert "verdict: FAIL (failing: signature.payload)" in result.stdout


def test_gate_help_explains_options():
    result = CliRunner().invoke(main, ["gate", "--help"])
    for option in ("--python-model", "--model-uri", "--snapshot", "--signature", "--report-dir", "--check-timeout"):
        assert option in result.output


@pytest.mark.slow
def test_bfloat16_on_the_cpu_runs_both_sides_there_and_reuses_the_reference_answers(gate_store, tmp_path, pytestconfig):
    """The reference candidate asked for bfloat16 (it reads model_config), twice: the report
    says where each side ran, the tolerant rule, and that the second run read the reference's
    answers from the cache under --home."""
    from harness.model.snapshot import cached_tiny

    peaked = cached_tiny(pytestconfig.rootpath, peaked=True)
    runs = []
    for n in range(2):
        folder = tmp_path / f"report-{n}"
        result = CliRunner().invoke(
            main,
            [
                "gate",
                "--snapshot",
                str(peaked),
                "--home",
                str(gate_store.home),
                "--report-dir",
                str(folder),
                "--no-serve",
                "--device",
                "cpu",
                "--dtype",
                "bfloat16",
                "--only",
                "answers.reference",
            ],
        )
        assert result.exit_code == 0, result.output
        report = json.loads((folder / "gate.json").read_text())
        jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text()))
        runs.append(report["runtime"])
    first, second = runs
    bf16 = {"device": "cpu", "dtype": "bfloat16"}
    assert first["asked"] == first["candidate"] == first["reference"] == bf16
    assert first["mismatch"] is None and first["rule"] == {"kind": "top-k", "k": 5, "margin": 0.5}
    assert first["generated_rows"] > 0 and second["generated_rows"] == 0
    assert second["cached_rows"] > 0
    assert "oracle rule: top-5 within 0.5 nats" in (tmp_path / "report-1" / "gate.md").read_text()


def test_a_device_or_dtype_outside_the_choices_is_a_usage_error(gate_cli):
    result = gate_cli("--dtype", "int8")
    assert result.exit_code == 2 and "--dtype" in result.output and "bfloat16" in result.output
