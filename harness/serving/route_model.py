"""Step 8 of the seed: a PyFunc model that answers by querying a completions route.

Application logic (a prompt-engineering template) lives in the model; generation
lives behind the route. Loggable and servable like any PyFunc model; its config
holds the gateway URL, the route and, for tokens, only an environment reference.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from harness._validation import IntIn, as_dict, Matching, Number, OneOf, settings
from harness.model.config import from_mapping
from harness.serving.gateway import (
    CompletionRequest,
    DeploymentsGatewayClient,
    GatewayError,
    LegacyGatewayClient,
    RetryPolicy,
    Transport,
)
from harness.serving.route import EnvRef, RouteError

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

ROUTE_APIS = ("legacy", "deployments")


@settings()
class RouteModelConfig:
    gateway_url: str
    route: str
    template: Annotated[str, Matching(r"\{prompt\}", "a template with the {prompt} placeholder")] = "{prompt}"
    api: Annotated[str, OneOf(ROUTE_APIS)] = "legacy"
    token_env: str | None = None  # e.g. "$DATABRICKS_TOKEN"; never the token itself
    timeout_s: Annotated[float, Number(0.0, 600.0)] = 60.0
    retries: Annotated[int, IntIn(0, 10)] = 2

    def __post_init__(self) -> None:
        if self.token_env is not None:
            EnvRef.parse("token_env", self.token_env)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> RouteModelConfig:
        return from_mapping(cls, values)


def build_client(
    cfg: RouteModelConfig, retry: RetryPolicy | None = None
) -> DeploymentsGatewayClient | LegacyGatewayClient:
    token = EnvRef.parse("token_env", cfg.token_env).resolve() if cfg.token_env else None
    retry = retry or RetryPolicy(retries=cfg.retries)
    transport = Transport(cfg.gateway_url, token, cfg.timeout_s, retry)
    if cfg.api == "deployments":
        return DeploymentsGatewayClient(transport)
    return LegacyGatewayClient(transport)


def _prompts(model_input: Any) -> list[str]:
    if hasattr(model_input, "columns"):
        column = "prompt" if "prompt" in model_input.columns else model_input.columns[0]
        return [str(p) for p in model_input[column].tolist()]
    if isinstance(model_input, str):
        return [model_input]
    return [str(p) for p in model_input]


with warnings.catch_warnings(record=True):  # see harness.model.wrapper: MLflow's type-hint warning

    class RouteBackedModel(PythonModel):
        """Answers each row by sending ``template.format(prompt=row)`` to the route."""

        def load_context(self, context: Any) -> None:
            try:
                self.config = RouteModelConfig.from_mapping(getattr(context, "model_config", None))
                self.client = build_client(self.config)
            except (ValueError, RouteError) as error:
                raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from error

        # Typed by a comment, not annotations: MLflow reads predict's annotations to infer and
        # enforce a signature, which would replace the one given at log time.
        def predict(self, context, model_input, params=None):  # type: (Any, Any, Mapping[str, Any] | None) -> list[str]
            params = dict(params or {})
            stop = params.get("stop") or None
            answers = []
            for prompt in _prompts(model_input):
                request = CompletionRequest(
                    self.config.template.format(prompt=prompt),
                    params.get("temperature"),
                    params.get("max_tokens"),
                    tuple(stop) if stop else None,
                )
                try:
                    answers.append(self.client.query(self.config.route, request).text)
                except GatewayError as error:
                    code = INVALID_PARAMETER_VALUE if error.status in (400, 422) else None
                    raise MlflowException(str(error), **({"error_code": code} if code else {})) from None
            return answers


def log_route_model(cfg: RouteModelConfig, name: str = "route-model") -> ModelInfo:
    """Log a :class:`RouteBackedModel` with the gateway signature (prompt + params), so that
    temperature/max_tokens/stop reach it; returns MLflow's ModelInfo."""
    import mlflow

    from harness.store import harness_code_path
    from harness.model.signature import GATEWAY

    config = {k: v for k, v in as_dict(cfg).items() if v is not None}
    # No input example: MLflow would query the route while logging. Its warning about that
    # is silenced here, and only that warning.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*An input example was not provided", UserWarning)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=RouteBackedModel(),
            model_config=config,
            signature=GATEWAY,
            code_paths=[harness_code_path()],
        )
