"""Building frozen config dataclasses from user mappings (MLflow ``model_config``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def from_mapping(cls: type[T], values: Mapping[str, Any] | None) -> T:
    """``cls(**values)``, refusing unknown keys by name; ``cls`` validates the values."""
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    if unknown := sorted(set(values) - known):
        raise ValueError(f"unknown model_config keys {unknown}: allowed {sorted(known)}")
    return cls(**values)


# Where the harness keeps its store, snapshots and logs unless told otherwise.
DEFAULT_HOME = Path(".harness")

# MLflow model names and gateway route names: URL-safe, as both servers require.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(field: str, value: object) -> str:
    """``value`` if it is a valid model or route name; else ValueError naming ``field``."""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        shown = repr(value)[:40]
        raise ValueError(
            f"{field}={shown} is invalid: allowed 1-128 characters of letters, "
            "digits, '.', '_' and '-', starting with a letter or digit"
        )
    return value
