import pandas as pd
import pytest
import torch
from mlflow.exceptions import MlflowException

from harness.model.prompt import build_prompt
from harness.model.wrapper import MPTInstruct, requests_from_input


def test_predict_returns_one_string_per_row(reference_model):
    frame = pd.DataFrame({"prompt": ["a", "b", "c"], "temperature": [0.0] * 3, "max_tokens": [4] * 3})
    out = reference_model.predict(None, frame)
    assert isinstance(out, list) and len(out) == 3 and all(isinstance(x, str) for x in out)


def test_row_settings_from_columns_are_not_taken_from_row_zero(reference_model, generate_spy):
    calls = generate_spy(reference_model.model)
    frame = pd.DataFrame({"prompt": ["a", "b"], "temperature": [0.0, 0.0], "max_tokens": [3, 9]})
    reference_model.predict(None, frame)
    assert sorted(c.kwargs["max_new_tokens"] for c in calls) == [3, 9]


def test_params_apply_when_no_column_is_given(reference_model, generate_spy):
    calls = generate_spy(reference_model.model)
    reference_model.predict(None, pd.DataFrame({"prompt": ["a", "b"]}),
                            params={"temperature": 0.0, "max_tokens": 5})
    assert [c.kwargs["max_new_tokens"] for c in calls] == [5]
    assert calls[0].kwargs["do_sample"] is False


def test_columns_win_over_params_filled_in_by_mlflow(reference_model, generate_spy):
    calls = generate_spy(reference_model.model)
    frame = pd.DataFrame({"prompt": ["a"], "temperature": [0.0], "max_tokens": [2]})
    reference_model.predict(None, frame, params={"temperature": 1.0, "max_tokens": 100})
    assert calls[0].kwargs["max_new_tokens"] == 2 and calls[0].kwargs["do_sample"] is False


def test_missing_column_value_falls_back_to_params():
    frame = pd.DataFrame({"prompt": ["a", "b"], "max_tokens": [3, None]})
    requests = requests_from_input(frame, {"max_tokens": 11, "temperature": 0.0})
    assert [r.settings.max_tokens for r in requests] == [3, 11]


@pytest.mark.parametrize("params, field", [
    ({"temperature": -1.0}, "temperature"), ({"temperature": 3.0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"), ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": -1}, "max_tokens"), ({"max_tokens": 100_000}, "max_tokens"),
])
def test_invalid_settings_raise_invalid_parameter_value(reference_model, params, field):
    with pytest.raises(MlflowException) as info:
        reference_model.predict(None, pd.DataFrame({"prompt": ["a"]}), params=params)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert field in info.value.message and "allowed" in info.value.message


@pytest.mark.parametrize("frame", [pd.DataFrame({"prompt": [""]}), pd.DataFrame({"prompt": [3]}),
                                   pd.DataFrame({"a": ["x"], "b": ["y"]})])
def test_bad_prompts_raise_naming_prompt(reference_model, frame):
    with pytest.raises(MlflowException, match="prompt") as info:
        reference_model.predict(None, frame)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


def test_list_and_dict_inputs(reference_model, generate_spy):
    calls = generate_spy(reference_model.model)
    assert len(reference_model.predict(None, ["x", "y"], params={"temperature": 0.0, "max_tokens": 2})) == 2
    assert len(reference_model.predict(None, {"prompt": ["z"]}, params={"max_tokens": 2})) == 1
    ids = calls[0].input_ids
    assert reference_model.tokenizer.decode(ids[0], skip_special_tokens=True) == build_prompt("x")


def test_stop_param_cuts_answers(reference_model):
    plain = reference_model.predict(None, ["s"], params={"temperature": 0.0, "max_tokens": 10})[0]
    stop = plain[1:3]
    cut = reference_model.predict(None, ["s"], params={"temperature": 0.0, "max_tokens": 10,
                                                       "stop": [stop]})[0]
    assert cut == plain[: plain.find(stop)]


def test_load_context_on_cpu_without_gpu(tiny_snapshot, make_context, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = MPTInstruct()
    model.load_context(make_context(tiny_snapshot))
    assert model.generator.device == "cpu"
    assert next(model.model.parameters()).dtype is torch.float32


def test_cuda_forced_without_gpu_fails_plainly(tiny_snapshot, make_context, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(MlflowException, match="no CUDA GPU"):
        MPTInstruct().load_context(make_context(tiny_snapshot, {"device": "cuda"}))


def test_bad_model_config_is_invalid_parameter(tiny_snapshot, make_context):
    with pytest.raises(MlflowException, match="max_batch_size") as info:
        MPTInstruct().load_context(make_context(tiny_snapshot, {"max_batch_size": 0}))
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


def test_max_batch_size_from_model_config(tiny_snapshot, make_context, generate_spy):
    model = MPTInstruct()
    model.load_context(make_context(tiny_snapshot, {"max_batch_size": 2, "device": "cpu"}))
    calls = generate_spy(model.model)
    model.predict(None, ["a", "b", "c"], params={"temperature": 0.0, "max_tokens": 2})
    assert [len(c.input_ids) for c in calls] == [2, 1]
