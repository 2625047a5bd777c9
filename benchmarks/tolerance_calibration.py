"""Calibrate the gate's tolerant oracle: how often, and by how much, does a correct batched
greedy decoding differ from the same row decoded alone?

For random prompts in batches of 8 (left-padded, mixed lengths) it decodes each batch
greedily, then each row alone, and reports the rows whose ids diverge, the rank of the
batched token in the alone run's distribution at the first divergence, and the log-probability
gap there; and the largest change a batch makes to any next-token log-probability. The
tolerant rule (harness/gate/tolerance.py) must accept every divergence seen here.

    python benchmarks/tolerance_calibration.py --dtype bfloat16 --rows 400
    python benchmarks/tolerance_calibration.py --device cuda --dtype bfloat16 --snapshot DIR

Needs torch, transformers and pydantic (harness' settings), not MLflow: on the bare GPU
machine pydantic's wheels (pydantic, pydantic-core, annotated-types, typing-inspection) travel along.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from harness.model.generation import Generator  # noqa: E402
from harness.model.loading import LoadConfig  # noqa: E402
from harness.model.snapshot import cached_tiny  # noqa: E402

_WORDS = (
    "the a route model signature MLflow cache token answer prompt GPU batch what is how "
    "why explain name list café 東京 code def return 1 2 3 , . ? !"
).split()


def _decode(gen: Generator, prompts: list[str], new_tokens: int):
    encoded = gen.pad(gen.tokenize(prompts))
    width = encoded["input_ids"].shape[1]
    with torch.inference_mode():
        out = gen.model.generate(
            **encoded,
            do_sample=False,
            max_new_tokens=new_tokens,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=gen.tokenizer.pad_token_id,
            eos_token_id=None,
        )
    logprobs = torch.stack([torch.log_softmax(s.float(), -1) for s in out.logits], 1)
    return out.sequences[:, width:].tolist(), logprobs


def calibrate(gen: Generator, rows: int, new_tokens: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    prompts = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 120))) for _ in range(rows)]
    divergences, first_step_change = [], 0.0
    for start in range(0, rows, 8):
        batch = prompts[start : start + 8]
        batched, batched_lp = _decode(gen, batch, new_tokens)
        for i, prompt in enumerate(batch):
            alone, alone_lp = _decode(gen, [prompt], new_tokens)
            first_step_change = max(first_step_change, float((alone_lp[0, 0] - batched_lp[i, 0]).abs().max()))
            step = next((k for k, (a, b) in enumerate(zip(alone[0], batched[i])) if a != b), None)
            if step is None:
                continue
            lp = alone_lp[0, step]
            rank = int((lp > lp[batched[i][step]]).sum())
            divergences.append(
                {
                    "row": start + i,
                    "step": step,
                    "rank": rank,
                    "gap": round(float(lp[alone[0][step]] - lp[batched[i][step]]), 4),
                }
            )
    return {
        "rows": rows,
        "new_tokens": new_tokens,
        "diverged": len(divergences),
        "max_rank": max((d["rank"] for d in divergences), default=None),
        "max_gap": max((d["gap"] for d in divergences), default=None),
        "max_first_step_logprob_change": round(first_step_change, 4),
        "divergences": divergences,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snapshot", default=None, help="default: the peaked tiny snapshot")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    snapshot = args.snapshot or str(cached_tiny(peaked=True))
    gen = Generator.from_pretrained(snapshot, LoadConfig(device=args.device, dtype=args.dtype))
    result = calibrate(gen, args.rows, args.new_tokens, args.seed)
    print(json.dumps({"snapshot": snapshot, "device": args.device, "dtype": args.dtype, **result}, indent=2))


if __name__ == "__main__":
    main()
