"""Held-out candidates, written for the gate by an author who had not seen its checks
(tests/data/candidates/README.md): correct wrappers in other styles must pass, and each
defect must fail with a message that names it. Judged in process (see _judge.py)."""

from pathlib import Path

import pytest

from _judge import judge, load_module  # noqa: F401  (judge is a fixture)
from harness.gate.report import Status

_DIR = Path(__file__).parents[1] / "data" / "candidates"
correct = load_module(_DIR / "correct_styles.py", "candidates_correct")
defects = load_module(_DIR / "defects.py", "candidates_defects")
rowwise = load_module(_DIR / "rowwise.py", "candidates_rowwise")

# Judging 24 wrappers takes longer than the fast tier allows.
pytestmark = pytest.mark.slow

CORRECT = [
    "RowByRow",
    "Pipeline",
    "GenerationConfigObject",
    "MaxLengthArithmetic",
    "ModelInDict",
    "NumpyOutput",
    "TopK1Greedy",
    "ManualLoop",
    "LengthBucketed",
    "RowWise",
]

# defect -> (the check that must fail, words its message must contain)
DEFECTS = {
    "RightPadding": ("answers.reference", "the batch changes answers"),
    "AnswerCache": ("answers.reference", "cached by prompt"),
    "ReversedOrder": ("answers.reference", "out of order"),
    "SettingsDroppedOnBranch": ("answers.reference", "ran past max_tokens"),
    "SeededSampling": ("params.temperature", "fixed seed"),
    "StopKept": ("params.stop", "the stop string was kept"),
    "StopIgnored": ("params.stop", "the answer should be"),
    "SilentTruncation": ("prompt.context", "silently truncated"),
    "UnicodeNormalised": ("answers.reference", "unicode forms"),
    "LastRowDropped": ("answers.reference", "11 rows in, 10 answers out"),
    "NoCache": ("generate.use_cache", "the KV cache is off"),
    "OffByOneMaxTokens": ("params.max_tokens", "expected exactly"),
    "StrippedAnswer": ("trim.exact", "whitespace"),
    "TemperatureIgnored": ("params.temperature", "sampling is off"),
    "ClampedTemperature": ("params.invalid", "accepted without an error"),
    # rowwise.py: stop, template and container slips the first author's set did not have
    "StopListOrder": ("params.stop", "not at the earliest in the text"),
    "StopLastOccurrence": ("params.stop", "the answer should be"),
    "StopRowZeroOnly": ("params.stop", "row 1"),
    "StripsInstruction": ("prompt.template", "edge whitespace"),
    "SeriesOutput": ("output.type", "pandas Series"),
}


def _candidate(name: str):
    return getattr(correct, name, None) or getattr(defects, name, None) or getattr(rowwise, name)


# Correct in every answer, but an empty batch (`"inputs": []`, sent straight to the scoring
# server) crashes them with IndexError: a 500 and a stack trace where the contract allows []
# or a documented refusal. The gate names that open input and nothing else.
ZERO_ROWS_CRASH = set(CORRECT) - {"RowByRow", "RowWise"}


@pytest.mark.parametrize("name", CORRECT)
def test_a_correct_wrapper_in_another_style_passes(judge, name):
    results = judge(_candidate(name))
    bad = {k: r.message[:200] for k, r in results.items() if r.status in (Status.FAIL, Status.ERROR)}
    if name in ZERO_ROWS_CRASH:
        assert set(bad) == {"open.inputs"} and bad["open.inputs"].startswith("rows.zero"), bad
        assert "IndexError" in results["open.inputs"].message
        return
    assert bad == {}
    for result in results.values():  # a check that could not judge says so
        assert result.status is Status.PASS or result.message.startswith("skipped: ")


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_a_defect_fails_with_a_message_that_names_it(judge, name):
    check_id, words = DEFECTS[name]
    result = judge(_candidate(name), only=(check_id,))[check_id]
    assert result.status is Status.FAIL, result.message
    assert words in result.message


def test_a_differing_answer_is_reported_with_both_answers_and_the_prompt_ids_seen(judge):
    evidence = judge(defects.RightPadding, only=("answers.reference",))["answers.reference"].evidence
    assert evidence["expected"] != evidence["got"]
    assert evidence["alone"] == [evidence["expected"]]
    assert evidence["generate_prompt_ids"] and all(isinstance(t, int) for t in evidence["generate_prompt_ids"][0])
