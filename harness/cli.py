"""``harness`` command line: parses options, calls library functions, prints."""

from __future__ import annotations

import time
from pathlib import Path

import click

from harness.snapshot import DEFAULT_TINY_DIR

_SIGNATURES = click.Choice(["gateway", "columns"])


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _tiny_snapshot(path: Path | None) -> Path:
    from harness.snapshot import build_tiny

    if path is not None:
        return path
    _echo_err(f"using the tiny offline snapshot at {DEFAULT_TINY_DIR} (built if missing)")
    return build_tiny(DEFAULT_TINY_DIR)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Pre-deploy test and benchmark harness for MPT-style LLMs wrapped as MLflow
    PyFunc models and served behind an AI Gateway llm/v1/completions route.

    Runs offline on a tiny MPT snapshot it builds itself; point --snapshot at a
    local MPT-7B-Instruct snapshot to check the real model.
    """


@main.group()
def snapshot() -> None:
    """Build the offline tiny MPT snapshot, or download a real one."""


@snapshot.command("tiny")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path),
                default=DEFAULT_TINY_DIR)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the random weights; the same seed gives byte-identical weights.")
@click.option("--force", is_flag=True, help="Rebuild even when a cached snapshot matches.")
def snapshot_tiny(directory: Path, seed: int, force: bool) -> None:
    """Build a tiny random-weight MPT with a locally trained tokenizer in DIRECTORY
    (default .harness/snapshots/tiny), in the Hugging Face layout of mpt-7b-instruct."""
    from harness.snapshot import TinySpec, build_tiny, weights_digest

    _echo_err(f"building tiny MPT snapshot (seed {seed}) in {directory} ...")
    start = time.perf_counter()
    path = build_tiny(directory, TinySpec(seed=seed), force=force)
    _echo_err(f"done in {time.perf_counter() - start:.1f}s; weights sha256 {weights_digest(path)[:16]}")
    click.echo(str(path))


@snapshot.command("download")
@click.argument("repo_id")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--revision", default=None, help="Branch, tag or commit of the hub repository.")
def snapshot_download(repo_id: str, directory: Path, revision: str | None) -> None:
    """Download REPO_ID (e.g. mosaicml/mpt-7b-instruct) from the Hugging Face hub into
    DIRECTORY. Needs network access; fails fast when offline."""
    from harness.snapshot import SnapshotError, download

    try:
        click.echo(str(download(repo_id, directory, revision=revision)))
    except SnapshotError as error:
        raise click.ClickException(str(error)) from None


@main.command()
@click.option("--snapshot", "snapshot_dir", type=click.Path(exists=True, file_okay=False,
              path_type=Path), default=None,
              help="Model snapshot folder (default: the cached tiny snapshot, built if missing).")
@click.option("--signature", type=_SIGNATURES, default="gateway", show_default=True,
              help="gateway: prompt column + params (what the MLflow gateway sends); "
                   "columns: the seed's prompt/temperature/max_tokens columns.")
@click.option("--name", default="mpt-7b-instruct", show_default=True,
              help="Registered model name.")
@click.option("--tracking-uri", default=None,
              help="MLflow tracking/registry URI (default: $MLFLOW_TRACKING_URI, "
                   "else sqlite:///<home>/mlflow.db).")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=Path(".harness"),
              show_default=True, help="Folder of the embedded MLflow store and its artifacts.")
def register(snapshot_dir: Path | None, signature: str, name: str, tracking_uri: str | None,
             home: Path) -> None:
    """Log the reference wrapper with a snapshot, register it, load it back and
    predict its input example. Prints the model URI."""
    from harness.registry import RegisterConfig, StoreConfig, register as do_register

    snapshot_dir = _tiny_snapshot(snapshot_dir)
    try:
        cfg = RegisterConfig(snapshot=snapshot_dir, signature=signature, name=name,
                             store=StoreConfig(home=home, tracking_uri=tracking_uri))
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    result = do_register(cfg, progress=_echo_err)
    _echo_err(f"registered {result.name} version {result.version} (run {result.run_id}); "
              f"input example answered: {result.example_output[0][:60]!r}")
    click.echo(result.model_uri)


_STATUS_MARK = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skipped": "skip"}


@main.command()
@click.option("--python-model", "python_model", metavar="FILE.py:CLASS", default=None,
              help="A mlflow.pyfunc.PythonModel subclass whose load_context reads "
                   "context.artifacts['repository'] (as the seed's wrapper does).")
@click.option("--model-uri", default=None, metavar="URI",
              help="An already logged or registered model (models:/NAME/VERSION, runs:/ID/model).")
@click.option("--snapshot", "snapshot_dir", type=click.Path(exists=True, file_okay=False,
              path_type=Path), default=None,
              help="Model snapshot for file candidates (default: the tiny offline snapshot).")
@click.option("--signature", type=_SIGNATURES, default="gateway", show_default=True,
              help="Signature a file candidate is logged with; a logged model keeps its own.")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where gate.json and gate.md go (default reports/gate/<UTC timestamp>/).")
@click.option("--check-timeout", type=click.FloatRange(min=0, min_open=True, max=3600),
              default=120.0, show_default=True, help="Seconds each check may take.")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=Path(".harness"),
              show_default=True, help="Folder of the embedded MLflow store.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: embedded SQLite).")
@click.option("--route", "route_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Your route, as an MLflow gateway config YAML (secrets as $ENV "
                                 "references). Default: the seed's route, mlflow-model-serving "
                                 "on loopback.")
@click.option("--no-serve", is_flag=True,
              help="Skip the checks that start the real scoring server and gateway.")
def gate(python_model: str | None, model_uri: str | None, snapshot_dir: Path | None,
         signature: str, report_dir: Path | None, check_timeout: float, home: Path,
         tracking_uri: str | None, route_file: Path | None, no_serve: bool) -> None:
    """Check a candidate wrapper, its signature and its behaviour before deploying it.

    Without options the reference wrapper on the tiny snapshot is the candidate.
    Exit 0 when every check passes, 1 when any fails or errors, 2 on a usage error.
    """
    from harness.candidate import CandidateError, CandidateSpec
    from harness.gate import GateConfig, default_report_dir, run_gate
    from harness.registry import StoreConfig

    if python_model and model_uri:
        raise click.UsageError("give --python-model or --model-uri, not both")
    try:
        if python_model:
            candidate = CandidateSpec.from_file(python_model, signature)
        elif model_uri:
            candidate = CandidateSpec.from_uri(model_uri)
        else:
            candidate = CandidateSpec(signature=signature)
        cfg = GateConfig(candidate=candidate, snapshot=snapshot_dir, check_timeout=check_timeout,
                         store=StoreConfig(home=home, tracking_uri=tracking_uri),
                         route_file=route_file, serve=not no_serve)
    except (CandidateError, ValueError) as error:
        raise click.UsageError(str(error)) from None

    def show(result) -> None:
        mark = _STATUS_MARK[result.status.value]
        click.echo(f"{mark:<5} {result.id:<24} {result.duration_s:6.2f}s  {result.message}")

    report = run_gate(cfg, progress=_echo_err, on_result=show)
    json_path, md_path = report.write(report_dir or default_report_dir())
    failing = [c.id for c in report.checks if c.status.value in ("fail", "error")]
    click.echo(f"verdict: {report.verdict.upper()}"
               + (f" (failing: {', '.join(failing)})" if failing else ""))
    click.echo(f"report: {json_path} and {md_path}")
    raise SystemExit(0 if report.verdict == "pass" else 1)


@main.command()
@click.option("--model-uri", default=None, metavar="URI",
              help="Model to serve (default: the reference on --snapshot, registered first).")
@click.option("--snapshot", "snapshot_dir", type=click.Path(exists=True, file_okay=False,
              path_type=Path), default=None, help="Snapshot for the reference (default: tiny).")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=Path(".harness"),
              show_default=True, help="Folder of the embedded MLflow store.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: embedded SQLite).")
def serve(model_uri: str | None, snapshot_dir: Path | None, home: Path,
          tracking_uri: str | None) -> None:
    """Start the scoring server and an AI Gateway with the completions-mpt-7b-instruct
    route on loopback, print their URLs and a sample curl, and stop both on Ctrl-C."""
    import signal as _signal

    from harness.registry import RegisterConfig, StoreConfig, register as do_register
    from harness.route import seed_route
    from harness.serving import gateway_server, scoring_server

    store = StoreConfig(home=home, tracking_uri=tracking_uri)
    if model_uri is None:
        model_uri = do_register(RegisterConfig(snapshot=_tiny_snapshot(snapshot_dir), store=store),
                                progress=_echo_err).model_uri
    # SIGTERM is handled like Ctrl-C, so `kill` also stops both servers.
    _signal.signal(_signal.SIGTERM, _interrupt)
    _echo_err(f"starting the scoring server for {model_uri} ...")
    with scoring_server(model_uri, store.uri) as server:
        route = seed_route(server.url)
        _echo_err("starting the AI Gateway ...")
        with gateway_server([route]) as gateway:
            click.echo(f"scoring server: {server.url}/invocations")
            click.echo(f"gateway:        {gateway.url}/endpoints/{route.name}/invocations")
            click.echo(f"curl -s -X POST {gateway.url}/endpoints/{route.name}/invocations "
                       "-H 'Content-Type: application/json' "
                       "-d '{\"prompt\": \"What is MLflow?\", \"temperature\": 0, \"max_tokens\": 32}'")
            click.echo("press Ctrl-C to stop", err=True)
            try:
                _signal.pause()
            except KeyboardInterrupt:
                _echo_err("stopping ...")


if __name__ == "__main__":
    main()
