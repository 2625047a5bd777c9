"""Show, in bfloat16 on CPU, that every defect in precision.py parts from the reference at
temperature 0 and that every correct class gives exactly the reference's answers.

Run from the repository root: ``python tests/data/candidates/precision_harm.py``. Each class
and the reference are loaded with model_config {"dtype": "bfloat16", "device": "cpu"} from
the peaked tiny snapshot and asked the same requests; the rows where a candidate's answer
differs are printed (the first differing character and both answers around it). Exits 1 if
a defect shows no difference, a correct class differs, or a class did not load in bfloat16.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore")

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

import precision  # noqa: E402
from harness.model.snapshot import cached_tiny  # noqa: E402
from harness.model.wrapper import MPTInstruct  # noqa: E402

SNAPSHOT = str(cached_tiny(peaked=True))
MODEL_CONFIG = {"dtype": "bfloat16", "device": "cpu"}

# Varied lengths (2 to 40+ words), some repeating words so repetition-based defects show;
# "poem colour the list ..." and "colour dog code ..." are ones the peaked snapshot ends
# with EOS before 24 tokens in bfloat16.
PROMPTS = [
    "hi",
    "Name a colour.",
    "List two fruits.",
    "Repeat after me: the cat the cat the cat the cat.",
    "Write a poem about rain, rain, rain and more rain.",
    "poem colour the list tuple fruit hi rain fruit code",
    "colour dog code explain model say tuple fruit fruit model poem",
    "Summarise: " + "word " * 40 + "end.",
    "Explain the difference between a list and a tuple in Python, with examples of each and when to use them.",
]

# (label, model_input, params): all at temperature 0.
REQUESTS = [
    ("9 rows, max_tokens 24", pd.DataFrame({"prompt": PROMPTS}),
     {"temperature": 0.0, "max_tokens": 24}),
    ("9 rows, max_tokens 24, stop [' thre', 'machine']", pd.DataFrame({"prompt": PROMPTS}),
     {"temperature": 0.0, "max_tokens": 24, "stop": [" thre", "machine"]}),
    ("9 rows, max_tokens 64", pd.DataFrame({"prompt": PROMPTS}),
     {"temperature": 0.0, "max_tokens": 64}),
    ("list of 3, max_tokens 1", PROMPTS[:3], {"temperature": 0.0, "max_tokens": 1}),
]


def load(cls):
    model = cls()
    model.load_context(SimpleNamespace(artifacts={"repository": SNAPSHOT}, model_config=dict(MODEL_CONFIG)))
    return model


def ask(model, model_input, params):
    answers = model.predict(None, model_input.copy() if isinstance(model_input, pd.DataFrame) else list(model_input),
                            dict(params))
    return list(answers)


def short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def where(ref: str, got: str) -> str:
    at = next((i for i, (a, b) in enumerate(zip(ref, got)) if a != b), min(len(ref), len(got)))
    lo = max(0, at - 12)
    return (f"first differs at char {at} (ref {len(ref)} chars, got {len(got)}): "
            f"ref …{ref[lo:at + 24]!r} / got …{got[lo:at + 24]!r}")


def main() -> int:
    torch.manual_seed(0)
    reference = load(MPTInstruct)
    print(f"snapshot {SNAPSHOT}; reference dtype {next(reference.model.parameters()).dtype}")
    expected = [ask(reference, model_input, params) for _, model_input, params in REQUESTS]
    failures: list[str] = []

    for name, kind in precision.KIND.items():
        cls = getattr(precision, name)
        model = load(cls)
        dtype = next(model.model.parameters()).dtype
        print(f"\n== {name} ({kind}; loaded in {dtype}): {precision.WHAT[name]}")
        if dtype != torch.bfloat16:
            failures.append(f"{name}: loaded in {dtype}, not bfloat16")
        differing = 0
        for (label, model_input, params), ref in zip(REQUESTS, expected):
            got = ask(model, model_input, params)
            rows = [i for i, (a, b) in enumerate(zip(ref, got)) if a != b]
            if len(got) != len(ref):
                rows.append(len(ref))
            differing += len(rows)
            print(f"  {label}: {len(rows)} of {len(ref)} rows differ")
            prompts = model_input["prompt"].tolist() if isinstance(model_input, pd.DataFrame) else model_input
            for i in rows:
                if i >= len(ref) or i >= len(got):
                    print(f"    answers: {len(got)} returned, {len(ref)} expected")
                    continue
                print(f"    row {i} [{short(prompts[i], 40)!r}]: {where(ref[i], got[i])}")
        if kind == "defect" and differing == 0:
            failures.append(f"{name}: a defect, but every answer is the reference's")
        if kind == "correct" and differing:
            failures.append(f"{name}: correct, but {differing} answers differ from the reference's")

    print()
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"OK: {sum(k == 'correct' for k in precision.KIND.values())} correct classes give the reference's "
          f"answers in bfloat16; each of {sum(k == 'defect' for k in precision.KIND.values())} defects differs.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
