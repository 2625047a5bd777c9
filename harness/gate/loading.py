"""Starting the candidate's worker: in a thread beside the reference's phase, then its
servers; and again after a hang or a crash."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.gate.checks import GateContext
from harness.gate.worker import Worker, WorkerError, WorkerSpec

if TYPE_CHECKING:
    from harness.gate.runner import GateConfig


def start_candidate(cfg: GateConfig, snapshot: Path, ctx: GateContext, progress: Callable[[str], None]) -> Worker:
    """Start a worker, log and load the candidate in it, and put what came of it on ``ctx``
    (the worker, or why it did not load: ``error`` for a hang or a crash, ``fail`` for the
    candidate's own exception)."""
    if ctx.log_dir is None:
        ctx.log_dir = cfg.store.log_dir("gate")  # this run's logs, under the home a user finds again
    starts = ctx.candidate_logs
    log_path = ctx.log_dir / f"candidate{'' if not starts else f'-{len(starts) + 1}'}.log"
    starts.append(log_path)
    worker = Worker(
        WorkerSpec(
            cfg.candidate,
            snapshot,
            cfg.store,
            log_path,
            env=tuple(ctx.canaries.items()),
            model_config=cfg.model_config(),
        ),
        cfg.load_timeout,
        clock=ctx.clock,
    )
    if (earlier := ctx.worker) is not None:
        ctx.earlier_workers.append(earlier)
    ctx.worker = worker  # before it starts: an interrupt while loading must stop it
    progress(f"loading candidate {cfg.candidate.ref} in its own process (log: {log_path})")
    try:
        loaded = worker.start()
    except WorkerError as error:
        ctx.load_error, ctx.load_no_verdict = str(error), True  # it hung or died: no verdict
        return worker
    ctx.model_uri, ctx.signature = loaded.model_uri, loaded.signature
    if loaded.load_error is not None:
        ctx.load_error = loaded.load_error
        ctx.load_traceback = list(loaded.load_traceback)
    else:
        ctx.candidate = worker
    return worker


def load_in_background(
    cfg: GateConfig,
    snapshot: Path,
    ctx: GateContext,
    progress: Callable[[str], None],
    phases: dict[str, float],
    serve: bool,
) -> Loading:
    """Start the candidate's worker and wait for its load in a thread, then start the servers
    (they need the logged model): the gate's main thread prepares the reference meanwhile.
    The main thread touches the worker only after joining this thread."""

    def load() -> None:
        started = time.perf_counter()
        try:
            start_candidate(cfg, snapshot, ctx, progress)
            if serve and ctx.candidate is not None:
                from harness.gate.checks.serving import prestart

                prestart(ctx)  # the servers start while the checks that need neither run
        except BaseException as error:  # noqa: BLE001 - raised again in the main thread
            thread.error = error
        finally:
            phases["load"] = time.perf_counter() - started

    thread = Loading(target=load, name="harness-candidate-load", daemon=True)
    thread.start()
    return thread


class Loading(threading.Thread):
    error: BaseException | None = None  # what the load raised, for the main thread after join

    def finish(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


__all__ = ["Loading", "load_in_background", "start_candidate"]
