"""Quoting user values into error messages.

Pure Python (no torch, no MLflow). An error message travels back to the client
in the scoring server's 400 body, so a value is quoted only as far as it helps:
a 300 000-character prompt must not come back whole.
"""

from __future__ import annotations

QUOTE_LIMIT = 200
ELLIPSIS = "…"


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` cut to its first ``limit`` characters, with the full length when cut.

    ``quote("a" * 300_000)`` is ``'aaa…' (300000 characters)``: a string's length is
    counted in characters of the value, anything else's in characters of its repr.
    """
    if limit < 1:
        raise ValueError(f"limit={limit} is invalid: allowed an integer >= 1")
    text = repr(value)
    if len(text) <= limit:
        return text
    if isinstance(value, str):
        # Close the quote the repr opened, so the cut string still reads as a string.
        return f"{text[:limit]}{ELLIPSIS}{text[0]} ({len(value)} characters)"
    return f"{text[:limit]}{ELLIPSIS} ({len(text)} characters in its repr)"
