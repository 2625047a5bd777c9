"""Measure, in process, what each class of sampling.py draws at temperature > 0, and whether it
answers overlapping requests as it answers them alone.

    python tests/data/candidates/sampling_harm.py [--full] [ClassName ...]

Every class is loaded fresh (``cls().load_context(...)`` on the tiny snapshot, float32 on the
CPU); each body is parsed the way the scoring server parses it (``parse_payload`` with the
GATEWAY signature) and answered with ``predict(None, data, params)``. The reference
``harness.model.wrapper.MPTInstruct`` is measured the same way first, as a check on the checks.

The exact first-token distribution, per instruction and temperature t: one forward pass of the
reference's model on the prompt's ids, softmax(logits/t) over the 50 highest logits (ties with
the 50th kept, as generate does), renormalised; tokens whose decoded text is the same (byte
fragments, special tokens) merged into one cell. The sampled bodies ask for ``max_tokens`` 1,
so an answer is exactly one token's decoded text (``skip_special_tokens=True``, no stop
strings) and maps to its cell without ambiguity (with longer answers, byte fragments that
join into one character and tokens that are prefixes of others make the first token
ambiguous); a text no top-50 token decodes to is impossible under the contract.

Per class (torch's global RNG seeded once, before its first sampled request):

- distribution: for each (instruction, t) of ``DISTRIBUTION`` ("Name a colour." at 0.5, "What
  is MLflow?" at 1.0; ``--full``: both instructions at both temperatures, about 1.5 times as
  long), the answers of ``SAMPLES`` (200) identical rows in one request ("rows") and of
  ``SAMPLES`` single-row requests ("requests"). For each: the total-variation distance to the
  exact distribution, next to the TV a correct sampler shows on average with as many draws (by
  simulation: with 200 draws over ~50 cells it is far from 0); a chi-square goodness-of-fit
  p-value (cells pooled, smallest first, until every expected count is >= 5; an impossible
  text gives p = 0); a rank-tail p-value (cells ranked by exact probability, a two-sided
  binomial test of the draws below every cut, the smallest times the number of cuts), which
  sees a cut-off tail or a wrong temperature that the chi-square spreads over many cells; and,
  for the rows, the number of distinct answers against the number a correct sampler draws on
  average. Flagged when either p < ALPHA or the rows hold fewer than half the expected
  distinct answers.
- native stop: ``NATIVE_STOP_BODY`` (``SAMPLES`` rows at t = 1, max_tokens 2, one stop string
  made of the template's end and a likely first token T); the exact probability that an answer
  is T alone (summed over every top-50 first token, with one more forward pass each: EOS is
  outside the top 50 here, so it is 0) against the share observed, two-sided binomial test.
  Flagged when p < ALPHA.
- greedy: a few bodies at temperature 0 (mixed lengths, stops, both ends of max_tokens) and
  three invalid ones; each must give the reference's outcome exactly.
- concurrency (the four concurrency classes, and the reference): each body of
  ``CONCURRENT_BODIES`` sent alone, then 3 rounds of the 4 bodies sent at once from 4 threads
  (a barrier lines them up; the bodies rotate between threads); every answer is compared with
  the body's answer alone. Flagged when any differs.

A correct class passes when nothing is flagged; a defect when the check ``SHOWS`` names for it
flags (the others are printed too). Every class, defects included, must be exact at
temperature 0. Exits 1 if a label does not hold. About 2 minutes on one CPU thread.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import threading
import time
import warnings
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent

SEED = 20261207
ALPHA = 1e-4  # per test; about 60 tests of correct classes, so a false flag is under 1%
TOP_K = 50  # transformers' default; the snapshot's generation config sets none
ROUNDS = 3

# Which check each defect's harm shows in.
SHOWS = {
    "NucleusAdded": "distribution",
    "SeedPerRequest": "distribution",
    "GreedyWhenBatched": "distribution",
    "NativeStopStrings": "native stop",
    "TemperatureTwice": "distribution",
    "TemperatureInverted": "distribution",
    "TopK1Sampled": "distribution",
    "StopOnSelf": "concurrency",
    "SettingsOnSelf": "concurrency",
}
CONCURRENCY_CLASSES = ("StopOnSelf", "SettingsOnSelf", "LockedPredict", "PoolInsidePredict")


def _p(max_tokens, stop=(), temperature=0.0):
    return {"temperature": temperature, "max_tokens": max_tokens, "stop": list(stop)}


GREEDY = [
    {"inputs": ["Name a colour.", "What is MLflow? Answer in one sentence, please.", "café ☕ ﬁ ① ＡＢＣ",
                "  leading and trailing  \n"], "params": _p(16)},
    {"inputs": ["What is MLflow?", "Name a colour.", "List two fruits."],
     "params": _p(20, ["zzz", "e", "thre_ thre", "d t"])},
    # NativeStopStrings' stop, on prompts whose greedy answers do not begin with " source".
    {"inputs": ["What is MLflow?", "Name a colour."], "params": _p(12, ["Response:\n source"])},
    {"inputs": ["Name a colour."], "params": _p(1)},
    {"inputs": ["Summarise: " + "word " * 119 + "end."], "params": _p(1)},
    {"inputs": ["Name a colour."], "params": _p(0)},
    {"inputs": ["Name a colour."], "params": _p(4, temperature=2.5)},
    {"inputs": ["Name a colour."], "params": _p(4, [""])},
]


def _load_module():
    spec = importlib.util.spec_from_file_location("sampling", HERE / "sampling.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sampling"] = module
    # MLflow warns at class creation that predict has no type hints (noise here); it resets
    # the warning filters inside, so only a recorder swallows it.
    with warnings.catch_warnings(record=True):
        spec.loader.exec_module(module)
    return module


def _parse(body):
    from harness.model.signature import GATEWAY, parse_payload

    return parse_payload(body, GATEWAY)


def _outcome(model, body):
    from mlflow.exceptions import MlflowException

    data, params = _parse(body)
    try:
        return ("answers", [str(a) for a in model.predict(None, data, params)])
    except MlflowException as error:
        if error.error_code == "INVALID_PARAMETER_VALUE":
            named = re.match(r"\s*(\w+)=", error.message)
            return ("400", named.group(1) if named else "?")
        return ("500", type(error).__name__)
    except Exception as error:  # the scoring server answers any other exception with a 500
        return ("500", type(error).__name__, str(error)[:120])


def _answers(model, body) -> list[str]:
    data, params = _parse(body)
    return [str(a) for a in model.predict(None, data, params)]


# -- the exact distributions ---------------------------------------------------


class Exact:
    """The contract's next-token distributions, from the reference's model and tokenizer."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.text = [tokenizer.decode([i], skip_special_tokens=True) for i in range(len(tokenizer))]

    def ids(self, instruction: str) -> list[int]:
        from harness.model.prompt import build_prompt

        return self.tokenizer(build_prompt(instruction))["input_ids"]

    def token_probs(self, ids: list[int], temperature: float):
        import torch

        with torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([ids])).logits[0, -1].double()
        scores = logits / temperature
        kth = torch.topk(scores, TOP_K).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
        return torch.softmax(scores, dim=-1)

    def cells(self, instruction: str, temperature: float) -> dict[str, float]:
        """First-token distribution by decoded text (same text merged)."""
        probs = self.token_probs(self.ids(instruction), temperature)
        cells: dict[str, float] = {}
        for i in torch_nonzero(probs):
            cells[self.text[i]] = cells.get(self.text[i], 0.0) + float(probs[i])
        return cells

    def answer_is_text(self, instruction: str, temperature: float, text: str, stop) -> float:
        """P(a 2-token answer, cut at ``stop``, is exactly ``text``), summed over every first token."""
        ids = self.ids(instruction)
        first = self.token_probs(ids, temperature)
        eos = self.tokenizer.eos_token_id
        total = 0.0
        for t1 in torch_nonzero(first):
            p1 = float(first[t1])
            if t1 == eos:
                total += p1 * (_cut("", stop) == text)
                continue
            second = self.token_probs(ids + [t1], temperature)
            for t2 in torch_nonzero(second):
                answer = self.tokenizer.decode([t1, t2], skip_special_tokens=True)
                if _cut(answer, stop) == text:
                    total += p1 * float(second[t2])
        return total


def torch_nonzero(probs) -> list[int]:
    return [int(i) for i in (probs > 0).nonzero().flatten()]


def _cut(text: str, stop) -> str:
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    return text[:min(hits)] if hits else text


# -- statistics ----------------------------------------------------------------


def _chi_square(counts: Counter, cells: dict[str, float]) -> float:
    """Pearson goodness-of-fit p-value; cells pooled (smallest first) to expected >= 5."""
    from scipy.stats import chi2

    n = sum(counts.values())
    if any(text not in cells for text in counts):
        return 0.0  # a text no top-50 token decodes to: impossible under the contract
    order = sorted(cells, key=cells.get, reverse=True)
    groups: list[tuple[float, int]] = []  # (expected, observed)
    pool_e, pool_o = 0.0, 0
    for text in reversed(order):  # smallest first into the pool
        e, o = n * cells[text], counts.get(text, 0)
        if pool_e + e < 5 or e < 5:
            pool_e, pool_o = pool_e + e, pool_o + o
            if pool_e >= 5:
                groups.append((pool_e, pool_o))
                pool_e, pool_o = 0.0, 0
        else:
            groups.append((e, o))
    if pool_e > 0:
        if groups:
            e, o = groups.pop()
            groups.append((e + pool_e, o + pool_o))
        else:
            groups.append((pool_e, pool_o))
    if len(groups) < 2:
        return 1.0
    stat = sum((o - e) ** 2 / e for e, o in groups)
    return float(chi2.sf(stat, len(groups) - 1))


def _rank_tail(counts: Counter, cells: dict[str, float]) -> float:
    """Cells ranked by exact probability: for every cut, a two-sided binomial test of how many
    draws fall below it (a distribution too peaked or too flat, or a tail cut off, moves draws
    along the ranks); the smallest p-value times the number of cuts (Bonferroni)."""
    from scipy.stats import binomtest

    n = sum(counts.values())
    if any(text not in cells for text in counts):
        return 0.0
    order = sorted(cells, key=cells.get, reverse=True)
    tail_mass = sum(cells.values())
    tail_count = n
    best = 1.0
    for text in order[:-1]:
        tail_mass -= cells[text]
        tail_count -= counts.get(text, 0)
        best = min(best, float(binomtest(tail_count, n, min(max(tail_mass, 0.0), 1.0)).pvalue))
    return min(1.0, best * max(1, len(order) - 1))


def _tv(counts: Counter, cells: dict[str, float]) -> float:
    n = sum(counts.values())
    texts = set(cells) | set(counts)
    return 0.5 * sum(abs(counts.get(t, 0) / n - cells.get(t, 0.0)) for t in texts)


_NULL: dict[tuple, tuple[float, float]] = {}


def _null(key, cells: dict[str, float], n: int) -> tuple[float, float]:
    """(mean TV, mean distinct answers) of a correct sampler with n draws, by simulation."""
    import numpy as np

    if key not in _NULL:
        p = np.array(list(cells.values()))
        p = p / p.sum()
        draws = np.random.default_rng(0).multinomial(n, p, size=2000) / n
        tv = 0.5 * np.abs(draws - p).sum(axis=1).mean()
        distinct = float((1 - (1 - p) ** n).sum())
        _NULL[key] = (float(tv), distinct)
    return _NULL[key]


# -- the checks ----------------------------------------------------------------


def _distribution(model, exact, module, conditions) -> tuple[bool, list[str]]:
    flagged, lines = False, []
    n = module.SAMPLES
    for instruction, t in conditions:
        cells = exact.cells(instruction, t)
        tv0, distinct0 = _null((instruction, t), cells, n)
        rows = _answers(model, module._rows_body(instruction, t))
        data, params = _parse(module._request_body(instruction, t))  # parsed once, a copy sent each time
        single = [str(a) for _ in range(n) for a in model.predict(None, data.copy(), dict(params))]
        parts = []
        for mode, answers in (("rows", rows), ("requests", single)):
            counts = Counter(answers)
            p_fit, p_tail = _chi_square(counts, cells), _rank_tail(counts, cells)
            bad = min(p_fit, p_tail) < ALPHA
            extra = ""
            if mode == "rows":
                distinct = len(counts)
                extra = f", distinct {distinct}/{distinct0:.0f}"
                bad = bad or distinct < distinct0 / 2
            flagged |= bad
            parts.append(f"{mode} TV {_tv(counts, cells):.3f} p {p_fit:.1e} tail-p {p_tail:.1e}{extra}"
                         f"{' FLAG' if bad else ''}")
        lines.append(f"t={t} {instruction!r} (a correct sampler's TV ~{tv0:.3f}): " + "; ".join(parts))
    return flagged, lines


def _native_stop(model, exact, module) -> tuple[bool, list[str]]:
    from scipy.stats import binomtest

    body = module.NATIVE_STOP_BODY
    t, stop = body["params"]["temperature"], body["params"]["stop"]
    text = module.NATIVE_STOP_TOKEN_TEXT
    expected = exact.answer_is_text(module.NATIVE_STOP_INSTRUCTION, t, text, stop)
    answers = _answers(model, body)
    k, n = sum(a == text for a in answers), len(answers)
    p = float(binomtest(k, n, expected).pvalue)
    bad = p < ALPHA
    return bad, [f"stop {stop!r} t={t}: {k}/{n} answers are {text!r} alone, contract "
                 f"{expected:.2e} (p {p:.1e}){' FLAG' if bad else ''}"]


def _greedy(model, reference_outcomes) -> tuple[bool, list[str]]:
    differ = []
    for i, (body, theirs) in enumerate(zip(GREEDY, reference_outcomes)):
        mine = _outcome(model, body)
        if mine != theirs:
            differ.append(f"body {i + 1}: {mine!r:.120} vs reference {theirs!r:.120}")
    if differ:
        return True, ["temperature 0 / invalid: DIFFERS from the reference: " + differ[0]]
    return False, [f"temperature 0 / invalid: all {len(GREEDY)} bodies give the reference's outcome"]


def _concurrency(model, module) -> tuple[bool, list[str]]:
    bodies = module.CONCURRENT_BODIES
    alone = [_answers(model, body) for body in bodies]
    mismatched, total, example = 0, 0, None
    for round_ in range(ROUNDS):
        barrier = threading.Barrier(len(bodies))
        results: dict[int, object] = {}

        def send(index, barrier=barrier, results=results):
            barrier.wait()
            try:
                results[index] = _answers(model, bodies[index])
            except Exception as error:  # shown as a mismatch
                results[index] = error

        order = [(slot + round_) % len(bodies) for slot in range(len(bodies))]
        threads = [threading.Thread(target=send, args=(index,)) for index in order]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for index in range(len(bodies)):
            total += 1
            if results[index] != alone[index]:
                mismatched += 1
                if example is None:
                    got = results[index]
                    wrong = next((j for j, (a, b) in enumerate(zip(got, alone[index])) if a != b), 0) \
                        if isinstance(got, list) else 0
                    example = (f"round {round_ + 1}, body {index + 1} {bodies[index]['params']}: row {wrong + 1} "
                               f"{(got[wrong] if isinstance(got, list) else got)!r:.60} alone "
                               f"{alone[index][wrong]!r:.60}")
    if mismatched:
        return True, [f"concurrency: {mismatched}/{total} overlapping requests differ from alone; first: {example}"]
    return False, [f"concurrency: {total}/{total} overlapping requests ({ROUNDS} rounds of {len(bodies)} threads) "
                   f"equal the same request alone"]


def _fresh(cls, snapshot):
    model = cls()
    model.load_context(SimpleNamespace(artifacts={"repository": snapshot}, model_config={}))
    return model


def _measure(name, cls, snapshot, exact, module, reference_outcomes, conditions) -> dict[str, bool]:
    import torch

    model = _fresh(cls, snapshot)
    found: dict[str, bool] = {}
    lines: list[str] = []
    found["greedy"], more = _greedy(model, reference_outcomes)
    lines += more
    torch.manual_seed(SEED)
    found["distribution"], more = _distribution(model, exact, module, conditions)
    lines += more
    found["native stop"], more = _native_stop(model, exact, module)
    lines += more
    if name in CONCURRENCY_CLASSES or name == "reference":
        found["concurrency"], more = _concurrency(model, module)
        lines += more
    for line in lines:
        print(f"       {line}")
    return found


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)  # a tiny model: threads only fight over the cores
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    from harness.model.snapshot import cached_tiny
    from harness.model.wrapper import MPTInstruct

    started = time.monotonic()
    module = _load_module()
    snapshot = str(cached_tiny())
    reference = _fresh(MPTInstruct, snapshot)
    exact = Exact(reference.model, reference.tokenizer)
    reference_outcomes = [_outcome(reference, body) for body in GREEDY]
    full = "--full" in argv
    argv = [a for a in argv if a != "--full"]
    conditions = module.DISTRIBUTION
    if full:  # every instruction at every temperature (about twice as long)
        instructions = dict.fromkeys(i for i, _ in module.DISTRIBUTION)
        temperatures = sorted({t for _, t in module.DISTRIBUTION})
        conditions = tuple((i, t) for t in temperatures for i in instructions)
    names = argv or ["reference", *module.KIND]
    failures = []
    for name in names:
        start = time.monotonic()
        if name == "reference":
            kind, cls = "correct", MPTInstruct
        else:
            kind, cls = module.KIND[name], getattr(module, name)
        print(f"{name} ({kind})")
        found = _measure(name, cls, snapshot, exact, module, reference_outcomes, conditions)
        took = f"{time.monotonic() - start:.1f}s"
        flagged = [check for check, bad in found.items() if bad]
        if kind == "correct":
            ok = not flagged
            verdict = "nothing flagged" if ok else f"flagged: {', '.join(flagged)}"
        else:
            shows = SHOWS[name]
            ok = found.get(shows, False) and not found["greedy"]
            verdict = (f"harm shows in {shows}" if found.get(shows) else f"NO harm in {shows}") + \
                (f" (also flagged: {', '.join(c for c in flagged if c != shows)})" if len(flagged) > 1 else "")
            if found["greedy"]:
                verdict += "; not exact at temperature 0"
        print(f"  {'ok  ' if ok else 'FAIL'} {name} ({kind}): {verdict} ({took})")
        if not ok:
            failures.append(name)
    print(f"total {time.monotonic() - started:.0f}s")
    if failures:
        print(f"FAILED: {', '.join(failures)}")
        return 1
    print(f"all {len(names)} classes behave as labelled")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
