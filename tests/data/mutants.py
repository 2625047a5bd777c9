"""Mutants of the reference wrapper, one defect each, for the gate's tests.

Each is a ``mlflow.pyfunc.PythonModel`` the gate takes as ``FILE.py:CLASS``.
``CAUGHT_BY`` names the checks meant to catch each (and the signature it is logged with).
"""

from __future__ import annotations

import pandas as pd

from harness.model.generation import Generator, Request, trim_generated
from harness.model.prompt import INSTRUCTION_KEY, INTRO_BLURB, RESPONSE_KEY
from harness.model.settings import GenerationSettings
from harness.model.wrapper import MPTInstruct, requests_from_input

# What fails for each mutant, judged on behaviour: several checks see most defects, since a
# wrong prompt or trim also changes the answers the reference would give. params.stop judges
# the cut against the candidate's own answers without stop, so it fails only where the cut
# itself goes wrong (a trim applied around the cut, a validation that drops stop).
_STOP = "params.stop"
_ANSWERS = "answers.reference"
_GREEDY = "params.temperature_zero"
CAUGHT_BY = {
    "IndentedPrompt": ({"prompt.template", _ANSWERS, _GREEDY}, "gateway"),
    "TruncatedPrompt": ({"prompt.template", _ANSWERS}, "gateway"),
    "FirstRowOnly": ({"rows.all", _ANSWERS, "params.max_tokens", _GREEDY}, "gateway"),
    "BareStringForOneRow": ({"output.type"}, "gateway"),
    # Both also let a blank instruction reach the template, whose PromptError (not an
    # MlflowException) the scoring server answers with a 500: open.inputs fails them.
    "RowZeroSettings": ({"params.max_tokens", "open.inputs"}, "columns"),
    "MaxTokensPlusOne": ({"params.max_tokens", _ANSWERS, _GREEDY}, "gateway"),
    # Sampling at temperature 0 raises inside generate: params.temperature_zero fails; the
    # checks that compare greedy answers have nothing to compare and say skipped, naming it.
    "SamplesAtZero": ({_GREEDY}, "gateway"),
    "AlwaysGreedy": ({"params.temperature"}, "gateway"),
    # Any positive temperature sampled at 1.0: varies, so only a low temperature shows it.
    "FixedTemperature": ({"params.temperature_low"}, "gateway"),
    "NoValidation": ({"params.invalid", "prompt.context", _STOP, "open.inputs"}, "gateway"),
    "EchoesPrompt": ({"trim.exact", _ANSWERS, _GREEDY, _STOP}, "gateway"),
    "OffByOne": ({"trim.exact", _ANSWERS, _GREEDY, _STOP}, "gateway"),
    # Greedy, but the answers lose their edge whitespace: trim.exact and the answers see it.
    "StripsWhitespace": ({"trim.exact", _ANSWERS, _STOP}, "gateway"),
    # Finished rows padded with a regular token: text after EOS (seen once a row ends early).
    "RegularTokenPadding": ({"trim.exact"}, "gateway"),
    "KeepsSpecialTokens": ({"trim.exact", _STOP}, "gateway"),
    "ReEncodedPromptLength": ({"trim.exact", _ANSWERS, _GREEDY, _STOP}, "gateway"),
    "PiecewiseDecode": ({"trim.exact", _ANSWERS, _STOP}, "gateway"),
    "NoKVCache": ({"generate.use_cache"}, "gateway"),
    "CudaHardCoded": ({"load"}, "gateway"),
}


class _Mutant(MPTInstruct):
    """The reference with its Generator swapped for a subclass carrying one defect."""

    generator_class: type = Generator

    def load_context(self, context):
        super().load_context(context)
        self.generator.__class__ = self.generator_class


def _unchecked(temperature, max_tokens) -> GenerationSettings:
    settings = object.__new__(GenerationSettings)
    for name, value in (("temperature", temperature), ("max_tokens", max_tokens), ("stop", ())):
        object.__setattr__(settings, name, value)
    return settings


# --- prompt ---------------------------------------------------------------------------------


class _IndentedGenerator(Generator):
    def tokenize(self, instructions):
        prompts = [
            f"""{INTRO_BLURB}
        {INSTRUCTION_KEY}
        {i}
        {RESPONSE_KEY}
        """
            for i in instructions
        ]
        return self.tokenizer(prompts)["input_ids"]


class IndentedPrompt(_Mutant):
    generator_class = _IndentedGenerator


class _TruncatingGenerator(Generator):
    def pad(self, ids):
        encoded = super().pad(ids)
        return {k: v[:, -96:] for k, v in encoded.items()}  # silently keeps the last 96 tokens


class TruncatedPrompt(_Mutant):
    generator_class = _TruncatingGenerator


# --- rows and output --------------------------------------------------------------------------


class FirstRowOnly(MPTInstruct):
    def predict(self, context, model_input, params=None):
        return super().predict(context, model_input.iloc[:1], params)


class BareStringForOneRow(MPTInstruct):
    def predict(self, context, model_input, params=None):
        answers = super().predict(context, model_input, params)
        return answers[0] if len(answers) == 1 else answers


class RowZeroSettings(MPTInstruct):
    def predict(self, context, model_input, params=None):
        requests = requests_from_input(model_input, params)
        first = requests[0].settings
        return self.generator.generate([Request(r.instruction, first) for r in requests])


# --- settings ---------------------------------------------------------------------------------


class _PlusOneGenerator(Generator):
    def generate_ids(self, encoded, settings, **extra):
        return super().generate_ids(encoded, settings, max_new_tokens=settings.max_tokens + 1)


class MaxTokensPlusOne(_Mutant):
    generator_class = _PlusOneGenerator


class _SamplingGenerator(Generator):
    def generate_ids(self, encoded, settings, **extra):
        # The published call: do_sample=True whatever the temperature; transformers rejects 0.
        return self.model.generate(
            input_ids=encoded["input_ids"],
            attention_mask=encoded["attention_mask"],
            pad_token_id=self.tokenizer.pad_token_id,
            do_sample=True,
            temperature=settings.temperature,
            max_new_tokens=settings.max_tokens,
            use_cache=True,
        )


class SamplesAtZero(_Mutant):
    generator_class = _SamplingGenerator


class _GreedyGenerator(Generator):
    def generate_ids(self, encoded, settings, **extra):
        return super().generate_ids(encoded, GenerationSettings(0.0, settings.max_tokens))


class AlwaysGreedy(_Mutant):
    generator_class = _GreedyGenerator


class _TrustingGenerator(Generator):
    def validate(self, requests, ids=None):
        pass


class NoValidation(_Mutant):
    generator_class = _TrustingGenerator

    def predict(self, context, model_input, params=None):
        params = params or {}
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        settings = _unchecked(params.get("temperature", 1.0), params.get("max_tokens", 100))
        return self.generator.generate([Request(p, settings) for p in frame["prompt"]])


# --- trimming ---------------------------------------------------------------------------------


class _TrimGenerator(Generator):
    def trim(self, rows, width):
        return trim_generated(rows, width, self.tokenizer.decode)

    def generate_batch(self, instructions, settings, ids=None):
        encoded = self.encode(instructions) if ids is None else self.pad(ids)
        output = self.generate_ids(encoded, settings).tolist()
        return self.trim(output, encoded["input_ids"].shape[1])


class _EchoGenerator(_TrimGenerator):
    def trim(self, rows, width):
        return trim_generated(rows, 0, self.tokenizer.decode)


class EchoesPrompt(_Mutant):
    generator_class = _EchoGenerator


class _OffByOneGenerator(_TrimGenerator):
    def trim(self, rows, width):
        return trim_generated(rows, width + 1, self.tokenizer.decode)


class OffByOne(_Mutant):
    generator_class = _OffByOneGenerator


class _StripGenerator(_TrimGenerator):
    def trim(self, rows, width):
        return [a.strip() for a in super().trim(rows, width)]


class StripsWhitespace(_Mutant):
    generator_class = _StripGenerator


class _FixedTemperatureGenerator(Generator):
    def generate_ids(self, encoded, settings, **extra):
        if not settings.greedy:
            extra = {**extra, "temperature": 1.0}
        return super().generate_ids(encoded, settings, **extra)


class FixedTemperature(_Mutant):
    generator_class = _FixedTemperatureGenerator


class _RegularPadGenerator(Generator):
    def generate_ids(self, encoded, settings, **extra):
        import torch

        with torch.inference_mode():  # pad id 5 is '$', an ordinary token
            return self.model.generate(
                input_ids=encoded["input_ids"],
                attention_mask=encoded["attention_mask"],
                pad_token_id=5,
                **{**settings.generate_kwargs(), **extra},
            )


class RegularTokenPadding(_Mutant):
    generator_class = _RegularPadGenerator


class _SpecialGenerator(_TrimGenerator):
    def trim(self, rows, width):
        return [self.tokenizer.decode(r[width:]) for r in rows]


class KeepsSpecialTokens(_Mutant):
    generator_class = _SpecialGenerator


class _ReEncodeGenerator(_TrimGenerator):
    def generate_batch(self, instructions, settings, ids=None):
        encoded = self.encode(instructions) if ids is None else self.pad(ids)
        output = self.generate_ids(encoded, settings).tolist()
        lengths = self.prompt_lengths(instructions)  # the seed re-encodes the unpadded prompt
        return [self.tokenizer.decode(row[n:], skip_special_tokens=True) for row, n in zip(output, lengths)]


class ReEncodedPromptLength(_Mutant):
    generator_class = _ReEncodeGenerator


class _PiecewiseGenerator(_TrimGenerator):
    def trim(self, rows, width):
        return ["".join(self.tokenizer.decode([t], skip_special_tokens=True) for t in r[width:]) for r in rows]


class PiecewiseDecode(_Mutant):
    generator_class = _PiecewiseGenerator


# --- cache and device -------------------------------------------------------------------------


class _NoCacheGenerator(Generator):
    def generate_ids(self, encoded, settings, **extra):
        return super().generate_ids(encoded, settings, use_cache=False)


class NoKVCache(_Mutant):
    generator_class = _NoCacheGenerator


class CudaHardCoded(MPTInstruct):
    def load_context(self, context):
        super().load_context(context)
        self.model.to(device="cuda")
