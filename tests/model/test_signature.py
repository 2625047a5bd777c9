"""Each payload shape through MLflow's own parsing and schema enforcement, as served."""

import math

import pytest
from mlflow.exceptions import MlflowException

from harness.model.prompt import build_prompt
from harness.model.signature import COLUMNS, GATEWAY, columns_payload, gateway_payload, parse_payload

PROMPTS = ["What is MLflow?", "Name three colours."]
RECORDS = columns_payload(PROMPTS, temperature=0.0, max_tokens=7)
SPLIT = {
    "dataframe_split": {"columns": ["prompt", "temperature", "max_tokens"], "data": [[p, 0.0, 7] for p in PROMPTS]}
}
INPUTS_DICT = {"inputs": {"prompt": PROMPTS, "temperature": [0.0, 0.0], "max_tokens": [7, 7]}}
GATEWAY_BODY = gateway_payload(PROMPTS, temperature=0.0, max_tokens=7)


def _sent(calls, tokenizer):
    return [tokenizer.decode(row, skip_special_tokens=True) for c in calls for row in c.input_ids]


@pytest.mark.parametrize("body", [GATEWAY_BODY, {"inputs": PROMPTS}])
def test_gateway_payload_is_rejected_by_the_seed_column_signature(body):
    with pytest.raises(MlflowException, match="Failed to enforce schema"):
        parse_payload(body, COLUMNS)


@pytest.mark.parametrize("body", [RECORDS, SPLIT, INPUTS_DICT])
def test_column_payloads_reach_the_wrapper_intact(body, reference_model, generate_spy):
    data, params = parse_payload(body, COLUMNS)
    assert data.to_dict("list") == {"prompt": PROMPTS, "temperature": [0.0, 0.0], "max_tokens": [7, 7]}
    calls = generate_spy(reference_model.model)
    answers = reference_model.predict(None, data, params)
    assert len(answers) == 2
    assert _sent(calls, reference_model.tokenizer) == [build_prompt(p) for p in PROMPTS]
    assert [c.kwargs["max_new_tokens"] for c in calls] == [7]


def test_gateway_payload_reaches_the_wrapper_intact(reference_model, generate_spy):
    data, params = parse_payload(GATEWAY_BODY, GATEWAY)
    assert list(data["prompt"]) == PROMPTS
    assert params == {"temperature": 0.0, "max_tokens": 7, "stop": []}
    calls = generate_spy(reference_model.model)
    answers = reference_model.predict(None, data, params)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert _sent(calls, reference_model.tokenizer) == [build_prompt(p) for p in PROMPTS]
    assert calls[0].kwargs["do_sample"] is False and calls[0].kwargs["max_new_tokens"] == 7


def test_gateway_signature_fills_param_defaults_when_none_are_sent():
    _, params = parse_payload({"inputs": PROMPTS}, GATEWAY)
    assert params == {"temperature": 1.0, "max_tokens": 100, "stop": []}


@pytest.mark.parametrize("body", [RECORDS, SPLIT, INPUTS_DICT])
def test_gateway_signature_silently_drops_setting_columns(body):
    data, params = parse_payload(body, GATEWAY)
    assert list(data.columns) == ["prompt"]
    assert params["max_tokens"] == 100  # the 7 the caller sent is gone


def test_stop_list_passes_the_param_schema():
    _, params = parse_payload(gateway_payload(PROMPTS, stop=["\n", "###"]), GATEWAY)
    assert params["stop"] == ["\n", "###"]


def test_mlflow_does_not_check_ranges_so_the_wrapper_must(reference_model):
    data, params = parse_payload(gateway_payload(PROMPTS, max_tokens=-3, temperature=math.nan), GATEWAY)
    assert params["max_tokens"] == -3 and math.isnan(params["temperature"])
    with pytest.raises(MlflowException) as info:
        reference_model.predict(None, data, params)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


def test_wrong_param_type_is_rejected_by_mlflow():
    with pytest.raises(MlflowException, match="max_tokens"):
        parse_payload(gateway_payload(PROMPTS, max_tokens="many"), GATEWAY)


def test_the_mlflow_free_signature_names_match_the_kinds():
    from harness.model.config import SIGNATURE_KINDS
    from harness.model.signature import SignatureKind

    assert SIGNATURE_KINDS == tuple(kind.value for kind in SignatureKind)
