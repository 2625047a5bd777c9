"""Provider side of the recorded contracts: the committed recordings replayed against the
real servers (MLflow 2.8.1's legacy gateway in its two cached virtual environments, on
pydantic 1 and on pydantic 2, and the current MLflow gateway), and what the recording says
about the seed's Step 7."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.testing import contracts

REPO = Path(__file__).parents[2]
LEGACY_VENVS = [REPO / ".harness" / "venvs" / v / "bin" / "python" for v in ("mlflow-2.8.1", "mlflow-2.8.1-pydantic2")]


def test_the_recording_says_what_the_seed_step_7_user_meets():
    step7 = json.loads((contracts.CONTRACTS_DIR / "seed-step-7.json").read_text())
    for legacy in ("legacy", "legacy-pydantic2"):  # the page's code works on either 2.8.1 install
        assert step7[legacy]["verbatim_ran"] and step7[legacy]["documented_access"] == "ok"
    assert step7["current"]["verbatim_ran"]  # the published call itself still answers ...
    assert "choices" in step7["current"]["response_keys"]  # ... in another shape:
    assert step7["current"]["documented_access"] == "KeyError: 'candidates'"


@pytest.mark.slow
@pytest.mark.skipif(
    not all(v.exists() for v in LEGACY_VENVS),
    reason="no cached MLflow 2.8.1 environments (create them: python scripts/record_contracts.py --create-venv)",
)
def test_the_real_servers_still_answer_as_recorded(record_property):
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "record_contracts.py"), "--verify", "--home", str(REPO / ".harness")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    record_property("measured", run.stdout.strip().splitlines()[-1] if run.stdout else "no output")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


def test_the_recorder_loads_and_offers_every_recorded_profile(monkeypatch):
    """The script is run by hand, rarely: it must at least import against today's package."""
    import importlib.util

    from click.testing import CliRunner

    spec = importlib.util.spec_from_file_location("record_contracts", REPO / "scripts" / "record_contracts.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "record_contracts", module)  # its dataclasses look it up
    spec.loader.exec_module(module)
    result = CliRunner().invoke(module.main, ["--help"])
    assert result.exit_code == 0, result.output
    assert "--verify" in result.output and all(p in result.output for p in contracts.RECORDINGS)
