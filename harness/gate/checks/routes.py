"""The route's checks: its spec, and a query through the real loopback gateway, for a
completions route or a chat route (``llm/v1/chat``) alike.

What an MLflow-served model behind a chat route receives (MLflow 3.17's
``mlflow-model-serving`` provider): the one message's ``content`` as ``{"inputs": [content],
"params": {...}}``, the same payload a completions route sends for its prompt, so the model
applies its own prompt format to it. Several messages (a system turn and a user turn) are
refused by the gateway with a 422 before the model is called.
"""

from __future__ import annotations

from typing import Any

from harness.gate.checks.registry import GateContext, Outcome, Row, answers, check, failed, passed, skipped
from harness.gate.checks.serving import _gateway, _route, _scoring, _served_route
from harness.serving.gateway import (
    NO_RETRY,
    ChatRequest,
    Completion,
    CompletionRequest,
    DeploymentsGatewayClient,
    GatewayError,
    LegacyGatewayClient,
    Transport,
)
from harness.serving.route import Provider, RouteError, RouteType

_PROMPT = "What is MLflow?"


@check(
    "route.spec",
    "the route validates and its secrets are environment references",
    needs_model=False,
    needs_candidate=False,
)
def route_spec(ctx: GateContext) -> Outcome:
    try:
        route = _route(ctx)  # None exactly when no --route was given
    except (RouteError, OSError, ValueError) as error:
        return failed(f"{ctx.route_file}: {error}")
    if route is None:
        return skipped(
            "skipped: no --route given; the server checks use the seed's route (mlflow-model-serving on loopback)"
        )
    secrets = {k: str(v) for k, v in route.secrets().items()}
    return passed(
        f"route {route.name!r} ({route.provider.value}, {route.route_type.value}) is valid; "
        f"secrets as references: {secrets or 'none'}",
        route=route.public(),
    )


@check("route.gateway", "a query through the real loopback gateway returns the documented shape", needs_serving=True)
def route_gateway(ctx: GateContext) -> Outcome:
    try:
        route = _route(ctx)
    except (RouteError, OSError, ValueError) as error:
        return failed(f"the route is invalid: {error}")
    if route is not None and route.provider is not Provider.MLFLOW_MODEL_SERVING:
        return skipped(
            f"{route.provider.value} routes call a remote workspace, which is not "
            "reachable from here; route.spec checked the route itself"
        )
    server = _scoring(ctx)
    gateway = _gateway(ctx, route, server)
    route = _served_route(route, server)
    chat = route.route_type is RouteType.CHAT
    request: CompletionRequest | ChatRequest = (
        ChatRequest.user(_PROMPT, temperature=0.0, max_tokens=8)
        if chat
        else CompletionRequest(_PROMPT, temperature=0.0, max_tokens=8)
    )
    # The gateway first: what a caller of the route gets is the finding, whatever the
    # candidate does when called directly.
    try:
        legacy = LegacyGatewayClient(Transport(gateway.url, retry=NO_RETRY)).query(route.name, request)
        current = DeploymentsGatewayClient(gateway.url).query(route.name, request)
    except GatewayError as error:
        refused = (
            (" (the model refused the payload the route's provider sends: see signature.payload)")
            if error.status == 400
            else ""
        )
        return failed(
            f"the gateway answered {error.status}: {error.message[:200]}{refused}", gateway_log=gateway.log_tail(10)
        )
    direct = answers(ctx.send([Row(_PROMPT, 0.0, 8)]))
    evidence: dict[str, Any] = {
        "route": route.public(),
        "legacy_path": legacy.texts,
        "endpoints_path": current.texts,
        "shape": current.shape.value,
        "direct": list(direct),
    }
    if chat:
        evidence["several_messages"] = _several_messages(gateway.url, route.name)
    if len(current.texts) != 1 or len(legacy.texts) != 1:
        return failed("expected one candidate per request", **evidence)
    if current.text != list(direct)[0] or legacy.text != current.text:
        return failed("the gateway's answer differs from the model's direct answer at temperature 0", **evidence)
    what = "chat answer (the user message's content is the model's prompt)" if chat else f"{current.shape.value} answer"
    return passed(
        f"one {what} equal to the direct answer, through /endpoints and /gateway on {gateway.url}",
        **evidence,
    )


def _several_messages(url: str, name: str) -> dict[str, Any]:
    """What the route does with a system turn before the user's: MLflow's provider refuses
    it (422) before the model is called. Reported, not judged: it is the gateway's rule."""
    request = ChatRequest((("system", "Be brief."), ("user", _PROMPT)), temperature=0.0, max_tokens=8)
    try:
        answer: Completion = DeploymentsGatewayClient(Transport(url, retry=NO_RETRY)).query(name, request)
    except GatewayError as error:
        return {"status": error.status, "message": error.message[:200]}
    return {"status": 200, "texts": list(answer.texts)}
