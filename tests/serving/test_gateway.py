"""Translation (pure) and transport (HTTP faults through `responses`; retries against a
real loopback server, since `responses` bypasses urllib3's)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
import requests
import responses

from harness.serving.gateway import (
    AnswerShape,
    ChatRequest,
    CompletionRequest,
    DeploymentsGatewayClient,
    GatewayError,
    LegacyGatewayClient,
    RetryPolicy,
    Transport,
    error_message,
    parse_completion,
)
from harness.serving.route import Secret
from harness.testing import contracts

URL = "http://gw.test"
QUERY = f"{URL}/gateway/r/invocations"
TOKEN = "dapi-secret-value-000"
CANDIDATES = {
    "candidates": [{"text": "hi", "metadata": {"finish_reason": "length"}}],
    "metadata": {"model": "m", "route_type": "llm/v1/completions", "input_tokens": 3},
}
CHOICES = {
    "object": "text_completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "text": "hi", "finish_reason": None}],
    "usage": {"prompt_tokens": None},
}


def test_both_answer_shapes_parse_into_one_result():
    legacy, current = parse_completion(CANDIDATES), parse_completion(CHOICES)
    assert legacy.texts == current.texts == ("hi",)
    assert (legacy.shape, current.shape) == (AnswerShape.CANDIDATES, AnswerShape.CHOICES)
    assert legacy.finish_reasons == ("length",) and legacy.usage == {"input_tokens": 3}


def test_a_chat_answer_parses_by_its_message_content():
    chat = {
        **CHOICES,
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
    }
    answer = parse_completion(chat)
    assert answer.texts == ("hi",) and answer.shape is AnswerShape.MESSAGES


def test_a_chat_request_sends_its_messages_and_only_the_settings_given():
    request = ChatRequest((("system", "Be brief."), ("user", "p")), temperature=0.0, max_tokens=5)
    assert request.body() == {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "p"}],
        "temperature": 0.0,
        "max_tokens": 5,
    }
    assert ChatRequest.user("p").body() == {"messages": [{"role": "user", "content": "p"}]}


@pytest.mark.parametrize("data", [[], {"foo": 1}, {"choices": [{"text": 3}]}, {"candidates": []}])
def test_unknown_shapes_are_gateway_errors(data):
    with pytest.raises(GatewayError):
        parse_completion(data, "r")


def test_request_body_names_the_candidate_count_per_api():
    request = CompletionRequest("p", 0.0, 5, ("\n",), 1)
    assert request.body(AnswerShape.CANDIDATES) == {
        "prompt": "p",
        "temperature": 0.0,
        "max_tokens": 5,
        "stop": ["\n"],
        "candidate_count": 1,
    }
    assert "n" in request.body(AnswerShape.CHOICES)
    assert CompletionRequest("p").body() == {"prompt": "p"}


def _client(retry=RetryPolicy(retries=0), token=None, sleeps=None):
    sleeps = [] if sleeps is None else sleeps
    return LegacyGatewayClient(Transport(URL, token, timeout_s=2, retry=retry, sleep=sleeps.append))


@pytest.fixture
def scripted_server():
    """A real HTTP server on loopback answering POSTs from a script of (status, headers,
    body): urllib3's retries run for real against it (`responses` bypasses them)."""
    script, seen = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(self.path)
            status, headers, body = script.pop(0) if script else (500, {}, {"detail": "empty"})
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}", script=script, seen=seen)
    finally:
        server.shutdown()
        server.server_close()


def test_retries_429_and_503_with_urllib3_backoff_then_succeeds(scripted_server):
    scripted_server.script[:] = [
        (429, {}, {"detail": "slow down"}),
        (503, {}, {"detail": "busy"}),
        (200, {}, CANDIDATES),
    ]
    sleeps = []
    client = LegacyGatewayClient(Transport(scripted_server.url, retry=RetryPolicy(2, 0.5), sleep=sleeps.append))
    assert client.query("r", CompletionRequest("p")).text == "hi"
    # urllib3's schedule: the first retry at once, then backoff * 2 ** (retries - 1).
    assert sleeps == [1.0] and len(scripted_server.seen) == 3


def test_retry_after_is_honoured_by_both_clients(scripted_server):
    scripted_server.script[:] = [
        (429, {"Retry-After": "3"}, {"detail": "slow down"}),
        (200, {}, CANDIDATES),
        (503, {"Retry-After": "2"}, {}),
        (200, {}, CHOICES),
    ]
    sleeps = []
    transport = Transport(scripted_server.url, retry=RetryPolicy(2, 0.1), sleep=sleeps.append)
    assert LegacyGatewayClient(transport).query("r", CompletionRequest("p")).text == "hi"
    assert DeploymentsGatewayClient(transport).query("r", CompletionRequest("p")).text == "hi"
    assert sleeps == [3.0, 2.0]
    assert scripted_server.seen == ["/gateway/r/invocations"] * 2 + ["/endpoints/r/invocations"] * 2


def test_retries_are_bounded(scripted_server):
    scripted_server.script[:] = [(429, {}, {"detail": "slow down"})] * 4
    with pytest.raises(GatewayError) as info:
        _client_at(scripted_server.url, RetryPolicy(retries=2, backoff_s=0)).query("r", CompletionRequest("p"))
    assert info.value.status == 429 and len(scripted_server.seen) == 3


def _client_at(url, retry):
    return LegacyGatewayClient(Transport(url, retry=retry, sleep=lambda s: None))


@responses.activate
def test_other_errors_are_not_retried_and_name_the_field():
    responses.post(
        QUERY,
        status=422,
        json={"detail": [{"loc": ["body", "temperature"], "msg": "Input should be less than or equal to 2"}]},
    )
    with pytest.raises(GatewayError) as info:
        _client(RetryPolicy(retries=3, backoff_s=0)).query("r", CompletionRequest("p", 3.0))
    assert info.value.status == 422 and "temperature" in info.value.message
    assert info.value.route == "r" and len(responses.calls) == 1


@pytest.mark.parametrize(
    ("profile", "case", "message"),
    [
        ("legacy", "query-temperature-1.5", "temperature: ensure this value is less than or equal to 1"),
        ("legacy-pydantic2", "query-temperature-1.5", "temperature: Input should be less than or equal to 1"),
        ("legacy", "query-empty-body", "body: field required"),
        ("legacy-pydantic2", "query-empty-body", "body: Field required"),
        ("legacy-pydantic2", "query-stop-numbers", "stop.0: Input should be a valid string"),
    ],
)
def test_a_recorded_refusal_reads_as_field_and_reason_under_either_pydantic(profile, case, message):
    recorded = next(i for i in contracts.load(profile) if i.case == case).response
    answer = requests.Response()
    answer.status_code, answer._content = recorded.status, json.dumps(recorded.body).encode()
    assert error_message(answer) == message


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
