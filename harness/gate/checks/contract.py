"""Checks that the candidate loads and that its signature accepts what the route sends."""

from __future__ import annotations

from harness.gate.checks.registry import GateContext, Outcome, check, failed, no_verdict, passed
from harness.model.signature import columns_payload, gateway_payload, parse_payload

# What each route provider sends to the model server for one completions request.
PROVIDER_PAYLOADS = {
    "mlflow-model-serving": lambda: gateway_payload(["What is MLflow?"], temperature=0.0, max_tokens=16),
    "columns": lambda: columns_payload(["What is MLflow?"], temperature=0.0, max_tokens=16),
}


@check("load", "the candidate loads on this machine", needs_model=False)
def load(ctx: GateContext) -> Outcome:
    if ctx.candidate is None and ctx.load_no_verdict:
        return no_verdict(f"no verdict: {ctx.load_error or 'the worker ended while loading'}")
    if ctx.candidate is None:
        return failed(ctx.load_error or "the candidate did not load", traceback=ctx.load_traceback)
    return passed("loaded with mlflow.pyfunc.load_model in its own process")


@check("signature.present", "the model has a signature with a string prompt input", needs_model=False)
def signature_present(ctx: GateContext) -> Outcome:
    sig = ctx.signature
    if sig is None:
        return failed("the model was logged without a signature; serving cannot check inputs")
    inputs = sig.inputs.to_dict() if sig.inputs else []
    evidence = {"inputs": inputs, "params": sig.params.to_dict() if sig.params else None}
    names = [c.get("name") for c in inputs]
    if "prompt" not in names and "messages" in names:
        return failed(
            "a chat-task signature (a 'messages' input, no 'prompt'): a route's mlflow-model-serving provider "
            "sends one message's content as the prompt string, which it refuses",
            **evidence,
        )
    if "prompt" not in names:
        return failed(f"the input schema has no 'prompt' column (columns: {names})", **evidence)
    if next(c for c in inputs if c.get("name") == "prompt").get("type") != "string":
        return failed("the 'prompt' column is not a string", **evidence)
    return passed(f"inputs {names}, params {[p['name'] for p in evidence['params'] or []]}", **evidence)


@check("signature.payload", "the route provider's payload passes MLflow's parsing and enforcement", needs_model=False)
def signature_payload(ctx: GateContext) -> Outcome:
    payload = PROVIDER_PAYLOADS[ctx.provider]()
    try:
        data, params = parse_payload(payload, ctx.signature)
    except Exception as error:
        message = getattr(error, "message", str(error)).splitlines()[0][:300]
        return failed(
            f"the {ctx.provider} payload is rejected by the model's signature: {message}{payload_fix(ctx)}",
            payload=payload,
        )
    return passed(
        f"the {ctx.provider} payload is accepted",
        payload=payload,
        parsed={"data": data.to_dict("list") if hasattr(data, "to_dict") else repr(data), "params": params},
    )


def payload_fix(ctx: GateContext) -> str:
    """The one-line fix, where the signature says which way the model went."""
    names = (
        [c.get("name") for c in ctx.signature.inputs.to_dict()]
        if ctx.signature is not None and ctx.signature.inputs
        else []
    )
    if {"prompt", "temperature", "max_tokens"} <= set(names):
        return (
            '. Fix: the mlflow-model-serving provider sends {"inputs": [prompt], "params": '
            "{...}}, but this signature wants settings as columns (a transformers-flavour "
            "llm/v1/completions model, or the seed's column signature): wrap the model in a "
            "PyFunc with harness.model.signature.GATEWAY (prompt column, settings as params)"
        )
    return ""
