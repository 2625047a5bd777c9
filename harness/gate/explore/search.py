"""Running a search with hypothesis: a fixed seed, a bounded number of examples, failures
kept in an example database and replayed first, and the minimal failing example captured.

Hypothesis replays the shrunk example last, so the :class:`Mismatch` it raises carries the
smallest request (or request sequence) that still fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis import strategies as st
from hypothesis.control import current_build_context
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from harness._validation import IntIn, Number
from harness._validation import settings as checked_settings  # hypothesis has a `settings` too
from harness.gate.explore.requests import Step

DEFAULT_SEED = 0
DEFAULT_EXAMPLES = 100
DEFAULT_SEQUENCES = 10


@checked_settings(label="explore ")
class ExploreConfig:
    """``examples`` single requests and ``sequences`` request sequences (up to ``steps``
    requests each) per run; ``--explore N`` scales both. ``database``: where failing
    examples are kept (None: not kept). ``budget_s``: time one search may take; past it,
    the failure found so far (or the examples judged so far) is the result."""

    seed: Annotated[int, IntIn(0, 2**32 - 1, f"an integer in [0, {2**32 - 1}]")] = DEFAULT_SEED
    examples: Annotated[int, IntIn(1, 100_000, "an integer in [1, 100000]")] = DEFAULT_EXAMPLES
    sequences: Annotated[int, IntIn(1, 100_000, "an integer in [1, 100000]")] = DEFAULT_SEQUENCES
    steps: Annotated[int, IntIn(1, 50, "an integer in [1, 50]")] = 5
    database: Path | None = None
    budget_s: Annotated[float, Number(0.0, 86400.0)] = 60.0

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
    """What a search found (the session counts what it sent)."""

    finding: Finding | None = None


def _settings(cfg: ExploreConfig, examples: int) -> settings:
    database = DirectoryBasedExampleDatabase(str(cfg.database)) if cfg.database is not None else None
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


class Budget:
    """Time for one search: drawing new examples stops at half of it, so a failure found
    late still has time to shrink; past all of it the smallest failure found so far is what
    hypothesis reports. Past a limit, non-final runs pass untested (the final replay always
    runs), drawing as before: what a test draws must not depend on the clock, or hypothesis
    calls it flaky."""

    def __init__(self, seconds: float):
        self.seconds, self.started = seconds, time.monotonic()
        self.failed = False  # a failure was found: the rest of the time is for shrinking it
        self.reached = False  # the report says so: fewer examples than asked were judged

    def spent(self) -> bool:
        limit = self.seconds if self.failed else self.seconds / 2
        if time.monotonic() - self.started < limit:
            return False
        self.reached = True
        return not current_build_context().is_final


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
    result = SearchResult()
    wrapped = given(st.data())(body)
    wrapped.hypothesis.inner_test._hypothesis_internal_add_digest = key.encode()  # type: ignore[attr-defined]
    run = seed(cfg.seed)(_settings(cfg, cfg.examples)(wrapped))
    return _outcome(run, result)


def search_sequences(machine: type[RuleBasedStateMachine], cfg: ExploreConfig, key: str) -> SearchResult:
    """Run the state machine ``cfg.sequences`` times (up to ``cfg.steps`` rules each)."""
    machine._hypothesis_internal_add_digest = key.encode()
    seeded = seed(cfg.seed)(machine)
    result = SearchResult()
    return _outcome(lambda: run_state_machine_as_test(seeded, settings=_settings(cfg, cfg.sequences)), result)


__all__ = [
    "Budget",
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
