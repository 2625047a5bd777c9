"""Building frozen config dataclasses from user mappings (MLflow ``model_config``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import Field, fields
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from harness._validation import NAME_ALLOWED, NAME_PATTERN, ConfigError, Matching, checked


class _Dataclass(Protocol):
    """Any dataclass (what :func:`dataclasses.fields` accepts)."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]


T = TypeVar("T", bound=_Dataclass)


def from_mapping(cls: type[T], values: Mapping[str, Any] | None) -> T:
    """``cls(**values)``, refusing unknown keys by name; ``cls`` validates the values."""
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    if unknown := sorted(set(values) - known):
        raise ConfigError("model_config", f"unknown model_config keys {unknown}: allowed {sorted(known)}")
    return cls(**values)


# SignatureKind's values (harness.model.signature), importable without MLflow (the CLI's choices).
SIGNATURE_KINDS = ("gateway", "columns")

# Where the harness keeps its store, snapshots and logs unless told otherwise.
DEFAULT_HOME = Path(".harness")


def check_name(field: str, value: object) -> str:
    """``value`` if it is a valid model or route name; else ConfigError naming ``field``."""
    return str(checked(field, value, Matching(NAME_PATTERN, NAME_ALLOWED), str))
