"""Inputs the contract leaves open: every accepted choice passes, in the fixed check and in
the exploration's oracle, and the report names the choice; a crash or a harm fails. The
candidates were written by an author who had not read the checks
(tests/data/candidates/open_inputs.py)."""

from pathlib import Path

import pytest

from _judge import judge, load_module  # noqa: F401  (judge is a fixture)
from harness.gate.explore.oracle import Oracle
from harness.gate.explore.requests import Observed, ExploreRequest
from harness.gate.open_inputs import OPEN_INPUTS, Choice, markdown_table
from harness.gate.reference import ReferenceAnswers
from harness.gate.report import Status
from harness.gate.tolerance import Rule
from harness.gate.worker import CandidateError
from harness.model.generation import Generator
from harness.model.loading import LoadConfig
from harness.model.wrapper import MPTInstruct

CANDIDATES = Path(__file__).parents[1] / "data" / "candidates" / "open_inputs.py"
open_inputs = load_module(CANDIDATES, "open_input_candidates")
README = Path(__file__).parents[2] / "README.md"

CORRECT = sorted(n for n, k in open_inputs.KIND.items() if k == "correct")
DEFECTS = sorted(n for n, k in open_inputs.KIND.items() if k == "defect")
_CHOICE_IDS = {"stop": "stop.empty", "blank": "prompt.blank", "zero": "rows.zero"}
_AS_CHOICE = {
    "stop.empty": {"answer": Choice.IGNORED, "refuse": Choice.REFUSED},
    "prompt.blank": {"answer": Choice.ANSWERED, "refuse": Choice.REFUSED},
    "rows.zero": {"answer": Choice.EMPTY, "refuse": Choice.REFUSED},
}


def test_the_readme_holds_the_open_inputs_table_made_from_the_code():
    assert markdown_table() in README.read_text()


def test_every_open_input_accepts_more_than_one_behaviour():
    assert len({i.id for i in OPEN_INPUTS}) == len(OPEN_INPUTS) >= 5
    assert all(len(i.accepted) >= 2 for i in OPEN_INPUTS)


@pytest.mark.parametrize("name", CORRECT)
def test_a_correct_choice_passes_and_the_report_names_it(judge, name):
    result = judge(getattr(open_inputs, name), only=("open.inputs",))["open.inputs"]
    assert result.status is Status.PASS, result.message
    chosen = result.evidence["choices"]
    for short, what in open_inputs.CHOICE[name].items():
        input_id = _CHOICE_IDS[short]
        assert chosen[input_id] == _AS_CHOICE[input_id][what].value, (input_id, chosen)


@pytest.mark.parametrize("name", DEFECTS)
def test_a_crash_or_a_harm_on_an_open_input_fails(judge, name):
    result = judge(getattr(open_inputs, name), only=("open.inputs",))["open.inputs"]
    assert result.status is Status.FAIL, result.message
    assert result.evidence["reproducer"]["body"], result.evidence


def test_the_reference_makes_one_of_the_accepted_choices(judge):
    result = judge(MPTInstruct, only=("open.inputs",))["open.inputs"]
    assert result.status is Status.PASS
    assert result.evidence["choices"]["stop.empty"] == Choice.REFUSED.value


@pytest.fixture(scope="module")
def oracle(tiny_snapshot):
    generator = Generator.from_pretrained(str(tiny_snapshot), LoadConfig(device="cpu", dtype="float32"))
    return Oracle(ReferenceAnswers(generator, Rule(exact=True)))


# The shrunk request the correct wrappers were failed on.
_EMPTY_STOP = ExploreRequest(("What",), 0.0, 4, ("\n", ""))


def test_the_exploration_accepts_an_empty_stop_answered_as_if_absent(oracle):
    as_absent = oracle.answer("What", 4, ("\n",))
    assert oracle.judge(_EMPTY_STOP, Observed(answers=(as_absent,)))[0] is None


def test_the_exploration_accepts_an_empty_stop_refused_the_documented_way(oracle):
    refused = CandidateError("MlflowException", "stop=[''] is invalid", "INVALID_PARAMETER_VALUE", 400)
    assert oracle.judge(_EMPTY_STOP, Observed(error=refused))[0] is None


def test_the_exploration_fails_an_empty_stop_that_empties_answers_or_crashes(oracle):
    assert oracle.answer("What", 4, ("\n",)) != ""  # so '' is a harm here
    assert oracle.judge(_EMPTY_STOP, Observed(answers=("",)))[0] is not None
    crash = CandidateError("ValueError", "empty separator")
    assert "scoring server" in oracle.judge(_EMPTY_STOP, Observed(error=crash))[0]


def test_an_empty_stop_beside_an_invalid_setting_must_still_be_refused(oracle):
    invalid = ExploreRequest(("What",), 3.0, 4, ("\n", ""))
    assert oracle.judge(invalid, Observed(answers=("x",)))[0] is not None


@pytest.mark.slow
@pytest.mark.parametrize("name", ["EmptyStopDropped", "StopFilteredAtCut", "AllAnswered"])
def test_wrappers_that_ignore_an_empty_stop_pass_the_exploration(judge, name):
    """The false alarm of issue 28: every correct wrapper that ignored '' failed here."""
    result = judge(getattr(open_inputs, name), only=("explore.answers", "explore.sequences"))
    assert {k: r.status for k, r in result.items()} == {
        "explore.answers": Status.PASS,
        "explore.sequences": Status.PASS,
    }, {k: r.message[:300] for k, r in result.items()}
