"""harness: pre-deploy test and benchmark harness for MPT-style LLMs wrapped as
MLflow PyFunc models behind an AI Gateway ``llm/v1/completions`` route.

The public API is re-exported here lazily, so ``import harness`` pulls in neither
torch nor MLflow (the timed core runs on GPU machines without MLflow).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "build_prompt": "harness.prompt",
    "extract_instruction": "harness.prompt",
    "PromptError": "harness.prompt",
    "GenerationSettings": "harness.settings",
    "InvalidParameter": "harness.settings",
    "LoadConfig": "harness.loading",
    "Generator": "harness.generation",
    "Request": "harness.generation",
    "trim_generated": "harness.generation",
    "MPTInstruct": "harness.wrapper",
    "COLUMNS": "harness.signature",
    "GATEWAY": "harness.signature",
    "SignatureKind": "harness.signature",
    "parse_payload": "harness.signature",
    "TinySpec": "harness.snapshot",
    "build_tiny": "harness.snapshot",
    "download": "harness.snapshot",
    "RegisterConfig": "harness.registry",
    "StoreConfig": "harness.registry",
    "register": "harness.registry",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
