"""The reference MLflow PyFunc wrapper for MPT-7B-Instruct (and the tiny snapshot).

A thin adapter: it turns MLflow inputs (a DataFrame with a ``prompt`` column and
optionally ``temperature``/``max_tokens`` columns, plus params) into validated
requests, and hands them to :class:`harness.model.generation.Generator`.
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


def _invalid(error: Exception) -> MlflowException:
    return MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_frame(model_input: Any) -> pd.DataFrame:
    if isinstance(model_input, pd.DataFrame):
        frame = model_input
    elif isinstance(model_input, str):
        frame = pd.DataFrame({"prompt": [model_input]})
    elif isinstance(model_input, Mapping):
        frame = pd.DataFrame({k: v if isinstance(v, list) else [v] for k, v in model_input.items()})
    elif isinstance(model_input, list) and all(isinstance(x, str) for x in model_input):
        frame = pd.DataFrame({"prompt": model_input})
    else:
        raise PromptError(f"prompt: expected a DataFrame with a 'prompt' column or a list of "
                          f"strings, got {type(model_input).__name__}")
    if "prompt" not in frame.columns:
        if frame.shape[1] != 1:
            raise PromptError(f"prompt: input has no 'prompt' column (columns: {list(frame.columns)})")
        frame = frame.set_axis(["prompt"], axis=1)
    return frame


def _row_settings(row: Mapping[str, Any], params: Mapping[str, Any]) -> GenerationSettings:
    # A value in the row's own column wins: MLflow fills ParamSchema defaults into
    # params even when the caller sent none, so params are only the fallback.
    values = {"temperature": DEFAULT_TEMPERATURE, "max_tokens": DEFAULT_MAX_TOKENS, "stop": ()}
    for field in _SETTING_FIELDS:
        if field in params and params[field] is not None:
            values[field] = params[field]
        if field in row and not _is_missing(row[field]):
            values[field] = row[field]
    return GenerationSettings(**values)


def requests_from_input(model_input: Any, params: Mapping[str, Any] | None) -> list[Request]:
    """Every row of the input as a validated request (raises PromptError/InvalidParameter)."""
    frame = _as_frame(model_input)
    params = dict(params or {})
    return [Request(row["prompt"], _row_settings(row, params))
            for row in frame.to_dict("records")]


# MLflow warns at class creation that predict has no type hints; the signature is
# given explicitly at log time (hints would replace it), so the warning is noise.
# record=True swallows it: MLflow resets the filters inside, not the recorder.
with warnings.catch_warnings(record=True):

    class MPTInstruct(PythonModel):
        """Answers every row of its input with MPT-Instruct; one string per row."""

        def load_context(self, context) -> None:
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

        def predict(self, context, model_input, params=None):
            try:
                requests = requests_from_input(model_input, params)
                return self.generator.generate(requests)
            except (PromptError, InvalidParameter) as error:
                raise _invalid(error) from error
