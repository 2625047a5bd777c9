"""Contract of the one module that touches MLflow private APIs: when an MLflow upgrade
moves one of them, this file fails, and it is the only place to mend."""

import re
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException

import harness
from harness._mlflow_compat import (
    current_store_uris,
    gateway_completions_request,
    parse_scoring_request,
    restore_store_uris,
)
from harness.model.settings import DEFAULT_TEMPERATURE
from harness.model.signature import GATEWAY

_PACKAGE = Path(harness.__file__).parent
_PRIVATE_USE = re.compile(r"from mlflow[\w.]* import _|mlflow[\w.]*\._\w+|\b\w+_utils\._\w+")


def test_parse_scoring_request_enforces_the_signature_like_the_server():
    parsed = parse_scoring_request('{"inputs": ["hi"], "params": {"max_tokens": 3}}', GATEWAY)
    assert list(parsed.data["prompt"]) == ["hi"]
    assert parsed.params["max_tokens"] == 3
    assert parsed.params["temperature"] == DEFAULT_TEMPERATURE  # MLflow fills ParamSchema defaults


def test_parse_scoring_request_rejects_what_the_server_rejects():
    with pytest.raises(MlflowException):
        parse_scoring_request('{"dataframe_records": [{"text": "hi"}]}', GATEWAY)
    with pytest.raises(MlflowException):
        parse_scoring_request("not json", GATEWAY)


def test_store_uris_round_trip_including_unset(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    saved = current_store_uris()
    try:
        uri = f"sqlite:///{tmp_path / 'a.db'}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        assert current_store_uris() == (uri, uri)
    finally:
        restore_store_uris(saved)
    assert current_store_uris() == saved


@pytest.mark.parametrize(
    "line", ["from mlflow.pyfunc import _validate_prediction_input", "x = tracking_utils._tracking_uri"]
)
def test_the_private_api_pattern_sees_a_use(line):
    assert _PRIVATE_USE.search(line)


def test_no_other_module_uses_mlflow_private_apis():
    offenders = [
        str(p.relative_to(_PACKAGE))
        for p in _PACKAGE.rglob("*.py")
        if p.name != "_mlflow_compat.py" and _PRIVATE_USE.search(p.read_text())
    ]
    assert offenders == []


def test_the_gateway_completions_request_is_the_servers_pydantic_model():
    model = gateway_completions_request()
    assert model.model_validate({"prompt": "x", "temperature": 2}).temperature == 2
    with pytest.raises(Exception, match="less than or equal to 2"):
        model.model_validate({"prompt": "x", "temperature": 2.5})
