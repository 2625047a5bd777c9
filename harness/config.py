"""Building frozen config dataclasses from user mappings (MLflow ``model_config``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def from_mapping(cls: type[T], values: Mapping[str, Any] | None) -> T:
    """``cls(**values)``, refusing unknown keys by name; ``cls`` validates the values."""
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    if unknown := sorted(set(values) - known):
        raise ValueError(f"unknown model_config keys {unknown}: allowed {sorted(known)}")
    return cls(**values)
