"""p50/p90 latency of one completions request on three paths, same run, tiny model:
in-process ``predict``, the real scoring server, and the real AI Gateway in front of it.

    python benchmarks/serving_paths.py [--rounds 30] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import mlflow
import pandas as pd
import requests

from harness.gate.candidate import CandidateSpec, log_candidate
from harness.serving.gateway import NO_RETRY, CompletionRequest, LegacyGatewayClient, Transport
from harness.store import StoreConfig
from harness.serving.route import seed_route
from harness.serving.servers import gateway_server, scoring_server
from harness.model.signature import gateway_payload
from harness.model.snapshot import DEFAULT_TINY_DIR, build_tiny

PROMPT, MAX_TOKENS = "What is MLflow?", 16


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": 1000 * statistics.median(ordered),
        "p90_ms": 1000 * ordered[int(0.9 * (len(ordered) - 1))],
        "mean_ms": 1000 * statistics.fmean(ordered),
        "rounds": len(ordered),
    }


def _time(fn, rounds: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    store = StoreConfig(home=Path(tempfile.mkdtemp(prefix="harness-paths-")))
    with store.activated():
        uri = log_candidate(CandidateSpec(), build_tiny(DEFAULT_TINY_DIR))
        model = mlflow.pyfunc.load_model(uri)
    frame, params = pd.DataFrame({"prompt": [PROMPT]}), {"temperature": 0.0, "max_tokens": MAX_TOKENS}
    results = {"in_process_predict": _stats(_time(lambda: model.predict(frame, params=params), args.rounds))}
    with scoring_server(uri, store.uri) as server:
        body = gateway_payload([PROMPT], **params)
        results["scoring_server"] = _stats(
            _time(
                lambda: requests.post(f"{server.url}/invocations", json=body, timeout=60).raise_for_status(),
                args.rounds,
            )
        )
        route = seed_route(server.url)
        with gateway_server([route]) as gateway:
            client = LegacyGatewayClient(Transport(gateway.url, retry=NO_RETRY))
            request = CompletionRequest(PROMPT, 0.0, MAX_TOKENS)
            results["gateway"] = _stats(_time(lambda: client.query(route.name, request), args.rounds))
    report = {"schema_version": "1.0", "prompt": PROMPT, "max_tokens": MAX_TOKENS, "paths": results}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
