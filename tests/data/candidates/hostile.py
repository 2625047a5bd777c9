"""Hostile MPT-Instruct PyFunc wrappers: they attack the process that runs them.

A gate must judge these without dying, hanging or leaking: each one would
answer correctly (via ``_Works``) if it got that far, so only the runner's
isolation (a child process, timeouts, killing the whole process group)
stands between them and a pass or a wedged gate.

``_Works`` is not a PythonModel on purpose: only the hostile classes below
are candidates for a loader that collects PythonModel subclasses.
"""

from __future__ import annotations

import math
import numbers
import os
import subprocess
import sys
import time

import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from harness.model.prompt import build_prompt

# The child binds an ephemeral port on loopback and then idles forever; it is in
# its own session so that killing the gate's worker process group misses it.
_LISTENER = (
    "import socket, time\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
    "s.bind(('127.0.0.1', 0))\n"
    "s.listen()\n"
    "while True:\n"
    "    time.sleep(3600)\n"
)


def _sleep_forever() -> None:
    # A loop, not one long sleep: a signal handler that returns must not end the hang.
    while True:
        time.sleep(3600)


def _invalid(field: str, value: object) -> MlflowException:
    return MlflowException(f"{field}={value!r} is invalid", error_code=INVALID_PARAMETER_VALUE)


class _Works:
    """A plain correct wrapper (row by row, greedy or sampled) for the hostile ones to build on."""

    def load_context(self, context):
        path = context.artifacts["repository"]
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        self.limit = int(self.model.config.max_seq_len)

    def predict(self, context, model_input, params=None):
        params = dict(params or {})
        temperature = params.get("temperature")
        temperature = 0.0 if temperature is None else temperature
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
                or not 0.0 <= float(temperature) <= 2.0:  # NaN fails the comparison
            raise _invalid("temperature", temperature)
        max_tokens = params.get("max_tokens")
        max_tokens = 64 if max_tokens is None else max_tokens
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, numbers.Real) \
                or not math.isfinite(max_tokens) or int(max_tokens) != max_tokens or max_tokens < 1:
            raise _invalid("max_tokens", max_tokens)
        stop = params.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        if not all(isinstance(s, str) and s for s in stop):
            raise _invalid("stop", stop)
        try:
            prompts = [build_prompt(i) for i in model_input["prompt"].tolist()]
        except ValueError as error:
            raise _invalid("prompt", str(error)) from error
        encoded = [self.tokenizer(p, return_tensors="pt") for p in prompts]
        for enc in encoded:
            room = self.limit - enc["input_ids"].shape[1]
            if room < 1:
                raise _invalid("prompt", f"<{enc['input_ids'].shape[1]} tokens>")
            if int(max_tokens) > room:
                raise _invalid("max_tokens", max_tokens)
        how = {"do_sample": False} if temperature == 0 else {"do_sample": True, "temperature": float(temperature)}
        answers = []
        for enc in encoded:
            with torch.inference_mode():
                out = self.model.generate(**enc, max_new_tokens=int(max_tokens), use_cache=True,
                                          pad_token_id=self.tokenizer.pad_token_id, **how)
            text = self.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            cuts = [i for i in (text.find(s) for s in stop) if i >= 0]
            answers.append(text[:min(cuts)] if cuts else text)
        return answers


class ExitsInPredict(_Works, PythonModel):
    """Loads normally, then kills its interpreter with status 3 in predict (no exception, no cleanup)."""

    def predict(self, context, model_input, params=None):
        os._exit(3)


class HangsInLoad(_Works, PythonModel):
    """Never returns from load_context."""

    def load_context(self, context):
        _sleep_forever()


class HangsInPredict(_Works, PythonModel):
    """Loads normally, then never returns from predict."""

    def predict(self, context, model_input, params=None):
        _sleep_forever()


class SpawnsListener(_Works, PythonModel):
    """Starts a detached child listening on a loopback port in load_context, then answers correctly.

    The Popen is kept on ``self.listener`` only so that a test which ran this
    in-process can end the child by its pid; a gate must not rely on it.
    """

    def load_context(self, context):
        self.listener = subprocess.Popen([sys.executable, "-c", _LISTENER], start_new_session=True,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        super().load_context(context)


class RaisesSystemExit(_Works, PythonModel):
    """Loads normally, then raises SystemExit(0) in predict: a runner that lets it through exits with status 0."""

    def predict(self, context, model_input, params=None):
        raise SystemExit(0)


class HangsOnce(_Works, PythonModel):
    """Loads, then its first predict in a process hangs while the file named by
    ``HARNESS_HANGS_ONCE`` does not exist (it creates it): a restarted worker answers."""

    def predict(self, context, model_input, params=None):
        flag = os.environ.get("HARNESS_HANGS_ONCE")
        if flag and not os.path.exists(flag):
            open(flag, "w").close()
            time.sleep(3600)
        return super().predict(context, model_input, params)
