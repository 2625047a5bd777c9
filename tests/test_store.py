"""`harness snapshot tiny` + `harness register` into an embedded store, then load and predict."""

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.store import RegisterConfig, StoreConfig, pinned_requirements, register

THREE = pd.DataFrame({"prompt": ["What is MLflow?", "Name a colour.", "Count to three."]})


@pytest.fixture
def store(mlflow_store):
    return mlflow_store


def test_cli_registers_version_1_that_answers_every_row(store, tmp_path):
    runner = CliRunner()
    built = runner.invoke(main, ["snapshot", "tiny", str(tmp_path / "snap")])
    assert built.exit_code == 0, built.output
    result = runner.invoke(main, ["register", "--snapshot", str(tmp_path / "snap"), "--home", str(store.home)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "models:/mpt-7b-instruct/1"

    with store.activated():
        model = mlflow.pyfunc.load_model("models:/mpt-7b-instruct/1")
    first = model.predict(THREE, params={"temperature": 0.0, "max_tokens": 8})
    second = model.predict(THREE, params={"temperature": 0.0, "max_tokens": 8})
    assert isinstance(first, list) and len(first) == 3 and all(isinstance(a, str) for a in first)
    assert first == second


def test_columns_signature_takes_settings_per_row(store, tiny_snapshot):
    reg = register(RegisterConfig(snapshot=tiny_snapshot, signature="columns", store=store))
    assert reg.model_uri == "models:/mpt-7b-instruct/1" and len(reg.example_output) == 1
    with store.activated():
        model = mlflow.pyfunc.load_model(reg.model_uri)
    frame = THREE.assign(temperature=0.0, max_tokens=[2, 4, 6])
    assert model.predict(frame) == model.predict(frame)
    assert len(model.predict(frame)) == 3


def test_registering_again_makes_version_2_with_pinned_requirements(store, tiny_snapshot):
    register(RegisterConfig(snapshot=tiny_snapshot, store=store))
    reg = register(RegisterConfig(snapshot=tiny_snapshot, store=store))
    assert reg.version == "2"
    with store.activated():
        local = mlflow.artifacts.download_artifacts(reg.model_uri)
    requirements = Path(local, "requirements.txt").read_text().split()
    assert set(pinned_requirements()) <= set(requirements)
    assert all("==" in r for r in pinned_requirements())
    assert store.home.joinpath("mlflow.db").is_file()


def test_bad_snapshot_or_name_is_a_usage_error(store, tmp_path, tiny_snapshot):
    runner = CliRunner()
    result = runner.invoke(main, ["register", "--snapshot", str(tmp_path), "--home", str(store.home)])
    assert result.exit_code == 2 and "snapshot=" in result.output and "config.json" in result.output
    result = runner.invoke(
        main, ["register", "--snapshot", str(tiny_snapshot), "--name", "a b", "--home", str(store.home)]
    )
    assert result.exit_code == 2 and "name=" in result.output


def test_explicit_tracking_uri_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert StoreConfig(home=tmp_path).uri == "sqlite:///elsewhere.db"
    assert StoreConfig(home=tmp_path, tracking_uri="sqlite:///x.db").uri == "sqlite:///x.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert StoreConfig(home=tmp_path).uri == f"sqlite:///{tmp_path}/mlflow.db"


def test_a_prompt_format_is_registered_into_the_reference_s_model_config(store, chat_snapshot):
    from harness.model.loading import LoadConfig

    reg = register(RegisterConfig(snapshot=chat_snapshot, store=store, load=LoadConfig(prompt_format="auto")))
    with store.activated():
        model = mlflow.pyfunc.load_model(reg.model_uri)
    assert model.model_config["prompt_format"] == "auto"
    assert model.unwrap_python_model().generator.prompt_format.name == "chat-template"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"task": "llm/v1/chat"}, "task"),  # a transformers-flavour option
        ({"flavour": "transformers", "task": "llm/v1/embeddings"}, "task"),
        ({"flavour": "transformers", "task": "llm/v1/chat", "prompt_template": "Q: {prompt}"}, "prompt_template"),
        ({"flavour": "transformers", "load": "chat-template"}, "prompt_format"),
    ],
)
def test_options_of_the_other_flavour_or_task_are_refused_naming_the_field(tiny_snapshot, options, field):
    from harness._validation import ConfigError
    from harness.model.loading import LoadConfig

    if options.get("load"):
        options = {**options, "load": LoadConfig(prompt_format=options["load"])}
    with pytest.raises(ConfigError) as error:
        RegisterConfig(snapshot=tiny_snapshot, **options)
    assert error.value.field == field
