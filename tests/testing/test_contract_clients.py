"""Both clients against both sides of each recorded contract: what a caller gets from the
recorded real answer (served back by `responses`) equals what it gets from the mock: the
same Completion, or the same GatewayError status and message, with the field named for
pydantic's 422 lists."""

import json
from dataclasses import replace

import pytest
import responses

from harness.serving.gateway import (
    NO_RETRY,
    AnswerShape,
    ChatRequest,
    CompletionRequest,
    DeploymentsGatewayClient,
    GatewayError,
    LegacyGatewayClient,
    Transport,
)
from harness.serving.route import RouteType, seed_route
from harness.testing import contracts
from harness.testing.mock_gateway import MockGateway

BASE = "http://gateway.mock"
_CLIENTS = {
    "legacy": (LegacyGatewayClient, AnswerShape.CANDIDATES, "candidate_count"),
    "legacy-pydantic2": (LegacyGatewayClient, AnswerShape.CANDIDATES, "candidate_count"),
    "current": (DeploymentsGatewayClient, AnswerShape.CHOICES, "n"),
}


def _as_request(interaction, shape, count_field):
    """The CompletionRequest whose body is exactly the recorded one, if there is one."""
    if interaction.request.headers.get("Content-Type") != "application/json":
        return None  # the clients always send JSON
    try:
        body = json.loads(interaction.request.body or "")
    except ValueError:
        return None
    if isinstance(body, dict) and "messages" in body:
        return _as_chat_request(body, shape)
    if (
        not isinstance(body, dict)
        or "prompt" not in body
        or set(body) - {"prompt", "temperature", "max_tokens", "stop", count_field}
    ):
        return None
    stop = body.get("stop")
    request = CompletionRequest(
        body["prompt"],
        body.get("temperature"),
        body.get("max_tokens"),
        tuple(stop) if isinstance(stop, list) else stop,
        body.get(count_field),
    )
    return request if request.body(shape) == body else None


def _as_chat_request(body, shape):
    """The ChatRequest whose body is exactly the recorded chat body, if there is one."""
    messages = body["messages"]
    if set(body) - {"messages", "temperature", "max_tokens", "stop"} or not isinstance(messages, list):
        return None
    if not all(isinstance(m, dict) and set(m) == {"role", "content"} for m in messages):
        return None
    stop = body.get("stop")
    request = ChatRequest(
        tuple((m["role"], m["content"]) for m in messages),
        body.get("temperature"),
        body.get("max_tokens"),
        tuple(stop) if isinstance(stop, list) else stop,
    )
    return request if request.body(shape) == body else None


def _outcome(client, route, request):
    try:
        completion = client.query(route, request)
    except GatewayError as error:
        return ("error", error.status, error.message)
    # Sampled text differs run to run; at temperature 0 it must be the same text.
    texts = completion.texts if request.temperature == 0 else len(completion.texts)
    return ("completion", completion.shape, texts)


def _from_recording(interaction, client_type, route, request):
    with responses.RequestsMock() as mock:
        mock.add(
            interaction.request.method,
            BASE + interaction.request.path,
            status=interaction.response.status,
            content_type=interaction.response.content_type,
            body=interaction.response.body
            if isinstance(interaction.response.body, str)
            else json.dumps(interaction.response.body),
        )
        return _outcome(client_type(Transport(BASE, retry=NO_RETRY)), route, request)


@pytest.mark.parametrize("profile", list(contracts.RECORDINGS))
def test_each_client_gets_the_same_outcome_from_the_recording_and_the_mock(profile, candidate, record_property):
    client_type, shape, count_field = _CLIENTS[profile]
    compared, differ = 0, []
    with MockGateway(profile=profile, base_url=BASE) as mock:
        mock.serve_model("mpt-7b-instruct", candidate)
        mock.add_route(seed_route("http://127.0.0.1:1"))
        mock.add_route(replace(seed_route("http://127.0.0.1:1"), name=contracts.CHAT_ROUTE, route_type=RouteType.CHAT))
        client = client_type(Transport(BASE, retry=NO_RETRY))
        for interaction in contracts.load(profile):
            query_path = interaction.request.path.endswith("/invocations") and interaction.request.path.startswith(
                "/gateway/" if profile.startswith("legacy") else "/endpoints/"
            )
            request = _as_request(interaction, shape, count_field) if query_path else None
            if request is None:
                continue
            route = interaction.request.path.split("/")[-2]
            got = _outcome(client, route, request)
            compared += 1
            if got != (want := _from_recording_outside(mock, interaction, client_type, route, request)):
                differ.append(f"{interaction.case}: mock {got} != recording {want}")
            detail = interaction.response.body["detail"] if want[0] == "error" else None
            if want[1] == 422 and isinstance(detail, list):  # the field and pydantic's reason, either shape
                error = detail[0]
                assert len(error["loc"]) < 2 or str(error["loc"][1]) in want[2], (interaction.case, want)
                assert error["msg"] in want[2], (interaction.case, want)
    record_property(
        "measured",
        f"{profile}: {client_type.__name__} outcome equal on {compared - len(differ)} of {compared} recorded queries",
    )
    assert compared >= 25 and not differ, differ


def _from_recording_outside(mock, interaction, client_type, route, request):
    mock._mock.stop()  # one `responses` mock at a time
    try:
        return _from_recording(interaction, client_type, route, request)
    finally:
        mock._mock.start()
