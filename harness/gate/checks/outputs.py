"""What a candidate's output says, read leniently (strictness is ``output.type``'s job):
strings, or the completions objects MLflow's transformers flavour answers with."""

from __future__ import annotations

from typing import Any

import pandas as pd


def completion_text(item: Any) -> str | None:
    """The text of one completions or chat object (``choices[0].text``, or its
    ``message.content``: what MLflow's transformers flavour answers for the
    ``llm/v1/completions`` and ``llm/v1/chat`` tasks), else None."""
    choices = item.get("choices") if isinstance(item, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    if isinstance(first, dict) and "text" not in first and isinstance(first.get("message"), dict):
        first = first["message"]
        text = first.get("content")
    else:
        text = first.get("text") if isinstance(first, dict) else None
    return text if isinstance(text, str) else None


def answers(raw: Any) -> list[str]:
    """The candidate's output as a list, leniently: strictness is output.type's job. A
    completions object per row counts by its text."""
    if isinstance(raw, str):
        return [raw]
    if (text := completion_text(raw)) is not None:
        return [text]
    if isinstance(raw, pd.DataFrame):
        return [str(v) for v in raw.iloc[:, 0].tolist()]
    if hasattr(raw, "tolist"):
        raw = raw.tolist()
    if isinstance(raw, (list, tuple)):
        return [v if isinstance(v, str) else t if (t := completion_text(v)) is not None else str(v) for v in raw]
    return [str(raw)]
