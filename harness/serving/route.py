"""A typed, validated AI Gateway route (the seed's Step 6, made to run): completions, or chat.

Secrets are held only as environment references (``$DATABRICKS_TOKEN``) and are
resolved at the edge, by the transport, into a :class:`Secret` whose value never
appears in ``repr``, logs, exceptions, reports or MLflow params.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, NoReturn, cast
from urllib.parse import urlparse

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from harness._validation import Allowed, ConfigError, OneOf, parsed
from harness.model.config import check_name

_ENV_RE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
SEED_ROUTE_NAME = "completions-mpt-7b-instruct"


class RouteType(str, Enum):
    COMPLETIONS = "llm/v1/completions"
    # MLflow 3.17's mlflow-model-serving provider forwards a chat request's one message's
    # content as {"inputs": [content], "params": {...}}: the same PyFunc serves both types.
    CHAT = "llm/v1/chat"


class Provider(str, Enum):
    DATABRICKS_MODEL_SERVING = "databricks-model-serving"
    MLFLOW_MODEL_SERVING = "mlflow-model-serving"


class RouteError(ConfigError):
    """An invalid route; names the field, never shows a secret's value."""

    def __init__(self, message: str, field: str = "route"):
        super().__init__(field, message)


class _ModelEntry(BaseModel):
    """A route's ``model`` section as a gateway file or create_route gives it."""

    model_config = ConfigDict(extra="forbid")
    name: object = None  # checked with the route's name (check_name), which names the field
    provider: Annotated[str, OneOf(tuple(p.value for p in Provider))]
    config: dict[str, object] = Field(default_factory=dict)


class _Entry(BaseModel):
    """One endpoint of a gateway file, or the seed's create_route arguments."""

    model_config = ConfigDict(extra="ignore")
    name: object = None
    endpoint_type: Annotated[str, OneOf(tuple(t.value for t in RouteType))] = Field(
        RouteType.COMPLETIONS.value, validation_alias=AliasChoices("endpoint_type", "route_type")
    )
    model: _ModelEntry


class _GatewayFile(BaseModel):
    model_config = ConfigDict(extra="ignore")
    endpoints: Annotated[list[dict[str, object]], Allowed("a non-empty list of endpoints")] = Field(
        min_length=1, validation_alias=AliasChoices("endpoints", "routes")
    )


def _route_error(where: str, message: str) -> RouteError:
    return RouteError(message, where)


class Secret:
    """A resolved secret: usable through :meth:`reveal`, invisible everywhere else."""

    __slots__ = ("_value", "ref")

    def __init__(self, value: str, ref: str):
        self._value = value
        self.ref = ref

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.ref})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:  # never pickled into a model or a report with its value
        raise TypeError("a resolved Secret cannot be pickled")


@dataclass(frozen=True)
class EnvRef:
    """``$NAME``: a secret kept in an environment variable."""

    name: str

    @classmethod
    def parse(cls, field: str, value: object) -> EnvRef:
        match = _ENV_RE.match(value) if isinstance(value, str) else None
        if match is None:
            raise RouteError(
                f"{field} must be an environment reference such as $DATABRICKS_TOKEN; "
                "a literal value was given (not shown) and secrets never go in "
                "files or arguments"
            )
        return cls(match.group(1))

    def resolve(self, environ: Mapping[str, str] | None = None) -> Secret:
        environ = os.environ if environ is None else environ
        value = environ.get(self.name)
        if not value:
            raise RouteError(f"environment variable {self.name} (referenced as ${self.name}) is not set")
        return Secret(value, f"${self.name}")

    def __str__(self) -> str:
        return f"${self.name}"


def _check_url(field: str, value: object) -> str:
    url = urlparse(value) if isinstance(value, str) else None
    if not isinstance(value, str) or url is None or url.scheme not in ("http", "https") or not url.hostname:
        # The value itself is never quoted: a token pasted into a URL field is a secret.
        got = (
            f"a {url.scheme!r} URL"
            if url is not None and url.scheme and url.netloc
            else f"a {type(value).__name__} of {len(value)} characters, not shown"
            if isinstance(value, str)
            else f"a {type(value).__name__}"
        )
        raise RouteError(f"{field} must be an http(s) URL, got {got}"[:300])
    if url.username or url.password:
        raise RouteError(
            f"{field} must not carry credentials; put the token in an environment variable and reference it"
        )
    return value.rstrip("/")


@dataclass(frozen=True)
class DatabricksConfig:
    databricks_workspace_url: str
    databricks_api_token: EnvRef

    def public(self) -> dict[str, str]:
        return {
            "databricks_workspace_url": self.databricks_workspace_url,
            "databricks_api_token": str(self.databricks_api_token),
        }


@dataclass(frozen=True)
class MlflowServingConfig:
    model_server_url: str

    def public(self) -> dict[str, str]:
        return {"model_server_url": self.model_server_url}


ProviderConfig = DatabricksConfig | MlflowServingConfig


def _provider_config(provider: Provider, config: Mapping[str, Any]) -> ProviderConfig:
    allowed = {
        Provider.DATABRICKS_MODEL_SERVING: {"databricks_workspace_url", "databricks_api_token"},
        Provider.MLFLOW_MODEL_SERVING: {"model_server_url"},
    }[provider]
    if unknown := sorted(set(config) - allowed):
        raise RouteError(f"model.config has unknown keys {unknown} for {provider.value}: allowed {sorted(allowed)}")
    if missing := sorted(allowed - set(config)):
        raise RouteError(f"model.config is missing {missing} for {provider.value}")
    if provider is Provider.DATABRICKS_MODEL_SERVING:
        return DatabricksConfig(
            _check_url("databricks_workspace_url", config["databricks_workspace_url"]),
            EnvRef.parse("databricks_api_token", config["databricks_api_token"]),
        )
    return MlflowServingConfig(_check_url("model_server_url", config["model_server_url"]))


@dataclass(frozen=True)
class RouteSpec:
    name: str
    model_name: str
    provider: Provider
    config: ProviderConfig
    route_type: RouteType = RouteType.COMPLETIONS

    def __post_init__(self) -> None:
        for field in ("name", "model_name"):
            try:
                check_name(field, getattr(self, field))
            except ValueError as error:
                raise RouteError(str(error), field) from None
        try:
            object.__setattr__(self, "provider", Provider(self.provider))
            object.__setattr__(self, "route_type", RouteType(self.route_type))
        except ValueError as error:
            raise RouteError(
                f"{error}: allowed providers {[p.value for p in Provider]}, route types {[t.value for t in RouteType]}"
            ) from None
        expected = DatabricksConfig if self.provider is Provider.DATABRICKS_MODEL_SERVING else MlflowServingConfig
        if not isinstance(self.config, expected):
            raise RouteError(f"config for {self.provider.value} must be {expected.__name__}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouteSpec:
        """From a gateway YAML endpoint or the seed's create_route arguments."""
        entry = parsed(_Entry, data, _route_error)
        provider = Provider(entry.model.provider)
        # Unchecked here: __post_init__ validates both names (a RouteError otherwise).
        return cls(
            name=cast(str, entry.name),
            model_name=cast(str, entry.model.name),
            provider=provider,
            config=_provider_config(provider, entry.model.config),
            route_type=RouteType(entry.endpoint_type),
        )

    def public(self) -> dict[str, Any]:
        """The route with secrets as references: safe for logs, reports and MLflow params."""
        return {
            "name": self.name,
            "route_type": self.route_type.value,
            "model": {"name": self.model_name, "provider": self.provider.value, "config": self.config.public()},
        }

    def create_route_body(self) -> dict[str, Any]:
        """The body of the seed's ``create_route`` call, secrets still as references."""
        return self.public()

    def secrets(self) -> dict[str, EnvRef]:
        if isinstance(self.config, DatabricksConfig):
            return {"databricks_api_token": self.config.databricks_api_token}
        return {}

    def to_gateway_yaml(self) -> str:
        """The MLflow gateway's config file with this route as its one endpoint."""
        public = self.public()
        endpoint = {"name": self.name, "endpoint_type": self.route_type.value, "model": public["model"]}
        return yaml.safe_dump({"endpoints": [endpoint]}, sort_keys=False)


def routes_from_gateway_yaml(text: str) -> list[RouteSpec]:
    """Every endpoint of an MLflow gateway config file, each checked as :meth:`RouteSpec.from_dict`."""
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise RouteError("gateway config is invalid: allowed a mapping with an 'endpoints' list", "endpoints")
    return [RouteSpec.from_dict(e) for e in parsed(_GatewayFile, data, _route_error).endpoints]


def seed_route(model_server_url: str) -> RouteSpec:
    """The seed's route, served by a local/self-hosted MLflow scoring server."""
    return RouteSpec(
        SEED_ROUTE_NAME,
        "mpt-7b-instruct",
        Provider.MLFLOW_MODEL_SERVING,
        MlflowServingConfig(_check_url("model_server_url", model_server_url)),
    )
