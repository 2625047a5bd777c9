import mlflow
import pandas as pd
import pytest
import torch
from mlflow.exceptions import MlflowException

from harness.model.prompt import build_prompt
from harness.model.signature import COLUMNS, GATEWAY, SignatureKind, parse_payload
from harness.model.wrapper import InputError, MPTInstruct, requests_from_input
from harness.store import log_model


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
    reference_model.predict(None, pd.DataFrame({"prompt": ["a", "b"]}), params={"temperature": 0.0, "max_tokens": 5})
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


@pytest.mark.parametrize(
    "params, field",
    [
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": 3.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_tokens": 100_000}, "max_tokens"),
    ],
)
def test_invalid_settings_raise_invalid_parameter_value(reference_model, params, field):
    with pytest.raises(MlflowException) as info:
        reference_model.predict(None, pd.DataFrame({"prompt": ["a"]}), params=params)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert field in info.value.message and "allowed" in info.value.message


@pytest.mark.parametrize(
    "frame", [pd.DataFrame({"prompt": [""]}), pd.DataFrame({"prompt": [3]}), pd.DataFrame({"a": ["x"], "b": ["y"]})]
)
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
    cut = reference_model.predict(None, ["s"], params={"temperature": 0.0, "max_tokens": 10, "stop": [stop]})[0]
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


# Bad input (issue 10): every input error is an MlflowException, since the scoring server
# answers any other exception with a stack trace in its 400 body.

LONG = "a" * 300_000


@pytest.mark.parametrize(
    "model_input",
    [pd.DataFrame({"prompt": []}), pd.DataFrame(), [], {"prompt": []}],
    ids=["frame", "no-columns", "list", "dict"],
)
def test_zero_rows_get_an_empty_list_without_calling_generate(reference_model, generate_spy, model_input):
    calls = generate_spy(reference_model.model)
    assert reference_model.predict(None, model_input, params={"max_tokens": 2}) == []
    assert calls == []


@pytest.mark.parametrize(
    "model_input",
    [
        pd.DataFrame({"prompt": [None]}),
        pd.DataFrame({"prompt": ["ok", float("nan")]}),
        pd.DataFrame({"prompt": ["ok", 123]}, dtype=object),
        [None],
        ["ok", 3.5],
        {"prompt": None},
    ],
    ids=["null", "nan", "int", "list-null", "list-float", "dict-null"],
)
def test_null_or_non_string_prompts_are_invalid_parameter_naming_prompt(reference_model, model_input):
    with pytest.raises(MlflowException) as info:
        reference_model.predict(None, model_input, params={"max_tokens": 2})
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "prompt must be a string" in info.value.message


def test_unequal_columns_are_invalid_parameter_not_a_pandas_error(reference_model):
    with pytest.raises(MlflowException, match="prompt") as info:
        reference_model.predict(None, {"prompt": ["a", "b"], "max_tokens": [1, 2, 3]})
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


def test_an_over_long_prompt_quotes_200_characters_and_its_length(reference_model):
    with pytest.raises(MlflowException) as info:
        reference_model.predict(None, [LONG], params={"max_tokens": 2})
    message = info.value.message
    assert message.startswith("prompt='" + "a" * 199 + "…' (300000 characters) is invalid")
    assert "a" * 200 not in message and "at most 511 tokens" in message


def test_the_scoring_server_s_rewrite_does_not_echo_the_input(reference_model):
    """invocations() sets e.message = f"Failed to predict data '{data}'. \\nError: {e.message}";
    for an `inputs` payload data's repr is every prompt in full."""
    with pytest.raises(MlflowException) as info:
        reference_model.predict(None, [LONG], params={"max_tokens": 2})
    error, own = info.value, info.value.message
    error.message = f"Failed to predict data '{ {'prompt': [LONG]} }'. \nError: {error.message}"
    assert error.message == own and len(error.serialize_as_json()) < 1024
    error.message = "an unrelated rewrite"  # one that does not wrap ours is taken as it is
    assert error.message == "an unrelated rewrite"


def test_mlflow_turns_null_and_numbers_in_inputs_into_text_before_the_wrapper():
    """Documented in the wrapper's docstring: MLflow casts `inputs` values to the string
    column's numpy dtype, so null arrives as "None" and 123 as "123"; no signature of a
    string column can reject them. `dataframe_records` keeps null and 123 as they are."""
    data, _ = parse_payload({"inputs": {"prompt": [None, 123]}}, GATEWAY)
    assert data["prompt"].tolist() == ["None", "123"]
    for value in (None, 123):
        data, _ = parse_payload({"dataframe_records": [{"prompt": value}]}, GATEWAY)
        assert data["prompt"].tolist() == [value]


@pytest.mark.parametrize(
    "signature, body, expected",
    [
        (GATEWAY, {"inputs": {"prompt": []}}, []),
        (GATEWAY, {"inputs": []}, []),
        (COLUMNS, {"inputs": {"prompt": [], "temperature": [], "max_tokens": []}}, []),
        (GATEWAY, {"dataframe_records": [{"prompt": None}]}, "prompt must be a string"),
        (
            COLUMNS,
            {"dataframe_records": [{"prompt": 123, "temperature": 0.0, "max_tokens": 2}]},
            "prompt must be a string",
        ),
        (GATEWAY, {"inputs": [LONG]}, "(300000 characters)"),
        (
            COLUMNS,
            {"dataframe_records": [{"prompt": LONG, "temperature": 0.0, "max_tokens": 2}]},
            "(300000 characters)",
        ),
    ],
    ids=[
        "gw-inputs-empty",
        "gw-list-empty",
        "cols-inputs-empty",
        "gw-records-null",
        "cols-records-int",
        "gw-long",
        "cols-long",
    ],
)
def test_bad_payloads_through_mlflow_parsing(reference_model, signature, body, expected):
    data, params = parse_payload(body, signature)
    if expected == []:
        assert reference_model.predict(None, data, params) == []
        return
    with pytest.raises(InputError) as info:
        reference_model.predict(None, data, params)
    assert expected in info.value.message and len(info.value.message) < 512


@pytest.fixture
def gateway_pyfunc(mlflow_store, tiny_snapshot):
    """The reference as deployed: logged with the gateway signature and loaded back."""
    with mlflow_store.activated():
        info = log_model(tiny_snapshot, SignatureKind.GATEWAY, input_example=None)
        return mlflow.pyfunc.load_model(info.model_uri)


# Logged without an input example (it would run a prediction while logging).
@pytest.mark.filterwarnings("ignore:.*An input example was not provided:UserWarning")
def test_loaded_pyfunc_answers_bad_input_cleanly(gateway_pyfunc):
    empty = pd.DataFrame({"prompt": pd.Series([], dtype=object)})
    assert gateway_pyfunc.predict(empty, params={"max_tokens": 2}) == []
    for frame, expected in [
        (pd.DataFrame({"prompt": [None]}), "prompt must be a string"),
        (pd.DataFrame({"prompt": [LONG]}), "(300000 characters)"),
    ]:
        with pytest.raises(MlflowException) as info:
            gateway_pyfunc.predict(frame, params={"max_tokens": 2})
        assert info.value.error_code == "INVALID_PARAMETER_VALUE"
        assert expected in info.value.message and "a" * 200 not in info.value.message
