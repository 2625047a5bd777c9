"""The one grammar for limits on a report's numbers: absolute (``METRIC<=N``, ``METRIC>=N``:
budgets, SLOs) and relative to a baseline (``METRIC:N%``: compare thresholds). Each user
(:class:`harness.bench.compare.Budget`, :class:`harness.bench.serve_report.Slo`,
:class:`harness.bench.compare.Threshold`) says which metrics and operators it allows."""

from __future__ import annotations

import re

_ABSOLUTE = re.compile(r"^([a-z0-9_]+?)(<=|>=)(\d+(?:\.\d+)?)$")
_RELATIVE = re.compile(r"^([a-z0-9_]+):(\d+(?:\.\d+)?)%$")


def split_absolute(text: str) -> tuple[str, str, float] | None:
    """``("e2e_p90_ms", "<=", 500.0)`` from ``"e2e_p90_ms <= 500"``; None if it is not one."""
    match = _ABSOLUTE.match(str(text).replace(" ", ""))
    return (match.group(1), match.group(2), float(match.group(3))) if match else None


def split_relative(text: str) -> tuple[str, float] | None:
    """``("tpot_p50", 5.0)`` from ``"tpot_p50:5%"``; None if it is not one."""
    match = _RELATIVE.match(str(text).strip())
    return (match.group(1), float(match.group(2))) if match else None


def meets(value: float, op: str, limit: float) -> bool:
    return value <= limit if op == "<=" else value >= limit


def show(metric: str, op: str, limit: float) -> str:
    """The text :func:`split_absolute` reads back to the same limit (positional digits:
    ``1e+06`` would not read back)."""
    import numpy as np

    return f"{metric}{op}{np.format_float_positional(limit, trim='-')}"


__all__ = ["meets", "show", "split_absolute", "split_relative"]
