"""Request parsing and validation as the real gateways did it (FastAPI in front of pydantic),
so the mock's status codes and error bodies are the recorded ones.

The legacy model is MLflow 2.8.1's ``mlflow/gateway/schemas/{chat,completions}.py``, field
for field, twice, because that release runs on either pydantic and a plain install picks one:
- on pydantic's v1 API (2.8.1 pinned to ``pydantic<2``): its coercions ("0.5" -> 0.5,
  5.5 -> 5, 123 -> "123") and error shapes ({loc, msg, type, ctx}) come with it;
- on pydantic 2 (what ``pip install "mlflow[gateway]==2.8.1"`` resolves today): the same
  fields and bounds, so 5.5 and 123 are refused and errors are {type, loc, msg, input, ctx}.
The current model is MLflow's own, imported
(:func:`harness._mlflow_compat.gateway_completions_request`).
"""

from __future__ import annotations

import json
from typing import Any, List, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic import v1

_MISSING = object()


class LegacyBaseRequest(v1.BaseModel):
    """MLflow 2.8.1's BaseRequestPayload (a RequestModel: extra fields allowed), whose fields
    come first in every request's errors."""

    class Config:
        extra = v1.Extra.allow

    temperature: float = v1.Field(0.0, ge=0, le=1)
    candidate_count: int = v1.Field(1, ge=1, le=5)
    stop: Optional[List[str]] = v1.Field(None, min_items=1)  # noqa: UP006,UP007 - v1 needs typing
    max_tokens: Optional[int] = v1.Field(None, ge=1)  # noqa: UP007


class LegacyCompletionsRequest(LegacyBaseRequest):
    """MLflow 2.8.1's completions RequestPayload."""

    prompt: str


class LegacyMessage(v1.BaseModel):
    """MLflow 2.8.1's chat RequestMessage."""

    class Config:
        extra = v1.Extra.allow

    role: str
    content: str


class LegacyChatRequest(LegacyBaseRequest):
    """MLflow 2.8.1's chat RequestPayload."""

    messages: List[LegacyMessage] = v1.Field(..., min_items=1)  # noqa: UP006


class LegacyBaseRequestV2(BaseModel):
    """The same BaseRequestPayload as 2.8.1 declares it, read by pydantic 2 (``min_items`` is
    pydantic 2's ``min_length``; ``extra="allow"`` is 2.8.1's ``RequestModel``)."""

    model_config = ConfigDict(extra="allow")

    temperature: float = Field(0.0, ge=0, le=1)
    candidate_count: int = Field(1, ge=1, le=5)
    stop: Optional[List[str]] = Field(None, min_length=1)  # noqa: UP006,UP007 - as 2.8.1 wrote it
    max_tokens: Optional[int] = Field(None, ge=1)  # noqa: UP007


class LegacyCompletionsRequestV2(LegacyBaseRequestV2):
    prompt: str


class LegacyMessageV2(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str


class LegacyChatRequestV2(LegacyBaseRequestV2):
    messages: List[LegacyMessageV2] = Field(..., min_length=1)  # noqa: UP006


def read_body(content_type: str, raw: bytes | str | None) -> tuple[Any, list[dict] | None]:
    """The body as FastAPI hands it to validation: JSON only under a JSON content type."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    if not text:
        return _MISSING, None
    if content_type.split(";")[0].strip() != "application/json":
        return text, None
    try:
        return json.loads(text), None
    except json.JSONDecodeError as error:
        return None, [
            {
                "type": "json_invalid",
                "loc": ["body", error.pos],
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": error.msg},
            }
        ]


def validate_legacy(
    body: Any, model: type[v1.BaseModel] = LegacyCompletionsRequest
) -> tuple[dict | None, list[dict] | None]:
    """(params without None, errors): errors in pydantic v1's shape, under ``body``."""
    if body is _MISSING:
        return None, [{"loc": ["body"], "msg": "field required", "type": "value_error.missing"}]
    if not isinstance(body, dict):
        return None, [{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}]
    try:
        payload = model.parse_obj(body)
    except v1.ValidationError as error:
        return None, [
            {
                "loc": ["body", *e["loc"]],
                "msg": e["msg"],
                "type": e["type"],
                **({"ctx": _jsonable(e["ctx"])} if "ctx" in e else {}),
            }
            for e in error.errors()
        ]
    return payload.dict(exclude_none=True), None


def validate_current(body: Any) -> tuple[dict | None, list[dict] | None]:
    """(params without None, errors) as today's gateway answers: MLflow's own model."""
    from harness._mlflow_compat import gateway_completions_request

    return _validate_v2(gateway_completions_request(), body)


def validate_legacy_chat(body: Any) -> tuple[dict | None, list[dict] | None]:
    """A chat route's request as MLflow 2.8.1 on pydantic 1 validates it."""
    return validate_legacy(body, LegacyChatRequest)


def validate_legacy_pydantic2_chat(body: Any) -> tuple[dict | None, list[dict] | None]:
    """A chat route's request as MLflow 2.8.1 on pydantic 2 validates it."""
    return _validate_v2(LegacyChatRequestV2, body)


def validate_current_chat(body: Any) -> tuple[dict | None, list[dict] | None]:
    """(fields without None, errors) as today's gateway answers a chat route's request."""
    from harness._mlflow_compat import gateway_chat_request

    return _validate_v2(gateway_chat_request(), body)


def validate_legacy_pydantic2(body: Any) -> tuple[dict | None, list[dict] | None]:
    """(params without None, errors) as MLflow 2.8.1 answers on pydantic 2."""
    return _validate_v2(LegacyCompletionsRequestV2, body)


def _validate_v2(model: Any, body: Any) -> tuple[dict | None, list[dict] | None]:
    """Errors as FastAPI shows pydantic v2's, under ``body``."""
    if body is _MISSING:
        return None, [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
    try:
        # FastAPI validates a body parameter from attributes: a non-object is model_attributes_type.
        payload = model.model_validate(body, from_attributes=True)
    except ValidationError as error:
        return None, [
            {**e, "loc": ["body", *e["loc"]], **({"ctx": _jsonable(e["ctx"])} if "ctx" in e else {})}
            for e in error.errors(include_url=False)
        ]
    return payload.model_dump(exclude_none=True), None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
