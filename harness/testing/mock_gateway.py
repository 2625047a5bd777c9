"""A ``responses``-based mock of the MLflow AI Gateway, in four profiles.

Which profile matches which installed server (as recorded; ``Interaction.server`` in each
file names the versions):

============================  ==================================================  =============
profile                       server                                              recording
============================  ==================================================  =============
``legacy``                    MLflow 2.8.1 on pydantic 1 (``pydantic<2``)          legacy-2.8.1
``legacy-pydantic2``          MLflow 2.8.1 on pydantic 2, as a plain               legacy-2.8.1-
                              ``pip install "mlflow[gateway]==2.8.1"`` resolves    pydantic2
                              it (pydantic 2.14, FastAPI 0.165 on 2026-11-30)
``databricks``                the hosted service's documentation                   none
``current``                   MLflow 3.17 (``/endpoints/``)                        current-3.17
============================  ==================================================  =============

- ``legacy`` (default): the open-source legacy gateway as recorded from MLflow 2.8.1 on
  pydantic 1: ``/api/2.0/gateway/routes`` read-only (create/delete answer 405), no
  authentication, ``/gateway/<route>/invocations`` answering ``{candidates, metadata}``,
  pydantic v1 validation (422 with an error list; ``123`` as a prompt and ``5.5`` as
  ``max_tokens`` coerced and answered), temperature 0-1 defaulting to 0.
- ``legacy-pydantic2``: the same server on pydantic 2: the same routes and answers, but
  validation is pydantic 2's, so those coercions are refused (422 ``string_type``,
  ``int_from_float``) and every error is ``{type, loc, msg, input, ctx}``.
- ``databricks``: ``legacy`` plus what only the hosted service had: creating and deleting
  routes and bearer authentication (401). This follows the documentation, not a recording.
- ``current``: today's MLflow gateway as recorded (``contracts/current-3.17``):
  ``/api/2.0/endpoints/``, ``/endpoints/<name>/invocations`` (and the old path) answering
  ``choices``, MLflow's own pydantic v2 request model.

Queries are answered by a real PyFunc model in process, through the translation the real
``mlflow-model-serving`` provider does (validated fields -> ``{"inputs": [prompt],
"params": {...}}`` -> MLflow parsing/enforcement -> ``predict``). The suite replays every
recorded interaction against the mock of its profile (``tests/testing/test_contracts.py``).
Like the real servers (Starlette), a path that only exists with its trailing slash flipped
answers a 307 to it. Faults (429, 5xx, slow answers, malformed JSON, connection refused)
are injectable.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
import responses

from harness.model.signature import parse_payload
from harness.serving.gateway import ROUTES_API
from harness.serving.route import RouteError, RouteSpec, RouteType
from harness.testing._gateway_schemas import (
    read_body,
    validate_current,
    validate_current_chat,
    validate_legacy,
    validate_legacy_chat,
    validate_legacy_pydantic2,
    validate_legacy_pydantic2_chat,
)

PROFILES = ("legacy", "legacy-pydantic2", "databricks", "current")
_VALIDATION = {
    "legacy": validate_legacy,
    "legacy-pydantic2": validate_legacy_pydantic2,
    "databricks": validate_legacy,
    "current": validate_current,
}
# A chat route's request (MLflow's chat RequestPayload), per profile.
_CHAT_VALIDATION = {
    "legacy": validate_legacy_chat,
    "legacy-pydantic2": validate_legacy_pydantic2_chat,
    "databricks": validate_legacy_chat,
    "current": validate_current_chat,
}
_ENDPOINTS_API = "/api/2.0/endpoints"
PAGE_SIZE = 2  # small, so that paging is exercised (the real server's is 3000)
_JSON = {"Content-Type": "application/json"}
# What a ``responses`` callback returns: status, headers, body.
_Response = tuple[int, dict[str, str], str]


@dataclass
class Fault:
    """One injected misbehaviour, applied to the next ``times`` matching requests."""

    status: int | None = None
    delay_s: float = 0.0
    malformed: bool = False
    connection_refused: bool = False
    retry_after: float | None = None  # a Retry-After header on an injected status
    times: int = 1
    only: str = "query"  # "query" or "any"


def _answer(status: int, body: Any, headers: dict[str, str] | None = None) -> _Response:
    return status, {**_JSON, **(headers or {})}, json.dumps(body)


def _detail(status: int, detail: Any) -> _Response:
    return _answer(status, {"detail": detail})


def _value(enum: Any) -> Any:
    return getattr(enum, "value", enum)


def _flip_slash(path: str) -> str:
    return path[:-1] if path.endswith("/") else path + "/"


_NOT_FOUND = (404, "Not Found")
_NOT_ALLOWED = (405, "Method Not Allowed")


class MockGateway:
    def __init__(
        self,
        profile: str = "legacy",
        base_url: str = "http://gateway.mock",
        token: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(f"profile={str(profile)[:40]!r} is invalid: allowed {PROFILES}")
        self.profile = profile
        self.base_url = base_url.rstrip("/")
        # Only the hosted service checked a token; the open-source servers ignore the header.
        self.token = token if token is not None else ("mock-token" if profile == "databricks" else None)
        self.routes: dict[str, RouteSpec] = {}
        self.models: dict[str, Any] = {}
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self._sleep = sleep
        self._mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        pattern = re.compile(re.escape(self.base_url) + r"(/.*)?$")
        for method in ("GET", "POST", "DELETE", "PUT", "PATCH"):
            # No default content type: a redirect, like the real server's, has none.
            self._mock.add_callback(method, pattern, callback=self._handle, content_type=None)

    def __enter__(self) -> MockGateway:
        self._mock.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._mock.stop()
        self._mock.reset()

    # --- set-up -----------------------------------------------------------------------------

    def serve_model(self, model_name: str, model: Any) -> None:
        """Back routes whose ``model.name`` is ``model_name`` with a loaded PyFunc model."""
        self.models[model_name] = model

    def add_route(self, route: RouteSpec) -> None:
        self.routes[route.name] = route

    def inject(self, fault: Fault) -> None:
        self.faults.append(fault)

    # --- dispatch ---------------------------------------------------------------------------

    def _handle(self, request: requests.PreparedRequest) -> _Response:
        path = request.path_url.split("?")[0]
        self.requests.append({"method": request.method, "path": path})
        query_route = self._query_route(path)
        if fault := self._take_fault(query_route is not None):
            return self._apply(fault, request)
        if self.profile == "databricks" and request.headers.get("Authorization") != f"Bearer {self.token}":
            return _detail(401, "Invalid access token")
        if not self._served(path) and self._served(flipped := _flip_slash(path)):
            query = request.path_url[len(path) :]
            return 307, {"Location": self.base_url + flipped + query}, ""
        if path == "/health":
            return _answer(200, {"status": "OK"}) if request.method == "GET" else _detail(*_NOT_ALLOWED)
        if query_route is not None:
            return self._query(query_route, request)
        return self._routes_api(request, path)

    def _query_route(self, path: str) -> str | None:
        prefixes = ("/gateway/",) + (("/endpoints/",) if self.profile == "current" else ())
        for prefix in prefixes:
            if path.startswith(prefix) and path.endswith("/invocations"):
                return path[len(prefix) : -len("/invocations")]
        return None

    def _apis(self) -> tuple[str, ...]:
        return (ROUTES_API, _ENDPOINTS_API) if self.profile == "current" else (ROUTES_API,)

    def _served(self, path: str) -> bool:
        """Whether the real server has a route for ``path`` (for some method): the list at
        ``<api>/``, one item at ``<api>/<name>``, a configured route's invocations."""
        if path == "/health" or self._query_route(path) in self.routes:
            return True
        for base in self._apis():
            name = path[len(base) + 1 :] if path.startswith(base + "/") else None
            if name is not None and "/" not in name:
                return True  # "" is the list
        return False

    def _take_fault(self, is_query: bool) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and (fault.only == "any" or is_query):
                fault.times -= 1
                return fault
        return None

    def _apply(self, fault: Fault, request: requests.PreparedRequest) -> _Response:
        if fault.connection_refused:
            raise requests.ConnectionError("[Errno 111] Connection refused (injected)")
        if fault.delay_s:
            timeout = request.req_kwargs.get("timeout")  # type: ignore[attr-defined]  # set by responses
            timeout = timeout[-1] if isinstance(timeout, tuple) else timeout
            if timeout is not None and fault.delay_s >= timeout:
                self._sleep(timeout)
                raise requests.ReadTimeout(f"no answer within {timeout}s (injected)")
            self._sleep(fault.delay_s)
        if fault.malformed:
            return 200, dict(_JSON), '{"candidates": [ {"text": '
        if fault.status:
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            return _answer(fault.status, {"detail": f"injected {fault.status}"}, headers)
        path = request.path_url.split("?")[0]
        return self._query(self._query_route(path) or "", request)

    # --- routes and endpoints ---------------------------------------------------------------

    def _routes_api(self, request: requests.PreparedRequest, path: str) -> _Response:
        if not self._served(path):
            return _detail(*_NOT_FOUND)
        method, trimmed = request.method, path.rstrip("/")
        for base in self._apis():
            kind = "endpoints" if base == _ENDPOINTS_API else "routes"
            if trimmed == base:
                if method == "GET":
                    return self._list(request, kind)
                if method == "POST" and self.profile == "databricks":
                    return self._create(request.body)
                return _detail(*_NOT_ALLOWED)
            if trimmed.startswith(base + "/"):
                name = trimmed[len(base) + 1 :]
                if method == "GET":
                    return self._get(name, kind)
                if method == "DELETE" and self.profile == "databricks":
                    return self._delete(name)
                return _detail(*_NOT_ALLOWED)
        return _detail(*_NOT_FOUND)

    def _public(self, route: RouteSpec, kind: str) -> dict[str, Any]:
        model = {"name": route.model_name, "provider": route.provider.value}
        url = f"/gateway/{route.name}/invocations"
        if kind == "endpoints":
            return {
                "name": route.name,
                "endpoint_type": _value(route.route_type),
                "model": model,
                "endpoint_url": url,
                "limit": None,
            }
        found = {"name": route.name, "route_type": _value(route.route_type), "model": model, "route_url": url}
        return {**found, "limit": None} if self.profile == "current" else found

    def _list(self, request: requests.PreparedRequest, kind: str) -> _Response:
        token = dict(request.params).get("page_token")  # type: ignore[attr-defined]  # set by responses
        try:  # the real server's token: base64 of {"index": N}; a bad one was a bare 500
            start = int(json.loads(base64.b64decode(token))["index"]) if token else 0
        except (ValueError, KeyError, TypeError):
            return 500, {"Content-Type": "text/plain"}, "Internal Server Error"
        names = sorted(self.routes)
        page: dict[str, Any] = {
            kind: [self._public(self.routes[n], kind) for n in names[start : start + PAGE_SIZE]],
            "next_page_token": None,
        }
        if start + PAGE_SIZE < len(names):
            page["next_page_token"] = base64.b64encode(json.dumps({"index": start + PAGE_SIZE}).encode()).decode()
        return _answer(200, page)

    def _get(self, name: str, kind: str) -> _Response:
        if name not in self.routes:
            word = "endpoint" if kind == "endpoints" else "route"
            return _detail(
                404, f"The {word} '{name}' is not present or active on the server. Please verify the {word} name."
            )
        return _answer(200, self._public(self.routes[name], kind))

    def _create(self, body: bytes | str | None) -> _Response:
        try:
            data = json.loads(body or "{}")
            config = data.get("model", {}).get("config", {})
            if "databricks_api_token" in config:  # the wire carries the resolved token
                config = {**config, "databricks_api_token": "$MOCK_RESOLVED"}
            route = RouteSpec.from_dict({**data, "model": {**data.get("model", {}), "config": config}})
        except (ValueError, RouteError, AttributeError) as error:
            return _detail(400, f"invalid route: {error}")
        if route.name in self.routes:
            return _detail(400, f"route {route.name!r} already exists")
        self.routes[route.name] = route
        return _answer(200, self._public(route, "routes"))

    def _delete(self, name: str) -> _Response:
        if self.routes.pop(name, None) is None:
            return self._get(name, "routes")
        return _answer(200, {})

    # --- queries ----------------------------------------------------------------------------

    def _query(self, name: str, request: requests.PreparedRequest) -> _Response:
        if name not in self.routes:
            return _detail(*_NOT_FOUND)  # no such dynamic route: FastAPI's own 404
        if request.method != "POST":
            return _detail(*_NOT_ALLOWED)
        route = self.routes[name]
        chat = route.route_type is RouteType.CHAT
        body, errors = read_body(request.headers.get("Content-Type", ""), request.body)
        if errors is None:
            fields, errors = (_CHAT_VALIDATION if chat else _VALIDATION)[self.profile](body)
        if errors is not None:
            return _detail(422, errors)
        assert fields is not None  # validation returns fields exactly when it returns no errors
        if chat:
            # The mlflow-model-serving provider (2.8.1 and 3.17 alike): one message's content
            # is the model's one input.
            messages = fields.pop("messages")
            if len(messages) > 1:
                return _detail(
                    422,
                    "MLflow chat models are only capable of processing a single query at a time. "
                    f"The request submitted consists of {len(messages)} queries.",
                )
            fields["prompt"] = messages[0].get("content")
        if route.model_name not in self.models:
            return _detail(502, f"no model server answers for {route.model_name!r}")
        return self._predict(route, fields)

    def _predict(self, route: RouteSpec, fields: dict[str, Any]) -> _Response:
        from mlflow.exceptions import MlflowException

        model = self.models[route.model_name]
        params = {k: v for k, v in fields.items() if k != "prompt"}
        payload = {"inputs": [fields["prompt"]], **({"params": params} if params else {})}
        try:
            parsed = parse_payload(payload, model.metadata.signature)
            predictions = model.predict(parsed.data, params=parsed.params)
        except MlflowException as error:  # the scoring server's 400, relayed
            return _detail(400, json.loads(error.serialize_as_json()))
        except Exception as error:  # the scoring server's 500 becomes the gateway's 502
            return _detail(502, f"model server error: {type(error).__name__}")
        if not isinstance(predictions, list) or not predictions or not all(isinstance(p, str) for p in predictions):
            return _detail(
                502,
                "1 validation error for ServingTextResponse: predictions must be "
                f"a non-empty list of strings, got {type(predictions).__name__}",
            )
        return _answer(200, self._completion(route, predictions))

    def _completion(self, route: RouteSpec, texts: list[str]) -> dict[str, Any]:
        """The answer as the profile's server shapes it: ``candidates`` and ``metadata`` on
        2.8.1, ``choices`` and ``usage`` on 3.17; a chat route's items carry a ``message``."""
        chat = route.route_type is RouteType.CHAT
        if self.profile != "current":
            items = [
                {"message": {"role": "assistant", "content": t}, "metadata": {"finish_reason": None}}
                if chat
                else {"text": t, "metadata": {}}
                for t in texts
            ]
            tokens = dict.fromkeys(("input_tokens", "output_tokens", "total_tokens"))
            return {
                "candidates": items,
                "metadata": {**tokens, "model": route.model_name, "route_type": _value(route.route_type)},
            }
        message = {"role": "assistant", "tool_calls": None, "refusal": None}
        body = {
            "id": None,
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": route.model_name,
            "choices": [
                {"index": i, **({"message": {**message, "content": t}} if chat else {"text": t}), "finish_reason": None}
                for i, t in enumerate(texts)
            ],
            "usage": dict.fromkeys(("prompt_tokens", "completion_tokens", "total_tokens")),
        }
        return {**body, "provider": route.provider.value} if chat else body
