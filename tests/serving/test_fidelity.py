"""The cases the mock and the real MLflow AI Gateway share, run against both, so the
mock cannot drift from the real thing unnoticed."""

from types import SimpleNamespace

import pandas as pd
import pytest

from harness.serving.gateway import NO_RETRY, CompletionRequest, GatewayError, LegacyGatewayClient, Transport
from harness.testing.mock_gateway import MockGateway
from harness.serving.route import RouteSpec, Secret, seed_route
from harness.model.signature import GATEWAY

PROMPT = "What is MLflow?"


@pytest.fixture(params=["mock", pytest.param("real", marks=[pytest.mark.slow, pytest.mark.xdist_group("loopback")])])
def backend(request, candidate):
    """A legacy-API client and the route names, for the mock or the real loopback gateway."""
    if request.param == "real":
        loopback = request.getfixturevalue("loopback")
        yield SimpleNamespace(
            client=LegacyGatewayClient(Transport(loopback.url, retry=NO_RETRY)), routes=loopback.routes
        )
        return
    bare = SimpleNamespace(
        metadata=SimpleNamespace(signature=GATEWAY),
        predict=lambda data, params=None: candidate.predict(data, params)[0],
    )
    with MockGateway() as mock:
        mock.serve_model("mpt-7b-instruct", candidate)
        mock.serve_model("model-bare", bare)
        mock.add_route(seed_route("http://127.0.0.1:1"))
        mock.add_route(
            RouteSpec("completions-bare", "model-bare", "mlflow-model-serving", seed_route("http://127.0.0.1:1").config)
        )
        yield SimpleNamespace(
            client=LegacyGatewayClient(Transport(mock.base_url, Secret(mock.token, "$MOCK_TOKEN"), retry=NO_RETRY)),
            routes={"reference": "completions-mpt-7b-instruct", "bare": "completions-bare"},
        )


def test_query_answers_one_candidate_equal_to_the_model(backend, candidate):
    result = backend.client.query(backend.routes["reference"], CompletionRequest(PROMPT, 0.0, 8))
    direct = candidate.predict(pd.DataFrame({"prompt": [PROMPT]}), params={"temperature": 0.0, "max_tokens": 8})
    assert list(result.texts) == direct


@pytest.mark.parametrize(
    "request_, field",
    [
        (CompletionRequest(PROMPT, temperature=5.0), "temperature"),
        (CompletionRequest(PROMPT, temperature=-1.0), "temperature"),
        (CompletionRequest(PROMPT, max_tokens=0), "max_tokens"),
        (CompletionRequest(PROMPT, 0.0, max_tokens=100_000), "max_tokens"),
    ],
)
def test_bad_payload_is_4xx_naming_the_field(backend, request_, field):
    with pytest.raises(GatewayError) as info:
        backend.client.query(backend.routes["reference"], request_)
    assert 400 <= info.value.status < 500 and field in info.value.message


def test_unknown_route_is_404(backend):
    with pytest.raises(GatewayError) as info:
        backend.client.query("no-such-route", CompletionRequest(PROMPT))
    assert info.value.status == 404


def test_a_bare_string_model_answer_is_502(backend):
    with pytest.raises(GatewayError) as info:
        backend.client.query(backend.routes["bare"], CompletionRequest(PROMPT, 0.0, 4))
    assert info.value.status == 502
