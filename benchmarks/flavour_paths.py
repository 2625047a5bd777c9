"""predict() speed of the two ways an MPT model enters MLflow, on the tiny snapshot: the
reference PyFunc (gateway signature) and MLflow's transformers flavour (llm/v1/completions,
MPT-Instruct prompt_template); median of 15 calls, 16 new tokens, batch 1 and 8.

    python benchmarks/flavour_paths.py
"""

import logging
import statistics
import tempfile
import time

import mlflow
import pandas as pd

from harness.model.signature import SignatureKind
from harness.model.snapshot import cached_tiny
from harness.store import StoreConfig, log_model, log_transformers

PROMPT = "What is MLflow?"


def _median_ms(fn, calls: int = 15) -> float:
    fn()  # warm-up
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    logging.disable(logging.WARNING)
    snapshot = cached_tiny()
    store = StoreConfig(home=tempfile.mkdtemp(prefix="harness-flavour-"))
    with store.activated(), mlflow.start_run():
        reference = mlflow.pyfunc.load_model(log_model(snapshot, SignatureKind.GATEWAY).model_uri)
        flavour = mlflow.pyfunc.load_model(log_transformers(snapshot).model_uri)
    for batch in (1, 8):
        prompts = [f"{PROMPT} ({i})" for i in range(batch)]
        ref = _median_ms(lambda: reference.predict(pd.DataFrame({"prompt": prompts}),
                                                   params={"temperature": 0.0, "max_tokens": 16}))
        # Temperature 0 raises inside the flavour's generate; without it, it decodes greedily.
        tf = _median_ms(lambda: flavour.predict(pd.DataFrame({"prompt": prompts,
                                                              "max_tokens": [16] * batch})))
        print(f"batch {batch}: reference pyfunc {ref:.1f} ms, transformers flavour {tf:.1f} ms")


if __name__ == "__main__":
    main()
