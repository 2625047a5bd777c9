"""Loaded at interpreter start by the scoring server the gate starts (this folder leads its
PYTHONPATH): transformers' generate raises for any prompt holding the marker, so the gate
can see what a caller gets when generation fails behind the real server."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

_MARKER = os.environ.get("HARNESS_GENERATE_FAILS_ON")
_SNAPSHOT = os.environ.get("HARNESS_SNAPSHOT")

if _MARKER and _SNAPSHOT:
    from transformers.generation.utils import GenerationMixin

    from harness.model.intercept import generate_inputs, intercept

    _tokenizer: list[Any] = []  # the snapshot's tokenizer, loaded at the first generate

    def _fail_on_marker(model: Any, original: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        inputs = generate_inputs(args, kwargs)
        if hasattr(inputs.source, "tolist"):
            if not _tokenizer:
                from transformers import AutoTokenizer

                _tokenizer.append(AutoTokenizer.from_pretrained(_SNAPSHOT))
            if any(_MARKER in _tokenizer[0].decode(row) for row in inputs.input_ids):
                raise RuntimeError("generate failed (scripted by the harness gate)")
        return original(*args, **kwargs)

    intercept(GenerationMixin, _fail_on_marker)
