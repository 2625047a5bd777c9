"""The exploration's parts: the oracle on the reference, the strategies, the search with its
seed and shrinking, the reproducer, and the explore checks judged in process."""

import json
import math
import sys
from types import SimpleNamespace

import pytest
from hypothesis import given, settings

from _judge import judge  # noqa: F401  (judge is a fixture)
from harness.gate.checks.registry import GateContext
from harness.gate.explore.oracle import Oracle
from harness.gate.reference import ReferenceAnswers
from harness.gate.tolerance import Rule
from harness.gate.explore.reproducer import curl_lines, evidence, python_snippet
from harness.gate.explore.requests import Observed, ExploreRequest, Step
from harness.gate.explore.search import ExploreConfig, Finding, Mismatch, search
from harness.gate.explore.strategies import Limits, requests
from harness.gate.report import CheckResult, Status
from harness.gate.runner import run_check
from harness.gate.worker import CandidateError, WorkerTimeout
from harness.model.generation import Generator
from harness.model.loading import LoadConfig, load_tokenizer
from harness.gate.checks import CHECKS
from harness.model.signature import GATEWAY

_DOCUMENTED = CandidateError("MlflowException", "temperature=3 is invalid", "INVALID_PARAMETER_VALUE", 400)


@pytest.fixture(scope="module")
def oracle(tiny_snapshot):
    generator = Generator.from_pretrained(str(tiny_snapshot), LoadConfig(device="cpu", dtype="float32"))
    return Oracle(ReferenceAnswers(generator, Rule(exact=True)))


def test_the_reference_answer_passes_and_any_other_text_fails_naming_both(oracle):
    request = ExploreRequest(("Name a colour.",), 0.0, 6)
    right = oracle.greedy_text("Name a colour.", 6)
    assert oracle.judge(request, Observed(answers=(right,)))[0] is None
    why, expected = oracle.judge(request, Observed(answers=(right + "x",)))
    assert "row 0" in why and repr(right[:80]) in why and right[:20] in expected


def test_greedy_ids_for_fewer_tokens_are_a_prefix_of_more(oracle):
    long = oracle.reference.trace("What is MLflow?", 9).ids
    assert oracle.reference.trace("What is MLflow?", 4).ids == long[:4]


def test_both_stop_semantics_are_accepted_and_a_kept_stop_is_not(oracle):
    full = oracle.greedy_text("Explain the KV cache.", 12)
    stop = (full[3:5],)
    request = ExploreRequest(("Explain the KV cache.",), 0.0, 12, stop)
    cut = full[: full.find(stop[0])]
    assert oracle.judge(request, Observed(answers=(cut,)))[0] is None
    kept = full[: full.find(stop[0]) + len(stop[0])]
    assert oracle.judge(request, Observed(answers=(kept,)))[0] is not None


def test_a_rejection_must_be_the_documented_kind(oracle):
    bad = ExploreRequest(("Name a colour.",), 3.0, 4)
    assert oracle.judge(bad, Observed(error=_DOCUMENTED))[0] is None
    why, expected = oracle.judge(bad, Observed(error=CandidateError("ValueError", "temperature")))
    assert "ValueError" in why and "INVALID_PARAMETER_VALUE" in why and "temperature" in expected
    assert "accepted a request the reference rejects" in oracle.judge(bad, Observed(answers=("hi",)))[0]


def test_a_valid_boundary_refused_fails_and_a_blank_instruction_may_go_either_way(oracle):
    top = ExploreRequest(("Name a colour.",), 2.0, 3)
    assert "refused" in oracle.judge(top, Observed(error=_DOCUMENTED))[0]
    blank = ExploreRequest(("  ",), 0.0, 3)
    assert oracle.judge(blank, Observed(answers=("anything",)))[0] is None
    assert oracle.judge(blank, Observed(error=_DOCUMENTED))[0] is None
    assert oracle.judge(blank, Observed(error=CandidateError("IndexError", "x")))[0] is not None


@given(requests(Limits(near={1: "near limit"}, too_long="too long")))
@settings(max_examples=60, deadline=None)
def test_every_drawn_request_is_a_json_body_the_gateway_could_send(request):
    body = json.loads(json.dumps(request.body(), allow_nan=False))
    assert body["inputs"] == list(request.instructions) and 1 <= len(body["inputs"]) <= 4
    assert set(body["params"]) <= {"temperature", "max_tokens", "stop"}
    assert math.isfinite(body["params"]["temperature"])


@pytest.mark.parametrize("field, value", [("seed", -1), ("examples", 0), ("steps", 51), ("sequences", True)])
def test_explore_settings_out_of_range_are_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"explore {field}=.*allowed an integer in"):
        ExploreConfig(**{field: value})


def test_a_failure_shrinks_and_the_same_seed_finds_the_same_one():
    seen = []

    def body(data):
        request = data.draw(requests(None))
        seen.append(request)
        if any("{" in i for i in request.instructions):
            raise Mismatch(Finding(f"braces in {request.instructions!r}", ()))

    cfg = ExploreConfig(seed=3, examples=200)
    first = search(body, cfg, "test-braces")
    again = search(body, cfg, "test-braces")
    assert first.finding is not None and first.finding.message == again.finding.message
    shrunk = seen[-1]  # hypothesis replays the smallest failure last
    assert len(shrunk.instructions) == 1 and len(shrunk.instructions[0]) <= 6
    assert first.finding.message == f"braces in {shrunk.instructions!r}"


def test_a_reproducer_is_runnable_python_and_curl_with_every_body_in_order(monkeypatch, capsys):
    first = ExploreRequest(("It's {name} and 100%",), 0.0, 3, ("\n",))
    second = ExploreRequest(("Ünïcode \\d+ $HOME",), 2.0, 1)
    finding = Finding("x", tuple(Step(r, r.body(), "got", "want") for r in (first, second)))
    snippet = python_snippet(finding, "models:/m/1", "sqlite:///x.db")
    asked = []

    class _Model:
        metadata = SimpleNamespace(signature=GATEWAY)

        def predict(self, data, params=None):
            asked.append((data["prompt"].tolist(), params))
            return ["ok"]

    fake = SimpleNamespace(
        set_tracking_uri=lambda uri: asked.append(uri),
        pyfunc=SimpleNamespace(load_model=lambda uri: asked.append(uri) or _Model()),
    )
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    exec(compile(snippet, "reproducer", "exec"), {})
    assert asked[:2] == ["sqlite:///x.db", "models:/m/1"]
    assert [a[0] for a in asked[2:]] == [list(first.instructions), list(second.instructions)]
    assert asked[2][1]["stop"] == ["\n"] and asked[3][1]["temperature"] == 2.0
    assert len(curl_lines(finding)) == 2 and "It'\"'\"'s" in curl_lines(finding)[0]
    kept = CheckResult("explore.answers", Status.FAIL, "m", evidence(finding, None, None))
    assert kept.evidence["reproducer"]["bodies"] == [first.body(), second.body()]


class _Hangs:
    """A candidate whose worker runs out of time on its first request."""

    def predict(self, payload):
        raise WorkerTimeout("the candidate hung: no answer within 1s while answering predict")

    def seed(self, value):
        pass

    def reset(self, script=None):
        pass

    def calls(self):
        return []


def test_a_worker_timeout_inside_a_check_that_catches_exceptions_is_an_error_not_a_fail(tiny_snapshot):
    ctx = GateContext(
        candidate=_Hangs(),
        serve=False,
        signature=None,
        snapshot=tiny_snapshot,
        tokenizer=load_tokenizer(str(tiny_snapshot)),
    )
    result = run_check(CHECKS["params.invalid"], ctx, timeout=5)
    assert result.status is Status.ERROR and "the candidate hung" in result.message
