"""`harness gate`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness import ensure_writable
from harness.cli import DEFAULT_HOME, SIGNATURE_KINDS, _SIGNATURES, _echo_err, main, prompt_format_options
from harness.gate.explore.search import DEFAULT_EXAMPLES, DEFAULT_SEED
from harness.gate.runner import DEFAULT_CHECK_TIMEOUT, DEFAULT_LOAD_TIMEOUT
from harness.model.loading import DEVICES, DTYPES

if TYPE_CHECKING:
    from harness.gate.report import CheckResult, GateReport


_STATUS_MARK = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skipped": "skip"}


@main.command()
@click.option(
    "--python-model",
    "python_model",
    metavar="FILE.py:CLASS",
    default=None,
    help="A mlflow.pyfunc.PythonModel subclass whose load_context reads "
    "context.artifacts['repository'] (as the seed's wrapper does).",
)
@click.option(
    "--model-uri",
    default=None,
    metavar="URI",
    help="An already logged or registered model (models:/NAME/VERSION, runs:/ID/model).",
)
@click.option(
    "--snapshot",
    "snapshot_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Model snapshot for file candidates (default: the tiny offline snapshot).",
)
@click.option(
    "--signature",
    type=_SIGNATURES,
    default=SIGNATURE_KINDS[0],
    show_default=True,
    help="Signature a file candidate is logged with; a logged model keeps its own.",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where gate.json and gate.md go (default reports/gate/<UTC timestamp>/).",
)
@click.option(
    "--check-timeout",
    type=click.FloatRange(min=0, min_open=True, max=3600),
    default=DEFAULT_CHECK_TIMEOUT,
    show_default=True,
    help="Seconds each check may take; past it the candidate's process is killed.",
)
@click.option(
    "--load-timeout",
    type=click.FloatRange(min=0, min_open=True, max=3600),
    default=DEFAULT_LOAD_TIMEOUT,
    show_default=True,
    help="Seconds the candidate may take to log and load in its own process.",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_HOME,
    show_default=True,
    help="Folder of the embedded MLflow store.",
)
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: embedded SQLite).")
@click.option(
    "--route",
    "route_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Your route, as an MLflow gateway config YAML (secrets as $ENV "
    "references). Default: the seed's route, mlflow-model-serving "
    "on loopback.",
)
@click.option("--no-serve", is_flag=True, help="Skip the checks that start the real scoring server and gateway.")
@click.option(
    "--bench-report",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A bench.json (or pytest-benchmark JSON) for bench.budget.",
)
@click.option(
    "--budget",
    "budgets",
    multiple=True,
    metavar="METRIC<=N",
    help="A budget the report must meet, e.g. tpot_p50_ms<=25, overhead_ratio<=1.05, "
    "tokens_per_s>=1000 (repeatable; judged on the wrapped path's worst case).",
)
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="CHECK_ID",
    help="Run just this check (repeatable; `load` always runs when a check needs the "
    "model). The verdict then covers only those checks.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**32 - 1),
    default=DEFAULT_SEED,
    show_default=True,
    help="Seed of the exploration (explore.*): the same seed gives the same requests "
    "and the same report; the report prints it.",
)
@click.option(
    "--explore",
    "explore",
    type=click.IntRange(1, 100_000),
    default=DEFAULT_EXAMPLES,
    show_default=True,
    metavar="N",
    help="Requests hypothesis draws for explore.answers (explore.sequences runs N/4 "
    "sequences); raise it for a deeper search. Failing examples are kept under "
    "--home/hypothesis and replayed first next time.",
)
@click.option(
    "--device",
    type=click.Choice(DEVICES),
    default="auto",
    show_default=True,
    help="Where the candidate is asked to run (its model_config's `device`) and where "
    "the reference runs; auto: a CUDA GPU if there is one, else the CPU. A "
    "candidate that runs elsewhere is named in the report, and the reference "
    "follows it.",
)
@click.option(
    "--dtype",
    type=click.Choice(DTYPES),
    default="auto",
    show_default=True,
    help="The precision asked for (model_config `dtype`); auto: bfloat16 on a GPU, "
    "float32 on a CPU. Answers must equal the reference's exactly in float32 "
    "on a CPU; elsewhere they may part at a near-tie (top-5 within 0.5 nats, "
    "see README).",
)
@prompt_format_options
def gate(
    python_model: str | None,
    model_uri: str | None,
    snapshot_dir: Path | None,
    signature: str,
    report_dir: Path | None,
    check_timeout: float,
    load_timeout: float,
    home: Path,
    tracking_uri: str | None,
    route_file: Path | None,
    no_serve: bool,
    bench_report: Path | None,
    budgets: tuple[str, ...],
    only: tuple[str, ...],
    seed: int,
    explore: int,
    device: str,
    dtype: str,
    prompt_format: str,
    system_prompt: str | None,
) -> None:
    """Check a candidate wrapper, its signature and its behaviour before deploying it.

    Without options the reference wrapper on the tiny snapshot is the candidate. The
    candidate is logged, loaded and run in its own process (it is code run with your
    rights: use a container for code you do not trust).
    Exit 0 when every check passes, 1 when any fails or errors, 2 on a usage error,
    128+N when signal N stopped it (the report then says `interrupted`).
    """
    from harness.gate.candidate import CandidateSpec
    from harness.gate.runner import GateConfig, default_report_dir, run_gate
    from harness.model.signature import SignatureKind
    from harness.serving.processes import stop_on_signals
    from harness.store import StoreConfig

    if python_model and model_uri:
        raise click.UsageError("give --python-model or --model-uri, not both")
    kind = SignatureKind(signature)
    if python_model:
        candidate = CandidateSpec.from_file(python_model, kind)
    elif model_uri:
        candidate = CandidateSpec.from_uri(model_uri)
    else:
        candidate = CandidateSpec(signature=kind)
    cfg = GateConfig(
        candidate=candidate,
        snapshot=snapshot_dir,
        check_timeout=check_timeout,
        load_timeout=load_timeout,
        store=StoreConfig(home=home, tracking_uri=tracking_uri),
        route_file=route_file,
        serve=not no_serve,
        bench_report=bench_report,
        budgets=budgets,
        only=only,
        seed=seed,
        explore=explore,
        device=device,
        dtype=dtype,
        prompt_format=prompt_format,
        system_prompt=system_prompt,
    )
    folder = ensure_writable(report_dir or default_report_dir())
    cfg.store.require_reachable()

    def show(result: CheckResult) -> None:
        mark = _STATUS_MARK[result.status.value]
        click.echo(f"{mark:<5} {result.id:<24} {result.duration_s:6.2f}s  {result.message}")

    # SIGTERM/SIGHUP become interrupts: the candidate and servers are stopped and the
    # checks that finished are written, as for Ctrl-C. Later signals wait for that.
    with stop_on_signals():
        report = run_gate(cfg, progress=_echo_err, on_result=show)
        json_path, md_path = report.write(folder)
    if report.runtime and report.runtime.get("mismatch"):
        _echo_err(f"warning: {report.runtime['mismatch']}")
    failing = [c.id for c in report.checks if c.status.value in ("fail", "error")]
    click.echo(f"verdict: {report.verdict.upper()}" + (f" (failing: {', '.join(failing)})" if failing else ""))
    click.echo(f"report: {json_path} and {md_path} (explored with --seed {seed})")
    raise SystemExit(_gate_exit_code(report))


def _gate_exit_code(report: GateReport) -> int:
    if report.interrupted:
        import signal as _signal

        return 128 + _signal.Signals[report.interrupted].value
    return 0 if report.verdict == "pass" else 1
