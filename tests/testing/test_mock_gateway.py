"""The `responses` mock of the gateway: CRUD and auth (databricks profile), faults,
model-backed answers. Its fidelity to the real servers is tests/testing/test_contracts.py."""

from types import SimpleNamespace

import pandas as pd
import pytest

from harness.serving.gateway import (
    NO_RETRY,
    ChatRequest,
    CompletionRequest,
    DeploymentsGatewayClient,
    GatewayError,
    LegacyGatewayClient,
    RetryPolicy,
    Transport,
)
from harness.testing.mock_gateway import Fault
from harness.serving.route import RouteSpec, Secret, seed_route
from harness.model.signature import GATEWAY

ROUTE = "completions-mpt-7b-instruct"


_DATABRICKS = pytest.mark.parametrize("mock_gateway", ["databricks"], indirect=True)


def _client(gateway, token="mock-token", retry=NO_RETRY, timeout_s=5.0):
    secret = Secret(token, "$MOCK_TOKEN") if token else None
    return LegacyGatewayClient(Transport(gateway.base_url, secret, timeout_s, retry, sleep=lambda s: None))


def test_query_is_answered_by_the_model_in_process(mock_gateway, candidate):
    result = _client(mock_gateway).query(ROUTE, CompletionRequest("What is MLflow?", 0.0, 6))
    direct = candidate.predict(
        pd.DataFrame({"prompt": ["What is MLflow?"]}), params={"temperature": 0.0, "max_tokens": 6}
    )
    assert result.shape.value == "candidates" and result.texts == tuple(direct)
    assert result.model == "mpt-7b-instruct"


@_DATABRICKS
def test_crud_with_paging(mock_gateway, monkeypatch):
    monkeypatch.setenv("MOCK_DATABRICKS_TOKEN", "dapi-xyz")
    client = _client(mock_gateway)
    routes = [
        RouteSpec.from_dict(
            {
                "name": f"r{i}",
                "route_type": "llm/v1/completions",
                "model": {
                    "name": "e",
                    "provider": "databricks-model-serving",
                    "config": {
                        "databricks_api_token": "$MOCK_DATABRICKS_TOKEN",
                        "databricks_workspace_url": "https://w.example",
                    },
                },
            }
        )
        for i in range(4)
    ]
    for route in routes:
        client.create_route(route)
    with pytest.raises(GatewayError) as info:
        client.create_route(routes[0])
    assert info.value.status == 400 and "already exists" in info.value.message
    names = sorted(r["name"] for r in client.list_routes())
    assert names == sorted([ROUTE, "r0", "r1", "r2", "r3"])  # 5 routes over 3 pages
    client.delete_route("r1")
    with pytest.raises(GatewayError) as info:
        client.get_route("r1")
    assert info.value.status == 404
    assert "dapi-xyz" not in str(client.get_route("r0"))


@_DATABRICKS
def test_bad_token_is_401(mock_gateway):
    with pytest.raises(GatewayError) as info:
        _client(mock_gateway, token="wrong").query(ROUTE, CompletionRequest("x"))
    assert info.value.status == 401 and "wrong" not in str(info.value)


def test_unknown_route_is_404(mock_gateway):
    with pytest.raises(GatewayError) as info:
        _client(mock_gateway).query("nope", CompletionRequest("x"))
    assert info.value.status == 404


@pytest.mark.parametrize(
    "body, field",
    [
        (CompletionRequest("x", temperature=1.5), "temperature"),  # legacy: 0-1
        (CompletionRequest("x", max_tokens=0), "max_tokens"),
    ],
)
def test_invalid_payload_is_422_naming_the_field(mock_gateway, body, field):
    with pytest.raises(GatewayError) as info:
        _client(mock_gateway).query(ROUTE, body)
    assert info.value.status == 422 and field in info.value.message


@pytest.mark.parametrize("mock_gateway", ["legacy", "legacy-pydantic2"], indirect=True)
def test_the_open_source_profiles_have_no_route_writes_and_ignore_tokens(mock_gateway):
    client = _client(mock_gateway, token="anything")
    assert client.query(ROUTE, CompletionRequest("x", 0.0, 2)).texts  # no 401
    with pytest.raises(GatewayError) as info:
        client.delete_route(ROUTE)
    assert info.value.status == 405


@pytest.mark.parametrize("mock_gateway", ["legacy", "legacy-pydantic2", "current"], indirect=True)
def test_a_path_with_its_slash_flipped_is_redirected_and_clients_follow(mock_gateway):
    import requests

    routes = "/api/2.0/gateway/routes"
    answer = requests.get(mock_gateway.base_url + routes + "?page_token=x", allow_redirects=False)
    assert answer.status_code == 307 and answer.headers["Location"].endswith(routes + "/?page_token=x")
    assert [r["name"] for r in _client(mock_gateway).list_routes()] == [ROUTE]  # through the 307
    gone = requests.get(mock_gateway.base_url + routes + "/a/b", allow_redirects=False)
    assert gone.status_code == 404 and gone.json() == {"detail": "Not Found"}  # neither form exists


def test_model_rejection_is_400_naming_the_field(mock_gateway):
    with pytest.raises(GatewayError) as info:
        _client(mock_gateway).query(ROUTE, CompletionRequest("x", 0.0, 100_000))
    assert info.value.status == 400 and "max_tokens" in info.value.message


def test_a_model_returning_a_bare_string_is_502(mock_gateway):
    bare = SimpleNamespace(
        metadata=SimpleNamespace(signature=GATEWAY), predict=lambda data, params=None: "a bare string"
    )
    mock_gateway.serve_model("bare", bare)
    mock_gateway.add_route(
        RouteSpec(ROUTE + "-bare", "bare", "mlflow-model-serving", seed_route("http://127.0.0.1:1").config)
    )
    with pytest.raises(GatewayError) as info:
        _client(mock_gateway).query(ROUTE + "-bare", CompletionRequest("x"))
    assert info.value.status == 502


@pytest.mark.parametrize("status", [429, 500, 503])
def test_injected_status_without_retry(mock_gateway, status):
    mock_gateway.inject(Fault(status=status))
    with pytest.raises(GatewayError) as info:
        _client(mock_gateway).query(ROUTE, CompletionRequest("x", 0.0, 2))
    assert info.value.status == status


def test_injected_429_is_retried_to_success(mock_gateway):
    mock_gateway.inject(Fault(status=429, times=2))
    client = _client(mock_gateway, retry=RetryPolicy(retries=2, backoff_s=0))
    assert client.query(ROUTE, CompletionRequest("x", 0.0, 2)).texts
    assert len(mock_gateway.requests) == 3


def test_slow_answers_within_and_beyond_the_timeout(mock_gateway):
    waited = []
    mock_gateway._sleep = waited.append
    mock_gateway.inject(Fault(delay_s=0.5))
    assert _client(mock_gateway, timeout_s=1).query(ROUTE, CompletionRequest("x", 0.0, 2)).texts
    mock_gateway.inject(Fault(delay_s=5))
    with pytest.raises(GatewayError, match="no answer within 1s"):
        _client(mock_gateway, timeout_s=1).query(ROUTE, CompletionRequest("x", 0.0, 2))
    assert waited == [0.5, 1]


def test_malformed_json_and_connection_refused(mock_gateway):
    mock_gateway.inject(Fault(malformed=True))
    with pytest.raises(GatewayError, match="malformed JSON"):
        _client(mock_gateway).query(ROUTE, CompletionRequest("x"))
    mock_gateway.inject(Fault(connection_refused=True))
    with pytest.raises(GatewayError, match="cannot connect"):
        _client(mock_gateway).query(ROUTE, CompletionRequest("x"))


def test_an_injected_status_can_carry_retry_after(mock_gateway):
    import requests as http

    mock_gateway.inject(Fault(status=429, retry_after=2.5))
    response = http.post(f"{mock_gateway.base_url}/gateway/{ROUTE}/invocations", json={"prompt": "x"})
    assert response.status_code == 429 and response.headers["Retry-After"] == "2.5"


_CURRENT = pytest.mark.parametrize("mock_gateway", ["current"], indirect=True)


def _chat_route(gateway):
    from dataclasses import replace

    from harness.serving.route import RouteType

    route = replace(seed_route("http://127.0.0.1:1"), name="chat-mpt", route_type=RouteType.CHAT)
    gateway.add_route(route)
    return route


@_CURRENT
def test_a_chat_route_sends_its_one_message_s_content_as_the_model_s_prompt(mock_gateway, candidate):
    _chat_route(mock_gateway)
    client = DeploymentsGatewayClient(Transport(mock_gateway.base_url, retry=NO_RETRY))
    answer = client.query("chat-mpt", ChatRequest.user("What is MLflow?", temperature=0.0, max_tokens=6))
    direct = candidate.predict(
        pd.DataFrame({"prompt": ["What is MLflow?"]}), params={"temperature": 0.0, "max_tokens": 6}
    )
    assert answer.shape.value == "messages" and answer.texts == tuple(direct)


@_CURRENT
def test_a_chat_route_refuses_several_messages_with_the_gateway_s_422(mock_gateway):
    _chat_route(mock_gateway)
    client = DeploymentsGatewayClient(Transport(mock_gateway.base_url, retry=NO_RETRY))
    with pytest.raises(GatewayError) as error:
        client.query("chat-mpt", ChatRequest((("system", "Be brief."), ("user", "Hi.")), max_tokens=2))
    assert error.value.status == 422 and "single query at a time" in error.value.message


@pytest.mark.parametrize("mock_gateway", ["legacy", "legacy-pydantic2"], indirect=True)
def test_the_legacy_gateway_answers_a_chat_route_with_message_candidates(mock_gateway, candidate):
    _chat_route(mock_gateway)
    answer = _client(mock_gateway).query("chat-mpt", ChatRequest.user("What is MLflow?", temperature=0.0, max_tokens=6))
    direct = candidate.predict(
        pd.DataFrame({"prompt": ["What is MLflow?"]}), params={"temperature": 0.0, "max_tokens": 6}
    )
    assert answer.shape.value == "candidates" and answer.texts == tuple(direct)
