import json

import jsonschema
import pytest

from harness import _reporting as report_module  # where atomic_write lives
from harness.gate.report import SCHEMA_PATH, CheckResult, GateReport, Status, jsonable


def _report(*statuses) -> GateReport:
    checks = tuple(
        CheckResult(f"check.n{i}", s, f"message {i}", {"sent": [1, 2], "x": float("nan")}, 0.5)
        for i, s in enumerate(statuses)
    )
    return GateReport(
        candidate={"kind": "reference", "ref": "r", "signature": "gateway"},
        snapshot={"path": "/s"},
        machine={"python": "3", "device": "cpu", "torch": "t", "transformers": "t", "mlflow": "m"},
        checks=checks,
    )


def test_round_trip():
    r = _report(Status.PASS, Status.FAIL, Status.SKIPPED)
    assert GateReport.from_json(r.to_json()) == r


@pytest.mark.parametrize(
    "statuses, verdict",
    [
        ((Status.PASS, Status.SKIPPED), "pass"),
        ((Status.PASS, Status.FAIL), "fail"),
        ((Status.ERROR,), "fail"),
    ],
)
def test_verdict(statuses, verdict):
    assert _report(*statuses).verdict == verdict


def test_report_validates_against_the_published_schema():
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.validate(json.loads(_report(Status.PASS, Status.ERROR).to_json()), schema)


def test_schema_rejects_an_unknown_status():
    schema = json.loads(SCHEMA_PATH.read_text())
    data = json.loads(_report(Status.PASS).to_json())
    data["checks"][0]["status"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_unknown_schema_version_is_refused():
    data = json.loads(_report(Status.PASS).to_json())
    data["schema_version"] = "9"
    with pytest.raises(ValueError, match="schema_version"):
        GateReport.from_json(json.dumps(data))


def test_write_produces_json_and_markdown(tmp_path):
    json_path, md_path = _report(Status.PASS, Status.FAIL).write(tmp_path / "out")
    assert GateReport.from_json(json_path.read_text()).verdict == "fail"
    markdown = md_path.read_text()
    assert "FAIL" in markdown and "`check.n0`" in markdown and "`check.n1`" in markdown


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_module.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _report(Status.PASS).write(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_rewrite_keeps_the_old_file_until_the_new_one_is_complete(tmp_path, monkeypatch):
    _report(Status.PASS).write(tmp_path)
    before = (tmp_path / "gate.json").read_text()
    monkeypatch.setattr(report_module.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk")))
    with pytest.raises(OSError):
        _report(Status.FAIL).write(tmp_path)
    assert (tmp_path / "gate.json").read_text() == before


def test_evidence_is_json_safe_and_bounded():
    value = jsonable({"t": "x" * 5000, "l": list(range(100)), "f": float("inf"), "o": object()})
    json.dumps(value, allow_nan=False)
    assert len(value["t"]) < 2100 and len(value["l"]) == 51 and value["f"] == "inf"


def test_an_exploration_report_keeps_its_reproducer_whole_and_shows_it_in_markdown():
    long = "x" * 5000  # a near-limit instruction is longer than evidence text is cut to
    body = {"inputs": [long, "{name}"], "params": {"temperature": 0.0, "max_tokens": 4}}
    check = CheckResult(
        "explore.answers",
        Status.FAIL,
        "row 1 differs",
        {
            "reproducer": {
                "bodies": [body],
                "steps": [{"body": body, "got": "a", "expected": "b"}],
                "python": "print('replay')",
            },
            "other": long,
        },
        1.0,
    )
    report = GateReport(
        candidate={"kind": "reference", "ref": "r", "signature": "gateway"},
        snapshot={"path": "/s"},
        machine={"python": "3", "device": "cpu", "torch": "t", "transformers": "t", "mlflow": "m"},
        checks=(check,),
        explore={"seed": 7, "examples": 100, "sequences": 50, "steps": 5, "database": "/h/hypothesis"},
    )
    data = json.loads(report.to_json())
    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text()))
    assert data["checks"][0]["evidence"]["reproducer"]["bodies"] == [body]
    assert len(data["checks"][0]["evidence"]["other"]) < 5000  # the rest is still cut
    assert GateReport.from_json(report.to_json()) == report
    markdown = report.to_markdown()
    assert "seed 7 (`--seed`)" in markdown and "## Reproducer for `explore.answers`" in markdown
    assert "print('replay')" in markdown and '"{name}"' in markdown


_RUNTIME = {
    "asked": {"device": "cuda", "dtype": "bfloat16"},
    "candidate": {"device": "cuda", "dtype": "float32"},
    "reference": {"device": "cuda", "dtype": "float32"},
    "mismatch": "the candidate did not run where asked: dtype float32 (asked bfloat16)",
    "rule": {"kind": "top-k", "k": 5, "margin": 0.5},
    "generated_rows": 3,
    "cached_rows": 40,
    "near_ties_accepted": 1,
    "cache": "/h/reference-cache/x.sqlite",
}


def test_a_runtime_block_round_trips_validates_and_is_shown_in_markdown():
    base = _report(Status.PASS)
    report = GateReport(base.candidate, base.snapshot, base.machine, base.checks, runtime=_RUNTIME)
    assert GateReport.from_json(report.to_json()) == report
    jsonschema.validate(json.loads(report.to_json()), json.loads(SCHEMA_PATH.read_text()))
    markdown = report.to_markdown()
    assert (
        "asked cuda/bfloat16, candidate ran on cuda/float32, reference on cuda/float32; "
        "oracle rule: top-5 within 0.5 nats"
    ) in markdown
    assert "read from the cache 40" in markdown and "**the candidate did not run" in markdown


def test_a_1_2_report_still_loads():
    data = json.loads(_report(Status.PASS).to_json())
    data["schema_version"] = "1.2"
    del data["runtime"]
    assert GateReport.from_json(json.dumps(data)).runtime is None
