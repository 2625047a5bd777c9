import logging

import pytest
import torch
from transformers import AutoConfig

from harness.model.loading import (
    LoadConfig,
    LoadError,
    ensure_pad_token,
    load_model,
    load_tokenizer,
    resolve_device,
    resolve_dtype,
    set_attn_impl,
)


def test_auto_picks_cpu_and_float32_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device = resolve_device("auto")
    assert device == "cpu"
    assert resolve_dtype("auto", device) is torch.float32


def test_auto_picks_cuda_and_bfloat16_with_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    device = resolve_device("auto")
    assert device == "cuda"
    assert resolve_dtype("auto", device) is torch.bfloat16


def test_cuda_without_gpu_is_a_plain_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LoadError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_dtype_and_device_overridable_through_model_config(tiny_snapshot):
    model, device, _ = load_model(str(tiny_snapshot), LoadConfig(device="cpu", dtype="bfloat16"))
    assert device == "cpu"
    assert next(model.parameters()).dtype is torch.bfloat16


@pytest.mark.parametrize(
    "values, field",
    [
        ({"device": "tpu"}, "device"),
        ({"dtype": "int8"}, "dtype"),
        ({"attn_impl": "sdpa"}, "attn_impl"),
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"colour": "red"}, "unknown model_config keys"),
    ],
)
def test_bad_model_config_names_the_field(values, field):
    with pytest.raises(ValueError, match=field):
        LoadConfig.from_mapping(values)


def test_native_config_rejects_the_seed_item_assignment(tiny_snapshot):
    config = AutoConfig.from_pretrained(tiny_snapshot)
    with pytest.raises(TypeError):
        config.attn_config["attn_impl"] = "triton"  # the seed's line


def test_attn_impl_set_on_native_config_object(tiny_snapshot):
    config = AutoConfig.from_pretrained(tiny_snapshot)
    assert set_attn_impl(config, "torch", "cpu") == "torch"
    assert config.attn_config.attn_impl == "torch"


def test_attn_impl_set_on_remote_code_dict_config():
    class RemoteConfig:
        attn_config = {"attn_impl": "triton"}

    config = RemoteConfig()
    assert set_attn_impl(config, "torch", "cpu") == "torch"
    assert config.attn_config == {"attn_impl": "torch"}


@pytest.mark.parametrize("wanted", ["triton", "flash"])
def test_unavailable_attention_falls_back_with_logged_reason(tiny_snapshot, caplog, wanted):
    config = AutoConfig.from_pretrained(tiny_snapshot)
    with caplog.at_level(logging.WARNING, logger="harness.model.loading"):
        assert set_attn_impl(config, wanted, "cpu") == "torch"
    assert wanted in caplog.text and "falling back" in caplog.text
    assert config.attn_config.attn_impl == "torch"


def test_remote_code_triton_on_cpu_falls_back_with_reason(caplog):
    class RemoteConfig:
        attn_config = {"attn_impl": "torch"}

    with caplog.at_level(logging.WARNING, logger="harness.model.loading"):
        assert set_attn_impl(RemoteConfig(), "triton", "cpu") == "torch"
    assert "needs a CUDA GPU" in caplog.text


def test_tokenizer_pads_left_with_a_special_token(tiny_snapshot):
    tokenizer = load_tokenizer(str(tiny_snapshot))
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token_id in tokenizer.all_special_ids
    batch = tokenizer(["a", "a longer prompt here"], padding=True)
    assert batch["attention_mask"][0][0] == 0 and batch["attention_mask"][0][-1] == 1


def test_missing_pad_token_becomes_eos(tiny_snapshot):
    tokenizer = load_tokenizer(str(tiny_snapshot))
    tokenizer.pad_token = None
    tokenizer.padding_side = "right"
    ensure_pad_token(tokenizer)
    assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"
    assert tokenizer.padding_side == "left"


def test_model_generation_config_turns_the_kv_cache_on(tiny_snapshot):
    model, _, _ = load_model(str(tiny_snapshot), LoadConfig(device="cpu"))
    assert model.generation_config.use_cache is True
