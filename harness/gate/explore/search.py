"""Running a search with hypothesis: a fixed seed, a bounded number of examples, failures
kept in an example database and replayed first, and the minimal failing example captured.

Hypothesis replays the shrunk example last, so the :class:`Mismatch` it raises carries the
smallest request (or request sequence) that still fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from hypothesis import HealthCheck, configuration, Phase, Verbosity, given, seed, settings
from hypothesis import strategies as st
from hypothesis.control import current_build_context
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from harness._validation import IntIn, Number
from harness._validation import settings as checked_settings  # hypothesis has a `settings` too
from harness.gate.explore.requests import Step

DEFAULT_SEED = 0
DEFAULT_EXAMPLES = 100
DEFAULT_SEQUENCES = 10
DEFAULT_SHRINK_REQUESTS = 200  # requests shrinking one failure may send
DEFAULT_REPLAYS = 12  # fresh replays that pin down which earlier requests a failure needs
DEFAULT_SAFETY_S = 600.0


@checked_settings(label="explore ")
class ExploreConfig:
    """``examples`` single requests and ``sequences`` request sequences (up to ``steps``
    requests each) per run; ``--explore N`` scales both. Every size is a count, so the
    verdict does not depend on the machine's speed: ``shrink_requests`` bounds the requests
    shrinking a failure may send, ``replays`` the fresh replays that pin down a reproducer.
    ``database``: where failing examples are kept (None: not kept). ``safety_s`` is only a
    safety net: a search still running after it is ERROR ("no verdict"), never PASS."""

    seed: Annotated[int, IntIn(0, 2**32 - 1, f"an integer in [0, {2**32 - 1}]")] = DEFAULT_SEED
    examples: Annotated[int, IntIn(1, 100_000, "an integer in [1, 100000]")] = DEFAULT_EXAMPLES
    sequences: Annotated[int, IntIn(1, 100_000, "an integer in [1, 100000]")] = DEFAULT_SEQUENCES
    steps: Annotated[int, IntIn(1, 50, "an integer in [1, 50]")] = 5
    database: Path | None = None
    shrink_requests: Annotated[int, IntIn(0, 1_000_000, "an integer in [0, 1000000]")] = DEFAULT_SHRINK_REQUESTS
    replays: Annotated[int, IntIn(1, 1000, "an integer in [1, 1000]")] = DEFAULT_REPLAYS
    safety_s: Annotated[float, Number(0.0, 86400.0)] = DEFAULT_SAFETY_S

    @classmethod
    def scaled(cls, examples: int, **kw: Any) -> ExploreConfig:
        """``--explore N``: N single requests and N/4 sequences (at least one)."""
        return cls(examples=examples, sequences=max(1, examples // 4), **kw)


@dataclass(frozen=True)
class Finding:
    """The smallest failing request or sequence, with what each side gave at each step."""

    message: str
    steps: tuple[Step, ...]
    flaky: bool = False  # failed once, then passed on replay: the candidate is not deterministic
    # Replayed on a freshly loaded candidate: True (it fails there too), False (it did not,
    # within the time allowed), None (not replayed: the candidate cannot be loaded again).
    fresh: bool | None = None


class Mismatch(AssertionError):
    def __init__(self, finding: Finding):
        super().__init__(finding.message)
        self.finding = finding


@dataclass
class SearchResult:
    """What a search found (the session counts what it sent), and how many examples came
    from the example database rather than from this run's draws."""

    finding: Finding | None = None
    replayed: int = 0


def _settings(cfg: ExploreConfig, examples: int, database: _RecordedDatabase | None) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=database,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
        stateful_step_count=cfg.steps,
        verbosity=Verbosity.quiet,
        print_blob=False,
    )


class SearchLimits:
    """What one search may send, in counts; the clock is only a safety net.

    Drawing stops at the configured number of examples (hypothesis' ``max_examples``). Once a
    failure is found, shrinking may send ``shrink_requests`` more requests; past that, and
    past the safety net, non-final runs pass untested (the final replay always runs), so
    hypothesis reports the smallest failure found so far. Counts make the same seed give the
    same requests on any machine; only the safety net reads the clock (injectable), and a
    search it cut is "no verdict"."""

    def __init__(self, shrink_requests: int, safety_s: float, clock: Callable[[], float] = time.monotonic):
        self.shrink_requests, self.safety_s, self.clock = shrink_requests, safety_s, clock
        self.started = clock()
        self.failed = False  # a failure was found: what is sent now is shrinking it
        self.shrinking = 0  # requests sent since then
        self.shrink_cut = False  # shrinking reached its count: the report says so
        self.out_of_time = False  # the safety net was hit: no verdict

    def skip(self) -> bool:
        """Whether the next request is not sent (its run passes untested)."""
        if _final_run():
            return False
        if self.clock() - self.started > self.safety_s:
            self.out_of_time = True
            return True
        if self.failed and self.shrinking >= self.shrink_requests:
            self.shrink_cut = True
            return True
        return False

    def sent(self) -> None:
        self.shrinking += self.failed


def _final_run() -> bool:
    """Hypothesis' final replay of the failure it reports (True outside a search too: a
    fixed case is always sent)."""
    try:
        return bool(current_build_context().is_final)
    except InvalidArgument:  # no build context: not inside a search
        return True


class _RecordedDatabase(DirectoryBasedExampleDatabase):
    """The example database, counting what it hands back: examples replayed from an earlier
    run are marked in the report."""

    def __init__(self, path: str):
        super().__init__(path)
        self.replayed = 0

    def fetch(self, key: bytes) -> Iterable[bytes]:
        for value in super().fetch(key):
            self.replayed += 1
            yield value


@contextmanager
def hypothesis_home(path: Path) -> Iterator[None]:
    """Hypothesis' own storage (its unicode tables, constants) under ``path`` while a gate
    runs, never the user's current directory; the previous setting is restored after."""
    before = getattr(configuration, "__hypothesis_home_directory", None)
    configuration.set_hypothesis_home_dir(path)
    try:
        yield
    finally:
        configuration.set_hypothesis_home_dir(before)


def _outcome(run: Callable[[], None], result: SearchResult) -> SearchResult:
    try:
        run()
    except Mismatch as mismatch:
        result.finding = mismatch.finding
    except BaseExceptionGroup as group:  # hypothesis' FlakyFailure: failed, then passed
        found = [e for e in group.exceptions if isinstance(e, Mismatch)]
        if not found:
            raise
        result.finding = Finding(found[0].finding.message, found[0].finding.steps, flaky=True)
    return result


def search(body: Callable[[Any], None], cfg: ExploreConfig, key: str) -> SearchResult:
    """Run ``body(data)`` (``data`` is hypothesis' ``st.data()``; the body raises
    :class:`Mismatch`) on ``cfg.examples`` examples; ``key`` separates candidates and
    checks in the example database."""
    result, database = SearchResult(), _database(cfg)
    wrapped = given(st.data())(body)
    wrapped.hypothesis.inner_test._hypothesis_internal_add_digest = key.encode()  # type: ignore[attr-defined]
    # Settings after the seed: hypothesis' @seed turns the example database off.
    run = _settings(cfg, cfg.examples, database)(seed(cfg.seed)(wrapped))
    return _replayed(_outcome(run, result), database)


def search_sequences(machine: type[RuleBasedStateMachine], cfg: ExploreConfig, key: str) -> SearchResult:
    """Run the state machine ``cfg.sequences`` times (up to ``cfg.steps`` rules each)."""
    machine._hypothesis_internal_add_digest = key.encode()
    seeded = seed(cfg.seed)(machine)
    result, database = SearchResult(), _database(cfg)
    run = lambda: run_state_machine_as_test(seeded, settings=_settings(cfg, cfg.sequences, database))  # noqa: E731
    return _replayed(_outcome(run, result), database)


def _database(cfg: ExploreConfig) -> _RecordedDatabase | None:
    return _RecordedDatabase(str(cfg.database)) if cfg.database is not None else None


def _replayed(result: SearchResult, database: _RecordedDatabase | None) -> SearchResult:
    result.replayed = database.replayed if database is not None else 0
    return result


__all__ = [
    "SearchLimits",
    "hypothesis_home",
    "DEFAULT_EXAMPLES",
    "DEFAULT_SEED",
    "DEFAULT_SEQUENCES",
    "ExploreConfig",
    "Finding",
    "Mismatch",
    "SearchResult",
    "search",
    "search_sequences",
]
