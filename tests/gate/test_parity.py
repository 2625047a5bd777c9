"""No order, no memory: a check's verdict depends only on the requests it sends. ``--only X``
gives X the status a full run gives it (each check starts on a freshly loaded candidate),
and the same candidate and seed give the same report in two fresh homes and under a clock
ten times slow."""

import json
import time
from pathlib import Path

import pytest

from _judge import MODEL_CHECKS, judge, load_module  # noqa: F401  (judge is a fixture)
from harness.gate.candidate import CandidateSpec
from harness.gate.report import Status
from harness.gate.runner import GateConfig, run_gate
from harness.model.wrapper import MPTInstruct
from harness.store import StoreConfig

CANDIDATES = Path(__file__).parents[1] / "data" / "candidates"
defects = load_module(CANDIDATES / "defects.py", "parity_defects")
explored = load_module(CANDIDATES / "explored.py", "parity_explored")
styles = load_module(CANDIDATES / "correct_styles.py", "parity_styles")

# State that one request leaves for the next: what made a verdict depend on check order.
STATEFUL = {
    "AnswerCache": defects.AnswerCache,
    "SamplingLeaksIntoGreedy": explored.SamplingLeaksIntoGreedy,
    "StopStringsLeftAfterRejection": explored.StopStringsLeftAfterRejection,
    "GreedyLRU": explored.GreedyLRU,
}
_FEW = ("answers.reference", "params.temperature", "params.temperature_zero", "open.inputs")


def _statuses_alone(judge, cls, ids):
    return {check_id: judge(cls, only=(check_id,))[check_id].status for check_id in ids}


@pytest.mark.xdist_group("reference-judged")
def test_a_few_checks_alone_on_the_reference_get_their_full_run_status(judge, reference_judged):
    full = {k: r.status for k, r in reference_judged.items()}
    assert _statuses_alone(judge, MPTInstruct, _FEW) == {k: full[k] for k in _FEW}


def test_a_few_checks_alone_on_a_stateful_defect_get_their_full_run_status(judge):
    full = {k: r.status for k, r in judge(defects.AnswerCache).items()}
    assert _statuses_alone(judge, defects.AnswerCache, _FEW) == {k: full[k] for k in _FEW}


@pytest.mark.slow
@pytest.mark.parametrize(
    "cls",
    [MPTInstruct, styles.RowByRow, styles.Pipeline, explored.Streamed, *STATEFUL.values()],
    ids=["reference", "RowByRow", "Pipeline", "Streamed", *STATEFUL],
)
def test_every_model_check_alone_gets_its_full_run_status(judge, cls):
    full = {k: r.status for k, r in judge(cls).items()}
    alone = _statuses_alone(judge, cls, [c.id for c in MODEL_CHECKS])
    assert alone == full, {k: (alone[k], full[k]) for k in full if alone[k] != full[k]}


def _comparable(report) -> dict:
    """gate.json less what may differ between runs: times, paths, dates, the machine."""
    data = json.loads(report.to_json())
    for key in ("created_at", "machine", "phases", "snapshot"):
        data.pop(key, None)
    data["explore"].pop("database", None)
    data["candidate"].pop("model_uri", None)
    data["runtime"].pop("cache", None)
    for check in data["checks"]:
        check.pop("duration_s")
        check["evidence"].get("reference", {}).pop("cache", None)
        for where in ("python", "curl"):  # they name the model's runs:/ URI and the store
            check["evidence"].get("reproducer", {}).pop(where, None)
    return data


_DETERMINISM = ("answers.reference", "explore.answers", "explore.sequences", "open.inputs")


@pytest.mark.slow
def test_two_fresh_homes_and_a_slow_clock_give_the_same_report(tiny_snapshot, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written in the current directory
    spec = CandidateSpec.from_file(f"{CANDIDATES / 'explored.py'}:RegexStops")
    start = time.monotonic()

    def slow() -> float:
        return start + (time.monotonic() - start) * 10

    reports = [
        run_gate(
            GateConfig(
                candidate=spec,
                snapshot=tiny_snapshot,
                store=StoreConfig(home=tmp_path / f"home-{k}"),
                serve=False,
                only=_DETERMINISM,
                explore=20,
                # The second run is both another fresh home and a clock ten times slow.
                **({"clock": slow} if k == 1 else {}),
            )
        )
        for k in range(2)
    ]
    assert reports[0].check("explore.answers").status is Status.FAIL
    assert _comparable(reports[1]) == _comparable(reports[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home-0", "home-1"]
