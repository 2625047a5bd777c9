"""`harness bench run|compare|plot|serve`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from harness.cli import DEFAULT_HOME, _UsageFailure, _echo_err, _tiny_snapshot, main


def _rounds(value: str) -> int | str:
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(
            f"{value[:20]!r}: expected an integer 1-1000 or 'auto'", param_hint="--rounds"
        ) from None


def _percent(value: str, name: str) -> float:
    try:
        return float(value.strip().rstrip("%")) / 100
    except ValueError:
        raise click.BadParameter(f"{value[:20]!r}: expected a percentage such as 2%", param_hint=name) from None


def _ints(value: str, name: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected comma-separated integers", param_hint=name) from None


@main.group()
def bench() -> None:
    """Latency/throughput benchmarks of generate, and regression comparison."""


@bench.command("run")
@click.option(
    "--snapshot",
    "snapshot_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A model snapshot to benchmark.",
)
@click.option(
    "--shape",
    type=click.Choice(["mpt-7b", "tiny"]),
    default=None,
    help="Random weights of this shape built on the device (mpt-7b: d_model 4096, "
    "32 layers). Default: the tiny snapshot.",
)
@click.option(
    "--model-uri",
    default=None,
    metavar="URI",
    help="An MLflow model (models:/NAME/VERSION, runs:/..., a path): its predict, "
    "as served, against raw generate of the prompt ids it builds, held to the "
    "same greedy work. Custom PyFunc or transformers flavour; --snapshot's "
    "tokenizer sizes the prompts.",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default=None,
    help="Default cpu; with --model-uri, where the model loads (cuda when there is one, for MLflow's loaders).",
)
@click.option(
    "--dtype",
    type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
    default="auto",
    show_default=True,
    help="auto: bfloat16 on CUDA, float32 on CPU.",
)
@click.option("--batch-sizes", default="1,8", show_default=True)
@click.option("--prompt-tokens", default="128", show_default=True)
@click.option("--new-tokens", default="16", show_default=True)
@click.option(
    "--cache",
    "cache",
    type=click.Choice(["both", "on", "off"]),
    default=None,
    help="KV cache on, off (the published use_cache: false), or both (the default; "
    "with --model-uri: on, as the model keeps it).",
)
@click.option(
    "--rounds",
    default="auto",
    show_default=True,
    metavar="N|auto",
    help="Measured rounds per case; auto: until every path's e2e median is known to "
    "--target-ci, or --max-time is spent.",
)
@click.option(
    "--target-ci",
    default="2%",
    show_default=True,
    metavar="PCT%",
    help="auto rounds: the median's 95%% interval half-width to reach.",
)
@click.option(
    "--max-time",
    type=click.FloatRange(min=0, min_open=True, max=3600),
    default=30.0,
    show_default=True,
    help="auto rounds: measured seconds per case at most.",
)
@click.option("--warmup", type=click.IntRange(0, 100), default=1, show_default=True)
@click.option(
    "--peak-bandwidth",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="GPU memory bandwidth in TB/s for MBU (default: from a table of known GPUs).",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where bench.json/md/png go (default reports/bench/<device>-<UTC date>/).",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_HOME,
    show_default=True,
    help="Embedded MLflow store the run is logged to.",
)
@click.option("--no-mlflow", is_flag=True, help="Do not log the run to MLflow.")
@click.option(
    "--compile",
    "compile_",
    is_flag=True,
    help="Also measure raw generate under torch.compile (reported as 'compiled').",
)
def bench_run(
    snapshot_dir,
    shape,
    model_uri,
    device,
    dtype,
    batch_sizes,
    prompt_tokens,
    new_tokens,
    cache,
    rounds,
    target_ci,
    max_time,
    warmup,
    peak_bandwidth,
    report_dir,
    home,
    no_mlflow,
    compile_,
) -> None:
    """Measure TTFT, TPOT, end-to-end latency, tokens/s, memory and MBU of the raw model and
    of the wrapped predict, interleaved, over every batch/prompt/new-token/cache case."""
    from harness.bench.core import BenchConfig
    from harness.bench.report import BenchReport, bench_machine, log_to_mlflow
    from harness._reporting import utc_now

    if snapshot_dir is None and shape is None:
        snapshot_dir = _tiny_snapshot(None)
    if device is None:
        device = _model_device() if model_uri else "cpu"
    cache = cache or ("on" if model_uri else "both")
    try:
        cfg = BenchConfig(
            snapshot=str(snapshot_dir) if snapshot_dir else None,
            shape=shape,
            model_uri=model_uri,
            device=device,
            dtype=dtype,
            batch_sizes=_ints(batch_sizes, "--batch-sizes"),
            prompt_tokens=_ints(prompt_tokens, "--prompt-tokens"),
            new_tokens=_ints(new_tokens, "--new-tokens"),
            cache_modes={"both": (True, False), "on": (True,), "off": (False,)}[cache],
            rounds=_rounds(rounds),
            target_ci=_percent(target_ci, "--target-ci"),
            max_time_s=max_time,
            warmup=warmup,
            compile=compile_,
            peak_bandwidth=peak_bandwidth * 1e12 if peak_bandwidth else None,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    from tqdm import tqdm

    _echo_err(f"loading {cfg.model_uri or cfg.snapshot or cfg.shape} on {cfg.device} ...")
    with tqdm(total=cfg.case_runs, unit="case", file=sys.stderr, desc="bench") as bar:

        def advance(label: str) -> None:
            bar.set_postfix_str(label)
            bar.update(1)

        cases, notes = _run_cases(cfg, home, advance)
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(cfg).items()}
    report = BenchReport(bench_machine(), config, tuple(cases), tuple(notes))
    folder = report_dir or Path("reports") / "bench" / (
        f"{str(report.machine['device']).replace(' ', '-')}-{utc_now()[:10]}"
    )
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


def _model_device() -> str:
    """Where MLflow's loaders put a model: the GPU when there is one."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _run_cases(cfg, home: Path, progress):
    from harness.bench.core import run_bench

    if cfg.model_uri is None:
        return run_bench(cfg, progress=progress)
    from harness.bench.pyfunc import ModelBenchError, run_model_bench
    from harness.store import StoreConfig

    store = StoreConfig(home=home)
    if "://" in cfg.model_uri or cfg.model_uri.startswith("models:"):
        store.require_reachable()
    try:
        return run_model_bench(cfg, store, progress=progress)
    except ModelBenchError as error:
        raise _UsageFailure(str(error)) from None


@bench.command("compare")
@click.argument("base", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--fail",
    "fails",
    multiple=True,
    metavar="METRIC:PCT%",
    help="Fail on a regression past this, e.g. tpot_p50:5% (repeatable).",
)
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
_SERVE_OPTIONS = {
    "url": "--url",
    "route": "--route",
    "api": "--api",
    "concurrency": "--concurrency",
    "rate": "--rate",
    "duration_s": "--duration",
    "prompt_tokens": "--prompt-tokens",
    "max_tokens": "--max-tokens",
    "slo": "--slo",
    "seed": "--seed",
    "snapshot": "--snapshot",
}


@bench.command("serve")
@click.option(
    "--url",
    default=None,
    metavar="URL",
    help="A running MLflow AI Gateway. Default: register the reference, start its "
    "scoring server and a gateway on loopback (as `harness serve` does), and stop "
    "both at the end.",
)
@click.option(
    "--route",
    default="completions-mpt-7b-instruct",
    show_default=True,
    help="The completions route (endpoint) to load.",
)
@click.option(
    "--api",
    type=click.Choice(["invocations", "openai"]),
    default="invocations",
    show_default=True,
    help="invocations: POST /endpoints/ROUTE/invocations; openai: POST /v1/completions with model=ROUTE.",
)
@click.option(
    "--concurrency",
    default=None,
    metavar="N,N,...",
    help="One level per value: N closed-loop workers (default 1,2,4,8); with --rate, "
    "the cap on requests in flight (default 64).",
)
@click.option(
    "--rate", type=float, default=None, metavar="R", help="Open loop: Poisson arrivals at R requests/s (0 < R <= 1000)."
)
@click.option("--duration", type=float, default=10.0, show_default=True, help="Seconds per level (0 < S <= 3600).")
@click.option(
    "--prompt-tokens",
    default="32,128",
    show_default=True,
    help="Prompt lengths in tokens of the route's prompt field (the snapshot's "
    "tokenizer counts them); every level cycles through 8 distinct prompts of each.",
)
@click.option("--max-tokens", type=int, default=16, show_default=True, help="max_tokens of every request (1-4096).")
@click.option(
    "--slo",
    "slos",
    multiple=True,
    metavar="METRIC<=N",
    help="e.g. e2e_p90_ms<=500, requests_per_s>=10, error_rate<=0.01 (repeatable; "
    "every level must meet each; goodput counts requests within every latency "
    "SLO).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the prompts and of the arrivals.")
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where bench-serve.json/md/png go (default reports/bench-serve/<UTC time>/).",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_HOME,
    show_default=True,
    help="Embedded MLflow store: the reference is registered and the run logged there; server logs go to <home>/logs/.",
)
@click.option("--no-mlflow", is_flag=True, help="Do not log the run to MLflow.")
@click.option(
    "--snapshot",
    "snapshot_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Snapshot whose tokenizer counts tokens and, without --url, that is served (default: the tiny snapshot).",
)
def bench_serve(
    url,
    route,
    api,
    concurrency,
    rate,
    duration,
    prompt_tokens,
    max_tokens,
    slos,
    seed,
    report_dir,
    home,
    no_mlflow,
    snapshot_dir,
) -> None:
    """Load a completions route through the real gateway, level by level, at temperature 0:
    e2e latency p50/p90/p99, requests/s, output tokens/s, goodput and errors per level.

    Progress goes to stderr, the table to stdout. Exit 0, or 1 when a level misses an SLO.
    """
    from dataclasses import replace

    from harness._reporting import ReportDirError, ensure_writable, utc_now
    from harness.bench.serve import ServeBenchConfig, ServeBenchError, ServeConfigError, run_serve_bench
    from harness.bench.serve_report import log_to_mlflow
    from harness.serving.load import MAX_CONCURRENCY
    from harness.serving.processes import Interrupted, stop_all, stop_on_signals
    from harness.store import StoreConfig

    levels = (
        _ints(concurrency, "--concurrency")
        if concurrency is not None
        else ((1, 2, 4, 8) if rate is None else (MAX_CONCURRENCY,))
    )
    try:
        cfg = ServeBenchConfig(
            url=url,
            route=route,
            api=api,
            concurrency=levels,
            rate=rate,
            duration_s=duration,
            prompt_tokens=_ints(prompt_tokens, "--prompt-tokens"),
            max_tokens=max_tokens,
            slo=slos,
            seed=seed,
            snapshot=str(snapshot_dir) if snapshot_dir else None,
        )
    except ServeConfigError as error:
        raise click.BadParameter(str(error), param_hint=_SERVE_OPTIONS.get(error.field)) from None
    try:
        folder = ensure_writable(report_dir or Path("reports") / "bench-serve" / utc_now().replace(":", ""))
    except ReportDirError as error:
        raise _UsageFailure(str(error)) from None
    store = StoreConfig(home=home)
    if url is None or not no_mlflow:
        store.require_reachable()
    with stop_on_signals():
        try:
            if url is None:
                cfg = replace(cfg, url=_bench_servers(route, store, snapshot_dir))
            report = run_serve_bench(cfg, progress=_echo_err)
        except Interrupted as stop:
            _echo_err(f"interrupted ({stop.signame}); stopping")
            raise SystemExit(stop.exit_code) from None
        except ServeConfigError as error:
            raise click.BadParameter(str(error), param_hint=_SERVE_OPTIONS.get(error.field)) from None
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
    from harness.serving.servers import start_loopback
    from harness.store import RegisterConfig, register as do_register

    log_dir = store.home / "logs" / f"bench-serve-{utc_now().replace(':', '')}"
    model_uri = do_register(
        RegisterConfig(snapshot=_tiny_snapshot(snapshot_dir), store=store), progress=_echo_err
    ).model_uri
    _echo_err(f"logs: {log_dir}")
    loopback = start_loopback(
        {"model": model_uri},
        store.uri,
        log_dir,
        progress=_echo_err,
        route_for=lambda _, url: replace(seed_route(url), name=route_name),
    )
    _echo_err(f"gateway: {loopback.endpoint('model')}")
    return loopback.gateway.url
