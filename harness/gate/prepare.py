"""The reference's phase: its model loaded and the answers the fixed checks compare with
computed before any check runs, so a check's time is the candidate's alone, and the
report says what the reference cost."""

from __future__ import annotations

from collections.abc import Callable

from tqdm import tqdm

from harness.gate.checks.answers import reference_rows
from harness.gate.checks.explore import prepare_exploration
from harness.gate.checks.registry import GateContext

_CHUNK = 8


def prepare_reference(ctx: GateContext, progress: Callable[[str], None] = lambda _: None) -> None:
    """Load the reference on the runtime asked for and compute (or read from the cache) its
    answers to the fixed checks' rows. A candidate found later to run elsewhere gets a
    reference there, computed as the checks need it (outside their working time too)."""
    progress("preparing the reference's answers (loaded once, kept under <home>/reference-cache)")
    answers = ctx.reference_answers
    rows = reference_rows(ctx)
    with tqdm(total=len(rows), desc="reference", unit="row", disable=None, leave=False) as bar:
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            answers.traces(chunk)
            bar.update(len(chunk))
    prepare_exploration(ctx)


__all__ = ["prepare_reference"]
