"""The reference MLflow PyFunc wrapper for MPT-7B-Instruct (and the tiny snapshot).

A thin adapter: it turns MLflow inputs (a DataFrame with a ``prompt`` column and
optionally ``temperature``/``max_tokens`` columns, plus params) into validated
requests, and hands them to :class:`harness.model.generation.Generator`. Its
``model_config`` may name a prompt format (``prompt_format``: ``mpt-instruct`` by default,
``falcon-instruct``, ``chat-template`` or ``auto``; ``system_prompt``), so one wrapper serves
MPT-Instruct and chat models alike (:mod:`harness.model.formats`).

Bad input. Every input error leaves ``predict`` as an ``MlflowException``
(INVALID_PARAMETER_VALUE) naming the field and quoting at most 200 characters of the
value: the scoring server answers any other exception type with a stack trace in its
400 body. Zero rows get ``[]``. What MLflow 3.17 does before the wrapper sees a value
(measured through ``mlflow models serve``, tests/serving/test_bad_input.py):

- ``{"inputs": ...}`` (and ``instances``) values are cast to the string column's numpy
  dtype while parsing: ``null`` arrives as ``"None"``, ``123`` as ``"123"``, ``true`` as
  ``"True"``, and is answered like that text. The cast precedes schema enforcement, so no
  signature with a string ``prompt`` can reject it; ``dataframe_records`` and
  ``dataframe_split`` keep ``null``/``123``, which the wrapper rejects naming ``prompt``.
- ``{"dataframe_records": []}`` has no ``prompt`` column: MLflow's schema enforcement
  answers 400 ("Model is missing inputs ['prompt']") before the wrapper runs.
- The seed's column signature requires ``temperature`` and ``max_tokens``: an ``inputs``
  body without them is MLflow's 400, whose message quotes the whole input (twice; 600 KB
  for a 300 000-character prompt). The wrapper cannot shorten an error it never sees.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

from mlflow.pyfunc import PythonModel
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from harness.model.errors import quote
from harness.model.generation import Generator, Request
from harness.model.loading import LoadConfig, LoadError
from harness.model.prompt import PromptError
from harness.model.settings import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_TEMPERATURE,
    GenerationSettings,
    InvalidParameter,
)

ARTIFACT_KEY = "repository"  # the seed's artifact name for the snapshot folder
_SETTING_FIELDS = ("temperature", "max_tokens", "stop")


class InputError(MlflowException):
    """INVALID_PARAMETER_VALUE whose message stays the wrapper's own.

    The scoring server rewrites an MlflowException's message to
    ``Failed to predict data '{data}'. Error: {message}`` before answering 400. For an
    ``inputs`` payload ``data`` is a dict of numpy arrays whose repr holds every prompt in
    full (a 300 000-character prompt came back whole in a plain MlflowException's 300 KB
    body), so a rewrite that wraps our message is reduced to our message, which already
    names the field.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        own = getattr(self, "_message", None)  # None on the first assignment, in __init__
        self._message = own if own is not None and str(value).endswith(own) else value


def _invalid(error: Exception) -> MlflowException:
    return InputError(str(error))


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _mapping_frame(model_input: Mapping[str, Any]) -> pd.DataFrame:
    try:
        return pd.DataFrame({k: v if isinstance(v, list) else [v] for k, v in model_input.items()})
    except ValueError as error:  # columns of different lengths: the caller's mistake, not ours
        raise PromptError(f"prompt: the input's columns do not form a table: {error}") from None


def _as_frame(model_input: Any) -> pd.DataFrame:
    if isinstance(model_input, pd.DataFrame):
        frame = model_input
    elif isinstance(model_input, str):
        frame = pd.DataFrame({"prompt": [model_input]})
    elif isinstance(model_input, Mapping):
        frame = _mapping_frame(model_input)
    elif isinstance(model_input, list) and not any(isinstance(x, Mapping) for x in model_input):
        # Non-string items stay in: the prompt check names the bad row's type and value.
        frame = pd.DataFrame({"prompt": pd.Series(model_input, dtype=object)})
    else:
        raise PromptError(
            f"prompt: expected a DataFrame with a 'prompt' column or a list of "
            f"strings, got {type(model_input).__name__}"
        )
    if len(frame) == 0:
        return pd.DataFrame({"prompt": []})  # zero rows ask for zero answers, whatever the columns
    if "prompt" not in frame.columns:
        if frame.shape[1] != 1:
            raise PromptError(f"prompt: input has no 'prompt' column (columns: {quote(list(frame.columns))})")
        frame = frame.set_axis(["prompt"], axis=1)
    return frame


def _row_settings(row: Mapping[str, Any], params: Mapping[str, Any]) -> GenerationSettings:
    # A value in the row's own column wins: MLflow fills ParamSchema defaults into
    # params even when the caller sent none, so params are only the fallback.
    # Any: the values are the caller's, unchecked until GenerationSettings validates them.
    values: dict[str, Any] = {"temperature": DEFAULT_TEMPERATURE, "max_tokens": DEFAULT_MAX_TOKENS, "stop": ()}
    for field in _SETTING_FIELDS:
        if field in params and params[field] is not None:
            values[field] = params[field]
        if field in row and not _is_missing(row[field]):
            values[field] = row[field]
    return GenerationSettings(**values)


def requests_from_input(model_input: Any, params: Mapping[str, Any] | None) -> list[Request]:
    """Every row of the input as a validated request (raises PromptError/InvalidParameter)."""
    params = dict(params or {})
    if isinstance(model_input, list) and all(isinstance(x, str) for x in model_input):
        # A plain list of prompts needs no table: settings come from params alone.
        settings = _row_settings({}, params)
        return [Request(prompt, settings) for prompt in model_input]
    frame = _as_frame(model_input)
    prompts = frame["prompt"].tolist()
    columns = [f for f in _SETTING_FIELDS if f in frame.columns]
    if not columns:  # the gateway's shape: one setting for every row, validated once
        settings = _row_settings({}, params)
        return [Request(prompt, settings) for prompt in prompts]
    values = zip(*(frame[c].tolist() for c in columns))
    return [Request(prompt, _row_settings(dict(zip(columns, row)), params)) for prompt, row in zip(prompts, values)]


# MLflow warns at class creation that predict has no type hints; the signature is
# given explicitly at log time (hints would replace it), so the warning is noise.
# record=True swallows it: MLflow resets the filters inside, not the recorder.
with warnings.catch_warnings(record=True):

    class MPTInstruct(PythonModel):
        """Answers every row of its input with MPT-Instruct; one string per row."""

        def load_context(self, context: Any) -> None:
            try:
                cfg = LoadConfig.from_mapping(getattr(context, "model_config", None))
            except ValueError as error:
                raise _invalid(error) from error
            try:
                self.generator = Generator.from_pretrained(context.artifacts[ARTIFACT_KEY], cfg)
            except LoadError as error:
                raise MlflowException(str(error)) from error
            # Exposed so callers (and the gate's spy) find the transformers model and tokenizer.
            self.model = self.generator.model
            self.tokenizer = self.generator.tokenizer

        # Typed by a comment, not annotations: MLflow reads predict's annotations to infer and
        # enforce a signature, which would replace the one given at log time.
        def predict(self, context, model_input, params=None):  # type: (Any, Any, Mapping[str, Any] | None) -> list[str]
            try:
                requests = requests_from_input(model_input, params)
                if not requests:
                    # The tokenizer raises IndexError on an empty batch, which the scoring
                    # server would answer with a stack trace; zero rows get zero answers.
                    return []
                return self.generator.generate(requests)
            except (PromptError, InvalidParameter) as error:
                raise _invalid(error) from error
