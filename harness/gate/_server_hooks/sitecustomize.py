"""Loaded at interpreter start by the scoring server the gate starts (this folder leads its
PYTHONPATH): transformers' generate raises for any prompt holding the marker, so the gate
can see what a caller gets when generation fails behind the real server."""

import os

_MARKER = os.environ.get("HARNESS_GENERATE_FAILS_ON")
_SNAPSHOT = os.environ.get("HARNESS_SNAPSHOT")

if _MARKER and _SNAPSHOT:
    from transformers.generation.utils import GenerationMixin

    _original = GenerationMixin.generate
    _tokenizer = []

    def _generate(self, *args, **kwargs):
        ids = kwargs.get("input_ids", kwargs.get("inputs", args[0] if args else None))
        if ids is not None and hasattr(ids, "tolist"):
            if not _tokenizer:
                from transformers import AutoTokenizer

                _tokenizer.append(AutoTokenizer.from_pretrained(_SNAPSHOT))
            if any(_MARKER in _tokenizer[0].decode(row) for row in ids.tolist()):
                raise RuntimeError("generate failed (scripted by the harness gate)")
        return _original(self, *args, **kwargs)

    GenerationMixin.generate = _generate
