"""The gate's model checks, one by one, on in-process candidates: the fast tier's view of
the checks (whole gate runs, with MLflow logging and servers, are in test_runner.py)."""

from types import SimpleNamespace

import importlib.util

import pytest

from conftest import MUTANTS_FILE
from harness.gate.checks import CHECKS
from harness.gate.checks.registry import GateContext
from harness.gate.report import Status
from harness.gate.runner import run_check
from harness.gate.spy import GenerateSpy
from harness.model.signature import GATEWAY
from harness.model.wrapper import MPTInstruct

_spec = importlib.util.spec_from_file_location("gate_mutants", MUTANTS_FILE)
mutants = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mutants)

_MODEL_CHECKS = [c for c in CHECKS.values() if c.needs_model and not c.needs_serving]


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
    """Runs every model check on a PythonModel class; returns {check id: CheckResult}."""
    contexts = []

    def run(cls):
        model = _InProcess(cls(), tiny_snapshot)
        generator = model.python_model.generator
        spy = GenerateSpy(generator.model, generator.tokenizer.pad_token_id)
        ctx = GateContext(model=model, spy=spy, tokenizer=generator.tokenizer,
                          snapshot=tiny_snapshot, signature=GATEWAY, serve=False)
        contexts.append(ctx)
        return {c.id: run_check(c, ctx, timeout=60) for c in _MODEL_CHECKS}

    yield run
    for ctx in contexts:
        ctx.spy.remove()


def test_the_reference_passes_every_model_check(judge):
    results = judge(MPTInstruct)
    assert {k: r.status for k, r in results.items() if r.status is not Status.PASS} == {}


@pytest.mark.parametrize("mutant, check_id", [
    ("FirstRowOnly", "rows.all"),
    ("OffByOne", "trim.exact"),
    ("IndentedPrompt", "prompt.template"),
    ("AlwaysGreedy", "params.temperature"),
    ("NoKVCache", "generate.use_cache"),
])
def test_a_defect_fails_its_check(judge, mutant, check_id):
    results = judge(getattr(mutants, mutant))
    assert results[check_id].status is Status.FAIL, results[check_id].message
