"""The gate's checks, in one explicit list: the order they run and are reported in.

Each module defines its checks with :func:`~harness.gate.checks.registry.check`; nothing is
registered by importing it. A check that reads what others produced declares it
(``after``), and :func:`~harness.gate.checks.registry.registry` refuses an order that
breaks a declaration.
"""

from harness.gate.checks import (
    answers,
    behaviour,
    budget,
    concurrency,
    contract,
    explore,
    isolation,
    open_inputs,
    routes,
    sampling,
    serving,
    stop,
)
from harness.gate.checks.registry import EVERY_OTHER, Check, GateContext, Outcome, check, registry

CHECKS = registry(
    # The contract first: `load` and the signature checks lead the report.
    contract.load,
    contract.signature_present,
    contract.signature_payload,
    behaviour.output_type,
    behaviour.rows_all,
    behaviour.prompt_template,
    behaviour.trim_exact,
    behaviour.params_invalid,
    answers.answers_reference,
    answers.params_max_tokens,
    answers.params_temperature_zero,
    answers.params_temperature,
    answers.params_temperature_low,
    sampling.sampling_distribution,
    sampling.sampling_independence,
    sampling.sampling_support,
    answers.prompt_context,
    answers.generate_use_cache,
    stop.params_stop,
    explore.explore_answers,
    explore.explore_sequences,
    explore.params_boundaries,
    explore.params_error_kind,
    open_inputs.open_inputs,
    concurrency.predict_concurrent,
    isolation.candidate_processes,
    serving.serving_scoring,
    serving.serving_errors,
    serving.serving_concurrent,
    routes.route_spec,
    routes.route_gateway,
    budget.bench_budget,
    serving.secrets_no_leak,
)

__all__ = ["CHECKS", "Check", "EVERY_OTHER", "GateContext", "Outcome", "check", "registry"]
