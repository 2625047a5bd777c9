"""The check registry, the context checks see, and how a check talks to a candidate."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
import threading
import time
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any


from harness.gate.checks.outputs import answers, completion_text
from harness.model.formats import PromptFormat
from harness.model.loading import config_context_length
from harness.gate.report import Status
from harness.model.signature import gateway_payload
from harness.gate.explore.requests import Observed
from harness.gate.explore.search import ExploreConfig
from harness.gate.reference import ReferenceAnswers, ReferencePool, Runtime, TraceStore, cache_key
from harness.gate.tolerance import Rule
from harness.gate.spy import GenerateCall, Script
from harness.gate.worker import CandidateError

if TYPE_CHECKING:
    from harness.model.generation import Generator


@dataclass(frozen=True)
class Outcome:
    status: Status
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


def passed(message: str, **evidence: Any) -> Outcome:
    return Outcome(Status.PASS, message, evidence)


def failed(message: str, **evidence: Any) -> Outcome:
    return Outcome(Status.FAIL, message, evidence)


def no_verdict(message: str, **evidence: Any) -> Outcome:
    """ERROR: the check could not reach a verdict (it ran out of time, say); never a PASS."""
    return Outcome(Status.ERROR, message, evidence)


def skipped(message: str, **evidence: Any) -> Outcome:
    return Outcome(Status.SKIPPED, message, evidence)


@dataclass(frozen=True)
class Row:
    """One row a check sends. Sampling by default: only params.temperature_zero sends 0, so
    a wrapper that crashes at temperature 0 fails that check alone."""

    instruction: str
    temperature: float = 1.0
    max_tokens: int = 8
    stop: tuple[str, ...] = ()

    @property
    def settings(self) -> tuple:
        return (self.temperature, self.max_tokens, self.stop)


@dataclass
class GateContext:
    """What every check can use: the candidate (a worker process, or a Probe in tests), the
    gate's own tokenizer for the snapshot, and the reference on the same weights."""

    candidate: Any = None  # Worker or Probe: predict / calls / reset / seed / model_facts
    tokenizer: Any = None
    snapshot: Path | None = None
    provider: str = "mlflow-model-serving"
    load_error: str | None = None
    # Read from the logged model's metadata, so signature checks run even when loading fails.
    signature: Any = None
    model_uri: str | None = None
    tracking_uri: str | None = None
    route_file: Path | None = None
    route: Any = None  # the --route file's first endpoint, parsed once (None: the seed's route)
    route_error: str | None = None  # why the --route file does not parse
    serve: bool = True
    candidate_kind: str = "file"  # reference, file or uri (CandidateKind's values)
    log_dir: Path | None = None  # this run's logs: the candidate's and the servers'
    bench_report: Path | None = None  # for bench.budget
    budgets: tuple[str, ...] = ()
    # The candidate's workers: the current one (set before it starts, so an interrupt while
    # loading stops it), earlier ones a hang or crash replaced, and each start's log.
    worker: Any = None
    earlier_workers: list[Any] = field(default_factory=list)
    candidate_logs: list[Path] = field(default_factory=list)
    load_traceback: list[str] = field(default_factory=list)
    # Servers by role ("scoring_server", "gateway"): the started process, or why it failed.
    started: dict[str, Any] = field(default_factory=dict)
    server_starts: threading.Thread | None = None  # prestart's background thread
    # Answers given so far per instruction and settings: a wrong answer that was given
    # earlier to other settings is named as a cache by prompt.
    answers_by_instruction: dict[str, dict[tuple, str]] = field(default_factory=dict)
    explore_state: tuple[Any, Any, tuple[str, ...]] | None = None  # oracle, limits, pool
    results: list[Any] = field(default_factory=list)  # CheckResults so far, for secrets.no_leak
    servers: list[Any] = field(default_factory=list)  # ServerProcesses checks started
    canaries: dict[str, str] = field(default_factory=dict)  # variable -> canary value
    answers_seen: list[str] = field(default_factory=list)  # every answer, for secrets.no_leak
    explore: ExploreConfig = field(default_factory=ExploreConfig)  # seed and size of explore.*
    candidate_key: str = ""  # separates candidates in hypothesis' example database
    # Every body sent to the candidate, in order: a failure that needs state an earlier
    # request left behind is replayed with the fewest of them (explore.*'s reproducers).
    sent: list[dict[str, Any]] = field(default_factory=list)
    runtime: Runtime = field(default_factory=Runtime)  # the device and dtype asked for
    # How the reference (and so every candidate judged by it) turns instructions into prompts.
    prompt_format: PromptFormat = field(default_factory=PromptFormat)
    reference_cache: Path | None = None  # where reference traces are kept across runs
    # The reference's models and their traces in memory (a test session shares one).
    references: ReferencePool = field(default_factory=ReferencePool)
    _answers: dict[Runtime, ReferenceAnswers] = field(default_factory=dict)
    _observed: Runtime | None = None
    _temperature_zero_error: tuple[str | None] | None = None  # (the error or None), once asked
    _context_length: int | None = None
    closing: threading.Event = field(default_factory=threading.Event)
    # The gate's clock (injectable): only safety nets read it, so no verdict depends on it.
    clock: Callable[[], float] = time.monotonic
    # Why loading gave no verdict (the worker hung or died), as opposed to the candidate
    # raising while it loaded, which is the candidate's verdict.
    load_no_verdict: bool = False
    reload_timeout: float = 300.0  # seconds a fresh load before a check may take
    sampled: dict[float, dict[str, list[str]]] = field(default_factory=dict)  # first tokens drawn, per temperature

    def close(self) -> None:
        """Stop the servers checks started: all are asked at once, then each is waited for,
        so their grace periods overlap. A start still under way in the background is
        stopped too: nothing new starts once closing is set, and what it spawned is in
        ``servers`` before it starts, so a second pass stops it."""
        self.closing.set()
        for _ in range(2):
            for server in list(self.servers):
                server.terminate()
            while self.servers:
                self.servers.pop().stop()
            if (starting := self.server_starts) is not None:
                starting.join(timeout=10)

    @property
    def uses_params(self) -> bool:
        """Whether the candidate takes settings as params (gateway style) or as columns."""
        sig = self.signature
        return bool(
            sig is not None
            and sig.params is not None
            and {"temperature", "max_tokens"} <= {p.name for p in sig.params.params}
        )

    @property
    def uses_messages(self) -> bool:
        """A chat-task signature (MLflow's transformers flavour, ``llm/v1/chat``): a
        ``messages`` input and no ``prompt``; each row is sent as one user message."""
        inputs = getattr(self.signature, "inputs", None)
        names = inputs.input_names() if inputs is not None and inputs.has_input_names() else []
        return "messages" in names and "prompt" not in names

    @property
    def accepts_stop(self) -> bool:
        """A ``stop`` param (gateway style) or a ``stop`` column (the transformers flavour's
        llm/v1/completions signature)."""
        sig = self.signature
        if self.uses_params:
            return "stop" in {p.name for p in sig.params.params}
        return self._stop_column

    @property
    def _stop_column(self) -> bool:
        inputs = getattr(self.signature, "inputs", None)
        return bool(inputs is not None and inputs.has_input_names() and "stop" in inputs.input_names())

    def candidate_runtime(self) -> Runtime | None:
        """The device and dtype the candidate's model ran on (None before it generated, or
        when it is not one the reference can run in)."""
        if self._observed is None and self.candidate is not None:
            self._observed = Runtime.observed(self.candidate.model_facts())
        return self._observed

    def judged_runtime(self) -> Runtime:
        """Where the reference runs: on the candidate's device and dtype once they are
        known, else as asked."""
        return self.candidate_runtime() or self.runtime.resolved()

    @property
    def reference(self) -> Generator:
        """Our Generator on the snapshot, on the judged device and dtype."""
        generator: Generator = self.references.generator(self._snapshot(), self.judged_runtime(), self.prompt_format)
        return generator

    @property
    def reference_answers(self) -> ReferenceAnswers:
        """The oracle's answers on the judged runtime, with the rule that runtime calls for
        (exact on float32 on a CPU, top-k tolerant elsewhere), kept on disk when the gate
        has a cache folder."""
        return self.answers_on(self.judged_runtime())

    def answers_on(self, runtime: Runtime) -> ReferenceAnswers:
        """The oracle's answers on ``runtime``, whatever the candidate's turns out to be."""
        if runtime not in self._answers:
            from harness.gate.probe import weights_fingerprint

            snapshot, store = self._snapshot(), None
            reference = self.references.generator(snapshot, runtime, self.prompt_format)
            rule = Rule.for_runtime(runtime.device, runtime.dtype)
            fingerprint = self.references.kept(
                snapshot, runtime, "fingerprint", lambda: weights_fingerprint(reference.model), self.prompt_format
            )
            if self.reference_cache is not None:
                key = cache_key(fingerprint, snapshot, runtime, rule, self.prompt_format)
                store = TraceStore(Path(self.reference_cache) / f"{key}.sqlite")
            memory = self.references.memory(snapshot, runtime, self.prompt_format)
            self._answers[runtime] = ReferenceAnswers(reference, rule, store, fingerprint, memory)
        return self._answers[runtime]

    def reference_kept(self, name: str, make: Callable[[], Any]) -> Any:
        """What is computed from the reference alone on the judged runtime (its sampling
        oracle, say), made once per pool: the same for every gate that shares it."""
        return self.references.kept(self._snapshot(), self.judged_runtime(), name, make, self.prompt_format)

    def _snapshot(self) -> Path:
        if self.snapshot is None:
            raise ValueError("the reference needs the snapshot's folder (GateContext.snapshot)")
        return self.snapshot

    def reference_used(self) -> tuple[Runtime, ReferenceAnswers] | None:
        """The runtime the reference last judged on, with its answers; None if it never ran."""
        return next(reversed(self._answers.items()), None)

    @property
    def context_length(self) -> int:
        """From the snapshot's config: no model is loaded for it."""
        if self._context_length is None:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(str(self.snapshot))
            self._context_length = config_context_length(config, self.tokenizer)
        return self._context_length

    def payload(self, rows: Sequence[Row]) -> dict[str, Any]:
        """The JSON body the route's provider (or a columns client) sends for these rows."""
        prompts = [r.instruction for r in rows]
        if self.uses_params:
            first = rows[0]
            if any(r.settings != first.settings for r in rows):
                raise ValueError("params-style candidates take one setting per request")
            extra = {"stop": list(first.stop)} if first.stop else {}
            return gateway_payload(prompts, temperature=first.temperature, max_tokens=first.max_tokens, **extra)
        text = "messages" if self.uses_messages else "prompt"
        return {
            "dataframe_records": [
                {
                    text: [{"role": "user", "content": r.instruction}] if self.uses_messages else r.instruction,
                    "temperature": r.temperature,
                    "max_tokens": r.max_tokens,
                    **({"stop": list(r.stop)} if r.stop and self._stop_column else {}),
                }
                for r in rows
            ]
        }

    def send(self, rows: Sequence[Row]) -> Any:
        """Predict as the scoring server would: JSON payload -> MLflow parsing -> predict."""
        return self.send_body(self.payload(rows))

    def send_body(self, body: dict[str, Any]) -> Any:
        """Predict this JSON body exactly as given (a reproducer replays the same body)."""
        self.sent.append(body)
        raw = self.candidate.predict(body)
        self.answers_seen.extend(a for a in answers(raw) if isinstance(a, str))
        return raw

    def observe(self, body: dict[str, Any]) -> Observed:
        """This body's outcome as a caller sees it, from the same RNG state every time (so
        verdicts repeat): the answers, or the error the candidate raised."""
        self.candidate.seed(0)
        try:
            raw = self.send_body(body)
        except Exception as error:  # noqa: BLE001 - the candidate's error is its answer
            return Observed(error=CandidateError.of(error))
        return Observed(answers=tuple(answers(raw)))

    def send_many(self, bodies: Sequence[dict[str, Any]], threads: int) -> list[tuple[str, Any]]:
        """Predict these bodies from ``threads`` threads in the candidate's process at once
        (as the scoring server's pool does): per body ("ok", raw answer) or ("raised", error)."""
        self.sent.extend(bodies)
        outcomes = list(self.candidate.predict_many(list(bodies), threads))
        for kind, raw in outcomes:
            if kind == "ok":
                self.answers_seen.extend(a for a in answers(raw) if isinstance(a, str))
        return outcomes

    def temperature_zero_error(self) -> str | None:
        """Why a row at temperature 0 raises in this candidate when the same row sampled does
        not (cached); None when temperature 0 works or nothing works. Checks that judge at
        temperature 0 and meet this error have nothing to judge: params.temperature_zero
        fails for it."""
        if self._temperature_zero_error is None:
            found = None
            try:
                self.send([Row("Hi.", 0.0, 2)])
            except Exception as error:  # noqa: BLE001 - the candidate's error is the answer
                if self._samples():
                    found = f"{type(error).__name__}: {error}"
            self._temperature_zero_error = (found,)
        return self._temperature_zero_error[0]

    def _samples(self) -> bool:
        """Whether a sampled row gets an answer (else nothing is temperature 0's fault)."""
        try:
            self.send([Row("Hi.", 1.0, 2)])
        except Exception:  # noqa: BLE001 - failing at any temperature is the answer here
            return False
        return True

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def prompt_ids(self, instruction: str) -> list[int]:
        """The exact ids the format gives ``generate`` for ``instruction`` (no model needed)."""
        return self.prompt_format.encode(instruction, self.tokenizer)

    def calls(self) -> list[GenerateCall]:
        return list(self.candidate.calls())

    def reset(self, script: Script | None = None) -> None:
        self.candidate.reset(script)


CheckFn = Callable[[GateContext], Outcome]

# ``after`` may name this instead of ids: the check runs after every other check.
EVERY_OTHER = "*"


@dataclass(frozen=True)
class Check:
    """One check: its id, what it judges, and what it needs. Calling it judges ``ctx``."""

    id: str
    fn: CheckFn
    summary: str
    needs_model: bool = True
    needs_serving: bool = False
    # False: judged without the candidate's worker (the route file, a bench report, the
    # gate's own outputs); the worker starts only when some selected check needs it.
    needs_candidate: bool = True
    # Checks whose outputs this one reads, so it must run after them (EVERY_OTHER: all).
    after: tuple[str, ...] = ()

    def __call__(self, ctx: GateContext) -> Outcome:
        return self.fn(ctx)


def check(
    check_id: str,
    summary: str,
    needs_model: bool = True,
    needs_serving: bool = False,
    needs_candidate: bool = True,
    after: tuple[str, ...] = (),
) -> Callable[[CheckFn], Check]:
    """Decorator: make a :class:`Check` of a function. It is not registered by this: the
    gate's registry is the explicit list in :mod:`harness.gate.checks`."""

    def decorate(fn: CheckFn) -> Check:
        return Check(check_id, fn, summary, needs_model, needs_serving, needs_candidate, tuple(after))

    return decorate


def registry(*checks: Check) -> Mapping[str, Check]:
    """The checks in the order given, read-only. Ids are unique, and every check comes
    after the checks it declares in ``after`` (a check after EVERY_OTHER comes last), so
    the order is a declared fact, checked here, not an accident of imports."""
    found: dict[str, Check] = {}
    for item in checks:
        if item.id in found:
            raise ValueError(f"check id {item.id!r} is listed twice")
        if unknown := [a for a in item.after if a != EVERY_OTHER and a not in found]:
            raise ValueError(f"{item.id!r} must come after {unknown}, which are not listed before it")
        found[item.id] = item
    for position, item in enumerate(checks):
        if EVERY_OTHER in item.after and position != len(checks) - 1:
            raise ValueError(f"{item.id!r} runs after every other check, so it must be listed last")
    return MappingProxyType(found)


__all__ = [
    "Check",
    "EVERY_OTHER",
    "GateContext",
    "Outcome",
    "Row",
    "answers",
    "completion_text",
    "failed",
    "no_verdict",
    "passed",
    "check",
    "registry",
    "skipped",
]
