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


def _rounds(value: str) -> int | str:
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value[:20]!r}: expected an integer 1-1000 or 'auto'",
                                 param_hint="--rounds") from None


def _percent(value: str, name: str) -> float:
    try:
        return float(value.strip().rstrip("%")) / 100
    except ValueError:
        raise click.BadParameter(f"{value[:20]!r}: expected a percentage such as 2%",
                                 param_hint=name) from None


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
@click.option("--rounds", default="auto", show_default=True, metavar="N|auto",
              help="Measured rounds per case; auto: until every path's e2e median is known to "
                   "--target-ci, or --max-time is spent.")
@click.option("--target-ci", default="2%", show_default=True, metavar="PCT%",
              help="auto rounds: the median's 95%% interval half-width to reach.")
@click.option("--max-time", type=click.FloatRange(min=0, min_open=True, max=3600), default=30.0,
              show_default=True, help="auto rounds: measured seconds per case at most.")
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
              rounds, target_ci, max_time, warmup, peak_bandwidth, report_dir, home, no_mlflow,
              compile_) -> None:
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
                          rounds=_rounds(rounds), target_ci=_percent(target_ci, "--target-ci"),
                          max_time_s=max_time, warmup=warmup, compile=compile_,
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
    for case in report.noisy():
        _echo_err(f"NOISY: {case} (other work on this machine? the numbers are weak)")
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
    for within in result.within_noise:
        click.echo(f"within noise: {within}")
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


# ServeBenchConfig's fields -> the options that set them (usage errors name the option).
_SERVE_OPTIONS = {"url": "--url", "route": "--route", "api": "--api", "concurrency": "--concurrency",
                  "rate": "--rate", "duration_s": "--duration", "prompt_tokens": "--prompt-tokens",
                  "max_tokens": "--max-tokens", "slo": "--slo", "seed": "--seed",
                  "snapshot": "--snapshot"}


@bench.command("serve")
@click.option("--url", default=None, metavar="URL",
              help="A running MLflow AI Gateway. Default: register the reference, start its "
                   "scoring server and a gateway on loopback (as `harness serve` does), and stop "
                   "both at the end.")
@click.option("--route", default="completions-mpt-7b-instruct", show_default=True,
              help="The completions route (endpoint) to load.")
@click.option("--api", type=click.Choice(["invocations", "openai"]), default="invocations",
              show_default=True, help="invocations: POST /endpoints/ROUTE/invocations; openai: "
                                      "POST /v1/completions with model=ROUTE.")
@click.option("--concurrency", default=None, metavar="N,N,...",
              help="One level per value: N closed-loop workers (default 1,2,4,8); with --rate, "
                   "the cap on requests in flight (default 64).")
@click.option("--rate", type=float, default=None, metavar="R",
              help="Open loop: Poisson arrivals at R requests/s (0 < R <= 1000).")
@click.option("--duration", type=float, default=10.0, show_default=True,
              help="Seconds per level (0 < S <= 3600).")
@click.option("--prompt-tokens", default="32,128", show_default=True,
              help="Prompt lengths in tokens of the route's prompt field (the snapshot's "
                   "tokenizer counts them); every level cycles through 8 distinct prompts of each.")
@click.option("--max-tokens", type=int, default=16, show_default=True,
              help="max_tokens of every request (1-4096).")
@click.option("--slo", "slos", multiple=True, metavar="METRIC<=N",
              help="e.g. e2e_p90_ms<=500, requests_per_s>=10, error_rate<=0.01 (repeatable; "
                   "every level must meet each; goodput counts requests within every latency "
                   "SLO).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the prompts and of the arrivals.")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where bench-serve.json/md/png go (default reports/bench-serve/<UTC time>/).")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_HOME,
              show_default=True, help="Embedded MLflow store: the reference is registered and "
                                      "the run logged there; server logs go to <home>/logs/.")
@click.option("--no-mlflow", is_flag=True, help="Do not log the run to MLflow.")
@click.option("--snapshot", "snapshot_dir", type=click.Path(exists=True, file_okay=False,
              path_type=Path), default=None,
              help="Snapshot whose tokenizer counts tokens and, without --url, that is served "
                   "(default: the tiny snapshot).")
def bench_serve(url, route, api, concurrency, rate, duration, prompt_tokens, max_tokens, slos,
                seed, report_dir, home, no_mlflow, snapshot_dir) -> None:
    """Load a completions route through the real gateway, level by level, at temperature 0:
    e2e latency p50/p90/p99, requests/s, output tokens/s, goodput and errors per level.

    Progress goes to stderr, the table to stdout. Exit 0, or 1 when a level misses an SLO.
    """
    from dataclasses import replace

    from harness._reporting import ReportDirError, ensure_writable, utc_now
    from harness.bench.serve import (ServeBenchConfig, ServeBenchError, ServeConfigError,
                                     run_serve_bench)
    from harness.bench.serve_report import log_to_mlflow
    from harness.serving.load import MAX_CONCURRENCY
    from harness.serving.processes import Interrupted, stop_all, stop_on_signals
    from harness.store import StoreConfig

    levels = _ints(concurrency, "--concurrency") if concurrency is not None \
        else ((1, 2, 4, 8) if rate is None else (MAX_CONCURRENCY,))
    try:
        cfg = ServeBenchConfig(url=url, route=route, api=api, concurrency=levels, rate=rate,
                               duration_s=duration,
                               prompt_tokens=_ints(prompt_tokens, "--prompt-tokens"),
                               max_tokens=max_tokens, slo=slos, seed=seed,
                               snapshot=str(snapshot_dir) if snapshot_dir else None)
    except ServeConfigError as error:
        raise click.BadParameter(str(error), param_hint=_SERVE_OPTIONS.get(error.field)) from None
    try:
        folder = ensure_writable(report_dir or Path("reports") / "bench-serve"
                                 / utc_now().replace(":", ""))
    except ReportDirError as error:
        raise _UsageFailure(str(error)) from None
    store = StoreConfig(home=home)
    if url is None or not no_mlflow:
        _require_reachable(store)
    with stop_on_signals():
        try:
            if url is None:
                cfg = replace(cfg, url=_bench_servers(route, store, snapshot_dir))
            report = run_serve_bench(cfg, progress=_echo_err)
        except Interrupted as stop:
            _echo_err(f"interrupted ({stop.signame}); stopping")
            raise SystemExit(stop.exit_code) from None
        except ServeConfigError as error:
            raise click.BadParameter(str(error), param_hint=_SERVE_OPTIONS.get(error.field)) \
                from None
        except ServeBenchError as error:
            raise _UsageFailure(str(error)) from None
        finally:
            stop_all()
    report, files = report.write(folder)
    click.echo(report.to_table())
    for file in files:
        click.echo(f"wrote {file}")
    if not no_mlflow:
        click.echo(f"logged MLflow run {log_to_mlflow(report, files, store)}")
    failed = sum(len(level.samples) - len(level.answered) for level in report.levels)
    if failed:
        _echo_err(f"warning: {failed} request(s) failed; see errors in {files[0]}")
    for missed in report.missed():
        click.echo(f"SLO MISSED {missed}")
    if cfg.slo:
        click.echo("verdict: " + ("PASS" if report.slo_met else "FAIL"))
    raise SystemExit(0 if report.slo_met else 1)


def _bench_servers(route_name: str, store, snapshot_dir: Path | None) -> str:
    """The reference registered on the snapshot, its scoring server and a gateway routing
    ``route_name`` to it, as `harness serve` starts them (owned: stop_all() stops them);
    returns the gateway's URL."""
    from dataclasses import replace

    from harness._reporting import utc_now
    from harness.serving.route import seed_route
    from harness.serving.servers import gateway_server, scoring_server
    from harness.store import RegisterConfig, register as do_register

    log_dir = store.home / "logs" / f"bench-serve-{utc_now().replace(':', '')}"
    model_uri = do_register(RegisterConfig(snapshot=_tiny_snapshot(snapshot_dir), store=store),
                            progress=_echo_err).model_uri
    _echo_err(f"logs: {log_dir}")
    _echo_err(f"starting the scoring server for {model_uri} ...")
    server = scoring_server(model_uri, store.uri, log_dir=log_dir).start()
    route = replace(seed_route(server.url), name=route_name)
    _echo_err("starting the AI Gateway ...")
    gateway = gateway_server([route], log_dir=log_dir).start()
    _echo_err(f"gateway: {gateway.url}/endpoints/{route.name}/invocations")
    return gateway.url


if __name__ == "__main__":
    main()
