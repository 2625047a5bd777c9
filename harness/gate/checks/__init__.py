"""Gate checks, registered in one place (:mod:`harness.gate.checks.registry`).

Importing this package registers the built-in checks; later checks (serving,
route, benchmark budget) register themselves the same way without touching the runner.
"""

# contract first: `load` and the signature checks lead the report.
from harness.gate.checks import contract, behaviour, answers, stop, explore, isolation, serving, budget  # noqa: F401,I001  (registration side effects)
from harness.gate.checks.registry import CHECKS, Check, GateContext, Outcome, register_check

__all__ = ["CHECKS", "Check", "GateContext", "Outcome", "register_check"]
