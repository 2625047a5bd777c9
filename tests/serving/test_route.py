import logging
import pickle
from dataclasses import replace

import pytest

from harness.serving.route import (
    EnvRef,
    Provider,
    RouteError,
    RouteSpec,
    RouteType,
    routes_from_gateway_yaml,
    seed_route,
)

TOKEN = "dapi-not-a-real-token-1234567890"
SEED_ARGS = {  # the seed's Step 6 call, with its missing comma and pasted token fixed
    "name": "completions-mpt-7b-instruct",
    "route_type": "llm/v1/completions",
    "model": {
        "name": "my-endpoint",
        "provider": "databricks-model-serving",
        "config": {
            "databricks_api_token": "$DATABRICKS_TOKEN",
            "databricks_workspace_url": "https://example.cloud.databricks.com",
        },
    },
}


def test_seed_route_builds_the_create_route_body():
    route = RouteSpec.from_dict(SEED_ARGS)
    assert route.provider is Provider.DATABRICKS_MODEL_SERVING
    assert route.create_route_body() == SEED_ARGS


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("name", "bad name/with slash", "name="),
        ("provider", "openai", "model.provider"),
    ],
)
def test_invalid_fields_are_named(field, value, message):
    data = {**SEED_ARGS, "model": dict(SEED_ARGS["model"])}
    if field == "name":
        data["name"] = value
    else:
        data["model"]["provider"] = value
    with pytest.raises(RouteError, match=message):
        RouteSpec.from_dict(data)


def test_literal_token_is_rejected_without_showing_it():
    data = {
        **SEED_ARGS,
        "model": {**SEED_ARGS["model"], "config": {**SEED_ARGS["model"]["config"], "databricks_api_token": TOKEN}},
    }
    with pytest.raises(RouteError, match="databricks_api_token must be an environment reference") as info:
        RouteSpec.from_dict(data)
    assert TOKEN not in str(info.value)


def test_workspace_url_with_credentials_is_rejected_without_showing_them():
    url = f"https://user:{TOKEN}@example.cloud.databricks.com"
    data = {
        **SEED_ARGS,
        "model": {**SEED_ARGS["model"], "config": {**SEED_ARGS["model"]["config"], "databricks_workspace_url": url}},
    }
    with pytest.raises(RouteError, match="must not carry credentials") as info:
        RouteSpec.from_dict(data)
    assert TOKEN not in str(info.value)


def test_missing_and_unknown_config_keys():
    data = {**SEED_ARGS, "model": {**SEED_ARGS["model"], "config": {"model_server_url": "http://x"}}}
    with pytest.raises(RouteError, match="unknown keys"):
        RouteSpec.from_dict(data)


def test_secret_resolves_at_the_edge_and_hides_its_value(caplog):
    secret = EnvRef.parse("databricks_api_token", "$DATABRICKS_TOKEN").resolve({"DATABRICKS_TOKEN": TOKEN})
    assert secret.reveal() == TOKEN
    logging.getLogger("test").warning("resolved %s %r", secret, secret)
    assert TOKEN not in repr(secret) + str(secret) + caplog.text + f"{secret}"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_unset_environment_variable_is_named():
    with pytest.raises(RouteError, match="DATABRICKS_TOKEN"):
        EnvRef("DATABRICKS_TOKEN").resolve({})


def test_repr_and_public_view_carry_only_the_reference(monkeypatch):
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
    route = RouteSpec.from_dict(SEED_ARGS)
    assert TOKEN not in repr(route) + str(route.public()) + route.to_gateway_yaml()
    assert route.public()["model"]["config"]["databricks_api_token"] == "$DATABRICKS_TOKEN"


CHAT_ROUTE = replace(seed_route("http://127.0.0.1:5001"), name="chat-mpt", route_type=RouteType.CHAT)


@pytest.mark.parametrize("route", [RouteSpec.from_dict(SEED_ARGS), seed_route("http://127.0.0.1:5001"), CHAT_ROUTE])
def test_gateway_yaml_round_trips(route):
    assert routes_from_gateway_yaml(route.to_gateway_yaml()) == [route]


def test_gateway_yaml_without_endpoints_is_an_error():
    with pytest.raises(RouteError, match="endpoints"):
        routes_from_gateway_yaml("foo: 1\n")


def test_a_chat_route_parses_from_a_gateway_file_and_says_its_type():
    text = (
        "endpoints:\n  - name: chat-mpt\n    endpoint_type: llm/v1/chat\n    model:\n"
        "      provider: mlflow-model-serving\n      name: mpt-7b-instruct\n"
        "      config:\n        model_server_url: http://127.0.0.1:5001\n"
    )
    (route,) = routes_from_gateway_yaml(text)
    assert route == CHAT_ROUTE and route.public()["route_type"] == "llm/v1/chat"


def test_an_unknown_route_type_is_named_with_the_allowed_ones():
    with pytest.raises(RouteError, match="route_type is invalid.*llm/v1/chat"):
        RouteSpec.from_dict({**SEED_ARGS, "route_type": "llm/v1/embeddings"})
