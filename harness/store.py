"""Log the reference wrapper with a snapshot, register it, and load it back.

MLflow runs embedded by default: a SQLite tracking/registry store and artifacts
under a folder the user chooses (``.harness`` unless told otherwise).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import mlflow
import requests
from mlflow.tracking import MlflowClient

from harness._redact import redact
from harness._mlflow_compat import current_store_uris, restore_store_uris
from harness._reporting import utc_now
from harness._validation import ConfigError, invalid
from harness.model.config import DEFAULT_HOME, check_name
from harness.model.loading import LoadConfig
from harness.model.prompt import PREFIX, SUFFIX
from harness.model.signature import SignatureKind
from harness.model.wrapper import ARTIFACT_KEY, MPTInstruct

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

DEFAULT_MODEL_NAME = "mpt-7b-instruct"
EXPERIMENT = "harness"
_PINNED = ("mlflow", "torch", "transformers", "tokenizers", "safetensors", "pandas")
_SIGNATURE_EXAMPLE = object()  # sentinel: "use the signature's own example"


class StoreUnreachable(RuntimeError):
    """The tracking server named by a URI does not answer."""


@dataclass(frozen=True)
class StoreConfig:
    """Where MLflow keeps runs and models; embedded SQLite unless a URI is given."""

    home: Path = DEFAULT_HOME
    tracking_uri: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).absolute())
        # Resolved once, here at the edge: MLFLOW_TRACKING_URI is read, never written by us.
        uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.home / 'mlflow.db'}"
        object.__setattr__(self, "tracking_uri", uri)

    @property
    def uri(self) -> str:
        assert self.tracking_uri is not None  # __post_init__ always resolves it
        return self.tracking_uri

    def log_dir(self, command: str) -> Path:
        """Where one run of ``command`` keeps its logs: ``<home>/logs/<command>-<UTC time>-<6 hex>``
        (the suffix keeps two runs in the same second apart)."""
        return self.home / "logs" / f"{command}-{utc_now().replace(':', '')}-{uuid.uuid4().hex[:6]}"

    def require_reachable(self, timeout_s: float = 3.0) -> None:
        """A remote tracking server that does not answer fails now, in seconds, rather than
        after MLflow's minutes of retries. Any HTTP answer counts as reachable."""
        if urlsplit(self.uri).scheme not in ("http", "https"):
            return
        try:
            requests.get(self.uri.rstrip("/") + "/health", timeout=timeout_s)
        except requests.RequestException as error:
            # The exception's text may carry the URL with its credentials: name the kind only.
            raise StoreUnreachable(
                f"tracking URI {redact(self.uri)[:200]} cannot be reached "
                f"within {timeout_s:g}s ({type(error).__name__})"
            ) from None

    @property
    def artifact_location(self) -> str:
        return (self.home / "artifacts").as_uri()

    @contextmanager
    def activated(self) -> Iterator[str]:
        """Point MLflow at this store for the block; yields the experiment id.

        ``mlflow.set_tracking_uri``/``set_registry_uri`` change process globals and the
        MLFLOW_*_URI variables (for child processes); all of that is restored after.
        """
        saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        saved = current_store_uris()
        try:
            experiment_id = self.activate()
            mlflow.set_experiment(experiment_id=experiment_id)
            yield experiment_id
        finally:
            restore_store_uris(saved)
            for key, value in saved_env.items():  # undo MLflow's writes, not ours
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def activate(self) -> str:
        """Point MLflow at this store and return the experiment id (prefer :meth:`activated`)."""
        if self.uri.startswith("sqlite:"):
            self.home.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        experiment = mlflow.get_experiment_by_name(EXPERIMENT)
        if experiment is not None:
            return experiment.experiment_id
        return mlflow.create_experiment(EXPERIMENT, artifact_location=self.artifact_location)


FLAVOURS = ("pyfunc", "transformers")
# The transformers flavour's LLM tasks: completions, or chat (the tokenizer's chat template
# applied by MLflow to a request's messages).
TRANSFORMERS_TASKS = ("llm/v1/completions", "llm/v1/chat")
MPT_TEMPLATE = PREFIX + "{prompt}" + SUFFIX  # the flavour's prompt_template by default
_GENERATE_KEY = re.compile(r"[a-z_][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class RegisterConfig:
    snapshot: Path
    signature: SignatureKind = SignatureKind.GATEWAY
    name: str = DEFAULT_MODEL_NAME
    store: StoreConfig = field(default_factory=StoreConfig)
    load: LoadConfig = field(default_factory=LoadConfig)
    # pyfunc: the reference wrapper; transformers: MLflow's own flavour, a text-generation
    # pipeline logged for the llm/v1/completions task with the MPT-Instruct prompt_template.
    flavour: str = "pyfunc"
    # transformers flavour only: its prompt_template (None: none), and its model_config,
    # the generate defaults every request starts from (e.g. (("do_sample", False),)).
    prompt_template: str | None = MPT_TEMPLATE
    generate_config: tuple[tuple[str, Any], ...] = ()
    task: str = TRANSFORMERS_TASKS[0]  # transformers flavour only

    def __post_init__(self) -> None:
        if self.flavour not in FLAVOURS:
            raise invalid("flavour", self.flavour, str(FLAVOURS))
        self._check_flavour_options()
        object.__setattr__(self, "snapshot", Path(self.snapshot).absolute())
        object.__setattr__(self, "signature", SignatureKind(self.signature))
        if not (self.snapshot / "config.json").is_file():
            raise ConfigError(
                "snapshot",
                f"snapshot={str(self.snapshot)!r} is not a model snapshot "
                "(no config.json); build one with `harness snapshot tiny DIR`",
            )
        check_name("name", self.name)

    def _check_flavour_options(self) -> None:
        object.__setattr__(self, "generate_config", tuple(tuple(kv) for kv in self.generate_config))
        if self.flavour != "transformers" and (self.generate_config or self.prompt_template != MPT_TEMPLATE):
            raise ConfigError(
                "generate_config" if self.generate_config else "prompt_template",
                "prompt_template and generate_config are options of the "
                "transformers flavour: allowed with flavour='transformers' only",
            )
        if self.task not in TRANSFORMERS_TASKS:
            raise invalid("task", self.task, str(TRANSFORMERS_TASKS))
        if self.task != TRANSFORMERS_TASKS[0] and self.flavour != "transformers":
            raise ConfigError(
                "task", "task is an option of the transformers flavour: allowed with flavour='transformers'"
            )
        if self.task == "llm/v1/chat" and self.prompt_template not in (None, MPT_TEMPLATE):
            raise ConfigError(
                "prompt_template", "the llm/v1/chat task renders the tokenizer's chat_template: no prompt_template"
            )
        if self.task == "llm/v1/chat":
            object.__setattr__(self, "prompt_template", None)
        if self.flavour == "transformers" and (self.load.prompt_format, self.load.system_prompt) != (
            LoadConfig().prompt_format,
            None,
        ):
            raise ConfigError(
                "prompt_format",
                "prompt_format and system_prompt are the reference wrapper's; the transformers "
                "flavour takes its prompt_template instead",
            )
        template = self.prompt_template
        if template is not None and (template.count("{prompt}") != 1 or len(template) > 4000):
            raise invalid("prompt_template", template, "text of at most 4000 characters with {prompt} exactly once")
        for key, value in self.generate_config:
            if not isinstance(key, str) or not _GENERATE_KEY.fullmatch(key):
                raise ConfigError(
                    "generate_config",
                    f"generate_config key {str(key)[:20]!r} is invalid: allowed a "
                    "generate argument name (lowercase letters, digits, _)",
                )
            if not isinstance(value, (bool, int, float, str)):
                raise invalid(f"generate_config[{key!r}]", value, "a number, a boolean or a string")


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    model_uri: str
    run_id: str
    example_output: list[str]


def pinned_requirements() -> list[str]:
    pins = []
    for package in _PINNED:
        try:
            pins.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def harness_code_path() -> str:
    """The package folder, shipped with the model so it loads where harness is not installed."""
    return str(Path(__file__).parent)


def log_model(
    snapshot: Path,
    signature: SignatureKind,
    python_model: Any = None,
    code_paths: list[str] | None = None,
    registered_model_name: str | None = None,
    model_config: dict | None = None,
    input_example: Any = _SIGNATURE_EXAMPLE,
) -> ModelInfo:
    """``mlflow.pyfunc.log_model`` as it would be deployed; returns MLflow's ModelInfo.

    ``input_example`` defaults to the signature's; the gate passes None so that a
    candidate that cannot load fails at its own ``load`` check, not while logging.
    """
    if input_example is _SIGNATURE_EXAMPLE:
        input_example = signature.input_example
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=python_model if python_model is not None else MPTInstruct(),
        artifacts={ARTIFACT_KEY: str(snapshot)},
        code_paths=code_paths if code_paths is not None else [harness_code_path()],
        signature=signature.signature,
        input_example=input_example,
        pip_requirements=pinned_requirements(),
        registered_model_name=registered_model_name,
        model_config=model_config,
        await_registration_for=60,
    )


def predict_example(model: Any, signature: SignatureKind) -> list[str]:
    example = signature.input_example
    if isinstance(example, tuple):
        data, params = example
        return list(model.predict(data, params=params))
    return list(model.predict(example))


def register(cfg: RegisterConfig, progress: Callable[[str], None] = lambda _: None) -> Registration:
    """Log, register, load back ``models:/NAME/VERSION`` and predict the input example."""
    progress(f"logging {cfg.snapshot} ({cfg.flavour} flavour) to {cfg.store.uri}")
    model_config = {k: v for k, v in vars(cfg.load).items() if v != getattr(LoadConfig(), k)}
    with cfg.store.activated() as experiment_id:
        with mlflow.start_run(experiment_id=experiment_id) as run:
            if cfg.flavour == "transformers":
                info = log_transformers(
                    cfg.snapshot,
                    registered_model_name=cfg.name,
                    prompt_template=cfg.prompt_template,
                    model_config=dict(cfg.generate_config) or None,
                    task=cfg.task,
                )
            else:
                info = log_model(
                    cfg.snapshot, cfg.signature, registered_model_name=cfg.name, model_config=model_config or None
                )
        model_version = str(info.registered_model_version or _latest_version(cfg.name))
        uri = f"models:/{cfg.name}/{model_version}"
        progress(f"loading {uri} back")
        loaded = mlflow.pyfunc.load_model(uri)
    if cfg.flavour == "transformers":
        example: dict[str, Any] = {"max_tokens": 8, "temperature": 0.5}
        if cfg.task == "llm/v1/chat":
            example["messages"] = [{"role": "user", "content": "What is MLflow?"}]
        else:
            example["prompt"] = "What is MLflow?"
        output = [_choice_text(a) for a in loaded.predict(example)]
    else:
        output = predict_example(loaded, cfg.signature)
    return Registration(cfg.name, model_version, uri, run.info.run_id, output)


def _choice_text(answer: Any) -> str:
    """A completions or chat object's text (``choices[0].text`` or its message's content)."""
    choice = answer["choices"][0] if isinstance(answer, dict) and answer.get("choices") else None
    if not isinstance(choice, dict):
        return str(answer)
    return str(choice.get("text") if "text" in choice else (choice.get("message") or {}).get("content"))


def log_transformers(
    snapshot: Path,
    registered_model_name: str | None = None,
    prompt_template: str | None = MPT_TEMPLATE,
    model_config: dict | None = None,
    task: str = TRANSFORMERS_TASKS[0],
) -> ModelInfo:
    """The snapshot the way MLflow documents for completions (or chat): a transformers
    pipeline logged with ``task`` (``llm/v1/completions``: by default the MPT-Instruct
    ``prompt_template``; ``llm/v1/chat``: the tokenizer's chat template), and
    ``model_config`` as the generate defaults."""
    import transformers

    from harness.model.loading import load_tokenizer

    model = transformers.AutoModelForCausalLM.from_pretrained(str(snapshot))
    pipe = transformers.pipeline("text-generation", model=model, tokenizer=load_tokenizer(str(snapshot)))
    return mlflow.transformers.log_model(
        pipe,
        name="model",
        task=task,
        prompt_template=prompt_template,
        model_config=model_config,
        pip_requirements=pinned_requirements(),
        registered_model_name=registered_model_name,
        await_registration_for=60,
    )


def _latest_version(name: str) -> str:
    versions = MlflowClient().search_model_versions(f"name='{name}'")
    return str(max(int(v.version) for v in versions))
