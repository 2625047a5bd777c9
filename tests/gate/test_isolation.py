"""Hostile candidates against the real `harness gate` command: whatever the candidate does
(exit, hang in load or predict, spawn a listener, raise SystemExit), the gate survives,
exits 1, writes a report naming what happened, and leaves no process behind."""

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.gate.worker import processes_with_env

pytestmark = pytest.mark.slow  # each test runs a gate with a candidate worker

HOSTILE = Path(__file__).parents[1] / "data" / "candidates" / "hostile.py"
_MARK = "HARNESS_ISOLATION_PROBE"

# hostile class -> (check id, status, words its message must contain, load and check timeouts:
# short where the test waits for them to expire, generous where checks must finish)
CASES = {
    "ExitsInPredict": ("output.type", "error", "exited with code 3", 120, 120),
    # A hang is no verdict on the candidate's code: ERROR, as the README promises.
    "HangsInLoad": ("load", "error", "no answer within 8s", 8, 120),
    "HangsInPredict": ("output.type", "error", "timed out after 4s", 120, 4),
    "SpawnsListener": ("candidate.processes", "fail", "listens on", 120, 120),
    "RaisesSystemExit": ("output.type", "error", "SystemExit", 120, 120),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_hostile_candidate_ends_with_exit_1_a_report_and_no_process(name, tmp_path, tiny_snapshot, monkeypatch):
    check_id, status, words, load_timeout, check_timeout = CASES[name]
    mark = uuid.uuid4().hex  # every process this gate starts inherits it
    monkeypatch.setenv(_MARK, mark)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    # The real command, in this process: the candidate runs in the gate's worker either way.
    result = CliRunner().invoke(
        main,
        [
            "gate",
            "--python-model",
            f"{HOSTILE}:{name}",
            "--snapshot",
            str(tiny_snapshot),
            "--no-serve",
            "--load-timeout",
            str(load_timeout),
            "--check-timeout",
            str(check_timeout),
            "--report-dir",
            str(tmp_path / "report"),
            "--home",
            str(tmp_path / "home"),
            "--only",
            check_id,
        ],
    )  # the check that judges this hostility (and load)
    try:
        assert result.exit_code == 1, result.output[-3000:]
        report = json.loads((tmp_path / "report" / "gate.json").read_text())
        check = next(c for c in report["checks"] if c["id"] == check_id)
        assert check["status"] == status and words in check["message"], check
        assert report["verdict"] == "fail"
    finally:
        left = sorted(processes_with_env(_MARK, mark), key=lambda p: p.pid)
        for proc in left:
            proc.kill()
    assert left == [], [p.pid for p in left]


def test_a_hang_in_one_check_is_an_error_and_the_next_check_gets_a_fresh_candidate(
    tmp_path, tiny_snapshot, monkeypatch
):
    monkeypatch.setenv("HARNESS_HANGS_ONCE", str(tmp_path / "hung"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    result = CliRunner().invoke(
        main,
        [
            "gate",
            "--python-model",
            f"{HOSTILE}:HangsOnce",
            "--snapshot",
            str(tiny_snapshot),
            "--no-serve",
            "--check-timeout",
            "4",
            "--report-dir",
            str(tmp_path / "report"),
            "--home",
            str(tmp_path / "home"),
            "--only",
            "output.type",
            "--only",
            "rows.all",
        ],
    )
    report = json.loads((tmp_path / "report" / "gate.json").read_text())
    status = {c["id"]: (c["status"], c["message"]) for c in report["checks"]}
    assert status["output.type"][0] == "error" and "timed out after 4s" in status["output.type"][1]
    assert status["rows.all"][0] == "pass", status["rows.all"]  # judged by the restarted worker
    assert "restarting the candidate" in result.output
