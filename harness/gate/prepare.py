"""The reference's phase: its model loaded and the answers the fixed checks compare with
computed before any check runs, so a check's time is the candidate's alone, and the
report says what the reference cost."""

from __future__ import annotations

from collections.abc import Callable

from tqdm import tqdm

from harness.gate.checks.answers import reference_rows
from harness.gate.checks.registry import GateContext
from harness.gate.reference import Runtime

_CHUNK = 8


def prepare_reference(ctx: GateContext, runtime: Runtime, progress: Callable[[str], None] = lambda _: None) -> None:
    """Load the reference on ``runtime`` (the one asked for) and compute, or read from the
    cache, its answers to the fixed checks' rows. It needs nothing from the candidate, so it
    runs while the candidate loads; a candidate found later to run elsewhere gets a
    reference there, computed as the checks need it (outside their working time too)."""
    progress("preparing the reference's answers (loaded once, kept under <home>/reference-cache)")
    answers = ctx.answers_on(runtime)
    rows = reference_rows(ctx)
    with tqdm(total=len(rows), desc="reference", unit="row", disable=None, leave=False) as bar:
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            answers.traces(chunk)
            bar.update(len(chunk))


__all__ = ["prepare_reference"]
