"""Whole gates, the candidate in its worker process: the reference passes, the published
seed fails at load, and failing candidates give verdicts, never crashes. (The mutants are
judged check by check in test_checks.py; hostile candidates in test_isolation.py.)"""

import json

import pytest

from conftest import MUTANTS_FILE
from harness.gate.candidate import CandidateSpec
from harness.gate.checks import CHECKS

# Every test here runs a gate in its worker process (whole where the whole gate is the
# subject; ``only=`` where a test reads a few checks).
pytestmark = pytest.mark.slow

BAD = {"fail", "error"}


def _failing(report) -> set[str]:
    return {c.id for c in report.checks if c.status.value in BAD}


@pytest.mark.xdist_group("reference-gate")
def test_reference_passes_every_check(reference_gate):
    """The whole gate, its servers included: only route.spec (no --route given) and
    bench.budget (no benchmark report) have nothing to judge."""
    report = json.loads((reference_gate.folder / "gate.json").read_text())
    assert report["verdict"] == "pass"
    assert [c["id"] for c in report["checks"]] == list(CHECKS)
    nothing_to_judge = {"bench.budget", "route.spec"}
    for c in report["checks"]:
        assert c["status"] == ("skipped" if c["id"] in nothing_to_judge else "pass"), (c["id"], c["message"])


def test_the_column_signature_fails_only_the_gateway_payload(run_candidate):
    report = run_candidate(CandidateSpec(signature="columns"))
    assert _failing(report) == {"signature.payload"}
    assert report.check("params.stop").status.value == "skipped"  # no stop in that signature


def test_a_candidate_that_needs_cuda_fails_load_plainly(run_candidate):
    import torch

    if torch.cuda.is_available():
        pytest.skip("moving to CUDA only fails on a machine without a GPU")
    report = run_candidate(CandidateSpec.from_file(f"{MUTANTS_FILE}:CudaHardCoded"))
    assert _failing(report) == {"load"}
    assert "this machine has no GPU" in report.check("load").message


def test_seed_wrapper_as_published_fails_at_load_plainly(run_candidate, seed_wrapper_source, tmp_path):
    path = tmp_path / "seed_step2.py"
    path.write_text(seed_wrapper_source)
    report = run_candidate(CandidateSpec.from_file(f"{path}:MPT", "columns"))
    load = report.check("load")
    assert load.status.value == "fail"
    assert "attn_config['attn_impl']" in load.message and "native transformers MPT config" in load.message
    assert report.check("signature.payload").status.value == "fail"  # the seed's column schema
    assert all(c.status.value == "skipped" for c in report.checks if CHECKS[c.id].needs_model), (
        "behaviour checks need a loaded model"
    )


def test_seed_wrapper_with_load_patched_still_fails_the_behaviour_checks(run_candidate, seed_wrapper_source, tmp_path):
    source = seed_wrapper_source.replace("config.attn_config['attn_impl'] = 'triton'", "pass")
    source = source.replace("'cuda'", "'cpu'")
    path = tmp_path / "seed_patched.py"
    path.write_text(source)
    report = run_candidate(CandidateSpec.from_file(f"{path}:MPT", "columns"), only=_SEED_DEFECTS)
    assert report.check("load").status.value == "pass"
    assert set(_SEED_DEFECTS) <= _failing(report)


# What the seed's published predict gets wrong once it loads (the seed's page, step 2).
_SEED_DEFECTS = (
    "output.type",
    "rows.all",
    "prompt.template",
    "params.temperature_zero",
    "params.invalid",
    "generate.use_cache",
)


HOSTILE = """
import time
import mlflow
from harness.model.wrapper import MPTInstruct

class Hangs(MPTInstruct):
    def predict(self, context, model_input, params=None):
        time.sleep(3)
        return ["late"]

class Raises(MPTInstruct):
    def predict(self, context, model_input, params=None):
        raise RuntimeError("boom from the candidate")

class Garbage(MPTInstruct):
    def predict(self, context, model_input, params=None):
        return 42

class NoModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return ["x"] * len(model_input)
"""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile") / "hostile.py"
    path.write_text(HOSTILE)
    return path


def test_a_hanging_candidate_times_out_per_check(run_candidate, hostile):
    # One check: that the next check then gets a fresh worker is test_isolation.py's subject.
    report = run_candidate(CandidateSpec.from_file(f"{hostile}:Hangs"), check_timeout=0.3, only=("rows.all",))
    timed_out = [c for c in report.checks if c.message.startswith("timed out")]
    assert timed_out and all(c.status.value == "error" for c in timed_out)
    assert report.verdict == "fail"


def test_a_raising_candidate_gives_errors_with_type_and_message(run_candidate, hostile):
    report = run_candidate(CandidateSpec.from_file(f"{hostile}:Raises"), only=("rows.all",))
    rows = report.check("rows.all")
    assert rows.status.value == "error" and "boom from the candidate" in rows.message
    assert report.check("load").status.value == "pass"


def test_garbage_output_fails_output_type(run_candidate, hostile):
    report = run_candidate(CandidateSpec.from_file(f"{hostile}:Garbage"), only=("output.type",))
    assert report.check("output.type").status.value == "fail"
    assert "int" in report.check("output.type").message


def test_a_candidate_that_never_calls_the_model_fails_on_its_answers(run_candidate, hostile):
    report = run_candidate(CandidateSpec.from_file(f"{hostile}:NoModel"), only=("answers.reference",))
    assert report.check("load").status.value == "pass"
    answers = report.check("answers.reference")
    assert answers.status.value == "fail" and "differs from the reference" in answers.message


def test_a_model_logged_without_a_signature_fails_signature_present(run_candidate, gate_store, tiny_snapshot):
    import mlflow

    from harness.model.wrapper import MPTInstruct

    with gate_store.activated(), mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="unsigned", python_model=MPTInstruct(), artifacts={"repository": str(tiny_snapshot)}
        )
    report = run_candidate(CandidateSpec.from_uri(info.model_uri), only=("signature.present", "rows.all"))
    present = report.check("signature.present")
    assert present.status.value == "fail" and "without a signature" in present.message
    assert report.check("load").status.value == "pass"
    assert report.check("rows.all").status.value == "pass"  # behaviour is still judged


def test_a_system_prompt_with_auto_waits_for_the_snapshot_to_say_the_format(tiny_snapshot):
    """auto may resolve to a format with a system turn: refused only once it resolves to one without."""
    from harness._validation import ConfigError
    from harness.gate.runner import GateConfig
    from harness.model.formats import PromptFormat
    from harness.model.loading import load_tokenizer

    cfg = GateConfig(prompt_format="auto", system_prompt="Be brief.")
    with pytest.raises(ConfigError) as error:
        PromptFormat.resolve(cfg.prompt_format, load_tokenizer(str(tiny_snapshot)), cfg.system_prompt)
    assert error.value.field == "system_prompt"
