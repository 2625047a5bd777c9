"""`harness bench serve`: load through the gateway route, level by level."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness.bench.locust_engine import DEFAULT_MASTER_PORT, LOCUSTFILE
from harness.bench.serve import ENGINES, ServeBenchConfig
from harness.cli import DEFAULT_HOME, _default, _echo_err, _tiny_snapshot, prompt_format_options
from harness.cli._bench import _ints, _listed, bench
from harness.serving.load import LOAD_APIS, MAX_CONCURRENCY

if TYPE_CHECKING:
    from harness.store import StoreConfig  # imports MLflow: only where a command needs it


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
    default=_default(ServeBenchConfig, "route"),
    show_default=True,
    help="The completions route (endpoint) to load.",
)
@click.option(
    "--api",
    type=click.Choice(LOAD_APIS),
    default=_default(ServeBenchConfig, "api"),
    show_default=True,
    help="invocations: POST /endpoints/ROUTE/invocations; openai: POST /v1/completions with model=ROUTE.",
)
@click.option(
    "--concurrency",
    default=None,
    metavar="N,N,...",
    help=f"One level per value: N closed-loop workers (default {_listed(ServeBenchConfig, 'concurrency')}); "
    f"with --rate, the cap on requests in flight (default {MAX_CONCURRENCY}).",
)
@click.option(
    "--rate", type=float, default=None, metavar="R", help="Open loop: Poisson arrivals at R requests/s (0 < R <= 1000)."
)
@click.option(
    "--duration",
    type=float,
    default=_default(ServeBenchConfig, "duration_s"),
    show_default=True,
    help="Seconds per level (0 < S <= 3600).",
)
@click.option(
    "--prompt-tokens",
    default=_listed(ServeBenchConfig, "prompt_tokens"),
    show_default=True,
    help="Prompt lengths in tokens of the route's prompt field (the snapshot's "
    "tokenizer counts them); every level cycles through 8 distinct prompts of each.",
)
@click.option(
    "--max-tokens",
    type=int,
    default=_default(ServeBenchConfig, "max_tokens"),
    show_default=True,
    help="max_tokens of every request (1-4096).",
)
@click.option(
    "--slo",
    "slos",
    multiple=True,
    metavar="METRIC<=N",
    help="e.g. e2e_p90_ms<=500, requests_per_s>=10, error_rate<=0.01 (repeatable; "
    "every level must meet each; goodput counts requests within every latency "
    "SLO).",
)
@click.option(
    "--seed",
    type=int,
    default=_default(ServeBenchConfig, "seed"),
    show_default=True,
    help="Seed of the prompts and of the arrivals.",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default=_default(ServeBenchConfig, "engine"),
    show_default=True,
    help="locust: Locust worker processes, on this machine and others (--processes, --master, --worker); "
    f"threads: a thread pool in this process (at most {MAX_CONCURRENCY} in flight).",
)
@click.option(
    "--processes",
    type=int,
    default=None,
    metavar="N",
    help="Local Locust worker processes (default 1; with --master, 0: only the remote workers).",
)
@click.option(
    "--master",
    is_flag=True,
    help="Run Locust's master for workers on other machines too: listen on --master-bind:--master-port and "
    "wait for --expect-workers of them (each started with `harness bench serve --worker THIS_HOST`).",
)
@click.option(
    "--expect-workers",
    type=int,
    default=1,
    show_default=True,
    help="With --master: how many workers from other machines to wait for.",
)
@click.option(
    "--master-bind",
    default="0.0.0.0",
    show_default=True,
    help="With --master: the address the master listens on (one the other machines can reach).",
)
@click.option(
    "--master-port",
    type=int,
    default=DEFAULT_MASTER_PORT,
    show_default=True,
    help="With --master or --worker: the master's port.",
)
@click.option(
    "--worker",
    "worker_of",
    default=None,
    metavar="MASTER_HOST",
    help="Only run --processes Locust workers for the master at MASTER_HOST:--master-port, until it is done; "
    "the master writes the report.",
)
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
@prompt_format_options
def bench_serve(
    url: str | None,
    route: str,
    api: str,
    concurrency: str | None,
    rate: float | None,
    duration: float,
    prompt_tokens: str,
    max_tokens: int,
    slos: tuple[str, ...],
    seed: int,
    report_dir: Path | None,
    home: Path,
    no_mlflow: bool,
    snapshot_dir: Path | None,
    engine: str,
    processes: int | None,
    master: bool,
    expect_workers: int,
    master_bind: str,
    master_port: int,
    worker_of: str | None,
    prompt_format: str,
    system_prompt: str | None,
) -> None:
    """Load a completions route through the real gateway, level by level, at temperature 0:
    e2e latency p50/p90/p99, requests/s, output tokens/s, goodput and errors per level.

    The load comes from Locust worker processes (every request kept as a raw sample and
    merged by the master), on this machine or, with --master and --worker, on several.
    Progress goes to stderr, the table to stdout. Exit 0, or 1 when a level misses an SLO.
    """
    from dataclasses import replace

    from harness import ensure_writable, report_folder
    from harness.bench.serve import run_serve_bench
    from harness.bench.serve_report import log_to_mlflow
    from harness.bench.locust_engine import Distribution, run_workers
    from harness.serving.processes import stop_all, stop_on_signals
    from harness.store import StoreConfig

    if worker_of is not None:
        distribution = Distribution(processes if processes is not None else 1, 0, worker_of, master_port)
        _echo_err(f"{distribution.processes} Locust worker process(es) for the master at {worker_of}:{master_port}")
        with stop_on_signals():  # a signal stops the workers too (run_workers' finally)
            run_workers(worker_of, master_port, distribution.processes)
        _echo_err("the master let the workers go")
        return
    local = processes if processes is not None else (0 if master else 1)
    distribution = Distribution(local, expect_workers, master_bind, master_port) if master else Distribution(local)
    levels = _ints(concurrency, "--concurrency") if concurrency is not None else None
    cfg = ServeBenchConfig(
        url=url,
        route=route,
        api=api,
        concurrency=levels or (_default(ServeBenchConfig, "concurrency") if rate is None else (MAX_CONCURRENCY,)),
        rate=rate,
        duration_s=duration,
        prompt_tokens=_ints(prompt_tokens, "--prompt-tokens"),
        max_tokens=max_tokens,
        slo=slos,
        seed=seed,
        snapshot=str(snapshot_dir) if snapshot_dir else None,
        engine=engine,
        processes=distribution.processes,
        remote_workers=distribution.remote_workers,
        prompt_format=prompt_format,
        system_prompt=system_prompt,
    )
    folder = ensure_writable(report_dir or report_folder("bench-serve"))
    store = StoreConfig(home=home)
    if url is None or not no_mlflow:
        store.require_reachable()
    with stop_on_signals():
        try:
            if url is None:
                cfg = replace(cfg, url=_bench_servers(route, store, snapshot_dir, cfg))
            report = run_serve_bench(
                cfg, progress=_echo_err, distribution=distribution, log_dir=store.log_dir("bench-serve-locust")
            )
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


def _bench_servers(route_name: str, store: StoreConfig, snapshot_dir: Path | None, cfg: ServeBenchConfig) -> str:
    """The reference registered on the snapshot, its scoring server and a gateway routing
    ``route_name`` to it, as `harness serve` starts them (owned: stop_all() stops them);
    returns the gateway's URL."""
    from dataclasses import replace

    from harness.model.loading import LoadConfig
    from harness.serving.route import seed_route
    from harness.serving.servers import start_loopback
    from harness.store import RegisterConfig, register as do_register

    log_dir = store.log_dir("bench-serve")
    load = LoadConfig(prompt_format=cfg.prompt_format, system_prompt=cfg.system_prompt)
    model_uri = do_register(
        RegisterConfig(snapshot=_tiny_snapshot(snapshot_dir), store=store, load=load), progress=_echo_err
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


@bench.command("locustfile")
def bench_locustfile() -> None:
    """Print the path of the harness's locustfile, for plain Locust and its web UI:

    locust -f $(harness bench locustfile) --host GATEWAY_URL --route ROUTE
    [--prompts-file bench-serve.json]
    """
    click.echo(str(LOCUSTFILE))
