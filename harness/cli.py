"""``harness`` command line: parses options, calls library functions, prints."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from harness.model.config import DEFAULT_HOME
from harness.model.snapshot import DEFAULT_TINY_DIR

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
    from harness.model.snapshot import TinySpec, build_tiny, weights_digest

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
    from harness.model.snapshot import SnapshotError, download

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
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_HOME,
              show_default=True, help="Folder of the embedded MLflow store and its artifacts.")
def register(snapshot_dir: Path | None, signature: str, name: str, tracking_uri: str | None,
             home: Path) -> None:
    """Log the reference wrapper with a snapshot, register it, load it back and
    predict its input example. Prints the model URI."""
    from harness.store import RegisterConfig, StoreConfig, register as do_register

    snapshot_dir = _tiny_snapshot(snapshot_dir)
    try:
        cfg = RegisterConfig(snapshot=snapshot_dir, signature=signature, name=name,
                             store=StoreConfig(home=home, tracking_uri=tracking_uri))
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    _require_reachable(cfg.store)
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
              default=120.0, show_default=True,
              help="Seconds each check may take; past it the candidate's process is killed.")
@click.option("--load-timeout", type=click.FloatRange(min=0, min_open=True, max=3600),
              default=300.0, show_default=True,
              help="Seconds the candidate may take to log and load in its own process.")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_HOME,
              show_default=True, help="Folder of the embedded MLflow store.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: embedded SQLite).")
@click.option("--route", "route_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Your route, as an MLflow gateway config YAML (secrets as $ENV "
                                 "references). Default: the seed's route, mlflow-model-serving "
                                 "on loopback.")
@click.option("--no-serve", is_flag=True,
              help="Skip the checks that start the real scoring server and gateway.")
@click.option("--bench-report", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A bench.json (or pytest-benchmark JSON) for bench.budget.")
@click.option("--budget", "budgets", multiple=True, metavar="METRIC<=N",
              help="A budget the report must meet, e.g. tpot_p50_ms<=25, overhead_ratio<=1.05, "
                   "tokens_per_s>=1000 (repeatable; judged on the wrapped path's worst case).")
@click.option("--only", "only", multiple=True, metavar="CHECK_ID",
              help="Run just this check (repeatable; `load` always runs when a check needs the "
                   "model). The verdict then covers only those checks.")
def gate(python_model: str | None, model_uri: str | None, snapshot_dir: Path | None,
         signature: str, report_dir: Path | None, check_timeout: float, load_timeout: float,
         home: Path,
         tracking_uri: str | None, route_file: Path | None, no_serve: bool,
         bench_report: Path | None, budgets: tuple[str, ...], only: tuple[str, ...]) -> None:
    """Check a candidate wrapper, its signature and its behaviour before deploying it.

    Without options the reference wrapper on the tiny snapshot is the candidate. The
    candidate is logged, loaded and run in its own process (it is code run with your
    rights: use a container for code you do not trust).
    Exit 0 when every check passes, 1 when any fails or errors, 2 on a usage error,
    128+N when signal N stopped it (the report then says `interrupted`).
    """
    from harness.gate.candidate import CandidateError, CandidateSpec
    from harness.gate.runner import GateConfig, default_report_dir, run_gate
    from harness.store import StoreConfig

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
                         load_timeout=load_timeout,
                         store=StoreConfig(home=home, tracking_uri=tracking_uri),
                         route_file=route_file, serve=not no_serve,
                         bench_report=bench_report, budgets=budgets, only=only)
    except (CandidateError, ValueError) as error:
        raise click.UsageError(str(error)) from None

    from harness._reporting import ReportDirError, ensure_writable
    from harness.serving.processes import stop_on_signals

    try:
        folder = ensure_writable(report_dir or default_report_dir())
    except ReportDirError as error:
        raise _UsageFailure(str(error)) from None
    _require_reachable(cfg.store)

    def show(result) -> None:
        mark = _STATUS_MARK[result.status.value]
        click.echo(f"{mark:<5} {result.id:<24} {result.duration_s:6.2f}s  {result.message}")

    # SIGTERM/SIGHUP become interrupts: the candidate and servers are stopped and the
    # checks that finished are written, as for Ctrl-C. Later signals wait for that.
    with stop_on_signals():
        report = run_gate(cfg, progress=_echo_err, on_result=show)
        json_path, md_path = report.write(folder)
    failing = [c.id for c in report.checks if c.status.value in ("fail", "error")]
    click.echo(f"verdict: {report.verdict.upper()}"
               + (f" (failing: {', '.join(failing)})" if failing else ""))
    click.echo(f"report: {json_path} and {md_path}")
    raise SystemExit(_gate_exit_code(report))


def _gate_exit_code(report) -> int:
    if report.interrupted:
        import signal as _signal

        return 128 + _signal.Signals[report.interrupted].value
    return 0 if report.verdict == "pass" else 1


@main.command()
@click.option("--model-uri", default=None, metavar="URI",
              help="Model to serve (default: the reference on --snapshot, registered first).")
@click.option("--snapshot", "snapshot_dir", type=click.Path(exists=True, file_okay=False,
              path_type=Path), default=None, help="Snapshot for the reference (default: tiny).")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_HOME,
              show_default=True, help="Folder of the embedded MLflow store; logs go to "
                                      "<home>/logs/serve-<time>/.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: embedded SQLite).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Scoring server worker processes (each loads the model).")
def serve(model_uri: str | None, snapshot_dir: Path | None, home: Path,
          tracking_uri: str | None, workers: int) -> None:
    """Start the scoring server and an AI Gateway with the completions-mpt-7b-instruct
    route on loopback, print their URLs and a sample curl, and watch both.

    Ctrl-C or SIGTERM stops both (exit 0). If either server exits on its own, serve says
    which and how, stops the other and exits 1. Logs are size-capped (10 MB, one backup).
    """
    from harness._reporting import utc_now
    from harness.serving.processes import stop_all, stop_on_signals
    from harness.store import RegisterConfig, StoreConfig, register as do_register

    store = StoreConfig(home=home, tracking_uri=tracking_uri)
    _require_reachable(store)
    log_dir = store.home / "logs" / f"serve-{utc_now().replace(':', '')}"
    code = 0
    with stop_on_signals():
        try:
            if model_uri is None:
                model_uri = do_register(RegisterConfig(snapshot=_tiny_snapshot(snapshot_dir),
                                                       store=store), progress=_echo_err).model_uri
            code = _serve(model_uri, store.uri, log_dir, workers)
        except KeyboardInterrupt:
            _echo_err("stopping ...")
        finally:
            stop_all()
    _echo_err("stopped" if code == 0 else "stopped (a server had exited)")
    raise SystemExit(code)


def _serve(model_uri: str, tracking_uri: str, log_dir: Path, workers: int) -> int:
    """Start both servers and wait until one exits; returns the exit status for serve."""
    from harness.serving.route import seed_route
    from harness.serving.servers import first_exit, gateway_server, scoring_server

    _echo_err(f"logs: {log_dir}")
    _echo_err(f"starting the scoring server for {model_uri} ({workers} worker(s)) ...")
    server = scoring_server(model_uri, tracking_uri, log_dir=log_dir, workers=workers).start()
    route = seed_route(server.url)
    _echo_err("starting the AI Gateway ...")
    gateway = gateway_server([route], log_dir=log_dir).start()
    endpoint = f"{gateway.url}/endpoints/{route.name}/invocations"
    click.echo(f"scoring server: {server.url}/invocations")
    click.echo(f"gateway:        {endpoint}")
    click.echo(f"curl -s -X POST {endpoint} -H 'Content-Type: application/json' "
               "-d '{\"prompt\": \"What is MLflow?\", \"temperature\": 0, \"max_tokens\": 32}'")
    _echo_err("press Ctrl-C to stop")
    died = first_exit([server, gateway])
    other = gateway if died is server else server
    _echo_err(f"error: the {died.name} {died.exit_description()}; stopping the {other.name}. "
              f"Its log ({died.log_path}) ends:\n{died.log_tail(8)}")
    return 1


def _ints(value: str, name: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected comma-separated integers",
                                 param_hint=name) from None


@main.group()
def bench() -> None:
    """Latency/throughput benchmarks of generate, and regression comparison."""


@bench.command("run")
@click.option("--snapshot", "snapshot_dir", type=click.Path(exists=True, file_okay=False,
              path_type=Path), default=None, help="A model snapshot to benchmark.")
@click.option("--shape", type=click.Choice(["mpt-7b", "tiny"]), default=None,
              help="Random weights of this shape built on the device (mpt-7b: d_model 4096, "
                   "32 layers). Default: the tiny snapshot.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
              default="auto", show_default=True, help="auto: bfloat16 on CUDA, float32 on CPU.")
@click.option("--batch-sizes", default="1,8", show_default=True)
@click.option("--prompt-tokens", default="128", show_default=True)
@click.option("--new-tokens", default="16", show_default=True)
@click.option("--cache", "cache", type=click.Choice(["both", "on", "off"]), default="both",
              show_default=True, help="KV cache on, off (the published use_cache: false), or both.")
@click.option("--rounds", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--warmup", type=click.IntRange(0, 100), default=1, show_default=True)
@click.option("--peak-bandwidth", type=click.FloatRange(min=0, min_open=True), default=None,
              help="GPU memory bandwidth in TB/s for MBU (default: from a table of known GPUs).")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where bench.json/md/png go (default reports/bench/<device>-<UTC date>/).")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_HOME,
              show_default=True, help="Embedded MLflow store the run is logged to.")
@click.option("--no-mlflow", is_flag=True, help="Do not log the run to MLflow.")
@click.option("--compile", "compile_", is_flag=True,
              help="Also measure raw generate under torch.compile (reported as 'compiled').")
def bench_run(snapshot_dir, shape, device, dtype, batch_sizes, prompt_tokens, new_tokens, cache,
              rounds, warmup, peak_bandwidth, report_dir, home, no_mlflow, compile_) -> None:
    """Measure TTFT, TPOT, end-to-end latency, tokens/s, memory and MBU of the raw model and
    of the wrapped predict, interleaved, over every batch/prompt/new-token/cache case."""
    from harness.bench.core import BenchConfig, run_bench
    from harness.bench.report import BenchReport, bench_machine, log_to_mlflow
    from harness._reporting import utc_now

    if snapshot_dir is None and shape is None:
        snapshot_dir = _tiny_snapshot(None)
    try:
        cfg = BenchConfig(snapshot=str(snapshot_dir) if snapshot_dir else None, shape=shape,
                          device=device, dtype=dtype,
                          batch_sizes=_ints(batch_sizes, "--batch-sizes"),
                          prompt_tokens=_ints(prompt_tokens, "--prompt-tokens"),
                          new_tokens=_ints(new_tokens, "--new-tokens"),
                          cache_modes={"both": (True, False), "on": (True,), "off": (False,)}[cache],
                          rounds=rounds, warmup=warmup, compile=compile_,
                          peak_bandwidth=peak_bandwidth * 1e12 if peak_bandwidth else None)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    from tqdm import tqdm

    _echo_err(f"loading {cfg.snapshot or cfg.shape} on {cfg.device} ...")
    with tqdm(total=cfg.case_runs, unit="case", file=sys.stderr, desc="bench") as bar:
        def advance(label: str) -> None:
            bar.set_postfix_str(label)
            bar.update(1)

        cases, notes = run_bench(cfg, progress=advance)
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(cfg).items()}
    report = BenchReport(bench_machine(), config, tuple(cases), tuple(notes))
    folder = report_dir or Path("reports") / "bench" / (
        f"{str(report.machine['device']).replace(' ', '-')}-{utc_now()[:10]}")
    files = report.write(folder)
    click.echo(report.to_markdown())
    for file in files:
        click.echo(f"wrote {file}")
    if not no_mlflow:
        from harness.store import StoreConfig  # imports MLflow: not on the GPU machine

        run_id = log_to_mlflow(report, files, StoreConfig(home=home))
        click.echo(f"logged MLflow run {run_id}")


@bench.command("compare")
@click.argument("base", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--fail", "fails", multiple=True, metavar="METRIC:PCT%",
              help="Fail on a regression past this, e.g. tpot_p50:5% (repeatable).")
def bench_compare(base: Path, new: Path, fails: tuple[str, ...]) -> None:
    """Compare two reports (bench.json or pytest-benchmark JSON). Exit 1 on a regression
    past a threshold, 2 when the reports are not comparable."""
    from harness.bench.compare import Threshold, compare
    from harness.bench.report import IncompatibleReports

    try:
        thresholds = [Threshold.parse(f) for f in fails]
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    try:
        result = compare(base, new, thresholds)
    except IncompatibleReports as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None
    click.echo(f"{'case':<40} {'metric':<16} {'base':>12} {'new':>12} {'change':>8}")
    for case, metric, old, current, change in result.rows:
        click.echo(f"{case:<40} {metric:<16} {old:>12.5g} {current:>12.5g} {change:>+7.1f}%")
    for failure in result.failures:
        click.echo(f"REGRESSION {failure}")
    click.echo("verdict: " + ("FAIL" if result.failures else "PASS"))
    raise SystemExit(1 if result.failures else 0)


@bench.command("plot")
@click.argument("report_json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def bench_plot(report_json: Path) -> None:
    """(Re)make bench.png and bench.md beside a bench.json (e.g. one written on a GPU
    machine without matplotlib)."""
    from harness.bench.report import BenchReport, write_png
    from harness._reporting import atomic_write

    report = BenchReport.from_json(report_json.read_text())
    atomic_write(report_json.with_name("bench.md"), report.to_markdown())
    click.echo(f"wrote {write_png(report, report_json.with_name('bench.png'))}")


if __name__ == "__main__":
    main()
