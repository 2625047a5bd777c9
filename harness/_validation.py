"""The one validation layer for settings that come from the command line, files and callers.

A settings class is declared once, as a frozen dataclass whose fields carry pydantic
rule as ``Annotated`` metadata that also says it in words (``Annotated[int, IntIn(1, 64)]``);
:func:`settings` makes it a pydantic dataclass whose every failure is one
:class:`ConfigError` naming the field, quoting a short prefix of the value and saying what
is allowed. Value objects that never meet outside input stay plain frozen dataclasses.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar, cast, dataclass_transform, get_args

import pydantic
from pydantic import ConfigDict, Field, GetCoreSchemaHandler, ValidationError
from pydantic_core import CoreSchema, core_schema

_T = TypeVar("_T")
_PREFIX = 40

# MLflow model names and gateway route names: URL-safe, as both servers require.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
NAME_ALLOWED = "1-128 characters of letters, digits, '.', '_' and '-', starting with a letter or digit"


class ConfigError(ValueError):
    """An invalid setting; ``field`` names it (the CLI maps it to its option)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def shown(value: object, limit: int = _PREFIX) -> str:
    """A short prefix of ``value`` for a message: strings quoted, at most ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    cut = text[:limit] + ("…" if len(text) > limit else "")
    return repr(cut) if isinstance(value, str) else cut


def invalid(
    field: str, value: object, allowed: str, error: type[ConfigError] = ConfigError, label: str = ""
) -> ConfigError:
    """The one message shape: ``[label ]field=<prefix> is invalid: allowed <allowed>``."""
    return error(field, f"{label}{field}={shown(value)} is invalid: allowed {allowed}")


def _distinct(values: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(set(values)) != len(values):
        raise ValueError("repeated values")
    return values


def _nullable(source: Any, schema: CoreSchema) -> CoreSchema:
    """``X | None`` fields take None as well as what the rule allows."""
    return core_schema.nullable_schema(schema) if type(None) in get_args(source) else schema


@dataclasses.dataclass(frozen=True)
class Allowed:
    """``Annotated`` metadata: what a field allows, in words; ``quote=False`` never echoes
    the value (a URL may carry a token). The subclasses below also give pydantic the rule."""

    text: str
    quote: bool = True

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return handler(source)


@dataclasses.dataclass(frozen=True, init=False)
class IntIn(Allowed):
    """An int in [low, high], bools refused; or one of the words in ``also`` (``'auto'``)."""

    low: int = 0
    high: int = 0
    also: tuple[str, ...] = ()

    def __init__(self, low: int, high: int, text: str | None = None, also: tuple[str, ...] = ()):
        words = "".join(f" or {w!r}" for w in also)
        object.__setattr__(self, "text", text or f"{low}-{high}{words}")
        object.__setattr__(self, "quote", True)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "also", tuple(also))

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema: CoreSchema = core_schema.int_schema(strict=True, ge=self.low, le=self.high)
        if self.also:
            schema = core_schema.union_schema([core_schema.literal_schema(list(self.also)), schema])
        return _nullable(source, schema)


@dataclasses.dataclass(frozen=True, init=False)
class DistinctInts(IntIn):
    """A non-empty tuple of distinct ints in [low, high] (a list is taken too)."""

    def __init__(self, low: int, high: int):
        super().__init__(low, high, f"distinct integers in {low}-{high}")

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        items = core_schema.int_schema(strict=True, ge=self.low, le=self.high)
        tuples = core_schema.tuple_schema([items], variadic_item_index=0, min_length=1)
        return _nullable(source, core_schema.no_info_after_validator_function(_distinct, tuples))


@dataclasses.dataclass(frozen=True, init=False)
class DistinctStrings(Allowed):
    """A non-empty tuple of distinct, non-empty strings (a list is taken too; one string is not)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        items = core_schema.str_schema(strict=True, min_length=1)
        tuples = core_schema.tuple_schema([items], variadic_item_index=0, min_length=1)
        return _nullable(source, core_schema.no_info_after_validator_function(_distinct, tuples))


@dataclasses.dataclass(frozen=True, init=False)
class Number(Allowed):
    """A finite real in (low, high] ([low, high] with ``closed``); bools refused, ints taken
    as floats."""

    low: float = 0.0
    high: float = 0.0
    closed: bool = False

    def __init__(self, low: float, high: float, text: str | None = None, closed: bool = False):
        shown = f"[{low:g}, {high:g}]" if closed else f"({low:g}, {high:g}]"
        object.__setattr__(self, "text", text or f"a number in {shown}")
        object.__setattr__(self, "quote", True)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "closed", closed)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        ge, gt = (self.low, None) if self.closed else (None, self.low)
        return _nullable(source, core_schema.float_schema(strict=True, ge=ge, gt=gt, le=self.high, allow_inf_nan=False))


@dataclasses.dataclass(frozen=True, init=False)
class OneOf(Allowed):
    """One of ``choices``."""

    choices: tuple[str, ...] = ()

    def __init__(self, choices: tuple[str, ...]):
        object.__setattr__(self, "text", str(choices))
        object.__setattr__(self, "quote", True)
        object.__setattr__(self, "choices", tuple(choices))

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return _nullable(source, core_schema.literal_schema(list(self.choices)))


@dataclasses.dataclass(frozen=True, init=False)
class Matching(Allowed):
    """A string matching ``pattern``, described by ``text``."""

    pattern: str = ""

    def __init__(self, pattern: str, text: str, quote: bool = True):
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "quote", quote)
        object.__setattr__(self, "pattern", pattern)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return _nullable(source, core_schema.str_schema(strict=True, pattern=self.pattern))


@functools.lru_cache(maxsize=64)
def _adapter(kind: Any, rule: Allowed) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(Annotated[kind, rule])


def checked(field: str, value: Any, rule: Allowed, kind: Any = Any, error: type[ConfigError] = ConfigError) -> Any:
    """``value`` as ``rule`` takes it (an argument rather than a settings field), else ``error``."""
    try:
        return _adapter(kind, rule).validate_python(value)
    except ValidationError:
        if not rule.quote:
            raise error(field, f"{field} is invalid: allowed {rule.text}") from None
        raise invalid(field, value, rule.text, error) from None


def _allowed(cls: type, name: str) -> Allowed | None:
    info = cls.__pydantic_fields__.get(name)  # type: ignore[attr-defined]  # set by pydantic
    found = [m for m in getattr(info, "metadata", ()) if isinstance(m, Allowed)]
    return found[0] if found else None


def _translate(
    cls: type, caught: ValidationError, names: list[str], given: Mapping[str, Any], error: type[ConfigError], label: str
) -> ConfigError:
    first = caught.errors()[0]
    raised = first.get("ctx", {}).get("error")
    if isinstance(raised, ConfigError):  # raised by a validator or __post_init__: already worded
        return raised
    at = first["loc"][0] if first["loc"] else "settings"
    name = names[at] if isinstance(at, int) and 0 <= at < len(names) else str(at)  # a positional argument
    allowed = _allowed(cls, name)
    if allowed is None:
        return error(name, f"{label}{name} is invalid: {first['msg']}")
    if not allowed.quote:
        return error(name, f"{label}{name} is invalid: allowed {allowed.text}")
    return invalid(name, given.get(name, first["input"]), allowed.text, error, label)


def as_dict(settings: Any) -> dict[str, Any]:
    """A settings object's fields as JSON-ready data (tuples as lists), for reports and MLflow."""
    return {f.name: _listed(getattr(settings, f.name)) for f in dataclasses.fields(settings)}


def _listed(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


_M = TypeVar("_M", bound=pydantic.BaseModel)


def _rule_at(model: type[pydantic.BaseModel], loc: tuple[int | str, ...]) -> Allowed | None:
    """The :class:`Allowed` of the field at ``loc`` (nested models and lists walked)."""
    info = None
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        inner = [a for a in (info.annotation, *get_args(info.annotation)) if isinstance(a, type)]
        model = next((a for a in inner if issubclass(a, pydantic.BaseModel)), model)
    found = [m for m in getattr(info, "metadata", ()) if isinstance(m, Allowed)]
    return found[0] if found else None


def parsed(model: type[_M], data: object, error: Callable[[str, str], ConfigError]) -> _M:
    """``data`` (from a file) as ``model``; the first problem as ``error(where, message)``,
    where is a dotted path (``endpoints.0.model.provider``). Values are never quoted: a
    file may hold a secret in the wrong field."""
    try:
        return model.model_validate(data)
    except ValidationError as caught:
        first = caught.errors()[0]
        raised = first.get("ctx", {}).get("error")
        if isinstance(raised, ConfigError):
            raise raised from None
        where = ".".join(str(p) for p in first["loc"]) or model.__name__
        rule = _rule_at(model, tuple(first["loc"]))
        said = f"allowed {rule.text}" if rule is not None else first["msg"].lower()
        raise error(where, f"{where} is invalid: {said}") from None


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, Field))
def settings(error: type[ConfigError] = ConfigError, label: str = "") -> Callable[[type[_T]], type[_T]]:
    """Make ``cls`` a frozen pydantic dataclass whose construction raises ``error`` (a
    :class:`ConfigError`), never pydantic's ``ValidationError``; ``label`` starts every
    message (``"explore "``: ``explore seed=-1 is invalid: ...``)."""

    def wrap(cls: type[_T]) -> type[_T]:
        made = pydantic.dataclasses.dataclass(frozen=True, config=ConfigDict(arbitrary_types_allowed=True))(cls)
        init = made.__init__
        names = [f.name for f in dataclasses.fields(made)]

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                init(self, *args, **kwargs)
            except ValidationError as caught:
                given = {**dict(zip(names, args)), **kwargs}
                raise _translate(made, caught, names, given, error, label) from None

        made.__init__ = __init__  # type: ignore[method-assign]  # the one place errors are translated
        return cast("type[_T]", made)

    return wrap
