"""Step 8: the route-backed model against the mock gateway, including every fault."""

from types import SimpleNamespace

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from harness.testing.mock_gateway import Fault
from harness.serving.route_model import RouteBackedModel, RouteModelConfig

ROUTE = "completions-mpt-7b-instruct"


def pytest_generate_tests(metafunc):
    # A route model calls a hosted gateway with a token: the databricks profile checks it.
    if "mock_gateway" in metafunc.fixturenames:
        metafunc.parametrize("mock_gateway", ["databricks"], indirect=True)


@pytest.fixture
def route_model(mock_gateway, monkeypatch):
    monkeypatch.setenv("MOCK_GATEWAY_TOKEN", mock_gateway.token)
    model = RouteBackedModel()
    model.load_context(
        SimpleNamespace(
            model_config={
                "gateway_url": mock_gateway.base_url,
                "route": ROUTE,
                "token_env": "$MOCK_GATEWAY_TOKEN",
                "template": "Answer briefly: {prompt}",
                "retries": 0,
                "timeout_s": 2,
            }
        )
    )
    return model


def test_answers_each_row_through_the_route_with_the_template(route_model, candidate):
    answers = route_model.predict(
        None, pd.DataFrame({"prompt": ["a", "b"]}), params={"temperature": 0.0, "max_tokens": 4}
    )
    direct = candidate.predict(
        pd.DataFrame({"prompt": ["Answer briefly: a", "Answer briefly: b"]}),
        params={"temperature": 0.0, "max_tokens": 4},
    )
    assert answers == direct


@pytest.mark.parametrize(
    "fault, match",
    [
        (Fault(status=429), "HTTP 429"),
        (Fault(status=500), "HTTP 500"),
        (Fault(status=503), "HTTP 503"),
        (Fault(delay_s=10), "no answer within 2s"),
        (Fault(malformed=True), "malformed JSON"),
        (Fault(connection_refused=True), "cannot connect"),
    ],
)
def test_every_fault_becomes_a_clear_mlflow_exception(route_model, mock_gateway, fault, match):
    mock_gateway._sleep = lambda s: None
    mock_gateway.inject(fault)
    with pytest.raises(MlflowException, match=match):
        route_model.predict(None, ["x"], params={"temperature": 0.0, "max_tokens": 2})


def test_gateway_rejections_are_invalid_parameter_value(route_model):
    with pytest.raises(MlflowException, match="temperature") as info:
        route_model.predict(None, ["x"], params={"temperature": 1.5})
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


def test_bad_token_is_401_without_the_token(route_model, monkeypatch, mock_gateway):
    mock_gateway.token = "other"
    with pytest.raises(MlflowException, match="HTTP 401") as info:
        route_model.predict(None, ["x"])
    assert "mock-token" not in str(info.value)


@pytest.mark.parametrize(
    "config, field",
    [
        ({"gateway_url": "http://x", "route": "r", "api": "grpc"}, "api"),
        ({"gateway_url": "http://x", "route": "r", "template": "no placeholder"}, "template"),
        ({"gateway_url": "http://x", "route": "r", "token_env": "dapi-literal"}, "token_env"),
        ({"gateway_url": "http://x", "route": "r", "colour": 1}, "unknown model_config keys"),
    ],
)
def test_bad_config_names_the_field(config, field):
    with pytest.raises(ValueError, match=field):
        RouteModelConfig.from_mapping(config)
