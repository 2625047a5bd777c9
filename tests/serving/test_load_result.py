"""LoadResult's statistics and run_load's argument validation, without servers (the
gateway is a `responses` mock; the real one is in test_load.py)."""

import json
import math
import re

import numpy as np
import pytest
import responses

from harness.serving.load import LoadResult, Sample, run_load

URL = "http://gw.test"
INVOCATIONS = re.compile(re.escape(URL) + r"/.*/invocations$")
PROMPTS = ("one", "two", "three")


def _result(latencies_ms, oks=None, answers=None, expected=None, elapsed_s=2.0):
    oks = oks or [True] * len(latencies_ms)
    answers = answers or ["a"] * len(latencies_ms)
    samples = tuple(
        Sample(i % len(PROMPTS), ms / 1000, ok, 200 if ok else 503, answer if ok else "busy")
        for i, (ms, ok, answer) in enumerate(zip(latencies_ms, oks, answers))
    )
    return LoadResult(PROMPTS, samples, elapsed_s, 2, expected)


def test_percentiles_are_numpy_percentiles_of_answered_requests_in_ms():
    latencies = [float(ms) for ms in range(1, 101)]
    result = _result(latencies + [5000.0], oks=[True] * 100 + [False])
    stats = result.percentiles()
    assert stats["p50"] == pytest.approx(np.percentile(latencies, 50))
    assert stats["p90"] == pytest.approx(np.percentile(latencies, 90))
    assert stats["p99"] == pytest.approx(np.percentile(latencies, 99))
    assert stats["max"] == pytest.approx(100.0)  # the failed 5 s request is not a latency


def test_counts_throughput_failures_and_summary():
    result = _result([10, 20, 30, 40], oks=[True, False, True, True], elapsed_s=2.0)
    assert result.requests == 4 and result.throughput == pytest.approx(2.0)
    assert [s.status for s in result.failures] == [503]
    summary = result.summary()
    assert "4 requests" in summary and "2.0 req/s" in summary and "p50 30.0 ms" in summary
    assert "1 failures" in summary and "0 mismatches" in summary


def test_mismatches_compare_each_answer_with_its_own_prompt():
    # prompts cycle 0, 1, 2, 0: the last answer belongs to prompt 0 but carries prompt 1's
    result = _result([1, 1, 1, 1], answers=["A", "B", "C", "B"], expected=("A", "B", "C"))
    assert [(s.prompt, s.answer) for s in result.mismatches] == [(0, "B")]
    assert _result([1], answers=["x"]).mismatches == []  # nothing expected, nothing judged


def test_no_answered_request_has_no_percentiles():
    result = _result([10, 20], oks=[False, False])
    assert result.percentiles() == {} and "no answered request" in result.summary()


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"duration_s": 0}, "duration_s"),
        ({"duration_s": -1.0}, "duration_s"),
        ({"duration_s": math.nan}, "duration_s"),
        ({"duration_s": math.inf}, "duration_s"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 65}, "concurrency"),
        ({"concurrency": 2.0}, "concurrency"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"prompts": []}, "prompts"),
        ({"prompts": "one"}, "prompts"),
        ({"prompts": ["a", "a"]}, "prompts"),
        ({"prompts": ["a", ""]}, "prompts"),
        ({"expected": {"one": "x"}}, "expected"),
        ({"expected": ["x"]}, "expected"),
    ],
)
def test_invalid_arguments_name_the_field_and_the_allowed_range(kwargs, field):
    arguments = {"prompts": PROMPTS, "duration_s": 0.1, "concurrency": 2, **kwargs}
    with pytest.raises(ValueError, match=rf"^{field}\b.*allowed") as error:
        run_load(URL, "r", **arguments)
    if field == "concurrency":
        assert "1-64" in str(error.value)


def _echo(request):
    body = json.loads(request.body)
    assert body["temperature"] == 0.0 and body["max_tokens"] == 3
    answer = {"choices": [{"index": 0, "text": body["prompt"].upper(), "finish_reason": None}]}
    return 200, {"Content-Type": "application/json"}, json.dumps(answer)


@responses.activate
def test_workers_cycle_through_every_prompt_and_answers_are_checked():
    responses.add_callback(responses.POST, INVOCATIONS, callback=_echo)
    expected = {p: p.upper() for p in PROMPTS} | {"two": "wrong"}
    result = run_load(URL, "r", PROMPTS, expected, duration_s=0.3, concurrency=3, max_tokens=3)
    assert result.requests >= 3 and not result.failures
    assert {s.prompt for s in result.samples} == {0, 1, 2}
    assert result.mismatches and {s.prompt for s in result.mismatches} == {1}
    assert result.percentiles()["max"] > 0  # how long it ran is a benchmark's question


@responses.activate
def test_gateway_errors_are_failures_with_their_status():
    responses.post(INVOCATIONS, status=422, json={"detail": "max_tokens: too large"})
    result = run_load(URL, "r", PROMPTS, duration_s=0.2, concurrency=2, max_tokens=3)
    assert result.requests >= 2 and len(result.failures) == result.requests
    assert {s.status for s in result.failures} == {422} and result.percentiles() == {}
