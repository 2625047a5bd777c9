"""Checks through real servers on loopback: scoring server, route, gateway, secrets."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from harness._redact import redact
from harness.gate.checks.contract import PROVIDER_PAYLOADS, payload_fix
from harness.gate.checks.registry import (
    EVERY_OTHER,
    GateContext,
    Outcome,
    Row,
    answers,
    completion_text,
    failed,
    passed,
    check,
    skipped,
)
from harness.serving.route import (
    MlflowServingConfig,
    Provider,
    RouteError,
    RouteSpec,
    routes_from_gateway_yaml,
    seed_route,
)
from harness.serving.servers import ServerError, ServerProcess, gateway_server, scoring_server

_PROMPT = "What is MLflow?"


def _server(ctx: GateContext, key: str, factory: Callable[[], Any], in_background: bool = False) -> Any:
    """Start a server once per gate run (a failed start is not retried by later checks);
    ctx.close() stops it. A start :func:`prestart` began is waited for, not repeated (the
    wait is the gate's time: the candidate's working time does not count it)."""
    if (starting := ctx.server_starts) is not None and not in_background:
        starting.join()
    if key not in ctx.started and not ctx.closing.is_set():
        server = factory()
        ctx.servers.append(server)  # before start: an interrupt while it starts must stop it
        try:
            server.start()
        except ServerError as error:
            ctx.started[key] = error
            raise
        ctx.started[key] = server
    if isinstance(ctx.started.get(key), ServerError):
        raise ctx.started[key]
    if key not in ctx.started:
        raise ServerError(f"the {key.replace('_', ' ')} was not started: the gate is stopping")
    return ctx.started[key]


def prestart(ctx: GateContext) -> None:
    """Start the scoring server, then the gateway for the route, in a background thread: they
    take most of a gate's wall time, and the in-process checks need neither. The serving
    checks wait for it; a failed start is reported by the check that needs the server."""

    def start() -> None:
        try:
            server = _scoring(ctx, in_background=True)
            route = _route(ctx)
            if route is None or route.provider is Provider.MLFLOW_MODEL_SERVING:
                _gateway(ctx, route, server, in_background=True)
        except Exception:  # noqa: BLE001 - kept in ctx.started; the checks report it
            return

    thread = threading.Thread(target=start, name="harness-server-start", daemon=True)
    ctx.server_starts = thread
    thread.start()


def _logs(ctx: GateContext) -> dict[str, Any]:
    return {"log_dir": ctx.log_dir, "watch": list(ctx.canaries.values())}


_HOOKS = Path(__file__).parents[1] / "_server_hooks"
_FAILS_ON = "HARNESS-SCRIPTED-FAILURE"


def _scoring(ctx: GateContext, in_background: bool = False) -> ServerProcess:
    """The candidate behind the real scoring server. It gets the canaries (a leak shows in its
    log) and a hook that makes generate raise for prompts holding :data:`_FAILS_ON`."""
    if (model_uri := ctx.model_uri) is None:
        raise ServerError("there is no logged model to serve: the candidate was not logged")
    path = os.pathsep.join(p for p in (str(_HOOKS), os.environ.get("PYTHONPATH")) if p)
    env = {
        **ctx.canaries,
        "PYTHONPATH": path,
        "HARNESS_GENERATE_FAILS_ON": _FAILS_ON,
        "HARNESS_SNAPSHOT": str(ctx.snapshot),
    }
    return _server(
        ctx, "scoring_server", lambda: scoring_server(model_uri, ctx.tracking_uri, env=env, **_logs(ctx)), in_background
    )


@check("serving.scoring", "the scoring server answers the provider's payload", needs_serving=True)
def serving_scoring(ctx: GateContext) -> Outcome:
    try:
        server = _scoring(ctx)
    except ServerError as error:
        return failed(f"the scoring server did not start: {str(error).splitlines()[0]}", log_tail=str(error))
    payload = PROVIDER_PAYLOADS[ctx.provider]()
    response = requests.post(f"{server.url}/invocations", json=payload, timeout=60)
    evidence = {"payload": payload, "status": response.status_code, "body": response.text[:500]}
    if response.status_code != 200:
        return failed(
            f"the scoring server answered {response.status_code} to the {ctx.provider} payload{payload_fix(ctx)}",
            **evidence,
        )
    for rows in ([Row(_PROMPT, 0.0, 8)], [Row(p, 0.0, 6) for p in ("One.", _PROMPT, "Three?")]):
        response = requests.post(f"{server.url}/invocations", json=ctx.payload(rows), timeout=60)
        predictions = response.json().get("predictions") if response.ok else None
        evidence[f"{len(rows)} rows"] = {"status": response.status_code, "body": response.text[:300]}
        if not (
            isinstance(predictions, list)
            and len(predictions) == len(rows)
            and all(isinstance(p, str) or completion_text(p) is not None for p in predictions)
        ):
            return failed(
                f"a {len(rows)}-row request did not come back as a JSON list of "
                f"{len(rows)} answers (strings or completions objects): "
                f"{response.text[:100]}",
                **evidence,
            )
    return passed(f"200, and a JSON list of one answer per row, from {server.url}", **evidence)


@check(
    "serving.errors",
    "a generate that raises reaches the caller as an error status, never as a 200 answer",
    needs_serving=True,
)
def serving_errors(ctx: GateContext) -> Outcome:
    if not ctx.candidate.model_facts():
        ctx.send([Row(_PROMPT, 0.0, 2)])  # one request, in case no check has asked yet
    if not ctx.candidate.model_facts():
        return skipped(
            "skipped: the candidate decodes without transformers' generate, so a "
            "failing generate cannot be scripted for it"
        )
    server = _scoring(ctx)
    plain = requests.post(f"{server.url}/invocations", json=ctx.payload([Row(_PROMPT, 0.0, 4)]), timeout=60)
    if not plain.ok:  # an error status would prove nothing about a raising generate
        return skipped(
            f"skipped: the scoring server answers {plain.status_code} even when "
            "generate succeeds (see serving.scoring)",
            body=plain.text[:300],
        )
    body = ctx.payload([Row(f"{_FAILS_ON}: this request's generate raises.", 0.0, 4)])
    response = requests.post(f"{server.url}/invocations", json=body, timeout=60)
    evidence = {"status": response.status_code, "body": response.text[:300]}
    if response.ok:
        return failed(
            f"generate raised, yet the scoring server answered {response.status_code} "
            f"with {response.text[:80]!r}: the wrapper swallows errors into answers",
            **evidence,
        )
    return passed(f"generate raised and the caller got {response.status_code}", **evidence)


@check(
    "serving.concurrent",
    "concurrent requests with different settings get the answers the same requests get one by one",
    needs_serving=True,
)
def serving_concurrent(ctx: GateContext) -> Outcome:
    server = _scoring(ctx)
    bodies = [
        ctx.payload([Row(p, 0.0, k)])
        for p, k in (
            ("Name a colour.", 3),
            ("What is MLflow?", 9),
            ("Hi.", 5),
            ("Name a colour.", 12),
            ("What is MLflow?", 2),
            ("Explain caching.", 7),
        )
    ]

    def post(body: dict[str, Any]) -> tuple[int, str]:
        response = requests.post(f"{server.url}/invocations", json=body, timeout=120)
        return response.status_code, _answer_text(response)

    alone = [post(b) for b in bodies]
    with ThreadPoolExecutor(len(bodies)) as pool:
        together = list(pool.map(post, bodies))
    evidence = {"alone": [a[1][:200] for a in alone], "concurrent": [c[1][:200] for c in together]}
    if not any(status == 200 for status, _ in alone):
        return skipped(
            f"skipped: every request was refused ({alone[0][0]}) even one at a time, "
            "so there is nothing to compare (see serving.scoring)",
            **evidence,
        )
    for i, (a, c) in enumerate(zip(alone, together)):
        if a != c:
            return failed(
                f"request {i} of {len(bodies)} sent concurrently got {c[1][:80]!r} "
                f"(status {c[0]}); alone it got {a[1][:80]!r} (status {a[0]}): "
                "settings or state leak between concurrent requests",
                **evidence,
            )
    return passed(
        f"{len(bodies)} concurrent requests with different settings answered as when sent one by one", **evidence
    )


def _answer_text(response: requests.Response) -> str:
    """What a caller reads from a 200: the answers' text (a completions object's id and
    creation time differ on every call); the body as it came otherwise."""
    try:
        predictions = response.json().get("predictions") if response.ok else None
    except ValueError:
        predictions = None
    return json.dumps(answers(predictions)) if isinstance(predictions, list) else response.text


def _route(ctx: GateContext) -> RouteSpec | None:
    """The user's route (first endpoint of --route) or None for the seed's default."""
    if ctx.route_error is not None:
        raise RouteError(ctx.route_error)
    if ctx.route is None and ctx.route_file is not None:  # a context made without the runner
        return routes_from_gateway_yaml(Path(ctx.route_file).read_text())[0]
    return ctx.route


def _served_route(route: RouteSpec | None, server: Any) -> RouteSpec:
    """The user's route (or the seed's) pointed at the loopback scoring server."""
    return seed_route(server.url) if route is None else replace(route, config=MlflowServingConfig(server.url))


def _gateway(ctx: GateContext, route: RouteSpec | None, server: Any, in_background: bool = False) -> Any:
    served = _served_route(route, server)
    return _server(ctx, "gateway", lambda: gateway_server([served], **_logs(ctx)), in_background)


def _secret_values(ctx: GateContext) -> dict[str, str]:
    try:
        route = _route(ctx)
    except (RouteError, OSError, ValueError):
        return {}
    values = {}
    for field, ref in (route.secrets() if route else {}).items():
        try:
            values[field] = ref.resolve().reveal()
        except RouteError:
            continue
    return values


def _own_requests(ctx: GateContext) -> None:
    """Requests of its own, so the check judges the same outputs under ``--only`` as in a
    full run (which adds what every other check made the candidate write)."""
    if ctx.candidate is None:
        return
    for row in (Row("What is MLflow?", 0.0, 8), Row("What is MLflow?", -1.0, 8)):
        try:
            ctx.send([row])
        except Exception as error:  # noqa: BLE001 - a refusal's message is scanned like an answer
            ctx.answers_seen.append(str(error))


def _haystacks(ctx: GateContext) -> dict[str, str]:
    """Everything the gate wrote or saw: the report as it will be written, the candidate's
    answers, its log and the server logs (with what their redaction masked), MLflow
    params/tags."""
    from mlflow.tracking import MlflowClient

    texts = {
        "report": redact(json.dumps([r.to_dict() for r in ctx.results], default=str)),
        "answers": "\n".join(ctx.answers_seen),
    }
    for log in ctx.candidate_logs:  # one per start of the candidate
        if Path(log).is_file():
            texts["candidate log"] = texts.get("candidate log", "") + Path(log).read_text(errors="replace")
    for earlier in ctx.earlier_workers:
        if getattr(earlier, "log", None) is not None:
            texts["candidate log"] = texts.get("candidate log", "") + "\n".join(earlier.log.seen)
    owners = {
        "candidate log": ctx.worker,
        "scoring_server log": ctx.started.get("scoring_server"),
        "gateway log": ctx.started.get("gateway"),
    }
    for where, owner in owners.items():
        if getattr(owner, "log", None) is not None:
            # The file holds the masked text; what the process printed is recorded here.
            texts[where] = texts.get(where, "") + "\n".join(owner.log.seen)
            if where != "candidate log":
                texts[where] += "\n" + owner.log_tail(10_000)
    client = MlflowClient(ctx.tracking_uri)
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id], max_results=200):
            texts[f"run {run.info.run_id} params/tags"] = json.dumps({**run.data.params, **run.data.tags})
    return texts


@check(
    "secrets.no_leak",
    "no route secret or credential canary appears in answers, reports, logs or MLflow params",
    needs_model=False,
    after=(EVERY_OTHER,),
)
def secrets_no_leak(ctx: GateContext) -> Outcome:
    secrets = {**_secret_values(ctx), **{f"${name} (canary)": value for name, value in ctx.canaries.items()}}
    if not secrets:
        return skipped("skipped: no route secret is set and no canary was planted")
    _own_requests(ctx)
    haystacks = _haystacks(ctx)
    leaks = [
        f"{field} in {where}" for field, value in secrets.items() for where, text in haystacks.items() if value in text
    ]
    if leaks:
        return failed(f"secret value found: {', '.join(leaks)}")
    return passed(
        f"{len(secrets)} secret(s) and canaries absent from {len(haystacks)} places",
        scanned=sorted(haystacks),
        planted=sorted(secrets),
    )
