"""The check registry is an explicit, ordered list with declared dependencies, and the
README's check table, count and defaults are the code's."""

import re
from pathlib import Path

import pytest

from harness.gate.checks import CHECKS
from harness.gate.checks.registry import EVERY_OTHER, check, passed, registry
from harness.gate.explore.search import DEFAULT_EXAMPLES, DEFAULT_REPLAYS, DEFAULT_SAFETY_S, DEFAULT_SHRINK_REQUESTS
from harness.gate.runner import DEFAULT_CHECK_TIMEOUT, DEFAULT_LOAD_TIMEOUT

README = (Path(__file__).parents[2] / "README.md").read_text()


def _make(check_id, after=()):
    return check(check_id, "a test check", after=after)(lambda ctx: passed("ok"))


def test_ids_are_unique():
    with pytest.raises(ValueError, match="listed twice"):
        registry(_make("a"), _make("a"))


def test_a_check_comes_after_what_it_declares():
    assert list(registry(_make("a"), _make("b", after=("a",)))) == ["a", "b"]
    with pytest.raises(ValueError, match="must come after"):
        registry(_make("b", after=("a",)), _make("a"))


def test_a_check_after_every_other_is_last():
    with pytest.raises(ValueError, match="listed last"):
        registry(_make("z", after=(EVERY_OTHER,)), _make("a"))
    assert list(registry(_make("a"), _make("z", after=(EVERY_OTHER,)))) == ["a", "z"]


def test_the_registry_is_read_only():
    with pytest.raises(TypeError):
        CHECKS["new"] = _make("new")  # type: ignore[index]


def test_secrets_no_leak_reads_every_other_check_so_it_runs_last():
    assert list(CHECKS)[-1] == "secrets.no_leak"
    assert CHECKS["secrets.no_leak"].after == (EVERY_OTHER,)


def test_the_readme_check_table_is_the_registry_in_order():
    table = README.split("| check | passes when |", 1)[1].split("\n\n", 1)[0]
    assert re.findall(r"^\| `([a-z_.]+)` \| ", table, re.MULTILINE) == list(CHECKS)


def test_the_readme_states_the_check_count_and_the_defaults():
    assert f"these {len(CHECKS)} checks" in README
    assert f"`--explore N` (default {DEFAULT_EXAMPLES})" in README
    assert f"at most {DEFAULT_SHRINK_REQUESTS} requests to shrink a failure and {DEFAULT_REPLAYS} fresh" in README
    assert f"after {DEFAULT_SAFETY_S:g} s (`safety_s`)" in README
    assert f"`--load-timeout` (default {DEFAULT_LOAD_TIMEOUT:g} s)" in README
    assert f"`--check-timeout` (default {DEFAULT_CHECK_TIMEOUT:g} s)" in README


def test_each_torch_process_of_the_gate_gets_half_the_cores_unless_the_user_said():
    from harness.gate.cores import torch_threads

    assert torch_threads({}, cores=2) == 1
    assert torch_threads({}, cores=16) == 8
    assert torch_threads({}, cores=1) == 1
    assert torch_threads({"OMP_NUM_THREADS": "3"}, cores=16) == 3
    assert torch_threads({"OMP_NUM_THREADS": "zero"}, cores=4) == 2  # not a count: ignored
