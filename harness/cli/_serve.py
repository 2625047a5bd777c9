"""`harness serve`."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli import DEFAULT_HOME, _echo_err, _tiny_snapshot, main, prompt_format_options


@main.command()
@click.option(
    "--model-uri",
    default=None,
    metavar="URI",
    help="Model to serve (default: the reference on --snapshot, registered first).",
)
@click.option(
    "--snapshot",
    "snapshot_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Snapshot for the reference (default: tiny).",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_HOME,
    show_default=True,
    help="Folder of the embedded MLflow store; logs go to <home>/logs/serve-<time>/.",
)
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: embedded SQLite).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Scoring server worker processes (each loads the model).",
)
@prompt_format_options
def serve(
    model_uri: str | None,
    snapshot_dir: Path | None,
    home: Path,
    tracking_uri: str | None,
    workers: int,
    prompt_format: str,
    system_prompt: str | None,
) -> None:
    """Start the scoring server and an AI Gateway with the completions-mpt-7b-instruct
    route on loopback, print their URLs and a sample curl, and watch both.

    Ctrl-C or SIGTERM stops both (exit 0). If either server exits on its own, serve says
    which and how, stops the other and exits 1. Logs are size-capped (10 MB, one backup).
    """
    from harness.model.loading import LoadConfig
    from harness.serving.processes import stop_all, stop_on_signals
    from harness.store import RegisterConfig, StoreConfig, register as do_register

    store = StoreConfig(home=home, tracking_uri=tracking_uri)
    store.require_reachable()
    log_dir = store.log_dir("serve")
    code = 0
    with stop_on_signals():
        try:
            if model_uri is None:
                load = LoadConfig(prompt_format=prompt_format, system_prompt=system_prompt)
                registration = RegisterConfig(snapshot=_tiny_snapshot(snapshot_dir), store=store, load=load)
                model_uri = do_register(registration, progress=_echo_err).model_uri
            code = _serve(model_uri, store.uri, log_dir, workers)
        except KeyboardInterrupt:
            _echo_err("stopping ...")
        finally:
            stop_all()
    _echo_err("stopped" if code == 0 else "stopped (a server had exited)")
    raise SystemExit(code)


def _serve(model_uri: str, tracking_uri: str, log_dir: Path, workers: int) -> int:
    """Start both servers and wait until one exits; returns the exit status for serve."""
    from harness.serving.servers import first_exit, start_loopback

    _echo_err(f"logs: {log_dir}")
    loopback = start_loopback({"model": model_uri}, tracking_uri, log_dir, workers=workers, progress=_echo_err)
    server, gateway, endpoint = loopback.servers["model"], loopback.gateway, loopback.endpoint("model")
    click.echo(f"scoring server: {server.url}/invocations")
    click.echo(f"gateway:        {endpoint}")
    click.echo(
        f"curl -s -X POST {endpoint} -H 'Content-Type: application/json' "
        '-d \'{"prompt": "What is MLflow?", "temperature": 0, "max_tokens": 32}\''
    )
    _echo_err("press Ctrl-C to stop")
    died = first_exit([server, gateway])
    other = gateway if died is server else server
    _echo_err(
        f"error: the {died.name} {died.exit_description()}; stopping the {other.name}. "
        f"Its log ({died.log_path}) ends:\n{died.log_tail(8)}"
    )
    return 1
