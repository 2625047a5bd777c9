"""Show, in process, what each class of open_inputs.py does on the three open inputs.

    python tests/data/candidates/open_inputs_harm.py [ClassName ...]

Every class is loaded fresh (``cls().load_context(...)`` on the tiny snapshot); each body
is parsed the way the scoring server parses it (``parse_payload`` with the GATEWAY
signature) and answered with ``predict(None, data, params)``.

An outcome is the answers, or the error as the scoring server would answer it: 400 naming
a field for ``MlflowException(error_code=INVALID_PARAMETER_VALUE)``, 500 with the exception
type for anything else.

What a body allows is worked out from the reference ``harness.model.wrapper.MPTInstruct``,
which refuses "" in stop and blank instructions and answers zero rows with []:

- the body "closed": "" removed from stop, blank rows taken out; the reference's outcome on
  it is due (a 400 stays a 400 naming the same field);
- blank rows are answered by the reference's own generator on the template rendered with the
  instruction as given (``PREFIX + instruction + SUFFIX``), put back in their places;
- zero rows: [];
- besides, a 400 naming ``stop`` is allowed when stop holds "", a 400 naming ``prompt`` when
  a row is blank, and any 400 when there are no rows.

Answers are compared exactly at temperature 0; at temperature > 0 only their number.

- every class: each OPEN body is sent and what came back is printed;
- a correct class passes when every OPEN body, every HARM body and every CLOSED body (several
  instructions, stops and max_tokens at temperature 0, invalid settings) gets an allowed
  outcome, all on one instance in order, and its choice on each open input (answer or
  refuse) is the one ``CHOICE`` gives;
- a defect passes when at least one of its HARM bodies, sent in order to a fresh instance,
  gets an outcome that is not allowed (the first such body is printed).

Exits 1 if any label does not hold.
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


def _p(max_tokens, stop=(), temperature=0.0):
    return {"temperature": temperature, "max_tokens": max_tokens, "stop": list(stop)}


# The open inputs, each alone, tagged with which one it is.
OPEN = [
    ("stop", {"inputs": ["Name a colour.", "What is MLflow?"], "params": _p(16, ["\n", ""])}),
    ("stop", {"inputs": ["Name a colour.", "What is MLflow?", "List two fruits."],
              "params": _p(16, [" thre", "", " machine"])}),
    ("stop", {"inputs": ["Name a colour."], "params": _p(12, [""])}),
    ("blank", {"inputs": [""], "params": _p(12)}),
    ("blank", {"inputs": ["  \n"], "params": _p(12, ["ween"])}),
    ("blank", {"inputs": ["Name a colour.", "\t", "What is MLflow?", ""], "params": _p(16)}),
    ("zero", {"inputs": [], "params": _p(12)}),
    ("zero", {"inputs": [], "params": _p(12, [" "])}),
]

# Closed bodies: the reference's outcome is the only one allowed.
CLOSED = [
    {"inputs": ["Name a colour.", "What is MLflow? Answer in one sentence, please.", "café ☕ ﬁ ① ＡＢＣ",
                "  leading and trailing  \n", "Line one\r\nline two\tTabbed"], "params": _p(16)},
    {"inputs": ["What is MLflow?", "Name a colour.", "List two fruits."],
     "params": _p(20, ["zzz", "e", "thre_ thre", "d t"])},
    {"inputs": ["Name a colour.", "Write a haiku about rain."], "params": _p(24, ["ed", " "])},
    {"inputs": ["What is MLflow?"], "params": _p(24, [" machine"])},
    {"inputs": ["Translate 'cat' into French."], "params": _p(40, ["\n"])},
    {"inputs": ["Name a colour."], "params": _p(1)},
    {"inputs": ["Name a colour.", "Name a colour."], "params": _p(64)},
    {"inputs": ["List two fruits."], "params": _p(3, ["###"])},
    {"inputs": ["Summarise: " + "word " * 119 + "end."], "params": _p(1)},
    {"inputs": ["Name a colour."], "params": _p(0)},
    {"inputs": ["Name a colour."], "params": _p(4, temperature=2.5)},
    {"inputs": ["Name a colour."], "params": _p(600)},
    {"inputs": ["x " * 600], "params": _p(4)},
    {"inputs": ["Name a colour.", "What is MLflow?"], "params": _p(8, temperature=0.7)},
]


def _load_module():
    spec = importlib.util.spec_from_file_location("open_inputs", HERE / "open_inputs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["open_inputs"] = module
    # MLflow warns at class creation that predict has no type hints (noise here); it resets
    # the warning filters inside, so only a recorder swallows it.
    with warnings.catch_warnings(record=True):
        spec.loader.exec_module(module)
    return module


def _snapshot() -> str:
    from harness.model.snapshot import build_tiny

    return str(build_tiny(ROOT / ".harness" / "snapshots" / "tiny"))


def _fresh(cls, snapshot):
    import torch

    torch.manual_seed(0)
    model = cls()
    model.load_context(SimpleNamespace(artifacts={"repository": snapshot}, model_config={}))
    return model


def _parse(body):
    from harness.model.signature import GATEWAY, parse_payload

    return parse_payload(body, GATEWAY)


def _outcome(model, body):
    from mlflow.exceptions import MlflowException

    data, params = _parse(body)
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


def _show(outcome) -> str:
    if outcome[0] == "answers":
        return "answers " + repr(outcome[1])[:150]
    return f"{outcome[0]} {outcome[1]}: {outcome[2]!r}"


def _also(extra) -> str:
    if "*" in extra:
        return " or any 400"
    return f" or a 400 naming {' or '.join(sorted(extra))}" if extra else ""


def _blank(text) -> bool:
    return isinstance(text, str) and not text.strip()


class Oracle:
    """What a body allows, from a fresh reference (stateless, so one instance serves all)."""

    def __init__(self, snapshot):
        from harness.model.wrapper import MPTInstruct

        self.ref = _fresh(MPTInstruct, snapshot)
        self._cache: dict[str, tuple] = {}

    def _blank_answer(self, instruction, params):
        """The reference's generator on the template rendered with a blank instruction."""
        from harness.model.prompt import PREFIX, SUFFIX
        from harness.model.settings import GenerationSettings

        gen = self.ref.generator
        settings = GenerationSettings(temperature=params["temperature"], max_tokens=params["max_tokens"],
                                      stop=tuple(s for s in params.get("stop") or () if s))
        ids = gen.tokenizer.backend_tokenizer.encode(PREFIX + instruction + SUFFIX).ids
        assert gen.context_length - len(ids) >= settings.max_tokens, "blank row past the room"
        return gen.generate_batch([instruction], settings, [ids])[0]

    def allowed(self, body):
        """(expected outcome, fields whose 400 is also allowed; '*' for any field)."""
        import json

        key = json.dumps(body)
        if key in self._cache:
            return self._cache[key]
        params = dict(body["params"])
        rows = list(body["inputs"])
        extra = set()
        if "" in (params.get("stop") or []):
            extra.add("stop")
            params["stop"] = [s for s in params["stop"] if s]
        if not rows:
            extra.add("*")
        blanks = [i for i, r in enumerate(rows) if _blank(r)]
        if blanks:
            extra.add("prompt")
        closed = {"inputs": [r for r in rows if not _blank(r)], "params": params}
        expected = _outcome(self.ref, closed)
        if expected[0] == "answers" and blanks:
            answers = iter(expected[1])
            expected = ("answers", [self._blank_answer(r, params) if _blank(r) else next(answers)
                                    for r in rows])
        self._cache[key] = (expected, extra)
        return expected, extra

    def judge(self, body, got):
        """(allowed?, choice): choice is 'answer' or 'refuse' where the outcome is allowed."""
        expected, extra = self.allowed(body)
        if got[0] == "400" and ("*" in extra or got[1] in extra):
            return True, "refuse"
        if got[0] != expected[0]:
            return False, None
        if got[0] == "answers":
            if body["params"]["temperature"] == 0.0:
                return got[1] == expected[1], "answer"
            return len(got[1]) == len(expected[1]), "answer"
        return got[1] == expected[1], "refuse"  # the reference's own 400: the same field


def _run(cls, bodies, snapshot):
    import torch

    model = _fresh(cls, snapshot)
    outcomes = []
    for body in bodies:
        torch.manual_seed(1234)
        outcomes.append(_outcome(model, body))
    return outcomes


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)  # a tiny model: threads only fight over the cores
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    started = time.monotonic()
    module = _load_module()
    snapshot = _snapshot()
    oracle = Oracle(snapshot)
    names = argv or list(module.KIND)
    open_bodies = [body for _, body in OPEN]
    harm_bodies = [b for name_ in module.HARM for b in module.HARM[name_]]
    failures = []
    for name in names:
        kind, cls = module.KIND[name], getattr(module, name)
        start = time.monotonic()
        if kind == "defect":
            opened = _run(cls, open_bodies, snapshot)
            bodies = module.HARM[name]
            mine = _run(cls, bodies, snapshot)
            verdicts = [oracle.judge(b, o) for b, o in zip(bodies, mine)]
            hit = next((i for i, (ok, _) in enumerate(verdicts) if not ok), None)
            took = f"{time.monotonic() - start:.1f}s"
            if hit is None:
                failures.append(name)
                print(f"FAIL {name} (defect): no harm on {len(bodies)} bodies ({took})")
            else:
                expected, extra = oracle.allowed(bodies[hit])
                print(f"ok   {name} (defect): body {hit + 1}/{len(bodies)} "
                      f"{bodies[hit]['inputs']!r:.70} params={bodies[hit]['params']} ({took})")
                print(f"       candidate: {_show(mine[hit])}")
                print(f"       allowed:   {_show(expected)}"
                      + _also(extra))
        else:
            bodies = open_bodies + harm_bodies + CLOSED
            mine = _run(cls, bodies, snapshot)
            opened = mine[:len(open_bodies)]
            verdicts = [oracle.judge(b, o) for b, o in zip(bodies, mine)]
            bad = [i for i, (ok, _) in enumerate(verdicts) if not ok]
            want = module.CHOICE[name]
            wrong_choice = [i for i, (which, _) in enumerate(OPEN)
                            if verdicts[i][0] and verdicts[i][1] != want[which]]
            took = f"{time.monotonic() - start:.1f}s"
            if bad or wrong_choice:
                failures.append(name)
                i = (bad or wrong_choice)[0]
                what = f"{len(bad)}/{len(bodies)} bodies not allowed" if bad else \
                    f"open body {i + 1} chose {verdicts[i][1]}, CHOICE says {want[OPEN[i][0]]}"
                print(f"FAIL {name} (correct): {what}; first: "
                      f"{bodies[i]['inputs']!r:.70} params={bodies[i]['params']} ({took})")
                print(f"       candidate: {_show(mine[i])}")
                expected, extra = oracle.allowed(bodies[i])
                print(f"       allowed:   {_show(expected)}"
                      + _also(extra))
            else:
                choices = ", ".join(f"{k} {v}" for k, v in want.items())
                print(f"ok   {name} (correct): {len(bodies)}/{len(bodies)} bodies allowed; {choices} ({took})")
        for (which, body), got in zip(OPEN, opened):
            ok, _ = oracle.judge(body, got)
            print(f"       {'  ' if ok else '!!'} {which:5} {body['inputs']!r:.44} stop={body['params']['stop']!r:.26}"
                  f" -> {_show(got)[:90]}")
    print(f"total {time.monotonic() - started:.1f}s")
    if failures:
        print(f"FAILED: {', '.join(failures)}")
        return 1
    print(f"all {len(names)} classes behave as labelled")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
