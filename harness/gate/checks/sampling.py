"""Sampling judged by its distribution: what callers get at temperature > 0 compared with the
distribution the reference's own ``generate(do_sample=True, temperature=t)`` implies
(:mod:`harness.gate.sampling`), by exact tests whose false-alarm probability is computed
(:mod:`harness._stats`), not guessed.

The first answer token (``max_tokens=1``, so an answer is exactly one token's text) is sampled
N times as N identical rows of one request and as single-row requests; ``sampling.support``
follows longer sampled answers step by step.
"""

from __future__ import annotations

import zlib
from typing import Any

from harness._stats import (
    MC_DRAWS,
    binned,
    binomial_upper_tail,
    fewest_distinct,
    multinomial_draws,
    multinomial_fit,
    tail_bins,
    tail_mass_test,
)
from harness.gate.checks.answers import SHORT, same_weights
from harness.gate.checks.registry import GateContext, Outcome, Row, answers, check, failed, passed, skipped
from harness.gate.sampling import SamplingOracle

TEMPERATURES = (0.5, 1.0)
INSTRUCTION = SHORT[2]  # "What is MLflow?"
SAMPLES = 300  # identical rows in one request; as many single-row requests, one after another
# Single-row requests at this temperature only: a seed set again per request shows at any.
REQUESTS_AT = 1.0
_ALPHA = 1 / (MC_DRAWS + 1)  # each test's false-alarm probability
# Rows judged per temperature, their max_tokens, and the forward passes one answer may cost
# (an answer with split characters has many readings; past the budget it is undetermined).
_SUPPORT_ROWS, _SUPPORT_TOKENS, _SUPPORT_BUDGET = 8, 6, 40
_STOP_ROWS = 100  # sampled rows with a stop string that begins in the prompt


def _cannot_judge(ctx: GateContext) -> Outcome | None:
    ctx.reset()
    try:
        ctx.send([Row("Hi.", 1.0, 2)])  # so the weights are known before judging them
    except Exception as error:  # noqa: BLE001 - a refusal to sample is params.temperature's verdict
        return skipped(f"skipped: a sampled request raises in this candidate: {type(error).__name__}: {error}"[:400])
    if (why := same_weights(ctx)) is not None:
        return skipped(f"skipped: {why}")
    if not ctx.reference_answers.rule.exact:
        return skipped(
            "skipped: the sampling distribution is judged in float32 on a CPU; a null that accounts "
            "for bfloat16 or GPU kernels is not calibrated yet"
        )
    return None


def _oracle(ctx: GateContext) -> SamplingOracle:
    oracle: SamplingOracle = ctx.reference_kept("sampling oracle", lambda: SamplingOracle(ctx.reference))
    return oracle


def _samples(ctx: GateContext, temperature: float) -> dict[str, list[str]]:
    """The first tokens a caller gets: N identical rows in one request, and N single-row
    requests in a row, from one RNG state set once (the requests are not reseeded, so a
    correct sampler gives independent draws). Both sampling checks judge the same draws:
    each would send exactly these requests to a freshly loaded candidate from the same RNG
    state, so the second reads what the first was given instead of asking again."""
    if temperature not in ctx.sampled:
        ctx.candidate.seed(0)
        drawn = {"rows of one request": answers(ctx.send([Row(INSTRUCTION, temperature, 1)] * SAMPLES))}
        if temperature == REQUESTS_AT:
            single = []
            for _ in range(SAMPLES):
                single.extend(answers(ctx.send([Row(INSTRUCTION, temperature, 1)])))
            drawn["requests"] = single
        ctx.sampled[temperature] = drawn
    return ctx.sampled[temperature]


def _null(ctx: GateContext, key: Any, probs: tuple[float, ...], n: int) -> Any:
    """The null's draws of ``n`` samples from ``probs``, made once per run and key (seeded)."""
    # Seeded by the key alone: the same draws whichever check asks first (--only parity).
    seed = zlib.crc32(repr((key, n)).encode())
    return ctx.reference_kept(f"sampling null {key!r} {n} {probs!r}", lambda: multinomial_draws(probs, n, seed=seed))


@check(
    "sampling.distribution",
    "at temperature 0.5 and 1, the first tokens of many sampled answers follow the reference's exact "
    "distribution (an exact Monte-Carlo G-test and an exact test of the tail's mass)",
)
def sampling_distribution(ctx: GateContext) -> Outcome:
    if (outcome := _cannot_judge(ctx)) is not None:
        return outcome
    oracle = _oracle(ctx)
    tests: dict[str, dict[str, Any]] = {}
    for temperature in TEMPERATURES:
        expected = oracle.first_tokens(INSTRUCTION, temperature)
        for mode, got in _samples(ctx, temperature).items():
            counts, outside = expected.counts(got)
            if outside:
                return failed(
                    f"temperature {temperature:g}, {mode}: {outside[0]!r} cannot be a first token "
                    f"when sampling at that temperature (it is not among the {len(expected.texts)} "
                    "the reference's sampler keeps)",
                    tests=tests,
                )
            bins = tail_bins(expected.probs, len(got))
            probs = tuple(binned(expected.probs, bins))
            fit = multinomial_fit(binned(counts, bins), probs, _null(ctx, ("binned", temperature), probs, len(got)))
            tail_p, below, expected_below, cut = tail_mass_test(counts, expected.probs)
            tests[f"t={temperature:g}, {mode}"] = fit.to_dict() | {
                "tail_p": tail_p,
                "tail_draws": below,
                "tail_expected": round(expected_below, 1),
            }
            if fit.rejects:
                return failed(
                    f"temperature {temperature:g}, {mode}: {fit.n} first tokens do not follow the "
                    f"reference's distribution (G = {fit.statistic:.1f} > {fit.null_max:.1f}, the largest "
                    f"of {MC_DRAWS} draws from it; total-variation distance {fit.tv_distance:.3f}; "
                    f"false-alarm probability {fit.false_alarm:.0e})",
                    tests=tests,
                    **_most_off(expected.texts, expected.probs, counts),
                )
            if tail_p <= _ALPHA:
                how = "thinned or cut (top-p? a lower temperature?)" if below < expected_below else "too heavy"
                return failed(
                    f"temperature {temperature:g}, {mode}: {below} of {fit.n} first tokens are among the "
                    f"{cut} least likely ones, where the reference's distribution puts {expected_below:.1f} "
                    f"(probability at most {tail_p:.1e}): its tail is {how}",
                    tests=tests,
                    **_most_off(expected.texts, expected.probs, counts),
                )
    claim = 2 * len(tests) * _ALPHA  # two tests per sample: the G test and the tail's mass
    return passed(
        f"{len(tests)} samples of {SAMPLES} rows or requests follow the reference's distribution "
        f"(false-alarm probability of this check at most {claim:.0e})",
        tests=tests,
        false_alarm=claim,
    )


def _most_off(texts: tuple[str, ...], probs: tuple[float, ...], counts: list[int]) -> dict[str, Any]:
    n = max(sum(counts), 1)
    gaps = sorted(zip(texts, probs, counts), key=lambda x: -abs(x[2] / n - x[1]))[:5]
    return {"most_off": [{"text": t, "expected": round(p, 4), "seen": round(c / n, 4)} for t, p, c in gaps]}


@check(
    "sampling.independence",
    "rows of one request and successive requests are independent draws: as many different answers, "
    "and as few greedy ones, as the reference's distribution allows",
)
def sampling_independence(ctx: GateContext) -> Outcome:
    if (outcome := _cannot_judge(ctx)) is not None:
        return outcome
    oracle = _oracle(ctx)
    tests: dict[str, dict[str, Any]] = {}
    for temperature in TEMPERATURES:
        expected = oracle.first_tokens(INSTRUCTION, temperature)
        p_greedy = expected.probs[expected.texts.index(expected.greedy)]
        for mode, got in _samples(ctx, temperature).items():
            distinct = len(set(got))
            greedy = sum(a == expected.greedy for a in got)
            p_distinct = fewest_distinct(distinct, _null(ctx, temperature, expected.probs, len(got)))
            p_greedy_share = binomial_upper_tail(greedy, len(got), p_greedy)
            tests[f"t={temperature:g}, {mode}"] = {
                "n": len(got),
                "distinct": distinct,
                "p_distinct": round(p_distinct, 6),
                "greedy": greedy,
                "greedy_expected": round(p_greedy * len(got), 1),
                "p_greedy": p_greedy_share,
            }
            if p_distinct <= _ALPHA:
                return failed(
                    f"temperature {temperature:g}, {mode}: {distinct} different first tokens among "
                    f"{len(got)}, fewer than independent draws from the reference's distribution ever give "
                    f"({MC_DRAWS} tried): the draws repeat each other (a seed set again per request or "
                    "row?) or come from a narrower distribution",
                    tests=tests,
                )
            if p_greedy_share <= _ALPHA:
                return failed(
                    f"temperature {temperature:g}, {mode}: {greedy} of {len(got)} answers start with the "
                    f"greedy token, expected about {p_greedy * len(got):.0f} (probability {p_greedy_share:.1e}): "
                    "sampling replaced by greedy decoding?",
                    tests=tests,
                )
    claim = 2 * len(tests) * _ALPHA
    return passed(
        f"{len(tests)} sets of draws as varied as independent draws (false-alarm probability at most {claim:.0e})",
        tests=tests,
        false_alarm=claim,
    )


@check(
    "sampling.support",
    "every sampled answer is text the reference's sampler can produce, each step's token among those it "
    "keeps, and a stop string that begins in the prompt cuts none",
)
def sampling_support(ctx: GateContext) -> Outcome:
    if (outcome := _cannot_judge(ctx)) is not None:
        return outcome
    oracle, judged, undetermined = _oracle(ctx), 0, 0
    for temperature in TEMPERATURES:
        ctx.candidate.seed(0)
        got = answers(ctx.send([Row(INSTRUCTION, temperature, _SUPPORT_TOKENS)] * _SUPPORT_ROWS))
        for answer in got:
            found = oracle.explain(INSTRUCTION, answer, temperature, _SUPPORT_TOKENS, _SUPPORT_BUDGET)
            judged += 1
            if found.possible is False:
                return failed(
                    f"temperature {temperature:g}: {answer!r} cannot be sampled: after {found.text!r} "
                    f"({found.tokens} tokens) no token the reference's sampler keeps continues it "
                    f"(max_tokens {_SUPPORT_TOKENS})",
                    reproducer={
                        "body": ctx.payload([Row(INSTRUCTION, temperature, _SUPPORT_TOKENS)]),
                        "answer": answer,
                        "step": found.tokens,
                    },
                )
            undetermined += found.possible is None
    if (cut := _stop_across_the_prompt(ctx, oracle)) is not None:
        return cut
    if undetermined == judged:
        return skipped(f"skipped: none of {judged} answers could be followed within {_SUPPORT_BUDGET} steps")
    return passed(
        f"{judged - undetermined} sampled answers followed token by token, each step among the tokens the "
        f"reference keeps ({undetermined} left undetermined)",
        reference_steps=oracle.steps,
    )


def _stop_across_the_prompt(ctx: GateContext, oracle: SamplingOracle) -> Outcome | None:
    """A stop string that begins in the prompt's last characters and ends in the answer's
    first token is not in the answer, so it must cut nothing; a sampler that matches stops
    on prompt + answer (transformers' own ``stop_strings``) ends those answers after that
    token. Under the contract an answer is exactly that token only when EOS follows it, so
    the count of such answers is Binomial(N, p(token)·p(EOS after it)): an exact upper tail."""
    if not ctx.accepts_stop:
        return None
    temperature, n = 1.0, _STOP_ROWS
    prompt = oracle.prompt_ids(INSTRUCTION)
    first = oracle.first_tokens(INSTRUCTION, temperature)
    candidates = [t for t in first.texts if t.strip() and "\ufffd" not in t]
    if not candidates:
        return None
    token_text = max(candidates, key=lambda t: first.probs[first.texts.index(t)])
    tail = oracle.decode(prompt)[-8:]
    stop = tail + token_text
    ctx.candidate.seed(0)
    got = answers(ctx.send([Row(INSTRUCTION, temperature, _SUPPORT_TOKENS, (stop,))] * n))
    token = [t for t in range(len(oracle.token_bytes())) if oracle.decode([t]) == token_text]
    p_token = first.probs[first.texts.index(token_text)]
    p_end = (
        max(float(oracle.step(prompt + (t,), temperature)[list(oracle.eos)].sum()) for t in token)
        if oracle.eos
        else 0.0
    )
    short = sum(a == token_text for a in got)
    p_value = binomial_upper_tail(short, len(got), p_token * p_end)
    if p_value <= _ALPHA:
        return failed(
            f"with stop {stop!r}, which begins in the prompt, {short} of {len(got)} sampled answers at "
            f"temperature 1 end right after {token_text!r}, where EOS ends about "
            f"{p_token * p_end * len(got):.1f} (probability {p_value:.1e}): the stop is matched across the "
            "prompt's end (transformers' stop_strings on prompt + answer?)",
            reproducer={"body": ctx.payload([Row(INSTRUCTION, temperature, _SUPPORT_TOKENS, (stop,))])},
        )
    return None


__all__ = ["sampling_distribution", "sampling_independence", "sampling_support"]
