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
from harness.gate.reference import ReferencePool, Runtime
from harness.model.formats import DEFAULT_FORMAT, PromptFormat
from harness.model.loading import load_tokenizer, snapshot_end_ids
from harness.model.snapshot import cached_tiny
from harness.model.signature import GATEWAY

MODEL_CHECKS = [c for c in CHECKS.values() if c.needs_model and not c.needs_serving]
# A small exploration keeps the fast tier fast; tests of what the exploration finds pass
# the gate's own default (GATE_EXPLORE).
EXPLORE = ExploreConfig.scaled(20)
GATE_EXPLORE = ExploreConfig.scaled(DEFAULT_EXAMPLES)
EXPLORE_CHECKS = ("explore.answers", "explore.sequences", "params.boundaries", "params.error_kind")
# Judged on the sampling and threading candidates written for them (test_sampling.py).
SAMPLING_CHECKS = ("sampling.distribution", "sampling.independence", "sampling.support", "predict.concurrent")


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cast_modules(obj, dtype, depth=0):
    """Cast every torch module a wrapper holds (in attributes, dicts, lists, a pipeline) to
    ``dtype``: the wrapper's only change is the precision its loaded weights run in."""
    import torch

    if isinstance(obj, torch.nn.Module):
        obj.to(getattr(torch, dtype))
        return
    if depth > 2:
        return
    values = (
        obj.values()
        if isinstance(obj, dict)
        else obj
        if isinstance(obj, (list, tuple))
        else vars(obj).values()
        if hasattr(obj, "__dict__")
        else ()
    )
    for value in list(values):
        _cast_modules(value, dtype, depth + 1)


class _InProcess:
    """What ``mlflow.pyfunc.load_model`` hands the gate, minus logging: ``predict(data, params)``
    on a loaded PythonModel (the gate's parsing of the payload still runs, in ``ctx.send``)."""

    def __init__(self, python_model, snapshot, model_config=None, cast=None):
        python_model.load_context(
            SimpleNamespace(artifacts={"repository": str(snapshot)}, model_config=dict(model_config or {}))
        )
        if cast is not None:
            _cast_modules(python_model, cast)
        self.python_model = python_model

    def predict(self, data, params=None):
        return self.python_model.predict(None, data, params)


@pytest.fixture(scope="session")
def peaked_snapshot(pytestconfig):
    """The tiny snapshot with its logits scaled to be peaked like a trained model's."""
    return cached_tiny(pytestconfig.rootpath, peaked=True)


@pytest.fixture
def judge(session_judge):
    """:func:`make_judge`'s judge, made once per session (the conftest's ``session_judge``)."""
    return session_judge


def make_judge(tiny_snapshot, shared_references):
    """A judge (the root conftest's session fixture ``session_judge``): runs every model
    check on a PythonModel class, in this process, with the gate's spy on transformers'
    generate; returns {check id: CheckResult} (of ``only``'s checks, when given).
    ``prompt_format``: the format the reference runs in (the gate's --prompt-format);
    ``model_config``: what the candidate's load is told besides. ``dtype`` asks for that
    precision on the CPU (as ``--dtype`` does, through model_config); ``cast`` casts
    whatever the wrapper loaded to it; ``cache``: a folder for the reference's traces;
    ``clock``: the gate's clock (its safety nets read it)."""

    def run(
        cls,
        signature=GATEWAY,
        only=None,
        explore=None,
        snapshot=None,
        dtype=None,
        cast=None,
        cache=None,
        clock=None,
        prompt_format=DEFAULT_FORMAT,
        model_config=None,
    ):
        snapshot = snapshot or tiny_snapshot
        tokenizer = load_tokenizer(str(snapshot))
        spy = GenerateSpy(
            GenerationMixin,
            tokenizer.eos_token_id,
            decode=tokenizer.decode,
            eos_token_id=snapshot_end_ids(str(snapshot), tokenizer),
        )
        config = {**({"device": "cpu", "dtype": dtype} if dtype else {}), **(model_config or {})}
        probe = Probe(
            _InProcess(cls(), snapshot, config, cast),
            signature,
            spy,
            reload=lambda: _InProcess(cls(), snapshot, config, cast),
        )
        ctx = GateContext(
            candidate=probe,
            tokenizer=tokenizer,
            snapshot=snapshot,
            signature=signature,
            serve=False,
            explore=explore or EXPLORE,
            runtime=Runtime("cpu", dtype or "float32"),
            prompt_format=PromptFormat.resolve(prompt_format, tokenizer),
            reference_cache=cache,
            # The session's reference, unless the test is of the trace cache itself.
            references=ReferencePool(shared=shared_references if cache is None else None),
            **({"clock": clock} if clock is not None else {}),
        )
        try:
            return {c.id: run_check(c, ctx, timeout=60) for c in MODEL_CHECKS if only is None or c.id in only}
        finally:
            spy.remove()

    return run
