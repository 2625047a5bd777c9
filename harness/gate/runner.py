"""The pre-deploy gate: load a candidate as it would be deployed, in its own process, and
run every check against it."""

from __future__ import annotations

import os
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness._redact import CREDENTIAL_NAME, add_secret
from harness._reporting import machine_info, report_folder, utc_now
from harness._validation import ConfigError, Number, OneOf, checked
from harness.bench.compare import Budget
from harness.gate.candidate import CandidateKind, CandidateSpec
from harness.gate.cores import shared_cores
from harness.gate.checks import CHECKS, Check, GateContext, Outcome
from harness.gate.loading import load_in_background, start_candidate
from harness.gate.checks.explore import prepare_exploration
from harness.gate.explore.search import DEFAULT_EXAMPLES, DEFAULT_SEED, ExploreConfig, hypothesis_home
from harness.gate.prepare import prepare_reference
from harness.gate.reference import ReferencePool, Runtime
from harness.gate.report import CheckResult, GateReport, Status
from harness.gate.worker import WorkerError, WorkerTimeout
from harness.serving.processes import raise_if_interrupted
from harness.model.formats import AUTO, DEFAULT_FORMAT, FORMAT_CHOICES, PromptFormat
from harness.store import StoreConfig

DEFAULT_CHECK_TIMEOUT = 120.0
DEFAULT_LOAD_TIMEOUT = 300.0
PROVIDERS = ("mlflow-model-serving", "columns")


@dataclass(frozen=True)
class GateConfig:
    candidate: CandidateSpec = field(default_factory=CandidateSpec)
    snapshot: Path | None = None  # None: the cached tiny snapshot, built if missing
    store: StoreConfig = field(default_factory=StoreConfig)
    check_timeout: float = DEFAULT_CHECK_TIMEOUT
    load_timeout: float = DEFAULT_LOAD_TIMEOUT
    provider: str = "mlflow-model-serving"
    only: tuple[str, ...] = ()  # run just these check ids (plus load)
    route_file: Path | None = None  # the user's route (gateway YAML); default: the seed's route
    serve: bool = True  # start the real scoring server and gateway on loopback
    bench_report: Path | None = None
    budgets: tuple[str, ...] = ()
    seed: int = DEFAULT_SEED  # hypothesis' seed for explore.*: the same seed, the same report
    explore: int = DEFAULT_EXAMPLES  # requests drawn per run (sequences: a quarter of it)
    # Where the candidate is asked to run (its model_config's device and dtype) and where
    # the reference runs: auto is a GPU in bfloat16 when there is one, else float32 on CPU.
    device: str = "auto"
    dtype: str = "auto"
    # The gate's clock, injectable: it bounds only the candidate's working time and the
    # searches' safety nets, so no verdict depends on it short of a timeout (ERROR).
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    # The reference's models and traces shared with other gates in this process (a test
    # session's); exact-rule ones only, where a trace is the same whichever gate made it.
    shared_references: ReferencePool | None = field(default=None, compare=False, repr=False)
    # The candidate's prompt format (harness.model.formats), which the reference is run in;
    # auto: the snapshot tokenizer's chat_template when it has one. The reference candidate
    # is told it; a user's wrapper knows its own.
    prompt_format: str = DEFAULT_FORMAT
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        seconds = Number(0.0, 3600.0, "(0, 3600] seconds")
        checked("check_timeout", self.check_timeout, seconds, float)
        checked("load_timeout", self.load_timeout, seconds, float)
        checked("provider", self.provider, OneOf(PROVIDERS), str)
        checked("prompt_format", self.prompt_format, OneOf(FORMAT_CHOICES), str)
        if self.prompt_format != AUTO:  # auto's format, so whether it takes a system prompt, needs the snapshot
            PromptFormat(self.prompt_format, self.system_prompt)
        self.explore_config()  # a bad --seed or --explore is a usage error, before anything runs
        self.runtime()  # so is a bad --device or --dtype
        for budget in self.budgets:
            try:
                Budget.parse(budget)  # a bad budget is a usage error, before anything runs
            except ValueError as error:
                raise ConfigError("budgets", str(error)) from None
        if self.budgets and self.bench_report is None:
            raise ConfigError("budgets", "--budget needs --bench-report FILE")
        if unknown := sorted(set(self.only) - set(CHECKS)):
            shown = [u if len(u) <= 40 else u[:40] + "…" for u in unknown[:5]]
            raise ConfigError("only", f"--only: unknown check ids {shown}: allowed {sorted(CHECKS)}")

    def runtime(self) -> Runtime:
        return Runtime(self.device, self.dtype)

    def model_config(self) -> tuple[tuple[str, str], ...]:
        """What the candidate's load is told (MLflow ``model_config``): only what was asked,
        and to the reference, its prompt format."""
        told = tuple((k, v) for k, v in (("device", self.device), ("dtype", self.dtype)) if v != "auto")
        if self.candidate.kind is CandidateKind.REFERENCE:
            told += (("prompt_format", self.prompt_format),)
            told += (("system_prompt", self.system_prompt),) if self.system_prompt is not None else ()
        return told

    def explore_config(self) -> ExploreConfig:
        """Failing examples are kept under the home folder and replayed first next time."""
        return ExploreConfig.scaled(self.explore, seed=self.seed, database=Path(self.store.home) / "hypothesis")


def _canaries(environ: dict[str, str] | None = None) -> dict[str, str]:
    """A canary value for every credential-looking variable, and one of our own, so
    secrets.no_leak always has something to look for. Each is masked in whatever the
    harness writes, like a real secret."""
    names = {n for n in (os.environ if environ is None else environ) if CREDENTIAL_NAME.search(n)}
    names.add("HARNESS_CANARY_TOKEN")
    canaries = {name: f"harness-canary-{uuid.uuid4().hex[:12]}" for name in sorted(names)}
    for value in canaries.values():
        add_secret(value)
    return canaries


def _snapshot_tokenizer(snapshot: Path) -> Any:
    from harness.model.loading import load_tokenizer

    return load_tokenizer(str(snapshot))


def run_check(check: Check, ctx: GateContext, timeout: float) -> CheckResult:
    """One check on a freshly loaded candidate (nothing an earlier check sent can change its
    verdict), with ``timeout`` seconds of the candidate's working time: the candidate's
    exceptions become ``error``; a hang or a dead worker becomes ``error`` naming what
    happened."""
    if check.needs_model and ctx.candidate is None:
        return CheckResult(check.id, Status.SKIPPED, "skipped: the candidate did not load")
    if check.needs_serving and not ctx.serve:
        return CheckResult(check.id, Status.SKIPPED, "skipped: --no-serve (servers not started)")
    start = time.perf_counter()
    try:
        if ctx.candidate is not None and check.needs_model:
            _fresh(ctx)
            ctx.candidate.allowance = timeout
            ctx.candidate.seed(0)
        outcome: Outcome = check.fn(ctx)
    except WorkerTimeout as error:
        return _error(check, f"timed out after {timeout:g}s of the candidate's working time: {error}", start)
    except WorkerError as error:
        return _error(check, f"not judged: {error}", start)
    except Exception as error:  # noqa: BLE001 - a candidate's exception is a result
        message = f"{type(error).__name__}: {error}"
        if check.needs_model and _temperature_zero_cause(ctx, message):
            return CheckResult(
                check.id,
                Status.SKIPPED,
                (
                    "skipped: judged at temperature 0, which raises in this candidate while "
                    f"sampling works (params.temperature_zero fails for it): {message}"
                )[:500],
                {},
                round(time.perf_counter() - start, 3),
            )
        return _error(check, message[:500], start, {"traceback": traceback.format_exception(error)[-3:]})
    finally:
        if ctx.candidate is not None:
            ctx.candidate.allowance = None
    duration = round(time.perf_counter() - start, 3)
    return CheckResult(check.id, outcome.status, outcome.message, outcome.evidence, duration)


def _fresh(ctx: GateContext) -> None:
    """A candidate with no state from what other checks sent: loaded again in its worker
    when anything was sent since it loaded (cheap on the snapshots the gate judges), so
    ``--only X`` and a full run give X the same verdict. The load counts against the load
    timeout, not the check's working time."""
    if ctx.sent:
        ctx.candidate.allowance = ctx.reload_timeout
        ctx.candidate.reload()  # False only for an in-process probe that cannot reload
    ctx.sent.clear()
    ctx.answers_by_instruction.clear()


def _temperature_zero_cause(ctx: GateContext, message: str) -> bool:
    """Whether ``message`` is the error a row at temperature 0 alone raises."""
    try:
        return ctx.temperature_zero_error() == message
    except WorkerError:  # the worker is gone or out of time: the check's error stands
        return False


def _error(check: Check, message: str, start: float, evidence: dict | None = None) -> CheckResult:
    return CheckResult(check.id, Status.ERROR, message, evidence or {}, round(time.perf_counter() - start, 3))


def resolve_snapshot(snapshot: Path | None, progress: Callable[[str], None], home: Path | None = None) -> Path:
    """The snapshot asked for, else the tiny one under the home folder (nothing is written
    outside the folders the user named)."""
    from harness.model.snapshot import cached_tiny

    return Path(snapshot).absolute() if snapshot is not None else cached_tiny(progress=progress, home=home).absolute()


def run_gate(
    cfg: GateConfig,
    progress: Callable[[str], None] = lambda _: None,
    on_result: Callable[[CheckResult], None] = lambda _: None,
) -> GateReport:
    """Every registered check against the candidate; returns the report (not yet written).

    An interrupt (KeyboardInterrupt, or :class:`Interrupted` for SIGTERM/SIGHUP under
    :func:`harness.serving.processes.stop_on_signals`) stops the candidate and every server,
    and the report says ``interrupted``, with the checks that finished."""
    results: list[CheckResult] = []

    def record(result: CheckResult) -> None:
        results.append(result)
        on_result(result)

    interrupted = snapshot = ctx = None
    phases: dict[str, float] = {}
    try:
        with shared_cores():
            snapshot = resolve_snapshot(cfg.snapshot, progress, Path(cfg.store.home))
            ctx = _context(cfg, snapshot)
            with hypothesis_home(Path(cfg.store.home) / "hypothesis" / "storage"):
                _run_checks(cfg, snapshot, ctx, progress, record, phases)
            raise_if_interrupted()  # a signal that landed where its exception was dropped
    except KeyboardInterrupt as error:
        interrupted = getattr(error, "signame", "SIGINT")
    finally:
        if ctx is not None:
            _stop(ctx)
    return GateReport(
        candidate=cfg.candidate.describe(ctx.model_uri if ctx else None),
        snapshot={
            "path": str(snapshot) if snapshot else None,
            "prompt_format": ctx.prompt_format.describe() if ctx else None,
        },
        machine=machine_info(),
        checks=tuple(results),
        created_at=utc_now(),
        interrupted=interrupted,
        explore=_explore_facts(cfg),
        runtime=_runtime_facts(cfg, ctx),
        # The candidate loads while the reference is prepared: the two overlap.
        phases={k: round(phases[k], 3) for k in ("load", "reference", "checks") if k in phases} or None,
    )


def _explore_facts(cfg: GateConfig) -> dict[str, object]:
    explore = cfg.explore_config()
    return {
        "seed": explore.seed,
        "examples": explore.examples,
        "sequences": explore.sequences,
        "steps": explore.steps,
        "database": str(explore.database),
    }


def _runtime_facts(cfg: GateConfig, ctx: GateContext | None) -> dict[str, object]:
    """Where each side ran, and whether the candidate ran where it was asked to."""
    asked = cfg.runtime()
    candidate = reference = None
    facts: dict[str, object] = {}
    if ctx is not None:
        try:
            candidate = ctx.candidate_runtime() if ctx.candidate is not None else None
        except WorkerError:  # the worker is gone: what it ran on is unknown
            candidate = None
        if (used := ctx.reference_used()) is not None:
            reference, facts = used[0], used[1].facts()
    mismatch = None
    if candidate is not None:
        wrong = [
            f"{name} {getattr(candidate, name)} (asked {getattr(asked, name)})"
            for name in ("device", "dtype")
            if getattr(asked, name) != "auto" and getattr(candidate, name) != getattr(asked, name)
        ]
        if wrong:
            mismatch = (
                f"the candidate did not run where asked: {', '.join(wrong)}; the reference ran where the candidate did"
            )
    return {
        "asked": asked.to_dict(),
        "candidate": candidate and candidate.to_dict(),
        "reference": reference and reference.to_dict(),
        "mismatch": mismatch,
        "rule": None,
        **facts,
    }


def _parse_route(route_file: Path | None) -> tuple[Any, str | None]:
    """The user's route, parsed once for every check (its first endpoint; None without
    --route), or why it is invalid (route.spec reports it). The values it references are
    masked in everything the gate writes, whatever their variables are called."""
    from harness.serving.route import RouteError, routes_from_gateway_yaml

    if route_file is None:
        return None, None
    try:
        routes = routes_from_gateway_yaml(Path(route_file).read_text())
    except (RouteError, OSError, ValueError) as error:
        return None, str(error)
    for route in routes:
        for ref in route.secrets().values():
            try:
                add_secret(ref.resolve().reveal())
            except RouteError:
                continue
    return routes[0], None


def _context(cfg: GateConfig, snapshot: Path) -> GateContext:
    route, route_error = _parse_route(cfg.route_file)
    tokenizer = _snapshot_tokenizer(snapshot)
    return GateContext(
        route=route,
        route_error=route_error,
        snapshot=snapshot,
        tokenizer=tokenizer,
        prompt_format=PromptFormat.resolve(cfg.prompt_format, tokenizer, cfg.system_prompt),
        provider=cfg.provider,
        tracking_uri=cfg.store.uri,
        route_file=cfg.route_file,
        serve=cfg.serve,
        canaries=_canaries(),
        explore=cfg.explore_config(),
        candidate_key=cfg.candidate.code_key(),
        clock=cfg.clock,
        reload_timeout=cfg.load_timeout,
        runtime=cfg.runtime(),
        reference_cache=Path(cfg.store.home) / "reference-cache",
        references=ReferencePool(shared=cfg.shared_references),
        bench_report=cfg.bench_report,
        budgets=cfg.budgets,
        candidate_kind=cfg.candidate.kind.value,
        log_dir=cfg.store.log_dir("gate"),
    )


def _run_checks(
    cfg: GateConfig,
    snapshot: Path,
    ctx: GateContext,
    progress: Callable[[str], None],
    record: Callable[[CheckResult], None],
    phases: dict[str, float],
) -> None:
    selected = [c for c in CHECKS.values() if not cfg.only or c.id == "load" or c.id in cfg.only]
    # `load` comes along with any check that needs the worker; asked for alone, it needs it too.
    if not any(c.needs_candidate and (c.id != "load" or "load" in cfg.only) for c in selected):
        selected = [c for c in selected if c.id != "load"]  # nothing here needs the model
    loading = None
    if any(c.needs_candidate for c in selected):
        serve = cfg.serve and any(c.needs_serving for c in selected)
        loading = load_in_background(cfg, snapshot, ctx, progress, phases, serve)
    if any(c.needs_model for c in selected):
        # The reference is prepared while the candidate loads in its own process (each on a
        # core of its own): on the runtime asked for, which is where a candidate runs unless
        # it ignores what it is told; then the checks compute what they need elsewhere.
        started = time.perf_counter()
        prepare_reference(ctx, ctx.runtime.resolved(), progress)
        phases["reference"] = time.perf_counter() - started
    if loading is not None:
        loading.finish()
    raise_if_interrupted()
    if ctx.candidate is not None and any(c.needs_model for c in selected):
        started = time.perf_counter()
        prepare_exploration(ctx)  # its oracle takes the payload's shape from the signature
        phases["reference"] = phases.get("reference", 0.0) + time.perf_counter() - started
    started = time.perf_counter()
    restarts = 0
    for check in selected:
        raise_if_interrupted()
        if check.needs_model and getattr(ctx.candidate, "ended", None) is not None and restarts < _MAX_RESTARTS:
            # One hang or crash must not blank the rest of the report: a fresh worker.
            restarts += 1
            progress(f"restarting the candidate ({ctx.candidate.ended})")
            ctx.candidate = None
            start_candidate(cfg, snapshot, ctx, progress)
        result = run_check(check, ctx, cfg.check_timeout)
        ctx.results.append(result)
        record(result)
    phases["checks"] = time.perf_counter() - started


_MAX_RESTARTS = 3  # a candidate that hangs in every check costs at most this many loads


def _stop(ctx: GateContext) -> None:
    """The candidate first (it is killed, not asked), then the servers, all asked at once."""
    if (worker := ctx.worker) is not None:
        worker.stop()
    ctx.close()


def default_report_dir() -> Path:
    return report_folder("gate")
