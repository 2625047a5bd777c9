"""The pre-deploy gate: load a candidate as it would be deployed and run every check."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.bench.compare import Budget
from harness.gate.candidate import CandidateSpec, log_candidate
from harness.gate.checks import CHECKS, Check, GateContext, Outcome
from harness.store import StoreConfig
from harness._reporting import machine_info, utc_now
from harness.gate.report import CheckResult, GateReport, Status
from harness.gate.spy import GenerateSpy, find_tokenizer, find_transformers_model

DEFAULT_CHECK_TIMEOUT = 120.0
PROVIDERS = ("mlflow-model-serving", "columns")


@dataclass(frozen=True)
class GateConfig:
    candidate: CandidateSpec = field(default_factory=CandidateSpec)
    snapshot: Path | None = None  # None: the cached tiny snapshot, built if missing
    store: StoreConfig = field(default_factory=StoreConfig)
    check_timeout: float = DEFAULT_CHECK_TIMEOUT
    provider: str = "mlflow-model-serving"
    only: tuple[str, ...] = ()  # run just these check ids (plus load)
    route_file: Path | None = None  # the user's route (gateway YAML); default: the seed's route
    serve: bool = True  # start the real scoring server and gateway on loopback
    bench_report: Path | None = None
    budgets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.check_timeout, (int, float)) or not 0 < self.check_timeout <= 3600:
            raise ValueError(f"check_timeout={self.check_timeout!r} is invalid: allowed (0, 3600] seconds")
        if self.provider not in PROVIDERS:
            raise ValueError(f"provider={self.provider!r} is invalid: allowed {PROVIDERS}")
        for budget in self.budgets:
            Budget.parse(budget)  # a bad budget is a usage error, before anything runs
        if self.budgets and self.bench_report is None:
            raise ValueError("--budget needs --bench-report FILE")
        if unknown := sorted(set(self.only) - set(CHECKS)):
            raise ValueError(f"unknown check ids {unknown}: allowed {sorted(CHECKS)}")


def _explain_load_error(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, TypeError) and "item assignment" in str(error):
        return ("the wrapper sets config.attn_config['attn_impl'] by item assignment, which the "
                f"native transformers MPT config (an object, not a dict) rejects ({text})")
    lowered = text.lower()
    if "cuda" in lowered and any(s in lowered for s in ("not compiled", "no nvidia", "driver",
                                                        "no cuda", "not available")):
        return f"the wrapper moves the model to CUDA, but this machine has no GPU ({text})"
    return text[:500]


def load_candidate(cfg: GateConfig, snapshot: Path, progress: Callable[[str], None]) -> GateContext:
    """Log (file/reference) and load the candidate; a load failure becomes ctx.load_error."""
    import mlflow

    ctx = GateContext(snapshot=snapshot, provider=cfg.provider, tracking_uri=cfg.store.uri,
                      route_file=cfg.route_file, serve=cfg.serve,
                      options={"bench_report": cfg.bench_report, "budgets": cfg.budgets})
    progress(f"logging candidate {cfg.candidate.ref} into {cfg.store.uri}")
    with cfg.store.activated():
        model_uri = log_candidate(cfg.candidate, snapshot)
        ctx.model_uri = model_uri
        ctx.signature = mlflow.models.get_model_info(model_uri).signature
        progress(f"loading {model_uri}")
        outer_run = mlflow.active_run()
        try:
            ctx.model = mlflow.pyfunc.load_model(model_uri)
        except Exception as error:  # any failure of the candidate is a verdict, not a crash
            cause = error.__cause__ or error
            ctx.load_error = _explain_load_error(cause)
            ctx.options["load_traceback"] = traceback.format_exception(cause)[-3:]
            return ctx
        finally:
            while mlflow.active_run() is not None and mlflow.active_run() != outer_run:
                mlflow.end_run()  # runs a candidate started while loading
    python_model = ctx.model.unwrap_python_model()
    model = find_transformers_model(python_model)
    if model is None:
        ctx.load_error = "no transformers model found among the loaded candidate's attributes"
        ctx.model = None
        return ctx
    ctx.tokenizer = find_tokenizer(python_model) or _snapshot_tokenizer(snapshot)
    pad = ctx.tokenizer.pad_token_id if ctx.tokenizer.pad_token_id is not None \
        else ctx.tokenizer.eos_token_id
    ctx.spy = GenerateSpy(model, pad)
    return ctx


def _snapshot_tokenizer(snapshot: Path):
    from harness.model.loading import load_tokenizer

    return load_tokenizer(str(snapshot))


def run_check(check: Check, ctx: GateContext, timeout: float) -> CheckResult:
    """Run one check in a worker thread: exceptions become ``error``, hangs time out."""
    if check.needs_model and ctx.model is None:
        return CheckResult(check.id, Status.SKIPPED, "skipped: the candidate did not load")
    if check.needs_serving and not ctx.serve:
        return CheckResult(check.id, Status.SKIPPED, "skipped: --no-serve (servers not started)")
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["outcome"] = check.fn(ctx)
        except BaseException as error:  # noqa: BLE001 - a candidate's exception is a result
            box["error"] = error

    _seed_sampling()
    start = time.perf_counter()
    worker = threading.Thread(target=target, name=f"gate-{check.id}", daemon=True)
    worker.start()
    worker.join(timeout)
    duration = round(time.perf_counter() - start, 3)
    if worker.is_alive():
        return CheckResult(check.id, Status.ERROR, f"timed out after {timeout:g}s", {}, duration)
    if "error" in box:
        error = box["error"]
        return CheckResult(check.id, Status.ERROR, f"{type(error).__name__}: {error}"[:500],
                           {"traceback": traceback.format_exception(error)[-3:]}, duration)
    outcome: Outcome = box["outcome"]
    return CheckResult(check.id, outcome.status, outcome.message, outcome.evidence, duration)


def _seed_sampling(seed: int = 0) -> None:
    """Each check starts from the same RNG state, so a verdict on sampled answers does not
    depend on which checks (or tests) ran before it in this process."""
    import torch

    torch.manual_seed(seed)


def resolve_snapshot(snapshot: Path | None, progress: Callable[[str], None]) -> Path:
    from harness.model.snapshot import cached_tiny

    return Path(snapshot).absolute() if snapshot is not None else cached_tiny(progress=progress)


def run_gate(cfg: GateConfig, progress: Callable[[str], None] = lambda _: None,
             on_result: Callable[[CheckResult], None] = lambda _: None) -> GateReport:
    """Every registered check against the candidate; returns the report (not yet written)."""
    snapshot = resolve_snapshot(cfg.snapshot, progress)
    ctx = load_candidate(cfg, snapshot, progress)
    results = []
    try:
        for check in CHECKS.values():
            if cfg.only and check.id != "load" and check.id not in cfg.only:
                continue
            result = run_check(check, ctx, cfg.check_timeout)
            on_result(result)
            results.append(result)
            ctx.results.append(result)
    finally:
        ctx.close()
        if ctx.spy is not None:
            ctx.spy.remove()
    return GateReport(
        candidate=cfg.candidate.describe(ctx.model_uri),
        snapshot={"path": str(snapshot)},
        machine=machine_info(),
        checks=tuple(results),
        created_at=utc_now(),
    )


def default_report_dir() -> Path:
    return Path("reports") / "gate" / utc_now().replace(":", "")
