"""Translation (pure) and transport (HTTP faults through `responses`)."""

import pytest
import requests
import responses

from harness.serving.gateway import (
    AnswerShape,
    CompletionRequest,
    GatewayError,
    LegacyGatewayClient,
    RetryPolicy,
    Transport,
    parse_completion,
)
from harness.serving.route import Secret

URL = "http://gw.test"
QUERY = f"{URL}/gateway/r/invocations"
TOKEN = "dapi-secret-value-000"
CANDIDATES = {"candidates": [{"text": "hi", "metadata": {"finish_reason": "length"}}],
              "metadata": {"model": "m", "route_type": "llm/v1/completions", "input_tokens": 3}}
CHOICES = {"object": "text_completion", "created": 1, "model": "m",
           "choices": [{"index": 0, "text": "hi", "finish_reason": None}],
           "usage": {"prompt_tokens": None}}


def test_both_answer_shapes_parse_into_one_result():
    legacy, current = parse_completion(CANDIDATES), parse_completion(CHOICES)
    assert legacy.texts == current.texts == ("hi",)
    assert (legacy.shape, current.shape) == (AnswerShape.CANDIDATES, AnswerShape.CHOICES)
    assert legacy.finish_reasons == ("length",) and legacy.usage == {"input_tokens": 3}


@pytest.mark.parametrize("data", [[], {"foo": 1}, {"choices": [{"text": 3}]}, {"candidates": []}])
def test_unknown_shapes_are_gateway_errors(data):
    with pytest.raises(GatewayError):
        parse_completion(data, "r")


def test_request_body_names_the_candidate_count_per_api():
    request = CompletionRequest("p", 0.0, 5, ("\n",), 1)
    assert request.body(AnswerShape.CANDIDATES) == {"prompt": "p", "temperature": 0.0,
                                                    "max_tokens": 5, "stop": ["\n"],
                                                    "candidate_count": 1}
    assert "n" in request.body(AnswerShape.CHOICES)
    assert CompletionRequest("p").body() == {"prompt": "p"}


def _client(retry=RetryPolicy(retries=0), token=None, sleeps=None):
    sleeps = [] if sleeps is None else sleeps
    return LegacyGatewayClient(Transport(URL, token, timeout_s=2, retry=retry, sleep=sleeps.append))


@responses.activate
def test_retries_429_and_503_with_backoff_then_succeeds():
    responses.post(QUERY, status=429, json={"detail": "slow down"})
    responses.post(QUERY, status=503, json={"detail": "busy"})
    responses.post(QUERY, json=CANDIDATES)
    sleeps = []
    result = _client(RetryPolicy(retries=2, backoff_s=0.5), sleeps=sleeps).query("r", CompletionRequest("p"))
    assert result.text == "hi" and sleeps == [0.5, 1.0] and len(responses.calls) == 3


@responses.activate
def test_retries_are_bounded():
    responses.post(QUERY, status=429, json={"detail": "slow down"})
    with pytest.raises(GatewayError) as info:
        _client(RetryPolicy(retries=2, backoff_s=0)).query("r", CompletionRequest("p"))
    assert info.value.status == 429 and len(responses.calls) == 3


@responses.activate
def test_other_errors_are_not_retried_and_name_the_field():
    responses.post(QUERY, status=422, json={"detail": [
        {"loc": ["body", "temperature"], "msg": "Input should be less than or equal to 2"}]})
    with pytest.raises(GatewayError) as info:
        _client(RetryPolicy(retries=3, backoff_s=0)).query("r", CompletionRequest("p", 3.0))
    assert info.value.status == 422 and "temperature" in info.value.message
    assert info.value.route == "r" and len(responses.calls) == 1


@responses.activate
def test_timeouts_connection_errors_and_malformed_json_are_typed():
    responses.post(QUERY, body=requests.ReadTimeout("slow"))
    with pytest.raises(GatewayError, match="no answer within 2s"):
        _client().query("r", CompletionRequest("p"))
    responses.replace(responses.POST, QUERY, body=requests.ConnectionError("refused"))
    with pytest.raises(GatewayError, match="cannot connect"):
        _client().query("r", CompletionRequest("p"))
    responses.replace(responses.POST, QUERY, body="{not json", status=200)
    with pytest.raises(GatewayError, match="malformed JSON"):
        _client().query("r", CompletionRequest("p"))


@responses.activate
def test_bearer_token_is_sent_but_never_shown():
    responses.post(QUERY, status=401, json={"detail": "Invalid access token"})
    client = _client(token=Secret(TOKEN, "$DATABRICKS_TOKEN"))
    with pytest.raises(GatewayError) as info:
        client.query("r", CompletionRequest("p"))
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(info.value) + repr(client.transport) + repr(info.value)


def test_bad_retry_and_timeout_settings_name_the_field():
    with pytest.raises(ValueError, match="retries"):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError, match="timeout_s"):
        Transport(URL, timeout_s=0)
