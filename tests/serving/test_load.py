"""A fixed-time load test through the real loopback gateway: concurrent requests at
temperature 0 each get their own prompt's greedy answer, and none fails."""

import pytest

from harness.model.generation import Request
from harness.model.settings import GenerationSettings
from harness.serving.load import run_load

# One worker holds the shared loopback servers (xdist --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("loopback")]

MAX_TOKENS = 8
PROMPTS = (
    "What is MLflow?",
    "Name a colour.",
    "Count to three.",
    "Say hello in French.",
    "Why is the sky blue?",
    "Écris un poème court.",
    "List two prime numbers.",
    "Describe a cat\nin one line.",
)


def test_concurrent_requests_each_get_their_own_greedy_answer(loopback, generator, record_property):
    settings = GenerationSettings(temperature=0.0, max_tokens=MAX_TOKENS)
    # Each prompt alone, as the server sees it (one row per request).
    expected = {p: generator.generate([Request(p, settings)])[0] for p in PROMPTS}
    assert len(set(expected.values())) > 1, "the prompts must not share one answer"

    result = run_load(
        loopback.url,
        loopback.routes["reference"],
        PROMPTS,
        expected,
        duration_s=2.0,
        concurrency=4,
        max_tokens=MAX_TOKENS,
    )
    record_property("measured", "load: " + result.summary())  # shown in the terminal summary, also under xdist

    assert not result.failures, result.failures[:3]
    assert not result.mismatches, [
        (PROMPTS[s.prompt], s.answer, expected[PROMPTS[s.prompt]]) for s in result.mismatches[:3]
    ]
    assert {s.prompt for s in result.samples} == set(range(len(PROMPTS)))
