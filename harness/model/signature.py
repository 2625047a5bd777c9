"""The two model signatures, their input examples, and payload checking as MLflow serves it."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema

from harness._mlflow_compat import ParsedRequest, parse_scoring_request
from harness.model.settings import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE

_OUTPUT = Schema([ColSpec(DataType.string)])

# The seed's Step 3 schema: settings as columns. It rejects the payload the
# current gateway's mlflow-model-serving provider sends ({"inputs": [...], "params": {...}}).
COLUMNS = ModelSignature(
    inputs=Schema(
        [
            ColSpec(DataType.string, "prompt"),
            ColSpec(DataType.double, "temperature"),
            ColSpec(DataType.long, "max_tokens"),
        ]
    ),
    outputs=_OUTPUT,
)

# A prompt column plus a ParamSchema: accepts the gateway payload. MLflow fills in
# these defaults when a request sends no params, and drops unknown columns silently.
GATEWAY = ModelSignature(
    inputs=Schema([ColSpec(DataType.string, "prompt")]),
    outputs=_OUTPUT,
    params=ParamSchema(
        [
            ParamSpec("temperature", DataType.double, DEFAULT_TEMPERATURE),
            ParamSpec("max_tokens", DataType.long, DEFAULT_MAX_TOKENS),
            ParamSpec("stop", DataType.string, [], shape=(-1,)),
        ]
    ),
)

# Defined before it is used (the seed's Step 4 used input_example first).
COLUMNS_EXAMPLE = pd.DataFrame(
    {
        "prompt": ["What is machine learning?"],
        "temperature": [0.5],
        "max_tokens": [100],
    }
)
GATEWAY_EXAMPLE = (pd.DataFrame({"prompt": ["What is machine learning?"]}), {"temperature": 0.5, "max_tokens": 100})


class SignatureKind(str, Enum):
    GATEWAY = "gateway"
    COLUMNS = "columns"

    @property
    def signature(self) -> ModelSignature:
        return GATEWAY if self is SignatureKind.GATEWAY else COLUMNS

    @property
    def input_example(self) -> Any:
        return GATEWAY_EXAMPLE if self is SignatureKind.GATEWAY else COLUMNS_EXAMPLE


def parse_payload(payload: str | dict, signature: ModelSignature | None) -> ParsedRequest:
    """Parse and enforce a JSON request body exactly as MLflow's scoring server does.

    Raises ``MlflowException`` where the server would answer 400.
    """
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return parse_scoring_request(body, signature)


def gateway_payload(prompts: list[str], **params: Any) -> dict:
    """The body the current gateway's ``mlflow-model-serving`` provider sends."""
    return {"inputs": list(prompts), "params": params}


def columns_payload(prompts: list[str], temperature: float, max_tokens: int) -> dict:
    """The column-style body a client of the seed's signature sends."""
    return {"dataframe_records": [{"prompt": p, "temperature": temperature, "max_tokens": max_tokens} for p in prompts]}
