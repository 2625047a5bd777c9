"""A loaded candidate and the spy on its ``generate``, answering the gate's requests.

The worker process serves one of these over a pipe; fast tests use one in process. Every
request goes in as the JSON body the scoring server would get and is parsed the way
MLflow parses it, so the candidate sees exactly what it would see behind a route.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections.abc import Callable
from typing import Any

from harness.gate.spy import GenerateCall, GenerateSpy, Script
from harness.model.signature import parse_payload


class Probe:
    allowance: float | None = None  # the worker enforces working time; in process nothing does

    def __init__(self, model: Any, signature: Any, spy: GenerateSpy, reload: Callable[[], Any] | None = None):
        self.model, self.signature, self.spy = model, signature, spy
        self._reload = reload

    def reload(self) -> bool:
        """A freshly loaded model in place of the current one, with none of the state earlier
        requests left in it, so a reproducer is replayed as a user would replay it; False
        when this probe cannot load it again."""
        if self._reload is None:
            return False
        self.model = self._reload()
        return True

    def predict(self, payload: dict[str, Any]) -> Any:
        if self.signature is None:
            import pandas as pd

            return _portable(self.model.predict(pd.DataFrame(payload["dataframe_records"])))
        data, params = parse_payload(payload, self.signature)
        return _portable(self.model.predict(data, params=params))

    def predict_many(self, payloads: list[dict[str, Any]], threads: int) -> list[tuple[str, Any]]:
        """Each payload predicted from a pool of ``threads`` threads, as the scoring server's
        thread pool calls ``predict``. Every body is parsed first, and a barrier releases each
        group of ``threads`` calls into the model's ``predict`` at once, so they overlap as
        much as threads can. Per payload ("ok", answers) or ("raised", CandidateError)."""
        from concurrent.futures import ThreadPoolExecutor

        from harness.gate.worker import CandidateError

        barrier = threading.Barrier(max(1, min(threads, len(payloads))))

        def parsed(payload: dict[str, Any]) -> Callable[[], Any]:
            if self.signature is None:
                import pandas as pd

                frame = pd.DataFrame(payload["dataframe_records"])
                return lambda: self.model.predict(frame)
            data, params = parse_payload(payload, self.signature)
            return lambda: self.model.predict(data, params=params)

        def one(call: Callable[[], Any]) -> tuple[str, Any]:
            try:
                barrier.wait(timeout=30)
            except threading.BrokenBarrierError:
                pass  # a group smaller than the pool: it runs without waiting
            try:
                return "ok", _portable(call())
            except Exception as error:  # noqa: BLE001 - the candidate's error is its answer
                return "raised", CandidateError.of(error)

        calls = []
        for payload in payloads:
            try:
                calls.append(parsed(payload))
            except Exception as error:  # noqa: BLE001 - MLflow refusing the body is an answer too
                calls.append(_raiser(error))
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(one, calls))

    def calls(self) -> list[GenerateCall]:
        return list(self.spy.calls)

    def reset(self, script: Script | None = None) -> None:
        self.spy.reset(script)

    def seed(self, value: int) -> None:
        """The same RNG state at the start of each check: verdicts on sampled answers do not
        depend on what ran before."""
        import torch

        torch.manual_seed(value)

    def model_facts(self) -> dict[str, Any]:
        """Device, dtype, KV-cache default and a weights fingerprint of the model generate
        last ran on (None before any call)."""
        model = self.spy.model
        if model is None:
            return {}
        return {
            "device": str(getattr(model, "device", "unknown")),
            "dtype": str(getattr(model, "dtype", "unknown")),
            "class": type(model).__name__,
            "fingerprint": weights_fingerprint(model),
        }

    def close(self) -> None:
        self.spy.remove()


def weights_fingerprint(model: Any) -> str:
    """A hash of every parameter tensor's shape and a strided sample of its values (as
    float32): equal for the same weights in the same dtype, different for another snapshot
    or a fine-tune that touched any layer. Sampling keeps it cheap on a 7B model."""
    params = list(model.parameters())
    digest = hashlib.sha256(str(sum(p.numel() for p in params)).encode())
    for tensor in params:
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // _SAMPLES)
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(flat[::step][:_SAMPLES].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


_SAMPLES = 1024  # values hashed per tensor


def _raiser(error: Exception) -> Callable[[], Any]:
    def call() -> Any:
        raise error

    return call


def _portable(value: Any) -> Any:
    """The candidate's output as it can cross a pipe: itself if it pickles, else its repr."""
    try:
        pickle.dumps(value)
        return value
    except Exception:  # noqa: BLE001 - whatever a candidate returns is a verdict, not a crash
        return f"<unpicklable {type(value).__name__}: {repr(value)[:200]}>"
