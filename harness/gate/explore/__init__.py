"""Exploration: hypothesis draws the requests users will send (and sequences of them), our
reference on the same weights judges every answer, and a failure shrinks to the smallest
request or sequence that still fails, with a reproducer."""

from harness.gate.explore.oracle import Expected, Oracle
from harness.gate.explore.requests import Observed, ExploreRequest, Step
from harness.gate.explore.search import ExploreConfig, Finding, SearchResult

__all__ = ["ExploreConfig", "Expected", "Finding", "Observed", "Oracle", "ExploreRequest", "SearchResult", "Step"]
