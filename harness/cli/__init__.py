"""``harness`` command line: parses options, calls library functions, prints.

One module per concept: _models (snapshot, register), _gate, _serve, _bench; this one
holds the group, what they share, and the one mapping of library errors to exit codes
(:class:`_Command`): commands raise what the library raises and never catch it."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from harness.model.config import DEFAULT_HOME, SIGNATURE_KINDS  # noqa: F401 - the commands' default
from harness.model.snapshot import DEFAULT_TINY_DIR  # noqa: F401

_SIGNATURES = click.Choice(SIGNATURE_KINDS)


def _default(cls: type, name: str) -> Any:
    """A library settings class's default for ``name``: options show the library's own."""
    return next(f.default for f in fields(cls) if f.name == name)


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


class _UsageFailure(click.ClickException):
    """A usage problem found after parsing (unwritable folder, unreachable server): one
    line and exit 2, without click's usage text."""

    exit_code = 2


def _each(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, tuple[str, ...]], list[Any]]:
    """A click callback parsing every value of a repeatable option with a library parser;
    its ValueError is click's usage error on that option."""

    def callback(_ctx: click.Context, param: click.Parameter, texts: tuple[str, ...]) -> list[Any]:
        try:
            return [parse(text) for text in texts]
        except ValueError as error:
            raise click.BadParameter(str(error), param=param) from None

    return callback


# Library fields whose option says it another way: RegisterConfig.generate_config is the
# transformers flavour's model_config (--model-config).
_RENAMED = {"generate_config": ("model_config",), "remote_workers": ("expect_workers",)}


def _option(command: click.Command, field: str) -> str | None:
    """The option that sets a settings field (``duration_s`` -> ``--duration``)."""
    names = (
        field,
        field.removesuffix("_s"),
        field + "s",
        field + "_dir",
        field.split("_")[0],
        *_RENAMED.get(field, ()),
    )
    for name in names:
        for param in command.params:
            if param.name == name and isinstance(param, click.Option):
                return param.opts[0]
    return None


def _exit_for(error: BaseException, command: click.Command) -> NoReturn:
    """The one mapping of library errors to what the user sees and the exit code."""
    from harness import ConfigError, ReportDirError, StoreUnreachable
    from harness.bench.locust_engine import LocustRunError
    from harness.bench.pyfunc import ModelBenchError
    from harness.bench.report import IncompatibleReports
    from harness.bench.serve import ServeBenchError
    from harness.gate.candidate import CandidateSpecError
    from harness.model.snapshot import SnapshotError
    from harness.serving.processes import Interrupted
    from harness.serving.route import RouteError

    if isinstance(error, Interrupted):
        _echo_err(f"interrupted ({error.signame}); stopping")
        raise SystemExit(error.exit_code) from None
    if isinstance(error, (CandidateSpecError, RouteError)):  # a candidate or route file: its own words
        raise click.UsageError(str(error)) from None
    if isinstance(error, ConfigError):  # a bad setting: exit 2, naming its option
        raise click.BadParameter(str(error), param_hint=_option(command, error.field)) from None
    if isinstance(error, (ReportDirError, StoreUnreachable, ModelBenchError, ServeBenchError, IncompatibleReports)):
        raise _UsageFailure(str(error)) from None  # found after parsing: one line, exit 2
    if isinstance(error, (SnapshotError, LocustRunError)):
        raise click.ClickException(str(error)) from None  # exit 1
    raise error


_MAPPED = (ValueError, RuntimeError, OSError, KeyboardInterrupt)  # what _exit_for may know


class _Command(click.Command):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _MAPPED as error:
            if isinstance(error, (click.ClickException, click.exceptions.Exit, click.Abort)):
                raise
            _exit_for(error, self)


class _Group(click.Group):
    command_class = _Command
    group_class = type  # subgroups are _Group too, so every command maps errors alike


def _redact_output() -> None:
    """Everything this process prints from here on (click, logging, warnings, tqdm, a last
    traceback) passes one redaction function: the edge where secrets are masked."""
    from harness import RedactingStream

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream))


_F = TypeVar("_F", bound=Callable[..., Any])


def prompt_format_options(command: _F) -> _F:
    """``--prompt-format`` and ``--system-prompt``, alike on every command that builds prompts."""
    from harness.model.formats import DEFAULT_FORMAT, FORMAT_CHOICES, FORMATS

    listed = "; ".join(f"{name}: {f.summary}" for name, f in FORMATS.items())
    command = click.option(
        "--system-prompt",
        default=None,
        metavar="TEXT",
        help="A system prompt the format renders before the instruction (not mpt-instruct, whose intro is fixed).",
    )(command)
    return click.option(
        "--prompt-format",
        type=click.Choice(FORMAT_CHOICES),
        default=DEFAULT_FORMAT,
        show_default=True,
        help=f"How instructions become prompts. {listed}; auto: chat-template when the "
        "snapshot's tokenizer has a chat_template, else mpt-instruct.",
    )(command)


def _tiny_snapshot(path: Path | None) -> Path:
    from harness.model.snapshot import cached_tiny

    return path if path is not None else cached_tiny(progress=_echo_err)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Pre-deploy test and benchmark harness for MPT-style LLMs wrapped as MLflow
    PyFunc models and served behind an AI Gateway llm/v1/completions route.

    Runs offline on a tiny MPT snapshot it builds itself; point --snapshot at a
    local MPT-7B-Instruct snapshot to check the real model. Secrets (URL credentials,
    credential-looking environment variables, route secrets) are masked in all output.
    """
    _redact_output()


# Registered on import: each module adds its commands to `main`.
from harness.cli import _bench, _bench_serve, _gate, _models, _serve  # noqa: E402,F401
