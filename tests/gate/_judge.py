"""The gate's checks judged in process: a candidate class, the gate's spy on transformers'
generate, and a Probe, with no MLflow logging and no worker (whole gates are slow tests)."""

import importlib.util
from types import SimpleNamespace

import pytest
from transformers.generation.utils import GenerationMixin

from harness.gate.checks import CHECKS
from harness.gate.checks.registry import GateContext
from harness.gate.explore.search import DEFAULT_EXAMPLES, ExploreConfig
from harness.gate.probe import Probe
from harness.gate.runner import run_check
from harness.gate.spy import GenerateSpy
from harness.model.loading import load_tokenizer
from harness.model.signature import GATEWAY

MODEL_CHECKS = [c for c in CHECKS.values() if c.needs_model and not c.needs_serving]
# A small exploration keeps the fast tier fast; tests of what the exploration finds pass
# the gate's own default (GATE_EXPLORE).
EXPLORE = ExploreConfig.scaled(20)
GATE_EXPLORE = ExploreConfig.scaled(DEFAULT_EXAMPLES)
EXPLORE_CHECKS = ("explore.answers", "explore.sequences", "params.boundaries", "params.error_kind")


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _InProcess:
    """What ``mlflow.pyfunc.load_model`` hands the gate, minus logging: ``predict(data, params)``
    on a loaded PythonModel (the gate's parsing of the payload still runs, in ``ctx.send``)."""

    def __init__(self, python_model, snapshot):
        python_model.load_context(SimpleNamespace(artifacts={"repository": str(snapshot)},
                                                  model_config={}))
        self.python_model = python_model

    def predict(self, data, params=None):
        return self.python_model.predict(None, data, params)


@pytest.fixture
def judge(tiny_snapshot):
    """Runs every model check on a PythonModel class, in this process, with the gate's
    spy on transformers' generate; returns {check id: CheckResult} (of ``only``'s checks,
    when given)."""
    tokenizer = load_tokenizer(str(tiny_snapshot))
    spies = []

    def run(cls, signature=GATEWAY, only=None, explore=None):
        spy = GenerateSpy(GenerationMixin, tokenizer.eos_token_id, decode=tokenizer.decode,
                          eos_token_id=tokenizer.eos_token_id)
        spies.append(spy)
        probe = Probe(_InProcess(cls(), tiny_snapshot), signature, spy,
                      reload=lambda: _InProcess(cls(), tiny_snapshot))
        ctx = GateContext(candidate=probe, tokenizer=tokenizer, snapshot=tiny_snapshot,
                          signature=signature, serve=False, explore=explore or EXPLORE)
        try:
            return {c.id: run_check(c, ctx, timeout=60) for c in MODEL_CHECKS
                    if only is None or c.id in only}
        finally:
            spy.remove()

    return run


