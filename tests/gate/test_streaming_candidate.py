"""A correct wrapper that streams (a TextIteratorStreamer fed by generate in a thread) is
judged on its trimming like any other: the scripted generate feeds its streamer and ends it,
so it neither hangs nor fails for a shortcut of the script. Judged in process (_judge.py)."""

import threading

import pandas as pd
import torch
from mlflow.pyfunc import PythonModel
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

from _judge import judge  # noqa: F401  (judge is a fixture)
from harness.gate.report import Status
from harness.model.prompt import build_prompt


class Streaming(PythonModel):
    """One row at a time, its text read off a streamer while generate runs in a thread."""

    def load_context(self, context):
        path = context.artifacts["repository"]
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

    def _one(self, instruction: str, temperature: float, max_tokens: int) -> str:
        encoded = self.tokenizer(build_prompt(instruction), return_tensors="pt")
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=30)
        sampling = {"do_sample": False} if temperature == 0 else {"do_sample": True, "temperature": temperature}
        failed = []

        def run():
            try:
                self.model.generate(
                    **encoded,
                    streamer=streamer,
                    max_new_tokens=max_tokens,
                    pad_token_id=self.tokenizer.eos_token_id,
                    **sampling,
                )
            except Exception as error:  # noqa: BLE001 - raised again in predict's thread
                failed.append(error)

        worker = threading.Thread(target=run)
        worker.start()
        text = "".join(streamer)
        worker.join()
        if failed:
            raise failed[0]
        return text

    def predict(self, context, model_input, params=None):
        params = params or {}
        temperature = float(params.get("temperature") or 0.0)
        max_tokens = int(params.get("max_tokens") or 64)
        prompts = model_input["prompt"].tolist() if isinstance(model_input, pd.DataFrame) else list(model_input)
        return [self._one(p, temperature, max_tokens) for p in prompts]


def test_a_streaming_wrapper_is_judged_on_its_trimming(judge):
    results = judge(Streaming, only=("trim.exact", "output.type", "rows.all", "prompt.template"))
    bad = {k: r.message[:300] for k, r in results.items() if r.status in (Status.FAIL, Status.ERROR)}
    assert bad == {}
    assert results["trim.exact"].status is Status.PASS, results["trim.exact"].message


class WithScores(Streaming):
    """Correct too, but asks generate for scores, which a script cannot give."""

    def _one(self, instruction: str, temperature: float, max_tokens: int) -> str:
        encoded = self.tokenizer(build_prompt(instruction), return_tensors="pt")
        out = self.model.generate(
            **encoded,
            max_new_tokens=max_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.eos_token_id,
            output_scores=True,
            return_dict_in_generate=True,
        )
        new = out.sequences[0, encoded["input_ids"].shape[1] :]
        return self.tokenizer.decode(new, skip_special_tokens=True)


def test_a_case_the_script_cannot_honour_is_skipped_with_its_reason(judge):
    result = judge(WithScores, only=("trim.exact",))["trim.exact"]
    assert result.status is Status.SKIPPED, result.message
    assert result.message.startswith("skipped: the eos_then_padding case")
    assert "output_scores=True" in result.message
    assert set(result.evidence) == {"real", "eos_real"}  # the real generations were judged
