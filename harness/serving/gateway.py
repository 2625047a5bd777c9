"""Gateway clients: the legacy AI Gateway REST API (the seed's ``mlflow.gateway``) and the
current MLflow AI Gateway (``mlflow.deployments``).

Pure request/response translation (``build_*``/``parse_*``) is kept apart from the
HTTP transport; both clients return one typed :class:`Completion` whichever answer
shape came back, and raise one typed :class:`GatewayError` (never carrying a token).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import BaseHTTPResponse
from urllib3.util.retry import Retry

from harness._validation import IntIn, Number, checked, settings
from harness.serving.route import RouteSpec, Secret

ROUTES_API = "/api/2.0/gateway/routes"


class AnswerShape(str, Enum):
    CANDIDATES = "candidates"  # the legacy gateway, as the seed documents it
    CHOICES = "choices"  # the current MLflow gateway
    MESSAGES = "messages"  # the current gateway's chat routes: choices[].message.content


class GatewayError(RuntimeError):
    def __init__(self, status: int | None, route: str | None, message: str):
        self.status, self.route, self.message = status, route, message
        where = f"route {route!r}" if route else "gateway"
        super().__init__(f"{where}: HTTP {status if status is not None else '-'}: {message}")


@dataclass(frozen=True)
class CompletionRequest:
    prompt: str
    temperature: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    candidate_count: int | None = None

    def body(self, shape: AnswerShape = AnswerShape.CANDIDATES) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": self.prompt,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop) if self.stop is not None else None,
        }
        # The current gateway calls candidate_count `n`.
        body["candidate_count" if shape is AnswerShape.CANDIDATES else "n"] = self.candidate_count
        return {k: v for k, v in body.items() if v is not None}


@dataclass(frozen=True)
class ChatRequest:
    """A chat route's request: ``messages`` as (role, content) pairs. An MLflow-served model
    behind the route receives one message's content as its prompt (the gateway refuses
    several with a 422), so the settings mean what they mean for a completion."""

    messages: tuple[tuple[str, str], ...]
    temperature: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None

    @classmethod
    def user(cls, content: str, **settings: Any) -> ChatRequest:
        return cls((("user", content),), **settings)

    def body(self, shape: AnswerShape = AnswerShape.MESSAGES) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": [{"role": role, "content": content} for role, content in self.messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop) if self.stop is not None else None,
        }
        return {k: v for k, v in body.items() if v is not None}


@dataclass(frozen=True)
class Completion:
    texts: tuple[str, ...]
    shape: AnswerShape
    model: str | None = None
    finish_reasons: tuple[str | None, ...] = ()
    usage: Mapping[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.texts[0]


def _message_texts(items: list[Any]) -> list[Any]:
    """A chat answer's items with their text: the assistant message's content (the legacy
    gateway's candidates and today's choices both carry ``message``)."""
    if items and all(isinstance(c, Mapping) and isinstance(c.get("message"), Mapping) for c in items):
        return [{**c, "text": c["message"].get("content")} for c in items]
    return items


def parse_completion(data: Any, route: str | None = None) -> Completion:
    """Either answer shape into one :class:`Completion`; anything else is a GatewayError."""
    if not isinstance(data, Mapping):
        raise GatewayError(None, route, f"answer is not a JSON object: {str(data)[:120]!r}")
    if isinstance(data.get("candidates"), list):
        items, shape = _message_texts(data["candidates"]), AnswerShape.CANDIDATES
        metadata = data.get("metadata") or {}
        reasons = tuple((c.get("metadata") or {}).get("finish_reason") for c in items if isinstance(c, Mapping))
        model, usage = metadata.get("model"), {k: v for k, v in metadata.items() if k.endswith("_tokens")}
    elif isinstance(data.get("choices"), list):
        items, shape = data["choices"], AnswerShape.CHOICES
        if items != (items := _message_texts(items)):
            shape = AnswerShape.MESSAGES
        reasons = tuple(c.get("finish_reason") for c in items if isinstance(c, Mapping))
        model, usage = data.get("model"), dict(data.get("usage") or {})
    else:
        raise GatewayError(None, route, f"answer has neither 'candidates' nor 'choices': keys {sorted(data)}")
    texts = [c.get("text") if isinstance(c, Mapping) else None for c in items]
    strings = tuple(t for t in texts if isinstance(t, str))
    if not texts or len(strings) != len(texts):
        raise GatewayError(None, route, "answer has a candidate without a string 'text'")
    return Completion(strings, shape, model, reasons, usage)


def error_message(response: requests.Response) -> str:
    """The server's own words: FastAPI's ``detail`` (with the field) or MLflow's ``message``."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:300] or response.reason
    detail = data.get("detail", data.get("message", data)) if isinstance(data, dict) else data
    if isinstance(detail, list):  # pydantic 1 or 2: [{"loc": ["body", "temperature"], "msg": ...}, ...]
        return "; ".join(f"{_field(d.get('loc'))}: {d.get('msg')}" for d in detail if isinstance(d, dict))
    if isinstance(detail, dict):
        return str(detail.get("message", detail))[:500]
    return str(detail)[:500]


def _field(loc: object) -> str:
    """``temperature``, ``stop.0``; ``body`` for the body as a whole (FastAPI's ``loc[0]``)."""
    parts = [str(p) for p in loc] if isinstance(loc, list) else []
    return ".".join(parts[1:]) or (parts[0] if parts else "body")


@settings()
class RetryPolicy:
    """Bounded retries with exponential backoff, on 429 and 503 only, honouring Retry-After;
    carried out by urllib3's ``Retry`` under the session, for every call of both clients."""

    retries: Annotated[int, IntIn(0, 10)] = 2
    backoff_s: Annotated[float, Number(0.0, 60.0, "0-60 seconds", closed=True)] = 0.5
    statuses: tuple[int, ...] = (429, 503)
    max_retry_after_s: Annotated[float, Number(0.0, 3600.0)] = 60.0  # a server asking longer gets its error

    def urllib3_retry(self, sleep: Callable[[float], None] = time.sleep) -> Retry:
        # Connection errors and timeouts are not retried: the caller hears of them at once.
        sleeper = type("_Retry", (_SleepingRetry,), {"_sleep_fn": staticmethod(sleep)})
        return sleeper(
            total=self.retries,
            connect=0,
            read=0,
            other=0,
            status=self.retries,
            backoff_factor=self.backoff_s,
            status_forcelist=self.statuses,
            allowed_methods=None,
            respect_retry_after_header=True,
            raise_on_status=False,
            backoff_max=self.max_retry_after_s,
        )


class _SleepingRetry(Retry):
    """urllib3's Retry with its waits through an injectable function (tests, and no
    surprises in a caller's event loop)."""

    _sleep_fn: Callable[[float], None] = staticmethod(time.sleep)

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        wait = self.get_retry_after(response) if response is not None and self.respect_retry_after_header else None
        wait = self.get_backoff_time() if wait is None else min(wait, self.backoff_max)
        if wait > 0:
            self._sleep_fn(wait)


NO_RETRY = RetryPolicy(retries=0)


class Transport:
    """HTTP with a timeout on every call, bearer auth resolved at the edge, bounded retries."""

    def __init__(
        self,
        base_url: str,
        token: Secret | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy = RetryPolicy(),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        timeout_s = checked("timeout_s", timeout_s, Number(0.0, 600.0, "(0, 600] seconds"), float)
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout_s = timeout_s
        self.retry = retry
        self.session = session or requests.Session()
        adapter = HTTPAdapter(max_retries=retry.urllib3_retry(sleep))
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, adapter)

    def __repr__(self) -> str:
        return f"Transport({self.base_url!r}, token={self._token!r})"

    def request(self, method: str, path: str, route: str | None = None, **kwargs: Any) -> Any:
        headers = {"Content-Type": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        try:
            response = self.session.request(
                method, self.base_url + path, headers=headers, timeout=self.timeout_s, **kwargs
            )
        except requests.RequestException as error:
            raise self._unanswered(error, route) from None
        # Locust's session does not raise: it answers status 0 and keeps the exception.
        if response.status_code == 0 and isinstance(kept := getattr(response, "error", None), Exception):
            raise self._unanswered(kept, route)
        return self._decode(response, route)

    def _unanswered(self, error: Exception, route: str | None) -> Exception:
        if isinstance(error, requests.Timeout):
            return GatewayError(None, route, f"no answer within {self.timeout_s:g}s")
        if isinstance(error, requests.ConnectionError):
            return GatewayError(None, route, f"cannot connect to {self.base_url}: {type(error).__name__}")
        return error

    @staticmethod
    def _decode(response: requests.Response, route: str | None) -> Any:
        if response.status_code >= 400:
            raise GatewayError(response.status_code, route, error_message(response))
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise GatewayError(
                response.status_code, route, f"malformed JSON in the answer: {response.text[:80]!r}"
            ) from None


class LegacyGatewayClient:
    """The Databricks AI Gateway REST API that the seed's ``mlflow.gateway`` spoke."""

    def __init__(self, transport: Transport):
        self.transport = transport

    def create_route(self, route: RouteSpec) -> dict[str, Any]:
        body = route.create_route_body()
        for field_name, ref in route.secrets().items():  # resolved here, at the edge, only
            body["model"]["config"][field_name] = ref.resolve().reveal()
        return self.transport.request("POST", ROUTES_API, route.name, data=json.dumps(body))

    def get_route(self, name: str) -> dict[str, Any]:
        return self.transport.request("GET", f"{ROUTES_API}/{name}", name)

    def list_routes(self) -> list[dict[str, Any]]:
        routes: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params = {"page_token": token} if token else None
            page = self.transport.request("GET", ROUTES_API, params=params) or {}
            routes.extend(page.get("routes", []))
            if not (token := page.get("next_page_token")):
                return routes

    def delete_route(self, name: str) -> None:
        self.transport.request("DELETE", f"{ROUTES_API}/{name}", name)

    def query(self, route: str, request: CompletionRequest | ChatRequest) -> Completion:
        """A completion (or, on a chat route, a chat) through the legacy ``/gateway`` path."""
        data = self.transport.request(
            "POST", f"/gateway/{route}/invocations", route, data=json.dumps(request.body(AnswerShape.CANDIDATES))
        )
        return parse_completion(data, route)


class DeploymentsGatewayClient:
    """The current MLflow AI Gateway's REST API (what ``mlflow.deployments`` calls), over the
    same :class:`Transport` as the legacy client: one timeout and retry policy for both."""

    def __init__(self, transport: Transport | str):
        self.transport = Transport(transport) if isinstance(transport, str) else transport
        self.url = self.transport.base_url

    def list_endpoints(self) -> list[dict[str, Any]]:
        endpoints: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params = {"page_token": token} if token else None
            page = self.transport.request("GET", "/api/2.0/endpoints/", params=params) or {}
            endpoints.extend(page.get("endpoints", []))
            if not (token := page.get("next_page_token")):
                return endpoints

    def get_endpoint(self, name: str) -> dict[str, Any]:
        return self.transport.request("GET", f"/api/2.0/endpoints/{name}", name)

    def query(self, endpoint: str, request: CompletionRequest | ChatRequest) -> Completion:
        """A completion, or on a chat route a chat (``choices[].message``), through the
        endpoint's ``invocations``."""
        data = self.transport.request(
            "POST", f"/endpoints/{endpoint}/invocations", endpoint, data=json.dumps(request.body(AnswerShape.CHOICES))
        )
        return parse_completion(data, endpoint)

    def complete(self, api: str, endpoint: str, request: CompletionRequest) -> Completion:
        """One completion through ``api``: ``invocations`` (:meth:`query`) or ``openai``
        (:meth:`query_openai`)."""
        return (self.query if api == "invocations" else self.query_openai)(endpoint, request)

    def query_openai(self, endpoint: str, request: CompletionRequest) -> Completion:
        """The same completion through the gateway's OpenAI-compatible ``/v1/completions``,
        with ``model`` set to the endpoint's name (the MLflow 3.17 gateway answers it with
        the same ``choices`` body as the endpoint's own ``invocations``)."""
        body = {"model": endpoint, **request.body(AnswerShape.CHOICES)}
        data = self.transport.request("POST", "/v1/completions", endpoint, data=json.dumps(body))
        return parse_completion(data, endpoint)
