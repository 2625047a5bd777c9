"""A ``responses``-based mock of the legacy AI Gateway REST API.

Stateful (create/get/list/delete routes) and answering queries by running a real
PyFunc model in process through the translation the real ``mlflow-model-serving``
provider does: ``{prompt, ...}`` -> ``{"inputs": [prompt], "params": {...}}`` ->
MLflow parsing/enforcement -> ``predict`` -> predictions -> candidates. Faults
(429, 5xx, slow answers, malformed JSON, connection refused) are injectable per test.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
import responses

from harness.serving.gateway import ROUTES_API
from harness.serving.route import RouteError, RouteSpec
from harness.model.signature import parse_payload

_QUERY_RE = re.compile(r"/gateway/([^/]+)/invocations$")
_ROUTE_RE = re.compile(re.escape(ROUTES_API) + r"/([^/?]+)$")
PAGE_SIZE = 2  # small, so that paging is exercised


@dataclass
class Fault:
    """One injected misbehaviour, applied to the next ``times`` matching requests."""

    status: int | None = None
    delay_s: float = 0.0
    malformed: bool = False
    connection_refused: bool = False
    times: int = 1
    only: str = "query"  # "query" or "any"


def _answer(status: int, body: Any) -> tuple[int, dict, str]:
    return status, {"Content-Type": "application/json"}, json.dumps(body)


def _detail(status: int, message: str) -> tuple[int, dict, str]:
    return _answer(status, {"detail": message})


class MockGateway:
    def __init__(self, base_url: str = "http://gateway.mock", token: str | None = "mock-token",
                 sleep: Callable[[float], None] = time.sleep):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.routes: dict[str, dict[str, Any]] = {}
        self.models: dict[str, Any] = {}
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self._sleep = sleep
        self._mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        pattern = re.compile(re.escape(self.base_url) + r"/.*")
        for method in ("GET", "POST", "DELETE"):
            self._mock.add_callback(method, pattern, callback=self._handle)

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
        self.routes[route.name] = route.public()

    def inject(self, fault: Fault) -> None:
        self.faults.append(fault)

    # --- dispatch ---------------------------------------------------------------------------

    def _handle(self, request) -> tuple[int, dict, str]:
        path = request.path_url.split("?")[0]
        self.requests.append({"method": request.method, "path": path})
        is_query = bool(_QUERY_RE.search(path))
        if fault := self._take_fault(is_query):
            return self._apply(fault, request)
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return _detail(401, "Invalid access token")
        if match := _QUERY_RE.search(path):
            return self._query(match.group(1), request.body)
        if path.rstrip("/") == ROUTES_API:
            return self._create(request.body) if request.method == "POST" else self._list(request)
        if match := _ROUTE_RE.search(path):
            return self._get_or_delete(request.method, match.group(1))
        return _detail(404, f"Not Found: {path}")

    def _take_fault(self, is_query: bool) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and (fault.only == "any" or is_query):
                fault.times -= 1
                return fault
        return None

    def _apply(self, fault: Fault, request) -> tuple[int, dict, str]:
        if fault.connection_refused:
            raise requests.ConnectionError("[Errno 111] Connection refused (injected)")
        if fault.delay_s:
            timeout = request.req_kwargs.get("timeout")
            timeout = timeout[-1] if isinstance(timeout, tuple) else timeout
            if timeout is not None and fault.delay_s >= timeout:
                self._sleep(timeout)
                raise requests.ReadTimeout(f"no answer within {timeout}s (injected)")
            self._sleep(fault.delay_s)
        if fault.malformed:
            return 200, {"Content-Type": "application/json"}, '{"candidates": [ {"text": '
        if fault.status:
            return _detail(fault.status, f"injected {fault.status}")
        return self._query_path(request)

    def _query_path(self, request) -> tuple[int, dict, str]:
        match = _QUERY_RE.search(request.path_url)
        return self._query(match.group(1), request.body) if match else _detail(404, "Not Found")

    # --- CRUD -------------------------------------------------------------------------------

    def _create(self, body: Any) -> tuple[int, dict, str]:
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
        self.routes[route.name] = route.public()
        return _answer(200, self.routes[route.name])

    def _list(self, request) -> tuple[int, dict, str]:
        token = int(dict(request.params).get("page_token") or 0)
        names = sorted(self.routes)
        page = {"routes": [self.routes[n] for n in names[token:token + PAGE_SIZE]]}
        if token + PAGE_SIZE < len(names):
            page["next_page_token"] = str(token + PAGE_SIZE)
        return _answer(200, page)

    def _get_or_delete(self, method: str, name: str) -> tuple[int, dict, str]:
        if name not in self.routes:
            return _detail(404, f"route {name!r} not found")
        if method == "DELETE":
            del self.routes[name]
            return _answer(200, {})
        return _answer(200, self.routes[name])

    # --- queries ----------------------------------------------------------------------------

    def _query(self, name: str, body: Any) -> tuple[int, dict, str]:
        if name not in self.routes:
            return _detail(404, f"route {name!r} not found")
        try:
            data = json.loads(body or "{}")
        except ValueError:
            return _detail(400, "request body is not JSON")
        if (problem := _validate_query(data)) is not None:
            return _detail(400, problem)
        model_name = self.routes[name]["model"]["name"]
        if model_name not in self.models:
            return _detail(502, f"no model server answers for {model_name!r}")
        return self._predict(name, model_name, data)

    def _predict(self, route: str, model_name: str, data: dict) -> tuple[int, dict, str]:
        from mlflow.exceptions import MlflowException

        model = self.models[model_name]
        params = {k: data[k] for k in ("temperature", "max_tokens", "stop") if k in data}
        payload = {"inputs": [data["prompt"]], **({"params": params} if params else {})}
        try:
            parsed = parse_payload(payload, model.metadata.signature)
            predictions = model.predict(parsed.data, params=parsed.params)
        except MlflowException as error:
            return _answer(400, {"detail": {"error_code": error.error_code, "message": error.message}})
        except Exception as error:  # the scoring server's 500 becomes the gateway's 502
            return _detail(502, f"model server error: {type(error).__name__}")
        if not isinstance(predictions, list) or not predictions or \
                not all(isinstance(p, str) for p in predictions):
            return _detail(502, "1 validation error for ServingTextResponse: predictions must be "
                                f"a non-empty list of strings, got {type(predictions).__name__}")
        return _answer(200, {
            "candidates": [{"text": p, "metadata": {"finish_reason": None}} for p in predictions],
            "metadata": {"model": model_name, "route_type": "llm/v1/completions",
                         "input_tokens": None, "output_tokens": None, "total_tokens": None},
        })


def _validate_query(data: Any) -> str | None:
    """The legacy gateway's own request checks (temperature 0-1 there, not 0-2)."""
    if not isinstance(data, dict) or not isinstance(data.get("prompt"), str):
        return "prompt: field required (a string)"
    temperature = data.get("temperature", 0.0)
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) \
            or not math.isfinite(temperature) or not 0 <= temperature <= 1:
        return f"temperature: must be a number in [0, 1], got {temperature!r}"
    max_tokens = data.get("max_tokens", 1)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return f"max_tokens: must be an integer >= 1, got {max_tokens!r}"
    stop = data.get("stop", [])
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        return "stop: must be a list of strings"
    return None
