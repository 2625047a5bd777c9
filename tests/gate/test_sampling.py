"""Sampling judged by its distribution, and predict judged under threads, on candidates an
author who had not read the checks wrote for them (tests/data/candidates/sampling.py; its
sampling_harm.py shows each defect's harm directly)."""

from pathlib import Path

import pytest

from _judge import SAMPLING_CHECKS, judge, load_module  # noqa: F401  (judge is a fixture)
from harness.gate.probe import Probe
from harness.gate.report import Status
from harness.model.wrapper import MPTInstruct

sampling = load_module(Path(__file__).parents[1] / "data" / "candidates" / "sampling.py", "sampling_candidates")

CORRECT = sorted(n for n, k in sampling.KIND.items() if k == "correct")
# defect -> the check that must fail it, and words its message must hold
DEFECTS = {
    "NucleusAdded": ("sampling.distribution", "tail is thinned or cut"),
    "SeedPerRequest": ("sampling.distribution", "do not follow the reference's distribution"),
    "GreedyWhenBatched": ("sampling.distribution", "rows of one request"),
    "TemperatureTwice": ("sampling.distribution", "temperature 0.5"),
    "TemperatureInverted": ("sampling.distribution", "temperature 0.5"),
    "TopK1Sampled": ("sampling.distribution", "temperature 0.5"),
    "NativeStopStrings": ("sampling.support", "begins in the prompt"),
    "StopOnSelf": ("predict.concurrent", "state shared between calls"),
    "SettingsOnSelf": ("predict.concurrent", "state shared between calls"),
}


def test_every_candidate_is_listed():
    assert sorted(DEFECTS) == sorted(n for n, k in sampling.KIND.items() if k == "defect")


@pytest.mark.xdist_group("reference-judged")
def test_the_reference_passes_and_the_report_states_the_false_alarm_probability(reference_judged):
    results = {k: reference_judged[k] for k in SAMPLING_CHECKS}
    assert {k: r.status for k, r in results.items()} == dict.fromkeys(SAMPLING_CHECKS, Status.PASS)
    assert 0 < results["sampling.distribution"].evidence["false_alarm"] <= 1e-4
    assert 0 < results["sampling.independence"].evidence["false_alarm"] <= 1e-4
    tests = results["sampling.distribution"].evidence["tests"]
    assert all(t["n"] == 300 and t["null_max"] > t["statistic"] for t in tests.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", CORRECT)
def test_a_correct_sampler_or_thread_safe_wrapper_passes(judge, name):
    results = judge(getattr(sampling, name), only=SAMPLING_CHECKS)
    assert {k: r.status for k, r in results.items()} == dict.fromkeys(SAMPLING_CHECKS, Status.PASS), {
        k: r.message[:300] for k, r in results.items()
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_a_sampling_or_threading_slip_fails_naming_its_harm(judge, name):
    check_id, words = DEFECTS[name]
    result = judge(getattr(sampling, name), only=(check_id,))[check_id]
    assert result.status is Status.FAIL, result.message
    assert words in result.message


@pytest.mark.slow
def test_the_reference_under_many_seeds_stays_below_the_claimed_false_alarm_rate(judge, monkeypatch):
    """The claim is at most 6e-5 per run of each check; 12 seeds of the reference must give
    no false alarm (one would be a 1-in-1000 event under the claim)."""
    offset = {"value": 0}
    original = Probe.seed
    monkeypatch.setattr(Probe, "seed", lambda self, value: original(self, value + offset["value"]))
    alarms = []
    for seed in range(1, 13):
        offset["value"] = 1000 * seed
        results = judge(MPTInstruct, only=("sampling.distribution", "sampling.independence"))
        alarms += [(seed, k, r.message) for k, r in results.items() if r.status is not Status.PASS]
    assert alarms == []
