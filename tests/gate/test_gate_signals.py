"""`harness gate` stopped by a signal at any phase: nothing it started outlives it, and it
writes the checks that finished (`harness serve`'s are in tests/serving/test_servers.py)."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from conftest import finish_owner
from harness.gate.worker import processes_with_env

pytestmark = pytest.mark.slow  # real gates and servers in subprocesses

_MARK = "HARNESS_SIGNAL_PROBE"


def _spawn(args, tmp_path, mark):
    return subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, _MARK: mark, "MLFLOW_TRACKING_URI": ""},
    )


def _tagged(mark, words):
    return [p for p in processes_with_env(_MARK, mark) if words in " ".join(p.cmdline())]


def _wait_for(predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    return None


# (signal, what must be running when it arrives: the candidate loading, or the scoring
# server starting up, before it is ready)
PHASES = [(signal.SIGINT, "harness.gate.worker"), (signal.SIGTERM, "models serve")]


@pytest.mark.parametrize("sig,running", PHASES, ids=["sigint-loading", "sigterm-server-starting"])
def test_a_signal_stops_the_gate_and_everything_it_started(tmp_path, tiny_snapshot, sig, running, record_property):
    mark, report_dir = uuid.uuid4().hex, tmp_path / "report"
    process = _spawn(
        [
            "gate",
            "--snapshot",
            str(tiny_snapshot),
            "--home",
            str(tmp_path / "home"),
            "--report-dir",
            str(report_dir),
            "--only",
            "serving.scoring",
        ],
        tmp_path,
        mark,
    )
    assert _wait_for(lambda: _tagged(mark, running)), f"{running!r} never ran"
    sent = time.monotonic()
    process.send_signal(sig)
    output, left = finish_owner(process, _MARK, mark)
    record_property("measured", f"gate stopped {time.monotonic() - sent:.2f}s after {sig.name} while {running!r} ran")
    assert left == set(), [(p.pid, p.cmdline()) for p in left]
    assert process.returncode == 128 + sig, output[-2000:]
    report = json.loads((report_dir / "gate.json").read_text())
    assert report["verdict"] == "interrupted" and report["interrupted"] == sig.name
    assert "verdict: INTERRUPTED" in output
