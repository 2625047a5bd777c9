"""``harness`` command line: parses options, calls library functions, prints.

One module per concept: _models (snapshot, register), _gate, _serve, _bench; this one
holds the group and what they share."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from harness.model.config import DEFAULT_HOME  # noqa: F401 - the commands' default
from harness.model.snapshot import DEFAULT_TINY_DIR  # noqa: F401

_SIGNATURES = click.Choice(["gateway", "columns"])


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


class _UsageFailure(click.ClickException):
    """A usage problem found after parsing (unwritable folder, unreachable server): one
    line and exit 2, without click's usage text."""

    exit_code = 2


def _redact_output() -> None:
    """Everything this process prints from here on (click, logging, warnings, tqdm, a last
    traceback) passes one redaction function: the edge where secrets are masked."""
    from harness._redact import RedactingStream

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream))


def _require_reachable(store) -> None:
    from harness.store import StoreUnreachable

    try:
        store.require_reachable()
    except StoreUnreachable as error:
        raise _UsageFailure(str(error)) from None


def _tiny_snapshot(path: Path | None) -> Path:
    from harness.model.snapshot import cached_tiny

    return path if path is not None else cached_tiny(progress=_echo_err)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Pre-deploy test and benchmark harness for MPT-style LLMs wrapped as MLflow
    PyFunc models and served behind an AI Gateway llm/v1/completions route.

    Runs offline on a tiny MPT snapshot it builds itself; point --snapshot at a
    local MPT-7B-Instruct snapshot to check the real model. Secrets (URL credentials,
    credential-looking environment variables, route secrets) are masked in all output.
    """
    _redact_output()


# Registered on import: each module adds its commands to `main`.
from harness.cli import _bench, _gate, _models, _serve  # noqa: E402,F401
