"""`harness bench run|compare|plot` and the gate's bench.budget on a real tiny-model run."""

import json
import math

import jsonschema
import mlflow
import pytest
from click.testing import CliRunner

from harness.bench.report import SCHEMA_PATH, BenchReport
from harness.cli import main


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_snapshot):
    folder = tmp_path_factory.mktemp("bench")
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "run",
            "--snapshot",
            str(tiny_snapshot),
            "--device",
            "cpu",
            "--batch-sizes",
            "1,4",
            "--prompt-tokens",
            "64",
            "--new-tokens",
            "8",
            "--rounds",
            "3",
            "--report-dir",
            str(folder / "report"),
            "--home",
            str(folder / "home"),
        ],
    )
    return result, folder


def test_run_writes_three_files_and_an_mlflow_run(tiny_run):
    result, folder = tiny_run
    assert result.exit_code == 0, result.output
    assert {p.name for p in (folder / "report").iterdir()} == {"bench.json", "bench.md", "bench.png"}
    jsonschema.validate(json.loads((folder / "report" / "bench.json").read_text()), json.loads(SCHEMA_PATH.read_text()))
    run_id = result.stdout.strip().splitlines()[-1].split()[-1]
    run = mlflow.tracking.MlflowClient(f"sqlite:///{folder / 'home' / 'mlflow.db'}").get_run(run_id)
    assert json.loads(run.data.params["batch_sizes"]) == [1, 4]
    assert any(k.endswith("tpot_p50") for k in run.data.metrics)


def test_numbers_are_consistent_with_each_other(tiny_run):
    report = BenchReport.from_json((tiny_run[1] / "report" / "bench.json").read_text())
    assert {c.path for c in report.cases} == {"raw", "wrapped"}
    assert {c.use_cache for c in report.cases if c.path == "raw"} == {True, False}
    for c in report.cases:
        assert math.isclose(c.tokens_per_s, c.batch_size * c.new_tokens / c.e2e_s.p50)
        assert math.isclose(c.requests_per_s, c.batch_size / c.e2e_s.p50)
        # TPOT x (n - 1) + TTFT = e2e, exactly on means (TPOT is derived per round)
        assert math.isclose(c.tpot_s.mean * (c.new_tokens - 1) + c.ttft_s.mean, c.e2e_s.mean)
        assert c.cache_impl == ("DynamicCache" if c.use_cache else "none")  # read from generate
        assert c.attn_impl.startswith("torch")
        assert c.wrapped_via == ("pyfunc.predict" if c.path == "wrapped" else None)
    prompt = report.cases[0].prompt_tokens
    ratios = report.overhead_ratios()
    assert set(ratios) == {f"b{b} p{prompt} n8 cache-on" for b in (1, 4)}
    # The ratio's size depends on how busy the machine is (a benchmark's business, not a
    # test's); what must hold is that it is the wrapped p50 over the raw p50 of its case.
    by_key = {(c.path, c.batch_size, c.use_cache): c.e2e_s.p50 for c in report.cases}
    for b in (1, 4):
        ratio = ratios[f"b{b} p{prompt} n8 cache-on"]
        assert math.isclose(ratio, by_key["wrapped", b, True] / by_key["raw", b, True])


def _regressed(source, target, factor):
    data = json.loads(source.read_text())
    for case in data["cases"]:
        for stat, value in case["tpot_s"].items():
            case["tpot_s"][stat] = [v * factor for v in value] if isinstance(value, list) else value * factor
    target.write_text(json.dumps(data))
    return target


def test_compare_exit_codes(tiny_run, tmp_path):
    base = tiny_run[1] / "report" / "bench.json"
    same = CliRunner().invoke(main, ["bench", "compare", str(base), str(base), "--fail", "tpot_p50:5%"])
    assert same.exit_code == 0 and "verdict: PASS" in same.output
    # Three times slower lies outside both runs' intervals, however noisy three rounds are.
    worse = _regressed(base, tmp_path / "worse.json", 3.0)
    failed = CliRunner().invoke(main, ["bench", "compare", str(base), str(worse), "--fail", "tpot_p50:5%"])
    assert failed.exit_code == 1 and "REGRESSION" in failed.output and "+200.0%" in failed.output
    other = json.loads(base.read_text())
    other["config"]["dtype"] = "bfloat16"
    (tmp_path / "other.json").write_text(json.dumps(other))
    refused = CliRunner().invoke(main, ["bench", "compare", str(base), str(tmp_path / "other.json")])
    assert refused.exit_code == 2 and "not comparable" in refused.output


def test_pytest_benchmark_json_is_accepted(tmp_path):
    data = {
        "machine_info": {"cpu": {"brand_raw": "cpu"}},
        "benchmarks": [
            {
                "fullname": "benchmarks/test_generate_cpu.py::test_generate[1]",
                "stats": {"median": 0.02, "mean": 0.021},
                "extra_info": {"tokens_per_s": 500.0},
            }
        ],
    }
    (tmp_path / "a.json").write_text(json.dumps(data))
    data["benchmarks"][0]["stats"]["median"] = 0.03
    (tmp_path / "b.json").write_text(json.dumps(data))
    result = CliRunner().invoke(
        main, ["bench", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--fail", "e2e_p50:10%"]
    )
    assert result.exit_code == 1 and "e2e_p50" in result.output


@pytest.mark.slow
def test_gate_bench_budget(tiny_run, run_candidate):
    report = tiny_run[1] / "report" / "bench.json"
    ok = run_candidate(
        bench_report=report, budgets=("tpot_p50_ms<=10000", "overhead_ratio<=100"), only=("bench.budget",)
    )
    assert ok.check("bench.budget").status.value == "pass"
    missed = run_candidate(bench_report=report, budgets=("tpot_p50_ms<=0.0001",), only=("bench.budget",))
    budget = missed.check("bench.budget")
    assert budget.status.value == "fail" and "tpot_p50_ms<=0.0001 missed" in budget.message
    none = run_candidate(only=("bench.budget",))
    assert none.check("bench.budget").status.value == "skipped"
    assert "no --bench-report" in none.check("bench.budget").message


def test_budget_without_report_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["gate", "--budget", "tpot_p50_ms<=25", "--no-serve", "--home", str(tmp_path)])
    assert result.exit_code == 2 and "--bench-report" in result.output


def test_plot_remakes_png_and_markdown(tiny_run, tmp_path):
    target = tmp_path / "bench.json"
    target.write_text((tiny_run[1] / "report" / "bench.json").read_text())
    result = CliRunner().invoke(main, ["bench", "plot", str(target)])
    assert result.exit_code == 0 and (tmp_path / "bench.png").stat().st_size > 1000
    assert (tmp_path / "bench.md").read_text().startswith("# Benchmark: cpu")


def test_compile_failure_is_reported_and_eager_results_kept(monkeypatch):
    import torch

    from harness.bench.core import BenchConfig, run_bench

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    cases, notes = run_bench(
        BenchConfig(
            shape="tiny",
            batch_sizes=(1,),
            prompt_tokens=(32,),
            new_tokens=(4,),
            cache_modes=(True,),
            rounds=1,
            warmup=0,
            compile=True,
        )
    )
    assert {c.path for c in cases} == {"raw", "wrapped"}
    assert notes == ["torch.compile variant not measured: RuntimeError: no compiler here"]


def test_a_case_s_prompt_size_counts_the_format_s_ids(chat_snapshot):
    """On the chat snapshot, each case's prompt holds the chat template's ids (BOS and the
    special tokens included), and raw and wrapped run the same ids."""
    from harness.bench.core import BenchConfig, load_subject, run_bench
    from harness.bench.measure import instruction_for

    cfg = BenchConfig(
        snapshot=str(chat_snapshot),
        prompt_format="auto",
        batch_sizes=(1,),
        prompt_tokens=(40,),
        new_tokens=(2,),
        cache_modes=(True,),
        rounds=1,
        warmup=0,
    )
    generator = load_subject(cfg)
    assert generator.prompt_format.name == "chat-template"
    text = instruction_for(generator.tokenizer, 40, generator.prompt_format)
    ids = generator.tokenize([text])[0]
    assert 40 <= len(ids) <= 50 and ids[:2] == [generator.tokenizer.bos_token_id, 2]
    assert len(generator.tokenizer(text)["input_ids"]) < 40  # the bare instruction is shorter
    cases, _ = run_bench(cfg)
    assert {c.prompt_tokens for c in cases} == {len(ids)}


def test_a_format_the_snapshot_cannot_render_is_refused_naming_it(tiny_snapshot):
    from harness._validation import ConfigError
    from harness.bench.core import BenchConfig, load_subject

    with pytest.raises(ConfigError) as error:
        load_subject(BenchConfig(snapshot=str(tiny_snapshot), prompt_format="chat-template"))
    assert error.value.field == "prompt_format" and "no chat_template" in str(error.value)
