import json

import pytest
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from harness.model import snapshot as snap
from harness.model.prompt import build_prompt
from harness.model.snapshot import SnapshotError, TinySpec, build_tiny, download, weights_digest


def test_layout_matches_the_hugging_face_snapshot(tiny_snapshot):
    names = {p.name for p in tiny_snapshot.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    } <= names
    assert json.loads((tiny_snapshot / "config.json").read_text())["model_type"] == "mpt"


def test_generation_config_mirrors_the_published_one(tiny_snapshot):
    generation = json.loads((tiny_snapshot / "generation_config.json").read_text())
    assert generation["use_cache"] is False and generation["eos_token_id"] == 0


def test_special_tokens_mirror_mpt(tiny_snapshot):
    config = json.loads((tiny_snapshot / "tokenizer_config.json").read_text())
    assert config["eos_token"] == "<|endoftext|>" and config.get("pad_token") is None
    tokenizer = AutoTokenizer.from_pretrained(tiny_snapshot)
    assert tokenizer.eos_token_id == 0


def test_loads_through_the_auto_classes(tiny_snapshot):
    config = AutoConfig.from_pretrained(tiny_snapshot)
    model = AutoModelForCausalLM.from_pretrained(tiny_snapshot)
    assert type(config).__name__ == "MptConfig" and type(model).__name__ == "MptForCausalLM"


def test_tokenizer_round_trips_the_template_and_unicode(tiny_snapshot):
    tokenizer = AutoTokenizer.from_pretrained(tiny_snapshot)
    text = build_prompt("Qu'est-ce que MLflow? 東京 🎉\n  indented")
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert len(tokenizer.encode("### Instruction:")) <= 4  # the template words were learned


def test_same_seed_gives_byte_identical_weights(tmp_path, tiny_snapshot):
    again = build_tiny(tmp_path / "again")
    assert weights_digest(again) == weights_digest(tiny_snapshot)
    assert (again / "tokenizer.json").read_bytes() == (tiny_snapshot / "tokenizer.json").read_bytes()
    other = build_tiny(tmp_path / "other", TinySpec(seed=1))
    assert weights_digest(other) != weights_digest(tiny_snapshot)


def test_cached_build_is_reused(tmp_path):
    path = build_tiny(tmp_path / "s")
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    assert build_tiny(tmp_path / "s") == path
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime


def test_interrupted_build_leaves_nothing_half_written(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(snap, "_build_model", boom)
    with pytest.raises(KeyboardInterrupt):
        build_tiny(tmp_path / "s")
    assert [p.name for p in tmp_path.iterdir()] == [".s.lock"]  # the lock, no snapshot


def test_spec_is_validated():
    with pytest.raises(ValueError, match="divisible"):
        TinySpec(d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="vocab_size"):
        TinySpec(vocab_size=100)


def test_download_fails_fast_when_offline(tmp_path, free_port, monkeypatch):
    import huggingface_hub

    def must_not_be_called(**kwargs):  # the probe decides; the hub client never starts
        raise AssertionError("snapshot_download was called although the hub is unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", must_not_be_called)
    with pytest.raises(SnapshotError, match="cannot reach the model hub"):
        download("mosaicml/mpt-7b-instruct", tmp_path / "d", endpoint=f"http://127.0.0.1:{free_port}")
    assert not (tmp_path / "d").exists()


def test_the_peaked_snapshot_has_peaked_next_token_distributions(tiny_snapshot, tmp_path):
    import torch

    def median_top1(path):
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        probs = []
        for prompt in ("Hi.", "Name a colour.", "What is MLflow?", "Explain caching."):
            row = tok(build_prompt(prompt), return_tensors="pt")
            with torch.no_grad():
                logits = model(**row).logits[0]
            probs += torch.softmax(logits, -1).max(-1).values.tolist()
        return sorted(probs)[len(probs) // 2]

    peaked = build_tiny(tmp_path / "peaked", snap.PEAKED)
    assert median_top1(tiny_snapshot) < 0.2 < 0.5 < median_top1(peaked)
    # The same weights but the final norm: another fingerprint, the same tokenizer.
    assert weights_digest(peaked) != weights_digest(tiny_snapshot)
    assert (peaked / "tokenizer.json").read_bytes() == (tiny_snapshot / "tokenizer.json").read_bytes()


def test_an_unscaled_snapshot_keeps_the_stamp_it_had_before_logit_scale(tiny_snapshot):
    stamp = json.loads((tiny_snapshot / "harness_snapshot.json").read_text())
    assert "logit_scale" not in stamp["spec"]
    with pytest.raises(ValueError, match="logit_scale"):
        TinySpec(logit_scale=0)
