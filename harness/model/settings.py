"""Per-request generation settings and their ranges.

Pure Python (no torch, no MLflow): the timed core and the PyFunc adapter share
it, and the adapter turns :class:`InvalidParameter` into an ``MlflowException``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import SupportsInt, cast

from harness.model.errors import quote

TEMPERATURE_MIN = 0.0
# The current MLflow gateway accepts 0-2 for completions; the legacy one 0-1.
TEMPERATURE_MAX = 2.0
DEFAULT_TEMPERATURE = 1.0
DEFAULT_MAX_TOKENS = 100


class InvalidParameter(ValueError):
    """A request setting outside its allowed range; names the field and quotes at most
    200 characters of the value (the message reaches the client whole)."""

    def __init__(self, field: str, value: object, allowed: str):
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}={quote(value)} is invalid: allowed {allowed}")


def check_temperature(value: object) -> float:
    allowed = f"a finite number in [{TEMPERATURE_MIN:g}, {TEMPERATURE_MAX:g}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameter("temperature", value, allowed)
    value = float(value)
    if not math.isfinite(value) or not TEMPERATURE_MIN <= value <= TEMPERATURE_MAX:
        raise InvalidParameter("temperature", value, allowed)
    return value


def check_max_tokens(value: object, limit: int | None = None) -> int:
    """``limit`` is the room left in the context window, when known."""
    allowed = "an integer >= 1" if limit is None else f"an integer in [1, {limit}]"
    if isinstance(value, bool):
        raise InvalidParameter("max_tokens", value, allowed)
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        # Columns arrive as float when pandas saw a NaN elsewhere: 100.0 is fine, 1.5 is not.
        if not (math.isfinite(value) and float(value).is_integer()):
            raise InvalidParameter("max_tokens", value, allowed)
        # typeshed's numbers.Real declares no __int__ (only __trunc__, loosely typed), but
        # every real type that arrives here (float, numpy floats, Decimal, Fraction) has one.
        value = int(cast(SupportsInt, value))
    if not isinstance(value, numbers.Integral):
        raise InvalidParameter("max_tokens", value, allowed)
    value = int(value)
    if value < 1 or (limit is not None and value > limit):
        raise InvalidParameter("max_tokens", value, allowed)
    return value


def check_stop(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    try:
        items = list(value)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidParameter("stop", value, "a list of non-empty strings") from None
    if not all(isinstance(s, str) and s for s in items):
        raise InvalidParameter("stop", value, "a list of non-empty strings")
    return tuple(items)


@dataclass(frozen=True)
class GenerationSettings:
    """Validated settings of one group of rows; hashable so rows can be grouped by it."""

    temperature: float = DEFAULT_TEMPERATURE
    max_tokens: int = DEFAULT_MAX_TOKENS
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperature", check_temperature(self.temperature))
        object.__setattr__(self, "max_tokens", check_max_tokens(self.max_tokens))
        object.__setattr__(self, "stop", check_stop(self.stop))

    @property
    def greedy(self) -> bool:
        # transformers rejects do_sample=True with temperature 0; 0 means greedy.
        return self.temperature == 0.0

    def generate_kwargs(self) -> dict:
        kwargs: dict = {"max_new_tokens": self.max_tokens, "use_cache": True}
        if self.greedy:
            kwargs["do_sample"] = False
        else:
            kwargs.update(do_sample=True, temperature=self.temperature)
        return kwargs
