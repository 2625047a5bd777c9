"""One redaction function for everything the harness prints, logs or writes.

Applied at the edges only (the CLI's stdout/stderr, report files, server and candidate
logs, MLflow params): inside, values stay raw, so checks such as ``secrets.no_leak`` can
still see what a candidate did. What is masked:

- the userinfo of any URL, whatever its scheme (``ftp://user:TOKEN@host`` -> ``ftp://***@host``);
- token shapes of well-known providers, also where no variable names them (a token pasted
  into a URL field);
- the values of credential-looking environment variables, and every value registered with
  :func:`add_secret` (route secrets, the gate's canaries).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/@?#'\"<>]+@")
_TOKEN_SHAPES = re.compile(
    r"\b(?:dapi[0-9a-f]{32}(?:-\d+)?"  # Databricks personal access token
    r"|sk-[A-Za-z0-9_\-]{20,}"  # OpenAI-style keys
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{40,}"  # GitHub
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|AKIA[0-9A-Z]{16})\b"
)  # AWS access key id
CREDENTIAL_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
# Shorter values ("1", "true") would mask ordinary words everywhere.
_MIN_SECRET = 6

_registered: set[str] = set()
_lock = threading.Lock()


def add_secret(value: str | None) -> None:
    """Mask ``value`` wherever it shows up from now on (in this process)."""
    if isinstance(value, str) and len(value) >= _MIN_SECRET:
        with _lock:
            _registered.add(value)


def credential_values(environ: Mapping[str, str] | None = None) -> set[str]:
    """Values of the environment's credential-looking variables."""
    environ = os.environ if environ is None else environ
    return {v for k, v in environ.items() if CREDENTIAL_NAME.search(k) and len(v) >= _MIN_SECRET}


def known_secrets() -> set[str]:
    with _lock:
        return _registered | credential_values()


def secrets_in(text: str, values: Iterable[str] | None = None) -> set[str]:
    """Which of ``values`` (default: every known secret) occur in ``text``."""
    return {v for v in (known_secrets() if values is None else values) if v and v in text}


def redact(text: str) -> str:
    """``text`` with URL userinfo, token shapes and known secret values masked."""
    if not text:
        return text
    text = _URL_USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", text)
    text = _TOKEN_SHAPES.sub(MASK, text)
    # Longest first, so a secret that contains another is masked whole.
    for value in sorted(secrets_in(text), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def redact_data(value: Any) -> Any:
    """A copy of JSON-like data with every string (keys too) redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact(str(k)): redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v) for v in value]
    return value


class RedactingStream:
    """A text stream that redacts what is written to it, then passes it on: installed over
    the CLI's stdout and stderr, it covers click, logging, warnings and tracebacks alike."""

    def __init__(self, inner: Any):
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        # flush, isatty, encoding, fileno...: the inner stream's. No `buffer`: writers that
        # look for one (click) fall back to write().
        if name == "buffer":
            raise AttributeError(name)
        return getattr(self._inner, name)
