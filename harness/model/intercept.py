"""One way to stand between a wrapper and transformers' ``generate``.

The gate's spy, the bench's held ``generate`` and the scoring-server hook each need to see
what a wrapper asked ``generate`` for, wherever the wrapper keeps its model, and to decide
what happens instead. Reading a call in one place keeps them agreeing on which ids were the
prompt; installing in one place keeps removal exact, so a patch never outlives its run.

Nothing here imports torch or transformers at module level, and MLflow never: the hook runs
at interpreter start in the scoring server, and the timed core on machines without MLflow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# ``generate``'s parameters that a caller may pass by position, in order (transformers 5).
GENERATE_POSITIONAL = (
    "inputs",
    "generation_config",
    "logits_processor",
    "stopping_criteria",
    "prefix_allowed_tokens_fn",
    "synced_gpus",
    "assistant_model",
    "streamer",
    "negative_prompt_ids",
    "negative_prompt_attention_mask",
    "custom_generate",
)

Handler = Callable[[Any, Callable[..., Any], tuple, dict], Any]


def to_lists(value: Any) -> list[list[int]] | None:
    """Ids as plain lists of rows, so calls can be compared, decoded and pickled anywhere."""
    if value is None:
        return None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if value and isinstance(value[0], int):
        value = [value]
    return [list(map(int, row)) for row in value]


def sequences(output: Any) -> Any:
    """The ids of a ``generate`` output: a dict output (``return_dict_in_generate``) holds them
    under ``sequences``; otherwise the output is the ids."""
    if isinstance(output, Mapping) and "sequences" in output:
        return output["sequences"]
    return getattr(output, "sequences", output)


def arguments(args: tuple, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Every argument by its name in ``generate``'s signature, however it was passed: a
    wrapper may hand over a ``GenerationConfig`` or a streamer positionally."""
    return {**dict(zip(GENERATE_POSITIONAL, args)), **kwargs}


def with_argument(args: tuple, kwargs: dict, name: str, value: Any) -> tuple[tuple, dict]:
    """``(args, kwargs)`` with ``name`` set to ``value`` where the caller put it: replacing a
    positional argument by keyword would make the call pass it twice."""
    if name in GENERATE_POSITIONAL and GENERATE_POSITIONAL.index(name) < len(args):
        at = GENERATE_POSITIONAL.index(name)
        return (*args[:at], value, *args[at + 1 :]), kwargs
    return args, {**kwargs, name: value}


@dataclass(frozen=True)
class GenerateInputs:
    """What one ``generate`` call was given, read once for every interceptor."""

    source: Any  # the ids as the caller passed them (a tensor, usually), None without ids
    input_ids: list[list[int]]
    attention_mask: list[list[int]] | None
    arguments: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def width(self) -> int:
        return len(self.input_ids[0]) if self.input_ids else 0

    def prompt_ids(self, row: int) -> list[int]:
        """The row's ids without its padding: what the wrapper meant to send, whichever side
        it padded on."""
        mask = None if self.attention_mask is None else self.attention_mask[row]
        return unpad(self.input_ids[row], mask)


def unpad(ids: list[int], mask: list[int] | None) -> list[int]:
    return list(ids) if mask is None else [t for t, m in zip(ids, mask) if m]


def generate_inputs(args: tuple, kwargs: Mapping[str, Any]) -> GenerateInputs:
    named = arguments(args, kwargs)
    source = next((named[k] for k in ("input_ids", "inputs") if named.get(k) is not None), None)
    return GenerateInputs(source, to_lists(source) or [], to_lists(named.get("attention_mask")), named)


class Interception:
    """``owner.generate`` (a class, or one model) routed through ``handler(model, original,
    args, kwargs)`` until :meth:`remove`; ``original`` is ``generate`` as it would be without
    this interception, bound to the model, looked up at each call so a patch made later on a
    base class is still honoured. Once removed, a wrapper some later patch still holds passes
    calls straight through, so removal order cannot strand a handler."""

    def __init__(self, owner: Any, handler: Handler, name: str = "generate") -> None:
        self.owner, self.handler, self.name = owner, handler, name
        self._is_class = isinstance(owner, type)
        self._had_own = name in vars(owner)
        self._own = vars(owner).get(name)
        self._active = True
        wrapper: Callable[..., Any]
        if self._is_class:

            def class_wrapper(model: Any, *args: Any, **kwargs: Any) -> Any:
                return self._call(model, args, kwargs)

            wrapper = class_wrapper
        else:

            def instance_wrapper(*args: Any, **kwargs: Any) -> Any:
                return self._call(owner, args, kwargs)

            wrapper = instance_wrapper

        # Signature introspection (pipelines, MLflow) still sees generate's parameters.
        self._wrapper = functools.update_wrapper(wrapper, getattr(owner, name))
        self._wrapper._interception = self  # type: ignore[attr-defined]
        setattr(owner, name, self._wrapper)

    def _original(self, model: Any) -> Callable[..., Any]:
        if self._had_own:
            entry = self._own
            if not self._is_class:
                return entry  # an instance attribute is called as it is
        else:
            mro = self.owner.__mro__[1:] if self._is_class else type(self.owner).__mro__
            entry = next(vars(c)[self.name] for c in mro if self.name in vars(c))
        return entry.__get__(model, type(model)) if hasattr(entry, "__get__") else entry

    def _call(self, model: Any, args: tuple, kwargs: dict) -> Any:
        original = self._original(model)
        if not self._active:
            return original(*args, **kwargs)
        return self.handler(model, original, args, kwargs)

    def remove(self) -> None:
        """Put back exactly what was there: the owner's own entry, or none (an inherited
        ``generate`` stays inherited). Idempotent."""
        if not self._active:
            return
        self._active = False
        if vars(self.owner).get(self.name) is not self._wrapper:
            return  # something patched over it; the wrapper now passes calls through
        had, entry = self._had_own, self._own
        # Skip interceptions already removed beneath this one: they would only pass through.
        while (
            had
            and (under := getattr(entry, "_interception", None)) is not None
            and not under._active
            and under.owner is self.owner
        ):
            had, entry = under._had_own, under._own
        if had:
            setattr(self.owner, self.name, entry)
        else:
            delattr(self.owner, self.name)

    def __enter__(self) -> Interception:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.remove()


def intercept(owner: Any, handler: Handler) -> Interception:
    """Route ``owner.generate`` through ``handler`` (see :class:`Interception`)."""
    return Interception(owner, handler)
