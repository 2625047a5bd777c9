"""`harness bench run|compare|plot` (`bench serve` is in _bench_serve)."""

from __future__ import annotations

import sys
from pathlib import Path
from collections.abc import Callable
from typing import Any

import click

from harness.bench.compare import Threshold
from harness.bench.core import BENCH_DEVICES, SHAPES, BenchConfig
from harness.cli import DEFAULT_HOME, _default, _each, _echo_err, _tiny_snapshot, main, prompt_format_options
from harness.model.loading import DTYPES


def _listed(cls: type, name: str) -> str:
    return ",".join(str(v) for v in _default(cls, name))


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
    type=click.Choice(SHAPES),
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
    type=click.Choice(BENCH_DEVICES),
    default=None,
    help="Default cpu; with --model-uri, where the model loads (cuda when there is one, for MLflow's loaders).",
)
@click.option(
    "--dtype",
    type=click.Choice(DTYPES),
    default=_default(BenchConfig, "dtype"),
    show_default=True,
    help="auto: bfloat16 on CUDA, float32 on CPU.",
)
@click.option("--batch-sizes", default=_listed(BenchConfig, "batch_sizes"), show_default=True)
@click.option("--prompt-tokens", default=_listed(BenchConfig, "prompt_tokens"), show_default=True)
@click.option("--new-tokens", default=_listed(BenchConfig, "new_tokens"), show_default=True)
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
    default=_default(BenchConfig, "rounds"),
    show_default=True,
    metavar="N|auto",
    help="Measured rounds per case; auto: until every path's e2e median is known to "
    "--target-ci, or --max-time is spent.",
)
@click.option(
    "--target-ci",
    default=f"{_default(BenchConfig, 'target_ci'):.0%}",
    show_default=True,
    metavar="PCT%",
    help="auto rounds: the median's 95%% interval half-width to reach.",
)
@click.option(
    "--max-time",
    type=click.FloatRange(min=0, min_open=True, max=3600),
    default=_default(BenchConfig, "max_time_s"),
    show_default=True,
    help="auto rounds: measured seconds per case at most.",
)
@click.option("--warmup", type=int, default=_default(BenchConfig, "warmup"), show_default=True)
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
@prompt_format_options
def bench_run(
    snapshot_dir: Path | None,
    shape: str | None,
    model_uri: str | None,
    device: str | None,
    dtype: str,
    batch_sizes: str,
    prompt_tokens: str,
    new_tokens: str,
    cache: str | None,
    rounds: str,
    target_ci: str,
    max_time: float,
    warmup: int,
    peak_bandwidth: float | None,
    report_dir: Path | None,
    home: Path,
    no_mlflow: bool,
    compile_: bool,
    prompt_format: str,
    system_prompt: str | None,
) -> None:
    """Measure TTFT, TPOT, end-to-end latency, tokens/s, memory and MBU of the raw model and
    of the wrapped predict, interleaved, over every batch/prompt/new-token/cache case."""
    from harness import report_folder
    from harness.bench.report import BenchReport, bench_machine, log_to_mlflow

    if snapshot_dir is None and shape is None:
        snapshot_dir = _tiny_snapshot(None)
    if device is None:
        device = _model_device() if model_uri else "cpu"
    cache = cache or ("on" if model_uri else "both")
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
        prompt_format=prompt_format,
        system_prompt=system_prompt,
    )
    from tqdm import tqdm

    _echo_err(f"loading {cfg.model_uri or cfg.snapshot or cfg.shape} on {cfg.device} ...")
    with tqdm(total=cfg.case_runs, unit="case", file=sys.stderr, desc="bench") as bar:

        def advance(label: str) -> None:
            bar.set_postfix_str(label)
            bar.update(1)

        cases, notes = _run_cases(cfg, home, advance)
    report = BenchReport(bench_machine(), cfg.to_dict(), tuple(cases), tuple(notes))
    files = report.write(report_dir or report_folder("bench", str(report.machine["device"])))
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


def _run_cases(cfg: BenchConfig, home: Path, progress: Callable[[str], None]) -> tuple[list[Any], list[str]]:
    from harness.bench.core import run_bench

    if cfg.model_uri is None:
        return run_bench(cfg, progress=progress)
    from harness.bench.pyfunc import run_model_bench
    from harness.store import StoreConfig

    store = StoreConfig(home=home)
    if "://" in cfg.model_uri or cfg.model_uri.startswith("models:"):
        store.require_reachable()
    return run_model_bench(cfg, store, progress=progress)


@bench.command("compare")
@click.argument("base", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--fail",
    "fails",
    multiple=True,
    metavar="METRIC:PCT%",
    callback=_each(Threshold.parse),
    help="Fail on a regression past this, e.g. tpot_p50:5% (repeatable).",
)
def bench_compare(base: Path, new: Path, fails: list[Threshold]) -> None:
    """Compare two reports (bench.json or pytest-benchmark JSON). Exit 1 on a regression
    past a threshold, 2 when the reports are not comparable."""
    from harness.bench.compare import compare

    result = compare(base, new, fails)
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
    from harness.bench.report import remake_figures

    for path in remake_figures(report_json):
        click.echo(f"wrote {path}")
