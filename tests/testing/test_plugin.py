"""The pytest plugin, run with pytester in a scratch project, in subprocesses: an
in-process run drops the modules it imported afterwards, and numpy cannot load twice."""

import pytest

from conftest import MUTANTS_FILE

# Loaded before pytester snapshots sys.modules, so that numpy and MLflow (which cannot load
# twice) are not dropped after a test that imported them first.
from harness.gate.checks import CHECKS

# Every test here spawns pytest.
pytestmark = pytest.mark.slow

pytest_plugins = ["pytester"]


@pytest.fixture
def scratch(pytester, tiny_snapshot):
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    return pytester


def _args(tiny_snapshot, candidate):
    return [
        "--harness-candidate",
        candidate,
        "--harness-snapshot",
        str(tiny_snapshot),
        "--harness-no-serve",
        "--harness-explore",
        "4",
    ]


def test_a_mutant_fails_exactly_its_check_and_each_check_is_a_test(scratch, tiny_snapshot):
    result = scratch.runpytest_subprocess(*_args(tiny_snapshot, f"{MUTANTS_FILE}:NoKVCache"), "-rfs")
    # no servers, no benchmark report, no --route: those checks say skipped
    idle = [c for c in CHECKS.values() if c.needs_serving or c.id in ("bench.budget", "route.spec")]
    result.assert_outcomes(passed=len(CHECKS) - 1 - len(idle), failed=1, skipped=len(idle))
    result.stdout.fnmatch_lines(["*generate.use_cache: fail: *the KV cache is off*"])
    result.stdout.fnmatch_lines(["*--no-serve*"])


def test_gpu_tests_are_collected_and_skipped_with_a_reason(scratch, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU in the subprocess, even on a GPU box
    scratch.makepyfile("""
        import pytest

        @pytest.mark.gpu
        def test_on_gpu():
            assert False, "must not run without a GPU"

        def test_on_cpu():
            pass
    """)
    result = scratch.runpytest_subprocess("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*needs a CUDA GPU*"])


def test_fixtures_are_available_to_user_suites(scratch, tiny_snapshot):
    scratch.makepyfile("""
        def test_reference(reference_model):
            out = reference_model.predict(None, ["hi"], params={"temperature": 0.0, "max_tokens": 2})
            assert isinstance(out, list) and len(out) == 1

        def test_candidate(candidate):
            import pandas as pd
            out = candidate.predict(pd.DataFrame({"prompt": ["a", "b"]}), params={"max_tokens": 2})
            assert len(out) == 2
    """)
    result = scratch.runpytest_subprocess()
    result.assert_outcomes(passed=2)
