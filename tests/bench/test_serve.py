"""`harness bench serve`: config validation, per-level statistics from known samples,
the Poisson schedule, SLOs and goodput, the report's JSON round trip and schema, compare
and budgets on a bench-serve.json, all without servers (the gateway is a `responses`
mock); and one slow test through the real loopback gateway."""

import json
import re

import jsonschema
import numpy as np
import pytest
import responses
from click.testing import CliRunner

from harness.bench.compare import Budget, check_budgets, compare, load_metrics
from harness.bench.serve import (
    ServeBenchConfig,
    ServeConfigError,
    build_prompts,
    count_tokens,
    poisson_arrivals,
    run_serve_bench,
)
from harness._stats import latency_stats
from harness.bench.serve_report import SCHEMA_PATH, Level, RequestSample, ServeReport, Slo
from harness.cli import main

MACHINE = {"device": "cpu", "mlflow": "3.17.2", "git_commit": None}
SCHEMA = json.loads(SCHEMA_PATH.read_text())


@pytest.mark.parametrize(
    "field, kwargs, allowed",
    [
        ("concurrency", {"concurrency": (0, 2)}, "1-10000"),
        ("concurrency", {"concurrency": (10001,)}, "1-10000"),
        ("concurrency", {"concurrency": (65,), "engine": "threads"}, "1-64 in one process"),
        ("concurrency", {"concurrency": ()}, "1-10000"),
        ("concurrency", {"concurrency": (2, 2)}, "distinct"),
        ("concurrency", {"concurrency": (True,)}, "1-10000"),
        ("concurrency", {"rate": 5.0, "concurrency": (1, 4), "processes": 2}, ">= 2, one user per worker"),
        ("engine", {"engine": "asyncio"}, "locust"),
        ("rate", {"rate": 0.0}, "(0, 1000]"),
        ("rate", {"rate": float("inf")}, "(0, 1000]"),
        ("rate", {"rate": 0.5, "duration_s": 1.0}, "rate x duration >= 1"),
        ("duration_s", {"duration_s": 0}, "(0, 3600]"),
        ("duration_s", {"duration_s": float("nan")}, "(0, 3600]"),
        ("prompt_tokens", {"prompt_tokens": (0,)}, "1-32768"),
        ("max_tokens", {"max_tokens": 0}, "1-4096"),
        ("slo", {"slo": ("e2e_p90_ms>=500",)}, "METRIC<=N"),
        ("slo", {"slo": ("latency<500",)}, "METRIC<=N"),
        ("slo", {"slo": ("requests_per_s<=3",)}, "METRIC>=N"),
        ("seed", {"seed": -1}, ">= 0"),
        ("api", {"api": "grpc"}, "invocations"),
        ("route", {"route": "no spaces"}, "letters, digits"),
    ],
)
def test_config_rejects_bad_settings_naming_the_field_and_range(field, kwargs, allowed):
    with pytest.raises(ServeConfigError) as caught:
        ServeBenchConfig(**kwargs)
    assert caught.value.field == field and allowed in str(caught.value)


def test_config_never_quotes_a_url_and_normalises_slos():
    with pytest.raises(ServeConfigError) as caught:
        ServeBenchConfig(url="ftp://user:s3cr3t-token@host")
    assert "s3cr3t" not in str(caught.value)
    cfg = ServeBenchConfig(
        url="http://127.0.0.1:5000", concurrency=[1, 4], slo=["e2e_p90_ms <= 500.0", "goodput_rps>=2"]
    )
    assert cfg.concurrency == (1, 4) and cfg.slo == ("e2e_p90_ms<=500", "goodput_rps>=2")
    assert cfg.level_name(4) == "serve c=4"
    assert ServeBenchConfig(rate=2.5).level_name(8) == "serve rate=2.5 c=8"


def _sample(latency_ms, status=200, tokens=8, prompt=0, sent=0.0):
    return RequestSample(prompt, 32, sent, latency_ms / 1000.0, status, tokens if status == 200 else None)


def _level(latencies_ms, failures=(), elapsed_s=2.0, slos=(), name="serve c=2", **kw):
    samples = [_sample(ms, tokens=i % 5 + 1) for i, ms in enumerate(latencies_ms)]
    samples += [_sample(100.0, status=status) for status in failures]
    return Level(name, 2, None, 2.0, elapsed_s, tuple(samples), slos, **kw)


def test_level_statistics_are_numpy_statistics_of_the_answered_samples():
    rng = np.random.default_rng(7)
    latencies = list(rng.gamma(2.0, 30.0, 200))
    level = _level(latencies, failures=(503, 503, None, 500), elapsed_s=4.0)
    stats = level.e2e_s
    expected = np.percentile(np.array(latencies) / 1000, [50, 90, 99])
    assert [stats["p50"], stats["p90"], stats["p99"]] == pytest.approx(list(expected))
    assert stats["mean"] == pytest.approx(np.mean(latencies) / 1000)
    assert stats["max"] == pytest.approx(max(latencies) / 1000)
    assert level.errors == {"500": 1, "503": 2, "none": 1}
    assert level.requests_per_s == pytest.approx(200 / 4.0)  # failures are not throughput
    assert level.tokens_per_s == pytest.approx(sum(i % 5 + 1 for i in range(200)) / 4.0)
    assert level.error_rate == pytest.approx(4 / 204)
    assert latency_stats([]) is None and _level([], failures=(503,)).e2e_s is None


def test_goodput_counts_requests_within_every_latency_slo():
    level = _level(
        [10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
        elapsed_s=2.0,
        slos=("e2e_p90_ms<=75", "e2e_p50_ms<=55", "requests_per_s>=4"),
    )
    assert level.goodput_rps == pytest.approx(5 / 2.0)  # 10..50 ms meet the strictest (55)
    results = {r["slo"]: (r["value"], r["met"]) for r in level.slo_results()}
    assert results["e2e_p90_ms<=75"] == (pytest.approx(np.percentile(range(10, 101, 10), 90)), False)
    assert results["e2e_p50_ms<=55"] == (pytest.approx(55.0), True)
    assert results["requests_per_s>=4"] == (pytest.approx(5.0), True)
    assert _level([10, 20]).goodput_rps == pytest.approx(1.0)  # no SLO: every answer counts
    nothing = _level([], failures=(503,), slos=("e2e_p90_ms<=1000",))
    assert nothing.slo_results() == [{"slo": "e2e_p90_ms<=1000", "value": None, "met": False}]
    assert Slo.parse("error_rate<=0.01").met(0.0) and not Slo.parse("goodput_rps>=2").met(1.9)


def test_poisson_arrivals_are_seeded_exponential_gaps():
    times = poisson_arrivals(rate=50.0, duration_s=4.0, seed=3)
    assert np.array_equal(times, poisson_arrivals(50.0, 4.0, 3))
    assert not np.array_equal(times, poisson_arrivals(50.0, 4.0, 4))
    direct = np.cumsum(np.random.default_rng(3).exponential(1 / 50.0, 10_000))
    assert np.allclose(times, direct[: times.size]) and direct[times.size] >= 4.0
    assert times.size and np.all(np.diff(times) > 0) and times[-1] < 4.0
    long = poisson_arrivals(rate=100.0, duration_s=200.0, seed=0)  # past the first chunk
    gaps = np.diff(np.concatenate([[0.0], long]))
    assert gaps.mean() == pytest.approx(1 / 100.0, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)  # exponential: CV 1


def test_prompts_have_exact_token_lengths_and_are_seeded(tiny_snapshot):
    from harness.model.loading import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_snapshot))
    prompts = build_prompts(tokenizer, (1, 16, 100), 8, seed=5)
    assert [n for _, n in prompts] == [1] * 8 + [16] * 8 + [100] * 8
    assert all(count_tokens(tokenizer, text) == n for text, n in prompts)
    assert len({text for text, _ in prompts}) == 24
    assert prompts == build_prompts(tokenizer, (1, 16, 100), 8, seed=5)
    assert prompts != build_prompts(tokenizer, (1, 16, 100), 8, seed=6)


def _report(levels=None, **config):
    levels = levels or (
        _level([10, 20, 30], failures=(503,), slos=("e2e_p90_ms<=500",), error_examples={"503": "busy"}, mismatches=0),
        _level([40, 50, 60, 70], name="serve c=4", slos=("e2e_p90_ms<=500",)),
    )
    cfg = {
        **ServeBenchConfig(url="http://127.0.0.1:1", slo=("e2e_p90_ms<=500",)).to_dict(),
        "snapshot": "/snap",
        **config,
    }
    return ServeReport(MACHINE, cfg, ({"text": " a b", "tokens": 32},), levels, ("a note",))


def test_report_json_round_trips_and_matches_the_schema(tmp_path):
    report = _report()
    data = json.loads(report.to_json())
    jsonschema.validate(data, SCHEMA)
    again = ServeReport.from_json(report.to_json())
    assert again == report and again.to_dict() == data
    assert data["levels"][0]["samples"][0] == {
        "prompt": 0,
        "prompt_tokens": 32,
        "sent_s": 0.0,
        "latency_s": 0.01,
        "status": 200,
        "output_tokens": 1,
    }
    assert data["levels"][0]["errors"] == {"503": 1} and data["slo_met"] is True
    with pytest.raises(ValueError, match="schema_version"):
        ServeReport.from_json(json.dumps({**data, "schema_version": "0.9"}))
    with pytest.raises(ValueError, match="kind"):
        ServeReport.from_json(json.dumps({**data, "kind": "bench"}))


def test_write_makes_json_markdown_png_and_notes_a_missing_matplotlib(tmp_path, monkeypatch):

    written, files = _report().write(tmp_path / "a")
    assert [f.name for f in files] == ["bench-serve.json", "bench-serve.md", "bench-serve.png"]
    assert (tmp_path / "a" / "bench-serve.png").stat().st_size > 1000
    assert "| serve c=4 | 4 | 0 |" in (tmp_path / "a" / "bench-serve.md").read_text()

    def no_matplotlib(*args):
        raise ImportError("No module named 'matplotlib'")

    from harness.bench import serve_figure

    monkeypatch.setattr(serve_figure, "write_png", no_matplotlib)
    written, files = _report().write(tmp_path / "b")
    assert [f.name for f in files] == ["bench-serve.json", "bench-serve.md"]
    assert "matplotlib is not installed" in written.notes[-1]
    assert "matplotlib" in (tmp_path / "b" / "bench-serve.md").read_text()


def test_compare_and_budgets_read_a_bench_serve_report(tmp_path):
    base, slower = tmp_path / "base.json", tmp_path / "slower.json"
    base.write_text(_report().to_json())
    doubled = tuple(
        Level(
            lv.name,
            lv.concurrency,
            lv.rate,
            lv.duration_s,
            lv.elapsed_s * 2,
            tuple(
                RequestSample(s.prompt, s.prompt_tokens, s.sent_s, s.latency_s * 2, s.status, s.output_tokens)
                for s in lv.samples
            ),
            lv.slos,
        )
        for lv in _report().levels
    )
    slower.write_text(_report(doubled).to_json())
    identity, metrics = load_metrics(base)
    assert identity["kind"] == "bench-serve" and set(metrics) == {"serve c=2", "serve c=4"}
    assert metrics["serve c=4"]["e2e_p90"] == pytest.approx(np.percentile([0.04, 0.05, 0.06, 0.07], 90))
    result = compare(base, slower, [])
    assert {(case, metric) for case, metric, *_ in result.rows} >= {
        ("serve c=4", "e2e_p90"),
        ("serve c=4", "requests_per_s"),
        ("serve c=4", "goodput_rps"),
    }
    cli = CliRunner().invoke(main, ["bench", "compare", str(base), str(slower), "--fail", "goodput_rps:10%"])
    assert cli.exit_code == 1 and "serve c=4: goodput_rps -50.0%" in cli.output
    other = tmp_path / "other.json"
    other.write_text(_report(max_tokens=64).to_json())
    assert CliRunner().invoke(main, ["bench", "compare", str(base), str(other)]).exit_code == 2
    failures, judged = check_budgets(base, [Budget.parse("e2e_p90_ms<=500"), Budget.parse("goodput_rps>=1")])
    assert failures == [] and judged["e2e_p90_ms<=500"] == pytest.approx(np.percentile([40, 50, 60, 70], 90))
    failures, _ = check_budgets(base, [Budget.parse("goodput_rps>=2")])
    assert failures == ["goodput_rps>=2 missed: 1.5"]  # the worst level: 3 answers in 2 s


def _mock_gateway(rsps, answer=" the machine"):
    pattern = re.compile(r"http://gw\.test/(endpoints/route-a/invocations|v1/completions)$")

    def reply(request):
        body = json.loads(request.body)
        assert body["temperature"] == 0.0 and body["max_tokens"] == 4
        assert body.get("model", "route-a") == "route-a"
        return 200, {}, json.dumps({"choices": [{"text": answer, "index": 0}]})

    rsps.add_callback(responses.POST, pattern, callback=reply)


@pytest.mark.parametrize("api, rate", [("invocations", None), ("openai", 40.0)])
def test_run_serve_bench_against_a_mock_gateway(tiny_snapshot, api, rate):
    cfg = ServeBenchConfig(
        url="http://gw.test",
        route="route-a",
        api=api,
        concurrency=(1, 2),
        rate=rate,
        duration_s=0.3,
        prompt_tokens=(4, 8),
        max_tokens=4,
        slo=("e2e_p99_ms<=10000",),
        snapshot=str(tiny_snapshot),
        engine="threads",  # the mock answers in this process only
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        _mock_gateway(rsps)
        report = run_serve_bench(cfg, machine=MACHINE)
    jsonschema.validate(json.loads(report.to_json()), SCHEMA)
    assert [lv.name for lv in report.levels] == [cfg.level_name(1), cfg.level_name(2)]
    prompt_lengths = [p["tokens"] for p in report.prompts]
    assert prompt_lengths == [4] * 8 + [8] * 8 and report.slo_met
    for level in report.levels:
        assert level.samples and not level.errors and level.mismatches is None
        assert {s.output_tokens for s in level.samples} == {2}  # " the machine"
        assert all(s.prompt_tokens == prompt_lengths[s.prompt] for s in level.samples)
    if rate is not None:  # the schedule, not the answers, decides what is sent
        sent = [s.sent_s for s in report.levels[0].samples]
        assert np.allclose(sent, poisson_arrivals(rate, 0.3, 0))


def test_cli_usage_errors_name_the_option_and_its_range(tmp_path):
    def run(*args):
        return CliRunner().invoke(
            main, ["bench", "serve", "--url", "http://127.0.0.1:9", "--no-mlflow", "--report-dir", str(tmp_path), *args]
        )

    for args, option, allowed in (
        (["--concurrency", "0,4"], "--concurrency", "1-10000"),
        (["--concurrency", "65", "--engine", "threads"], "--concurrency", "1-64 in one process"),
        (["--rate", "5", "--concurrency", "1", "--processes", "2"], "--concurrency", ">= 2, one user per worker"),
        (["--processes", "0"], "--processes", "allowed 1-64"),
        (["--master", "--master-port", "0"], "--master-port", "1-65535"),
        (["--master", "--expect-workers", "0"], "--processes", "allowed 1-64"),
        (["--concurrency", "1,x"], "--concurrency", "integers"),
        (["--rate", "-2"], "--rate", "(0, 1000]"),
        (["--duration", "0"], "--duration", "(0, 3600]"),
        (["--max-tokens", "0"], "--max-tokens", "1-4096"),
        (["--slo", "p90<=5"], "--slo", "e2e_p90_ms"),
        (["--prompt-tokens", "0"], "--prompt-tokens", "1-32768"),
    ):
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert option in result.output and allowed in result.output, result.output


def test_cli_unreachable_gateway_is_a_one_line_failure(tmp_path, tiny_snapshot):
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "serve",
            "--url",
            "http://127.0.0.1:9",
            "--no-mlflow",
            "--report-dir",
            str(tmp_path),
            "--snapshot",
            str(tiny_snapshot),
            "--concurrency",
            "1",
            "--duration",
            "1",
        ],
    )
    assert result.exit_code == 2 and "warm-up request failed" in result.output
    assert "cannot connect" in result.output


@pytest.mark.slow
@pytest.mark.xdist_group("loopback")
def test_bench_serve_through_the_real_gateway(loopback, generator, tiny_snapshot, tmp_path, record_property):
    from harness.model.generation import Request
    from harness.model.settings import GenerationSettings

    cfg = ServeBenchConfig(
        url=loopback.url,
        route=loopback.routes["reference"],
        concurrency=(1, 2),
        duration_s=1.0,
        prompt_tokens=(8, 32),
        max_tokens=8,
        slo=("e2e_p99_ms<=30000",),
        snapshot=str(tiny_snapshot),
    )
    settings = GenerationSettings(temperature=0.0, max_tokens=cfg.max_tokens)
    prompts = build_prompts(generator.tokenizer, cfg.prompt_tokens, cfg.prompts_per_length, cfg.seed)
    expected = {p: generator.generate([Request(p, settings)])[0] for p, _ in prompts}
    assert len(set(expected.values())) > 1, "the prompts must not share one answer"

    report = run_serve_bench(cfg, expected=expected)
    record_property("measured", "bench serve: " + "; ".join(lv.summary() for lv in report.levels))
    written, files = report.write(tmp_path)
    jsonschema.validate(json.loads(files[0].read_text()), SCHEMA)
    assert ServeReport.from_json(files[0].read_text()) == written
    assert [p["text"] for p in report.prompts] == [p for p, _ in prompts]
    for level in report.levels:
        assert level.samples and not level.errors, level.error_examples
        assert level.mismatches == 0  # every answer is its own prompt's greedy answer
        assert level.requests_per_s > 0 and level.tokens_per_s > 0
    assert report.slo_met
