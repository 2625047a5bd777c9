"""Recorded gateway contracts: what real MLflow gateways answered, request by request.

A contract file (one JSON per interaction, ``harness/testing/contracts/<profile>/``) holds
the request (method, path, the headers that matter, body) and the response (status,
content type, body) and the server it was recorded from. ``scripts/record_contracts.py``
records them from real servers and replays them there to report drift (provider side);
the suite replays each against :class:`MockGateway` of the same profile (consumer side).

Bodies are compared by *shape* (keys and JSON types, recursively), since messages and
sampled text differ between runs; a ``greedy`` interaction (temperature 0) must also
return exactly the recorded text, which the recorder checked equals the reference's
greedy answer on the tiny snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

CONTRACTS_DIR = Path(__file__).parent / "contracts"
# profile -> folder; both legacy folders are MLflow 2.8.1, on pydantic 1 and on pydantic 2.
RECORDINGS = {"legacy": "legacy-2.8.1", "legacy-pydantic2": "legacy-2.8.1-pydantic2", "current": "current-3.17"}
ROUTE = "completions-mpt-7b-instruct"
CHAT_ROUTE = "chat-mpt-7b-instruct"  # an llm/v1/chat route to the same served model
PROMPT = "What is MLflow?"
_JSON = {"Content-Type": "application/json"}


class RecordedRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    method: str
    path: str
    headers: dict[str, str] = {}
    body: str | None = None
    # False records the server's own redirect (307 and where to) instead of what follows it.
    follow_redirects: bool = True


class RecordedResponse(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    status: int
    content_type: str
    body: Any
    location: str | None = None  # a redirect's target, path and query only (ports differ)


class Interaction(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    case: str
    server: str  # e.g. "mlflow-gateway 2.8.1"
    compare: Literal["shape", "greedy"] = "shape"
    request: RecordedRequest
    response: RecordedResponse


@dataclass(frozen=True)
class ContractCase:
    """One request to record; ``body`` is sent as JSON unless ``raw`` is given."""

    name: str
    method: str
    path: str
    body: Any = None
    raw: str | None = None
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    compare: Literal["shape", "greedy"] = "shape"
    follow_redirects: bool = True

    def request(self) -> RecordedRequest:
        body = self.raw if self.raw is not None else (None if self.body is None else json.dumps(self.body))
        return RecordedRequest(
            method=self.method,
            path=self.path,
            headers=dict(self.headers),
            body=body,
            follow_redirects=self.follow_redirects,
        )


def _query_cases(path: str, count_field: str, t_max: float) -> list[ContractCase]:
    def q(name: str, **fields: Any) -> ContractCase:
        body = {"prompt": PROMPT, "max_tokens": 8, **fields}
        return ContractCase(f"query-{name}", "POST", path, {k: v for k, v in body.items() if v != ...})

    return [
        ContractCase(
            "query-greedy", "POST", path, {"prompt": PROMPT, "temperature": 0, "max_tokens": 8}, compare="greedy"
        ),
        q("temperature-at-upper-bound", temperature=t_max),
        q("temperature-past-upper-bound", temperature=t_max + 0.5),
        q("temperature-1.5", temperature=1.5),
        q("temperature-negative", temperature=-0.1),
        q("temperature-string-number", temperature="0.5"),
        q("temperature-word", temperature="hot"),
        q("temperature-null", temperature=None),
        q("temperature-bool", temperature=True),
        q("max-tokens-1", max_tokens=1, temperature=0),
        q("max-tokens-0", max_tokens=0),
        q("max-tokens-negative", max_tokens=-1),
        q("max-tokens-fraction", max_tokens=5.5),
        q("max-tokens-string-number", max_tokens="8"),
        q("max-tokens-word", max_tokens="many"),
        q("prompt-missing", prompt=...),
        q("prompt-number", prompt=123),
        q("prompt-null", prompt=None),
        q("prompt-empty", prompt=""),
        q("prompt-list", prompt=["a", "b"]),
        q("prompt-bool", prompt=True),
        q("stop-list", stop=["\n"], temperature=0),
        q("stop-empty-list", stop=[]),
        q("stop-string", stop="x"),
        q("stop-numbers", stop=[1]),
        q(f"{count_field}-1", **{count_field: 1}),
        q(f"{count_field}-2", **{count_field: 2}),
        q(f"{count_field}-0", **{count_field: 0}),
        q(f"{count_field}-6", **{count_field: 6}),
        q(f"{count_field}-fraction", **{count_field: 1.5}),
        q("extra-field", top_p=0.5, foo="bar"),
        ContractCase("query-empty-body", "POST", path, raw=""),
        ContractCase("query-malformed-json", "POST", path, raw='{"prompt": '),
        ContractCase("query-json-array", "POST", path, body=["What is MLflow?"]),
        ContractCase(
            "query-text-plain",
            "POST",
            path,
            raw=json.dumps({"prompt": PROMPT}),
            headers=(("Content-Type", "text/plain"),),
        ),
        ContractCase("query-wrong-method", "GET", path),
        ContractCase("query-trailing-slash", "POST", path + "/", {"prompt": PROMPT}, follow_redirects=False),
        ContractCase("query-unknown-route", "POST", path.replace(ROUTE, "no-such-route"), {"prompt": PROMPT}),
        ContractCase(
            "query-auth-header-ignored",
            "POST",
            path,
            {"prompt": PROMPT, "max_tokens": 2},
            headers=(("Content-Type", "application/json"), ("Authorization", "Bearer wrong")),
        ),
    ]


def _chat_cases(path: str, count_field: str) -> list[ContractCase]:
    """A chat route in front of the same served model: what MLflow's provider forwards (one
    message's content) and what it refuses (several messages)."""
    user = {"role": "user", "content": PROMPT}

    def q(name: str, **fields: Any) -> ContractCase:
        body = {"messages": [user], "max_tokens": 8, **fields}
        return ContractCase(f"chat-{name}", "POST", path, {k: v for k, v in body.items() if v != ...})

    return [
        ContractCase("chat-greedy", "POST", path, {"messages": [user], "temperature": 0, "max_tokens": 8}, "greedy"),
        q("system-and-user", messages=[{"role": "system", "content": "Be brief."}, user]),
        q("two-user-turns", messages=[user, user]),
        q("system-only", messages=[{"role": "system", "content": PROMPT}], temperature=0),
        q("messages-empty", messages=[]),
        q("messages-missing", messages=..., prompt=PROMPT),
        q("content-number", messages=[{"role": "user", "content": 123}]),
        q("role-unknown", messages=[{"role": "robot", "content": PROMPT}]),
        q("stop-list", stop=["\n"], temperature=0),
        q("temperature-past-upper-bound", temperature=2.5),
        q("max-tokens-0", max_tokens=0),
        q(f"{count_field}-2", **{count_field: 2}),
        q("extra-field", top_p=0.5, foo="bar"),
    ]


def legacy_cases() -> list[ContractCase]:
    """The legacy REST API the seed's ``mlflow.gateway`` spoke (MLflow 2.8.1's server)."""
    routes = "/api/2.0/gateway/routes"
    return [
        ContractCase("health", "GET", "/health"),
        ContractCase("list-routes", "GET", routes),
        ContractCase("list-routes-trailing-slash", "GET", routes + "/"),
        ContractCase("list-routes-redirect", "GET", routes, follow_redirects=False),
        ContractCase("get-route-trailing-slash", "GET", f"{routes}/{ROUTE}/", follow_redirects=False),
        ContractCase("list-routes-page-token", "GET", routes + "/?page_token=eyJpbmRleCI6IDB9"),
        ContractCase("list-routes-bad-page-token", "GET", routes + "/?page_token=not-a-token"),
        ContractCase("get-route", "GET", f"{routes}/{ROUTE}"),
        ContractCase("get-unknown-route", "GET", f"{routes}/no-such-route"),
        ContractCase(
            "create-route",
            "POST",
            routes + "/",
            {
                "name": "another",
                "route_type": "llm/v1/completions",
                "model": {
                    "name": "m",
                    "provider": "mlflow-model-serving",
                    "config": {"model_server_url": "http://127.0.0.1:9"},
                },
            },
        ),
        ContractCase("delete-route", "DELETE", f"{routes}/{ROUTE}"),
        *_query_cases(f"/gateway/{ROUTE}/invocations", "candidate_count", 1.0),
        *_chat_cases(f"/gateway/{CHAT_ROUTE}/invocations", "candidate_count"),
    ]


def current_cases() -> list[ContractCase]:
    """Today's MLflow gateway: ``/endpoints/…`` answering ``choices`` (and the old path)."""
    return [
        ContractCase("health", "GET", "/health"),
        ContractCase("list-endpoints", "GET", "/api/2.0/endpoints/"),
        ContractCase("list-endpoints-redirect", "GET", "/api/2.0/endpoints", follow_redirects=False),
        ContractCase("get-endpoint", "GET", f"/api/2.0/endpoints/{ROUTE}"),
        ContractCase("get-unknown-endpoint", "GET", "/api/2.0/endpoints/no-such-route"),
        ContractCase(
            "legacy-path-query",
            "POST",
            f"/gateway/{ROUTE}/invocations",
            {"prompt": PROMPT, "temperature": 0, "max_tokens": 8},
            compare="greedy",
        ),
        ContractCase("legacy-routes-api", "GET", "/api/2.0/gateway/routes/"),
        *_query_cases(f"/endpoints/{ROUTE}/invocations", "n", 2.0),
        *_chat_cases(f"/endpoints/{CHAT_ROUTE}/invocations", "n"),
    ]


CASES: dict[str, Callable[[], list[ContractCase]]] = {
    "legacy": legacy_cases,
    "legacy-pydantic2": legacy_cases,
    "current": current_cases,
}


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and types, recursively (a list by its first item)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "null" if value is None else "str"


def send(base_url: str, request: RecordedRequest, timeout_s: float = 60.0) -> RecordedResponse:
    """Send a recorded request to ``base_url`` (a real server or a started mock)."""
    import requests

    response = requests.request(
        request.method,
        base_url + request.path,
        headers=request.headers,
        data=request.body.encode() if request.body is not None else None,
        timeout=timeout_s,
        allow_redirects=request.follow_redirects,
    )
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    location = response.headers.get("location") if response.is_redirect else None
    return RecordedResponse(
        status=response.status_code,
        content_type=content_type,
        body=decode_body(content_type, response.text),
        location=_path_of(location) if location is not None else None,
    )


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def decode_body(content_type: str, text: str) -> Any:
    if content_type == "application/json":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def mismatch(recorded: Interaction, got: RecordedResponse) -> str | None:
    """Why an answer breaks the recorded contract, showing both bodies; None when it holds."""
    want = recorded.response
    problems = []
    if got.status != want.status:
        problems.append(f"status {got.status} != recorded {want.status}")
    if got.content_type != want.content_type:
        problems.append(f"content type {got.content_type!r} != recorded {want.content_type!r}")
    if got.location != want.location:
        problems.append(f"redirect to {got.location!r} != recorded {want.location!r}")
    if shape(got.body) != shape(want.body):
        problems.append("body shape differs")
    elif recorded.compare == "greedy" and got.body != want.body and _texts(got.body) != _texts(want.body):
        problems.append("greedy text differs")
    if not problems:
        return None
    return (
        f"{recorded.case}: {'; '.join(problems)}\n  recorded: {json.dumps(want.body)[:600]}"
        f"\n  got:      {json.dumps(got.body)[:600]}"
    )


def _texts(body: Any) -> list[object]:
    """Each answer's ``text``, as recorded: None where an answer has none."""
    if not isinstance(body, dict):
        return []
    items = body.get("candidates") or body.get("choices") or []
    return [i["text"] if "text" in i else (i.get("message") or {}).get("content") for i in items if isinstance(i, dict)]


def load(profile: str) -> list[Interaction]:
    folder = CONTRACTS_DIR / RECORDINGS[profile]
    return [Interaction.model_validate_json(p.read_text()) for p in sorted(folder.glob("*.json"))]


def write(interactions: Iterable[Interaction], profile: str) -> Path:
    from harness._reporting import atomic_write

    folder = CONTRACTS_DIR / RECORDINGS[profile]
    folder.mkdir(parents=True, exist_ok=True)
    for interaction in interactions:
        atomic_write(folder / f"{interaction.case}.json", interaction.model_dump_json(indent=2) + "\n")
    return folder
