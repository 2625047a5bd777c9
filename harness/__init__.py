"""harness: pre-deploy test and benchmark harness for MPT-style LLMs wrapped as
MLflow PyFunc models behind an AI Gateway ``llm/v1/completions`` route.

The public API is re-exported here lazily, so ``import harness`` pulls in neither
torch nor MLflow (the timed core runs on GPU machines without MLflow).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ConfigError": "harness._validation",
    "ReportDirError": "harness._reporting",
    "ensure_writable": "harness._reporting",
    "report_folder": "harness._reporting",
    "RedactingStream": "harness._redact",
    "StoreUnreachable": "harness.store",
    "build_prompt": "harness.model.prompt",
    "extract_instruction": "harness.model.prompt",
    "PromptError": "harness.model.prompt",
    "PromptFormat": "harness.model.formats",
    "FORMATS": "harness.model.formats",
    "GenerationSettings": "harness.model.settings",
    "InvalidParameter": "harness.model.settings",
    "LoadConfig": "harness.model.loading",
    "Generator": "harness.model.generation",
    "Request": "harness.model.generation",
    "trim_generated": "harness.model.generation",
    "MPTInstruct": "harness.model.wrapper",
    "COLUMNS": "harness.model.signature",
    "GATEWAY": "harness.model.signature",
    "SignatureKind": "harness.model.signature",
    "parse_payload": "harness.model.signature",
    "TinySpec": "harness.model.snapshot",
    "build_tiny": "harness.model.snapshot",
    "cached_tiny": "harness.model.snapshot",
    "download": "harness.model.snapshot",
    "RegisterConfig": "harness.store",
    "StoreConfig": "harness.store",
    "register": "harness.store",
    "RouteSpec": "harness.serving.route",
    "routes_from_gateway_yaml": "harness.serving.route",
    "seed_route": "harness.serving.route",
    "CompletionRequest": "harness.serving.gateway",
    "ChatRequest": "harness.serving.gateway",
    "Completion": "harness.serving.gateway",
    "DeploymentsGatewayClient": "harness.serving.gateway",
    "GatewayError": "harness.serving.gateway",
    "LegacyGatewayClient": "harness.serving.gateway",
    "RetryPolicy": "harness.serving.gateway",
    "Transport": "harness.serving.gateway",
    "LoadResult": "harness.serving.load",
    "run_load": "harness.serving.load",
    "gateway_server": "harness.serving.servers",
    "scoring_server": "harness.serving.servers",
    "start_loopback": "harness.serving.servers",
    "Loopback": "harness.serving.servers",
    "CandidateSpec": "harness.gate.candidate",
    "GateConfig": "harness.gate.runner",
    "run_gate": "harness.gate.runner",
    "CheckResult": "harness.gate.report",
    "GateReport": "harness.gate.report",
    "Status": "harness.gate.report",
    "Rule": "harness.gate.tolerance",
    "Trace": "harness.gate.tolerance",
    "agree": "harness.gate.tolerance",
    "Runtime": "harness.gate.reference",
    "BenchConfig": "harness.bench.core",
    "run_bench": "harness.bench.core",
    "run_model_bench": "harness.bench.pyfunc",
    "ModelBenchError": "harness.bench.pyfunc",
    "BenchReport": "harness.bench.report",
    "remake_figures": "harness.bench.report",
    "Budget": "harness.bench.compare",
    "Threshold": "harness.bench.compare",
    "compare": "harness.bench.compare",
    "ServeBenchConfig": "harness.bench.serve",
    "run_serve_bench": "harness.bench.serve",
    "ServeReport": "harness.bench.serve_report",
    "Distribution": "harness.bench.locust_engine",
    "LocustRunError": "harness.bench.locust_engine",
    "LOCUSTFILE": "harness.bench.locust_engine",
    "Fault": "harness.testing.mock_gateway",
    "MockGateway": "harness.testing.mock_gateway",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
