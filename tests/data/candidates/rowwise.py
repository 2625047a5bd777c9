"""Held-out candidates by a second author who had not seen the gate's checks (session of
2026-11-27): a correct wrapper in an unusual style, and one-line defects of it.

RowWise is correct:

- the model, tokenizer and limits live in a plain dict (self._s)
- every row is tokenized and generated on its own (no padding at all)
- generate is called positionally: generate(input_ids, GenerationConfig(...))
  with max_length arithmetic (prompt length + max_tokens)
- stop strings also stop generation early (a StoppingCriteria), then the text is
  cut before the earliest stop string
- the answer is the decode of the new ids only
- returns a list of strings

Its defects override one hook each: where the stop cut lands, which rows get the stop
strings, how the instruction is placed, what container comes back.
"""
import math
import numbers

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

HEAD = ("Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.\n"
        "### Instruction:\n")
TAIL = "\n### Response:\n"


def _bad(field, value, why):
    text = repr(value)
    if len(text) > 120:
        text = text[:120] + "...(%d chars)" % len(text)
    return MlflowException("%s=%s is invalid: %s" % (field, text, why),
                           error_code=INVALID_PARAMETER_VALUE)


class RowWise(PythonModel):
    _early_stop = True  # a StoppingCriteria that agrees with the cut

    def load_context(self, context):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        where = context.artifacts["repository"]
        tok = AutoTokenizer.from_pretrained(where)
        net = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32)
        net.eval()
        eos = tok.eos_token_id
        ctx = getattr(net.config, "max_seq_len", None) or net.config.max_position_embeddings
        self._s = {"tok": tok, "net": net, "eos": eos, "ctx": int(ctx)}

    # -- input handling -------------------------------------------------
    @staticmethod
    def _rows(model_input):
        if isinstance(model_input, pd.DataFrame):
            if "prompt" in model_input.columns:
                return list(model_input["prompt"])
            return list(model_input.iloc[:, 0])
        if isinstance(model_input, dict):
            v = model_input.get("prompt")
            return list(v) if isinstance(v, (list, tuple)) else [v]
        if isinstance(model_input, str):
            return [model_input]
        return list(model_input)

    @staticmethod
    def _temperature(v):
        if v is None:
            return 1.0
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)) \
                or not 0.0 <= float(v) <= 2.0:
            raise _bad("temperature", v, "must be a finite number between 0 and 2")
        return float(v)

    @staticmethod
    def _max_tokens(v, room):
        if v is None:
            v = 100
        if isinstance(v, bool):
            raise _bad("max_tokens", v, "must be an integer")
        if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral):
            if not (math.isfinite(float(v)) and float(v).is_integer()):
                raise _bad("max_tokens", v, "must be an integer")
        if not isinstance(v, numbers.Real):
            raise _bad("max_tokens", v, "must be an integer")
        v = int(v)
        if v < 1 or v > room:
            raise _bad("max_tokens", v, "must be between 1 and %d for this prompt" % room)
        return v

    @staticmethod
    def _stops(v):
        if v is None:
            return []
        if isinstance(v, str):
            v = [v]
        v = list(v)
        if not all(isinstance(s, str) and s for s in v):
            raise _bad("stop", v, "must be a list of non-empty strings")
        return v

    # -- hooks the defects override ---------------------------------------
    @staticmethod
    def _cut(text, stops):
        hits = [text.find(s) for s in stops if s and text.find(s) >= 0]
        return text[: min(hits)] if hits else text

    @staticmethod
    def _instruction(text):
        return text

    @staticmethod
    def _row_stops(row, stops):
        return stops

    @staticmethod
    def _finish(answers):
        return answers

    # -- generation -----------------------------------------------------
    def _one(self, ids, temperature, max_tokens, stops):
        import torch
        from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

        s = self._s
        tok, start = s["tok"], len(ids)
        longest = max((len(x) for x in stops), default=0)

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kw):
                text = tok.decode(input_ids[0, start:], skip_special_tokens=True)
                hits = [text.find(x) for x in stops if text.find(x) >= 0]
                # stop only once no earlier hit can still appear
                done = bool(hits) and len(text) - min(hits) >= longest + 4
                return torch.tensor([done])

        cfg = dict(max_length=start + max_tokens, use_cache=True, pad_token_id=s["eos"],
                   eos_token_id=s["eos"])
        if temperature == 0.0:
            cfg.update(do_sample=False)
        else:
            cfg.update(do_sample=True, temperature=temperature)
        crit = StoppingCriteriaList([_Stop()]) if stops and self._early_stop else None
        with torch.no_grad():
            out = s["net"].generate(torch.tensor([ids]), GenerationConfig(**cfg),
                                    stopping_criteria=crit)
        new = out[0, start:].tolist()
        return self._cut(tok.decode(new, skip_special_tokens=True), stops)

    def predict(self, context, model_input, params=None):
        params = params or {}
        rows = self._rows(model_input)
        if not rows:
            return []
        temperature = self._temperature(params.get("temperature"))
        stops = self._stops(params.get("stop"))
        todo = []
        for text in rows:
            if not isinstance(text, str) or not text.strip():
                raise _bad("prompt", text, "must be a non-blank string")
            ids = self._s["tok"](HEAD + self._instruction(text) + TAIL)["input_ids"]
            room = self._s["ctx"] - len(ids)
            if room < 1:
                raise _bad("prompt", text, "is %d tokens with the template; at most %d allowed"
                           % (len(ids), self._s["ctx"] - 1))
            todo.append((ids, self._max_tokens(params.get("max_tokens"), room)))
        answers = [self._one(ids, temperature, mt, self._row_stops(i, stops))
                   for i, (ids, mt) in enumerate(todo)]
        return self._finish(answers)


class StopListOrder(RowWise):
    """Cuts at the first stop string in list order that occurs, not the earliest in the text."""

    _early_stop = False

    @staticmethod
    def _cut(text, stops):
        for s in stops:
            if s and s in text:
                return text[: text.index(s)]
        return text


class StopLastOccurrence(RowWise):
    """Cuts before the last occurrence of a stop string."""

    _early_stop = False

    @staticmethod
    def _cut(text, stops):
        hits = [text.rfind(s) for s in stops if s and text.rfind(s) >= 0]
        return text[: max(hits)] if hits else text


class StopRowZeroOnly(RowWise):
    """Applies the stop strings to the first row only."""

    @staticmethod
    def _row_stops(row, stops):
        return stops if row == 0 else []


class StripsInstruction(RowWise):
    """Strips the instruction before templating (the contract keeps it verbatim)."""

    @staticmethod
    def _instruction(text):
        return text.strip()


class SeriesOutput(RowWise):
    """Returns a pandas Series, which MLflow's scoring server sends as [{"0": ...}]."""

    @staticmethod
    def _finish(answers):
        return pd.Series(answers)
