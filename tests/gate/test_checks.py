"""The gate's model checks, one by one, on in-process candidates: the fast tier's view of
the checks (whole gate runs, with MLflow logging and servers, are in test_runner.py)."""

import pytest

from _judge import EXPLORE_CHECKS, MODEL_CHECKS, SAMPLING_CHECKS, judge, load_module  # noqa: F401  (a fixture)
from conftest import MUTANTS_FILE
from harness.gate.report import Status
from harness.model.signature import SignatureKind

mutants = load_module(MUTANTS_FILE, "gate_mutants")


@pytest.mark.xdist_group("reference-judged")
def test_the_reference_passes_every_model_check(reference_judged):
    results = reference_judged
    assert {k: r.status for k, r in results.items() if r.status is not Status.PASS} == {
        "candidate.processes": Status.SKIPPED
    }  # in process there is no worker to inspect


_IN_PROCESS = sorted(name for name in mutants.CAUGHT_BY if name != "CudaHardCoded")


# The exploration sees most of these defects too; which defects it must catch is
# test_explored_candidates.py's question (slow), so here it stays out of the count.
# The sampling checks have candidates of their own (test_sampling.py), as the exploration has.
_FIXED = tuple(c.id for c in MODEL_CHECKS if c.id not in EXPLORE_CHECKS + SAMPLING_CHECKS)


@pytest.mark.parametrize("name", _IN_PROCESS)
def test_each_mutant_fails_exactly_the_checks_that_see_its_defect(judge, name):
    expected, signature = mutants.CAUGHT_BY[name]
    results = judge(getattr(mutants, name), SignatureKind(signature).signature, only=_FIXED)
    failing = {k for k, r in results.items() if r.status in (Status.FAIL, Status.ERROR)}
    assert failing == expected, {k: results[k].message[:150] for k in failing ^ expected}


def test_a_candidate_broken_at_temperature_zero_only_is_skipped_where_greedy_is_needed(judge):
    """The skip names the cause; the checks judged by sampling still run."""
    results = judge(mutants.SamplesAtZero)
    skipped = {k: r.message for k, r in results.items() if r.status is Status.SKIPPED}
    assert {"answers.reference", "params.stop"} <= set(skipped)
    assert all("temperature 0" in skipped[k] for k in ("answers.reference", "params.stop"))
    assert results["params.temperature"].status is Status.PASS
    assert results["params.max_tokens"].status is not Status.ERROR


def test_every_model_check_catches_some_mutant():
    caught = set().union(*(checks for checks, _ in mutants.CAUGHT_BY.values()))
    # candidate.processes needs a worker process: tests/gate/test_isolation.py covers it;
    # the exploration's checks are held to their defects in test_explored_candidates.py
    assert {c.id for c in MODEL_CHECKS} - caught == {"candidate.processes", *EXPLORE_CHECKS, *SAMPLING_CHECKS}


def test_serving_errors_is_skipped_for_a_candidate_that_never_calls_generate():
    """A failing generate cannot be scripted for a wrapper with its own decoding loop: that
    says skipped (a false alarm found by the held-out ManualLoop candidate)."""
    from types import SimpleNamespace

    from harness.gate.checks.registry import GateContext
    from harness.gate.checks.serving import serving_errors

    asked = []
    candidate = SimpleNamespace(model_facts=dict, predict=lambda payload: asked.append(payload) or [""])
    outcome = serving_errors(GateContext(candidate=candidate))
    assert len(asked) == 1  # it asked once before concluding generate is never called
    assert outcome.status is Status.SKIPPED and "without transformers' generate" in outcome.message


@pytest.mark.parametrize("room", [1, 3, 6, 7])
def test_near_limit_is_the_longest_prompt_that_leaves_the_room(tiny_snapshot, room):
    """Bisection finds what adding one word at a time finds."""
    from harness.gate.checks.answers import near_limit
    from harness.gate.checks.registry import GateContext
    from harness.model.loading import load_tokenizer
    from harness.model.prompt import build_prompt

    ctx = GateContext(tokenizer=load_tokenizer(str(tiny_snapshot)), snapshot=tiny_snapshot)

    def length(n):
        return len(ctx.tokenizer.encode(build_prompt(" ".join(["route"] * n))))

    n = len(near_limit(ctx, room).split())
    assert n > 0 and length(n) + room <= ctx.context_length < length(n + 1) + room
