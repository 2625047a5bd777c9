"""Show, in process, what each class of explored.py does on its HARM bodies.

    python tests/data/candidates/explored_harm.py [ClassName ...]

Every class is loaded fresh (``cls().load_context(...)`` on the tiny snapshot); each body
is parsed the way the scoring server parses it (``parse_payload`` with the GATEWAY
signature) and answered with ``predict(None, data, params)``, next to a fresh reference
``harness.model.wrapper.MPTInstruct`` fed the same bodies in the same order.

An outcome is the answers, or the error as the scoring server would answer it: 400 naming
a field for ``MlflowException(error_code=INVALID_PARAMETER_VALUE)``, 500 with the exception
type for anything else. Answers are compared exactly at temperature 0; at temperature > 0
only the kind of outcome (answers, and how many, vs an error) is compared.

- a defect passes when at least one of its bodies, sent in order, gives a different outcome
  from the reference's (the first such body is printed);
- a correct class passes when every body of every defect (each defect's list in order, all on
  one instance, so state carried between requests shows too) plus a few extra bodies give
  the reference's outcome.

Exits 1 if any defect shows no harm or any correct class differs.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]

# Extra bodies for the correct classes: mixed lengths and unicode in one batch, stops that
# overlap, sit in the template, are whitespace or absent, both ends of max_tokens.
EXTRA = [
    {"inputs": ["Name a colour.", "What is MLflow? Answer in one sentence, please.", "café ☕ ﬁ ① ＡＢＣ",
                "  leading and trailing  \n", "Line one\r\nline two\tTabbed"],
     "params": {"temperature": 0.0, "max_tokens": 16, "stop": []}},
    {"inputs": ["What is MLflow?", "Name a colour.", "List two fruits."],
     "params": {"temperature": 0.0, "max_tokens": 20, "stop": ["zzz", "e", "thre_ thre", "d t"]}},
    {"inputs": ["What is MLflow?", "Explain the emoji \U0001F469\u200d\U0001F4BB"],
     "params": {"temperature": 0.0, "max_tokens": 20, "stop": ["\ufffd", "###", " machine"]}},
    {"inputs": ["Name a colour."], "params": {"temperature": 0.0, "max_tokens": 1, "stop": []}},
    {"inputs": ["Name a colour."], "params": {"temperature": 0.0, "max_tokens": 0, "stop": []}},
    {"inputs": ["Name a colour."], "params": {"temperature": 2.000001, "max_tokens": 4, "stop": []}},
    {"inputs": ["Name a colour."], "params": {"temperature": 0.0, "max_tokens": 4, "stop": [""]}},
    {"inputs": ["x " * 600], "params": {"temperature": 0.0, "max_tokens": 4, "stop": []}},
    {"inputs": ["Name a colour.", "Name a colour."], "params": {"temperature": 0.0, "max_tokens": 8, "stop": []}},
]


def _load_module():
    spec = importlib.util.spec_from_file_location("explored", HERE / "explored.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["explored"] = module
    # MLflow warns at class creation that predict has no type hints (noise here); it resets
    # the warning filters inside, so only a recorder swallows it.
    with warnings.catch_warnings(record=True):
        spec.loader.exec_module(module)
    return module


def _snapshot() -> str:
    from harness.model.snapshot import build_tiny

    return str(build_tiny(ROOT / ".harness" / "snapshots" / "tiny"))


def _outcome(model, body):
    from mlflow.exceptions import MlflowException

    from harness.model.signature import GATEWAY, parse_payload

    data, params = parse_payload(body, GATEWAY)
    try:
        answers = model.predict(None, data, params)
        return ("answers", [str(a) for a in answers])
    except MlflowException as error:
        message = error.message
        if error.error_code == "INVALID_PARAMETER_VALUE":
            named = re.match(r"\s*(\w+)=", message)
            return ("400", named.group(1) if named else "?", message[:160])
        return ("500", type(error).__name__, message[:160])
    except Exception as error:  # the scoring server answers any other exception with a 500
        return ("500", type(error).__name__, str(error)[:160])


def _same(body, mine, theirs) -> bool:
    if mine[0] != theirs[0]:
        return False
    if mine[0] == "answers":
        if body["params"].get("temperature", 0.0) == 0.0:
            return mine[1] == theirs[1]
        return len(mine[1]) == len(theirs[1])
    return mine[1] == theirs[1]  # the status and the field (400) or exception type (500)


def _show(outcome) -> str:
    if outcome[0] == "answers":
        return "answers " + repr(outcome[1])[:160]
    return f"{outcome[0]} {outcome[1]}: {outcome[2]!r}"


def _fresh(cls, snapshot):
    import torch

    torch.manual_seed(0)  # every sampled request starts from the same RNG state
    model = cls()
    model.load_context(SimpleNamespace(artifacts={"repository": snapshot}, model_config={}))
    return model


_REFERENCE: dict[str, list] = {}


def _run(cls, bodies, snapshot):
    """Outcomes of ``bodies`` sent in order to a fresh instance of ``cls``."""
    import json

    import torch
    from harness.model.wrapper import MPTInstruct

    key = json.dumps(bodies)
    if cls is MPTInstruct and key in _REFERENCE:
        return _REFERENCE[key]

    model = _fresh(cls, snapshot)
    outcomes = []
    for body in bodies:
        torch.manual_seed(1234)
        outcomes.append(_outcome(model, body))
    if cls is MPTInstruct:
        _REFERENCE[key] = outcomes
    return outcomes


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)  # a tiny model: threads only fight over the cores
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    from harness.model.wrapper import MPTInstruct

    module = _load_module()
    snapshot = _snapshot()
    names = argv or list(module.KIND)
    failures = []
    for name in names:
        kind, cls = module.KIND[name], getattr(module, name)
        start = time.monotonic()
        if kind == "defect":
            bodies = module.HARM[name]
            mine, theirs = _run(cls, bodies, snapshot), _run(MPTInstruct, bodies, snapshot)
            hit = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if not _same(bodies[i], a, b)), None)
            took = f"{time.monotonic() - start:.1f}s"
            if hit is None:
                failures.append(name)
                print(f"FAIL {name} (defect): no harm on {len(bodies)} bodies ({took})")
                continue
            print(f"ok   {name} (defect): body {hit + 1}/{len(bodies)} "
                  f"{bodies[hit]['inputs']!r:.80} params={bodies[hit]['params']} ({took})")
            print(f"       candidate: {_show(mine[hit])}")
            print(f"       reference: {_show(theirs[hit])}")
        else:
            bodies = [b for name_ in module.HARM for b in module.HARM[name_]] + EXTRA
            mine, theirs = _run(cls, bodies, snapshot), _run(MPTInstruct, bodies, snapshot)
            differ = [i for i, (a, b) in enumerate(zip(mine, theirs)) if not _same(bodies[i], a, b)]
            took = f"{time.monotonic() - start:.1f}s"
            if differ:
                failures.append(name)
                i = differ[0]
                print(f"FAIL {name} (correct): {len(differ)}/{len(bodies)} bodies differ; first: "
                      f"{bodies[i]['inputs']!r:.80} params={bodies[i]['params']} ({took})")
                print(f"       candidate: {_show(mine[i])}")
                print(f"       reference: {_show(theirs[i])}")
                continue
            print(f"ok   {name} (correct): {len(bodies)}/{len(bodies)} bodies give the reference's outcome ({took})")
            for i in (0, 9, len(bodies) - 4, len(bodies) - 1):
                print(f"       {bodies[i]['inputs']!r:.60} {bodies[i]['params']}: both {_show(mine[i])[:100]}")
    if failures:
        print(f"FAILED: {', '.join(failures)}")
        return 1
    print(f"all {len(names)} classes behave as labelled")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
