"""`harness bench run --model-uri`: any MLflow model's predict against raw generate of the
prompt ids it builds, whatever way it keeps and calls its transformers model."""

import json

import mlflow
import pytest
import torch
from click.testing import CliRunner
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from harness.bench.core import BenchConfig
from harness.bench.pyfunc import ModelBenchError, _HeldGenerate, _request, run_model_bench
from harness.cli import main
from harness.model.signature import SignatureKind
from harness.store import StoreConfig, log_model, log_transformers


def test_held_generate_is_greedy_exact_and_recorded(generator):
    ids = generator.encode(["Count slowly to ten.", "Hi"])
    sampled = dict(do_sample=True, temperature=1.5, top_k=5, max_new_tokens=9, pad_token_id=0)
    with _HeldGenerate() as held:
        held.tokens = 3
        seen = held.watched(lambda: generator.model.generate(**ids, **sampled))
        again = held.watched(lambda: generator.model.generate(**ids, **sampled))
        held.tokens = None
        free = generator.model.generate(**ids, **sampled)  # the raw path: not held
    width = ids["input_ids"].shape[1]
    assert seen.new_tokens == [3] and seen.calls == [2]
    # Held to greedy: the same ids twice, whatever sampling the caller asked for.
    assert seen.rows == again.rows
    assert [len(r) for r in seen.rows] == ids["attention_mask"].sum(dim=1).tolist()  # unpadded
    assert free.shape[1] - width == 9
    from transformers import GenerationMixin

    assert GenerationMixin.generate is held._original  # removed on exit


class _Meta:
    def __init__(self, signature):
        self.signature = signature

    def get_input_schema(self):
        return self.signature.inputs if self.signature else None

    def get_params_schema(self):
        return self.signature.params if self.signature else None


class _Loaded:
    def __init__(self, signature):
        self.metadata = _Meta(signature)


@pytest.mark.parametrize(
    "signature, column, max_tokens_in",
    [
        (SignatureKind.GATEWAY.signature, "prompt", "params"),
        (SignatureKind.COLUMNS.signature, "prompt", "column"),
        (
            ModelSignature(
                Schema([ColSpec("string", "question")]), params=ParamSchema([ParamSpec("max_tokens", "long", 16)])
            ),
            "question",
            "params",
        ),
        (None, "prompt", None),
    ],
)
def test_the_request_follows_the_models_signature(signature, column, max_tokens_in):
    data, params = _request(_Loaded(signature), ["a", "b"], 7)
    assert list(data[column]) == ["a", "b"]
    assert (params == {"max_tokens": 7}) == (max_tokens_in == "params")
    assert ("max_tokens" in data and list(data["max_tokens"]) == [7, 7]) == (max_tokens_in == "column")


class PositionalNoMask(mlflow.pyfunc.PythonModel):
    """Correct in an unusual style: its own template, the model in a dict, generate called
    positionally without an attention mask, one row at a time."""

    def load_context(self, context):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = context.artifacts["snapshot"]
        self.parts = {"lm": AutoModelForCausalLM.from_pretrained(path), "tok": AutoTokenizer.from_pretrained(path)}

    def predict(self, context, model_input, params=None):
        out = []
        for text in model_input["prompt"]:
            ids = self.parts["tok"](f"Q: {text}\nA:", return_tensors="pt")["input_ids"]
            new = self.parts["lm"].generate(ids, max_new_tokens=4, pad_token_id=0)[0, ids.shape[1] :]
            out.append(self.parts["tok"].decode(new))
        return out


class NoGenerate(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return ["canned"] * len(model_input)


@pytest.fixture(scope="module")
def models(tiny_snapshot, tmp_path_factory):
    store = StoreConfig(home=tmp_path_factory.mktemp("model-bench"))
    with store.activated(), mlflow.start_run():
        uris = {
            "reference": log_model(tiny_snapshot, SignatureKind.GATEWAY).model_uri,
            "flavour": log_transformers(tiny_snapshot).model_uri,
            "positional": mlflow.pyfunc.log_model(
                name="positional",
                python_model=PositionalNoMask(),
                artifacts={"snapshot": str(tiny_snapshot)},
                pip_requirements=["transformers"],
            ).model_uri,
            "canned": mlflow.pyfunc.log_model(
                name="canned", python_model=NoGenerate(), pip_requirements=["pandas"]
            ).model_uri,
        }
    return store, uris


def _bench(models, name, tiny_snapshot, **options):
    store, uris = models
    cfg = BenchConfig(
        snapshot=str(tiny_snapshot),
        model_uri=uris[name],
        batch_sizes=(1, 3),
        prompt_tokens=(24,),
        new_tokens=(4,),
        cache_modes=(True,),
        rounds=2,
        warmup=0,
        **options,
    )
    return run_model_bench(cfg, store)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, how_at_3",
    [
        ("reference", "one batched generate (use_cache True"),
        ("flavour", "3 generate calls of batch [1] (use_cache False"),  # row by row, no cache
        ("positional", "3 generate calls of batch [1]"),
    ],
)
def test_predict_and_raw_generate_run_the_same_prompt_ids(models, tiny_snapshot, name, how_at_3):
    cases, notes = _bench(models, name, tiny_snapshot)
    assert sorted((c.path, c.batch_size) for c in cases) == [("raw", 1), ("raw", 3), ("wrapped", 1), ("wrapped", 3)]
    for case in cases:
        assert case.new_tokens == 4 and len(case.e2e_s.samples) == 2
        assert case.wrapped_via == ("pyfunc.predict" if case.path == "wrapped" else None)
    # One prompt width per batch for both paths: the raw side replays the model's own ids.
    assert len({c.prompt_tokens for c in cases}) == 1
    assert any(how_at_3 in note and "at batch 3" in note for note in notes), notes
    assert not any("not comparable" in note for note in notes), notes


@pytest.mark.slow
def test_a_model_that_never_generates_is_refused_with_the_reason(models, tiny_snapshot):
    with pytest.raises(ModelBenchError, match="never called transformers' generate"):
        _bench(models, "canned", tiny_snapshot)


@pytest.mark.slow
def test_the_cli_reports_both_paths_and_names_a_wrong_device(models, tiny_snapshot, tmp_path):
    store, uris = models
    common = [
        "bench",
        "run",
        "--model-uri",
        uris["flavour"],
        "--snapshot",
        str(tiny_snapshot),
        "--home",
        str(store.home),
        "--batch-sizes",
        "2",
        "--prompt-tokens",
        "16",
        "--new-tokens",
        "3",
        "--rounds",
        "2",
        "--no-mlflow",
    ]
    done = CliRunner().invoke(main, [*common, "--report-dir", str(tmp_path / "r")])
    assert done.exit_code == 0, done.output
    report = json.loads((tmp_path / "r" / "bench.json").read_text())
    assert report["config"]["model_uri"] == uris["flavour"]
    [(case, ratio)] = report["overhead_ratios"].items()
    assert case.startswith("b2 ") and case.endswith(" n3 cache-on") and ratio > 0
    if not torch.cuda.is_available():
        wrong = CliRunner().invoke(main, [*common, "--device", "cuda", "--report-dir", str(tmp_path / "w")])
        assert wrong.exit_code == 2 and "pass --device cpu" in wrong.output
        assert not (tmp_path / "w").exists()
    off = CliRunner().invoke(main, [*common, "--cache", "off"])
    assert off.exit_code == 2 and "cache on only" in off.output


def test_model_mode_is_validated_at_the_edge(tiny_snapshot):
    with pytest.raises(ValueError, match="model_uri needs snapshot"):
        BenchConfig(shape="tiny", model_uri="models:/m/1", cache_modes=(True,))
    with pytest.raises(ValueError, match="cache on only"):
        BenchConfig(snapshot=str(tiny_snapshot), model_uri="models:/m/1")
    with pytest.raises(ValueError, match="model_uri="):
        BenchConfig(snapshot=str(tiny_snapshot), model_uri=" ", cache_modes=(True,))
