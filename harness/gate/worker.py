"""The candidate runs in its own process: logged, loaded and asked there, never in the gate.

A candidate is code run with the user's rights. In the worker it can exit, abort, hang or
spawn children without taking the gate down: the gate talks to it over a pipe, bounds
every exchange with a deadline, and on a timeout or at the end kills the worker's process
group and every process that carries the worker's tag in its environment (so children
that start their own session are found too).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psutil

from harness.gate.candidate import CandidateSpec
from harness.serving.logs import LogPump
from harness.serving.processes import disown, own, spawning

if TYPE_CHECKING:
    from harness.gate.spy import GenerateCall, Script

TAG_VAR = "HARNESS_GATE_WORKER"
_OPS = ("predict", "predict_many", "calls", "reset", "seed", "model_facts", "reload")


class WorkerError(BaseException):
    """The worker ended or timed out; the message says which, in the user's words.

    Not an ``Exception``: checks catch ``Exception`` for what the *candidate* raised, and a
    hang or a crash must not read as the candidate's answer (a FAIL) or be shrunk by
    hypothesis as if it were one; it reaches the runner, which reports ``error``."""


class WorkerTimeout(WorkerError):
    """The candidate did not answer in time; its worker has been killed."""


class CandidateRaised(Exception):
    """An exception the candidate raised in its process, as the gate sees it: its type,
    message, and for an ``MlflowException`` the error code and the HTTP status the scoring
    server answers it with (any other exception reaches a caller as a generic error)."""

    def __init__(self, type_name: str, message: str, error_code: str | None = None, http_status: int | None = None):
        super().__init__(f"{type_name}: {message}")
        self.type_name, self.message = type_name, message
        self.error_code, self.http_status = error_code, http_status


@dataclass(frozen=True)
class CandidateError:
    """What a caller learns from an exception the candidate raised, wherever it ran."""

    type_name: str
    message: str
    error_code: str | None = None  # an MlflowException's code, e.g. INVALID_PARAMETER_VALUE
    http_status: int | None = None  # the scoring server's status for it; None: not MLflow's

    @classmethod
    def of(cls, error: BaseException) -> CandidateError:
        if isinstance(error, CandidateRaised):
            return cls(error.type_name, error.message, error.error_code, error.http_status)
        return cls(type(error).__name__, str(getattr(error, "message", None) or error)[:2000], *_mlflow_facts(error))

    @property
    def documented(self) -> bool:
        """Rejected the documented way: an MlflowException the scoring server answers with a
        4xx status and the candidate's own message (INVALID_PARAMETER_VALUE is 400)."""
        return self.http_status is not None and 400 <= self.http_status < 500

    def describe(self) -> str:
        code = f" ({self.error_code})" if self.error_code else ""
        return f"{self.type_name}{code}: {self.message[:200]}"


def _mlflow_facts(error: BaseException) -> tuple[str | None, int | None]:
    """The error code and HTTP status of an ``MlflowException`` (duck-typed: the worker's
    side has MLflow loaded, the in-process probe may not need it)."""
    status = getattr(error, "get_http_status_code", None)
    if not callable(status):
        return None, None
    try:
        return getattr(error, "error_code", None), int(status())
    except Exception:  # noqa: BLE001 - a broken exception still is the candidate's answer
        return getattr(error, "error_code", None), None


@dataclass(frozen=True)
class WorkerSpec:
    candidate: CandidateSpec
    snapshot: Path
    store: Any  # harness.store.StoreConfig
    log_path: Path
    env: tuple[tuple[str, str], ...] = ()  # canary values for credential-looking variables
    # Given to mlflow.pyfunc.load_model: the device and dtype the gate was asked for.
    model_config: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Loaded:
    model_uri: str | None
    signature: Any
    load_error: str | None = None
    load_traceback: tuple[str, ...] = field(default_factory=tuple)


class Worker:
    """The gate's side: start, ask within the candidate's working time, stop (always).

    ``allowance`` (set per check by the runner) is the time the candidate may still spend
    answering: only the time between sending a request and its answer counts, never the
    gate's own work between requests (the reference, the search), so a slow oracle cannot
    make a correct candidate time out."""

    def __init__(
        self, spec: WorkerSpec, load_timeout: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.spec, self.load_timeout, self.clock = spec, load_timeout, clock
        self.tag = uuid.uuid4().hex
        self.allowance: float | None = None  # seconds of answering left in this check
        self.ended: str | None = None  # why the worker is gone, once it is
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self.log: LogPump | None = None
        # start() may run in another thread than stop(): a stop that comes first wins.
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> Loaded:
        """A fresh interpreter (not multiprocessing, which would re-run the caller's main
        module), in its own session, talking over a socket pair."""
        ours, theirs = socket.socketpair()
        env = {**os.environ, **dict(self.spec.env), TAG_VAR: self.tag}
        # Its output is redacted and size-capped like a server's; the canaries it was given
        # are watched for, so secrets.no_leak still sees a candidate that prints them.
        self.log = LogPump(self.spec.log_path, watch=[v for _, v in self.spec.env])
        with theirs, spawning(), self._lock:
            if self._stopped:
                self.log.abandon()
                raise WorkerError("the worker was stopped before it started")
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "harness.gate.worker", str(theirs.fileno())],
                    pass_fds=[theirs.fileno()],
                    start_new_session=True,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=self.log.child_fd,
                    stderr=subprocess.STDOUT,
                )
            except BaseException:
                self.log.abandon()
                raise
            own(self)
        self.log.started()
        self._conn = Connection(ours.detach())
        self._conn.send(self.spec)
        return self._receive(self.load_timeout, "loading the candidate")

    def call(self, op: str, *args: Any) -> Any:
        if self.ended is not None:
            raise WorkerError(self.ended)
        timeout = 600.0 if self.allowance is None else max(0.0, self.allowance)
        started = self.clock()
        try:
            self._pipe.send((op, args))
        except (OSError, ValueError):
            raise WorkerError(self._gone(f"{op}")) from None
        try:
            kind, *payload = self._receive(timeout, f"answering {op}")
        finally:
            if self.allowance is not None:
                self.allowance -= self.clock() - started
        if kind == "raised":
            raise CandidateRaised(*payload)
        return payload[0]

    # The Probe interface, so checks do not care where the candidate runs.
    def predict(self, payload: dict[str, Any]) -> Any:
        return self.call("predict", payload)

    def predict_many(self, payloads: list[dict[str, Any]], threads: int) -> list[tuple[str, Any]]:
        return self.call("predict_many", payloads, threads)

    def calls(self) -> list[GenerateCall]:
        return self.call("calls")

    def reset(self, script: Script | None = None) -> None:
        self.call("reset", script)

    def seed(self, value: int) -> None:
        self.call("seed", value)

    def model_facts(self) -> dict[str, Any]:
        return self.call("model_facts")

    def reload(self) -> bool:
        return self.call("reload")

    def stray_processes(self) -> list[dict[str, Any]]:
        """Processes the candidate started (its worker aside), and the ports they listen on."""
        found = []
        for proc in processes_with_env(TAG_VAR, self.tag):
            if proc.pid == self._popen.pid:
                continue
            try:
                ports = sorted(
                    c.laddr.port for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
                )
                found.append({"pid": proc.pid, "name": proc.name(), "listening": ports})
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def _receive(self, timeout: float, doing: str) -> Any:
        if not self._pipe.poll(timeout):
            self.ended = f"the candidate hung: no answer within {timeout:.3g}s of its working time while {doing}"
            self.stop()
            raise WorkerTimeout(self.ended)
        try:
            message = self._pipe.recv()
        except (EOFError, OSError):
            raise WorkerError(self._gone(doing)) from None
        return message[1] if message[0] == "loaded" else message

    @property
    def _popen(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the worker has not been started")
        return self._process

    @property
    def _pipe(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("the worker has not been started")
        return self._conn

    def _gone(self, doing: str) -> str:
        try:
            code = self._popen.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        how = (
            f"was killed by {signal.Signals(-code).name}"
            if code is not None and code < 0
            else f"exited with code {code}"
        )
        self.ended = f"the candidate's process {how} while {doing}"
        self.stop()
        return self.ended

    def terminate(self) -> None:
        """Kill the worker's group now (the candidate holds nothing worth a grace period)."""
        if self._process is not None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self) -> None:
        """Kill the worker's group and every tagged process; idempotent."""
        with self._lock:
            self._stopped = True
        if self._process is None:
            return
        victims = processes_with_env(TAG_VAR, self.tag)
        try:
            root = psutil.Process(self._process.pid)
            victims |= {root, *root.children(recursive=True)}
        except psutil.NoSuchProcess:
            pass
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for proc in victims:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(victims, timeout=5)
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass  # unkillable (a zombie's parent is us, so wait reaps it; this is a D state)
        if self._conn is not None:  # None when starting failed before the pipe was made
            self._conn.close()
        if self.log is not None:
            self.log.join(timeout=1.0)
        disown(self)
        self.ended = self.ended or "the worker was stopped"

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def processes_with_env(name: str, value: str) -> set[psutil.Process]:
    """Live processes whose environment has ``name=value``: everything started under a tag,
    even children that left the process group or were re-parented."""
    found = set()
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(name) == value and proc.status() != psutil.STATUS_ZOMBIE:
                found.add(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _explain_load_error(error: BaseException) -> str:
    """A load failure in a user's words where the cause is a known published defect."""
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, TypeError) and "item assignment" in str(error):
        return (
            "the wrapper sets config.attn_config['attn_impl'] by item assignment, which the "
            f"native transformers MPT config (an object, not a dict) rejects ({text})"
        )
    lowered = text.lower()
    if "cuda" in lowered and any(
        s in lowered for s in ("not compiled", "no nvidia", "driver", "no cuda", "not available")
    ):
        return f"the wrapper moves the model to CUDA, but this machine has no GPU ({text})"
    return text[:500]


# --- the worker's side ----------------------------------------------------------------


def _child_main(fd: int) -> None:
    conn = Connection(fd)
    spec = conn.recv()
    loaded, probe = _load(spec)
    conn.send(("loaded", loaded))
    if probe is None:
        return
    while True:
        try:
            op, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if op not in _OPS:
                raise ValueError(f"unknown request {op!r}")
            conn.send(("ok", getattr(probe, op)(*args)))
        except BaseException as error:  # noqa: BLE001 - SystemExit in predict is a verdict too
            facts = CandidateError.of(error)
            conn.send(("raised", facts.type_name, facts.message, facts.error_code, facts.http_status))


def _load(spec: WorkerSpec) -> tuple[Loaded, Any]:
    import mlflow
    from transformers.generation.utils import GenerationMixin

    from harness.gate.candidate import log_candidate
    from harness.gate.probe import Probe
    from harness.gate.spy import GenerateSpy
    from harness.model.loading import load_tokenizer, snapshot_end_ids

    tokenizer = load_tokenizer(str(spec.snapshot))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    spy = GenerateSpy(
        GenerationMixin,
        pad,
        decode=lambda ids: tokenizer.decode(ids),
        eos_token_id=snapshot_end_ids(str(spec.snapshot), tokenizer),
    )
    model_uri = signature = None
    try:
        with spec.store.activated():
            model_uri = log_candidate(spec.candidate, spec.snapshot, dict(spec.model_config) or None)
            signature = mlflow.models.get_model_info(model_uri).signature
            model = mlflow.pyfunc.load_model(model_uri, model_config=dict(spec.model_config) or None)
    except BaseException as error:  # noqa: BLE001 - any failure to load is the `load` verdict
        cause = error.__cause__ or error
        return Loaded(
            model_uri, signature, _explain_load_error(cause), tuple(traceback.format_exception(cause)[-3:])
        ), None
    return Loaded(model_uri, signature), Probe(model, signature, spy, reload=lambda: _reload(spec, model_uri))


def _reload(spec: WorkerSpec, model_uri: str) -> Any:
    import mlflow

    with spec.store.activated():
        return mlflow.pyfunc.load_model(model_uri, model_config=dict(spec.model_config) or None)


if __name__ == "__main__":
    # Through the package, so what this process pickles names harness.gate.worker, not __main__.
    from harness.gate.worker import _child_main as main

    main(int(sys.argv[1]))
