"""Every use of an MLflow private API, behind small functions.

An MLflow upgrade that moves one of these breaks this file and its contract test
(``tests/test_mlflow_compat.py``), not the gate.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class ParsedRequest(NamedTuple):
    data: Any
    params: dict[str, Any] | None


def parse_scoring_request(body: str, signature: Any) -> ParsedRequest:
    """Parse and enforce a scoring-server JSON body exactly as ``mlflow models serve`` does.

    Raises ``MlflowException`` where the server would answer 400.
    """
    from mlflow.models import Model
    from mlflow.pyfunc import _validate_prediction_input
    from mlflow.pyfunc.scoring_server import _parse_json_data

    inputs = signature.inputs if signature is not None else None
    params_schema = signature.params if signature is not None else None
    parsed = _parse_json_data(body, Model(signature=signature), inputs)
    data, params = _validate_prediction_input(parsed.data, parsed.params, inputs, params_schema)
    return ParsedRequest(data, params)


class StoreUris(NamedTuple):
    """MLflow's process-global tracking and registry URIs (None: not set explicitly)."""

    tracking: str | None
    registry: str | None


def current_store_uris() -> StoreUris:
    """The URIs as set, not as resolved: the public getters fill in defaults."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    return StoreUris(tracking_utils._tracking_uri, registry_utils._registry_uri)


def restore_store_uris(saved: StoreUris) -> None:
    """Put back what :func:`current_store_uris` returned, unset values included."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils

    mlflow.set_tracking_uri(saved.tracking)
    registry_utils._registry_uri = saved.registry


def gateway_chat_request() -> Any:
    """The current MLflow gateway's chat request model (pydantic v2), for chat routes."""
    from mlflow.gateway.schemas.chat import RequestPayload

    return RequestPayload


def gateway_completions_request() -> Any:
    """The current MLflow gateway's completions request model (pydantic v2): the mock's
    ``current`` profile validates with it, so its 422 bodies are the real server's."""
    from mlflow.gateway.schemas.completions import RequestPayload

    return RequestPayload
