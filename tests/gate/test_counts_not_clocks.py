"""Every size is a count; the clock is only a safety net, and a net that is hit is ERROR,
never PASS. The same seed gives the same verdict, request counts and reproducer whatever
the clock says, and a check's timeout counts the candidate's working time only."""

import itertools
import time
from dataclasses import replace

import pytest

from _judge import EXPLORE, judge, load_module  # noqa: F401  (judge is a fixture)
from harness.gate.explore.search import ExploreConfig, Finding, Mismatch, search
from harness.gate.explore.strategies import requests
from harness.gate.report import Status
from harness.gate.worker import Worker, WorkerTimeout
from harness.model.wrapper import MPTInstruct
from pathlib import Path

explored = load_module(Path(__file__).parents[1] / "data" / "candidates" / "explored.py", "explored_for_clocks")


def _jumping_clock(step: float = 1000.0):
    """A clock that moves ``step`` seconds each time it is read: every safety net trips."""
    ticks = itertools.count()
    return lambda: next(ticks) * step


def _slow_clock(factor: float = 10.0):
    """A clock that runs ``factor`` times slow: a machine ``factor`` times slower, as the
    gate's clock sees it."""
    start = time.monotonic()
    return lambda: start + (time.monotonic() - start) * factor


def test_a_search_cut_by_the_safety_net_is_no_verdict_never_a_pass(judge):
    result = judge(MPTInstruct, only=("explore.answers",), clock=_jumping_clock())["explore.answers"]
    assert result.status is Status.ERROR, result.message
    assert result.message.startswith("no verdict: ran out of time after ")
    assert f"of {EXPLORE.examples} requests" in result.message


def _comparable(result):
    tried = dict(result.evidence.get("tried", {}))
    # What the reference cost, not what was sent: rows a shared or cached reference already
    # held are not decoded again (as on a warm home).
    tried.pop("reference_generations", None)
    return result.status, result.message, tried, result.evidence.get("reproducer", {}).get("bodies")


@pytest.mark.slow  # two explorations twice each
@pytest.mark.parametrize("name", ["RegexStops", "BracesFormatted"])
def test_a_ten_times_slower_clock_gives_the_same_verdict_counts_and_reproducer(judge, name):
    checks = ("explore.answers", "explore.sequences")
    normal = judge(getattr(explored, name), only=checks)
    slow = judge(getattr(explored, name), only=checks, clock=_slow_clock())
    assert any(r.status is Status.FAIL for r in normal.values())
    for check_id in checks:
        assert _comparable(slow[check_id]) == _comparable(normal[check_id]), check_id


@pytest.mark.slow  # an exploration that fails
def test_shrinking_is_bounded_by_a_count_and_the_failure_still_fails(judge):
    cut = replace(EXPLORE, shrink_requests=0)
    result = judge(explored.RegexStops, only=("explore.answers",), explore=cut)["explore.answers"]
    assert result.status is Status.FAIL, result.message
    assert result.evidence["tried"]["shrinking_cut"] is True
    assert "after 0 shrinking requests" in result.message


def _braces(data):
    request = data.draw(requests(None))
    if any("{" in i for i in request.instructions):
        raise Mismatch(Finding(f"braces in {request.instructions!r}", ()))


def test_an_example_replayed_from_the_database_is_counted_and_keys_keep_runs_apart(tmp_path):
    cfg = ExploreConfig(seed=3, examples=200, database=tmp_path / "db")
    first = search(_braces, cfg, "candidate-a|weights|seed=3|explore.answers")
    again = search(_braces, cfg, "candidate-a|weights|seed=3|explore.answers")
    other = search(_braces, cfg, "candidate-a|weights|seed=4|explore.answers")
    assert first.finding is not None and first.replayed == 0
    assert again.replayed > 0 and again.finding.message == first.finding.message
    assert other.replayed == 0


class _Pipe:
    """A worker's pipe whose answers take ``answering`` seconds of the injected clock."""

    def __init__(self, clock_box, answering):
        self.clock_box, self.answering, self.sent = clock_box, answering, []

    def send(self, message):
        self.sent.append(message)

    def poll(self, timeout):
        if self.answering > timeout:
            self.clock_box[0] += timeout
            return False
        self.clock_box[0] += self.answering
        return True

    def recv(self):
        return ("ok", "answer")


def _worker(answering):
    now = [0.0]
    worker = Worker.__new__(Worker)
    Worker.__init__(worker, spec=None, clock=lambda: now[0])  # type: ignore[arg-type]
    worker._conn = _Pipe(now, answering)
    worker.stop = lambda: None  # nothing was started
    return worker, now


def test_the_allowance_counts_the_candidates_answering_time_not_the_gates():
    worker, now = _worker(answering=2.0)
    worker.allowance = 5.0
    worker.call("predict", {})
    now[0] += 1000.0  # the gate's own work between requests: not the candidate's time
    worker.call("predict", {})
    assert worker.allowance == pytest.approx(1.0)
    with pytest.raises(WorkerTimeout, match="no answer within 1s of its working time"):
        worker.call("predict", {})
