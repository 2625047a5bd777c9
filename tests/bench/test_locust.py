"""`harness bench serve` on Locust, through the real gateway on loopback: two local worker
processes, every request merged by the master exactly once, answers checked, Locust's own
count equal to the samples', and no process left running; and the locustfile under plain
Locust."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import psutil
import pytest

from harness.bench.locust_engine import LOCUSTFILE, Distribution
from harness.bench.serve import ServeBenchConfig, build_prompts, run_serve_bench
from harness.serving.load import poisson_arrivals

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("loopback")]


def _locust_children(pid):
    return [p for p in psutil.Process(pid).children(recursive=True) if "_locust_run" in " ".join(p.cmdline())]


def _locust_processes():
    return _locust_children(os.getpid())


@pytest.fixture(scope="module")
def expected(loopback, generator, tiny_snapshot):
    from harness.model.generation import Request
    from harness.model.settings import GenerationSettings

    cfg = ServeBenchConfig(prompt_tokens=(8, 16), max_tokens=6, snapshot=str(tiny_snapshot))
    prompts = build_prompts(generator.tokenizer, cfg.prompt_tokens, cfg.prompts_per_length, cfg.seed)
    settings = GenerationSettings(temperature=0.0, max_tokens=cfg.max_tokens)
    return {p: generator.generate([Request(p, settings)])[0] for p, _ in prompts}


def _cfg(loopback, tiny_snapshot, **kwargs):
    """The loopback reference route, with the prompts `expected` answers."""
    fields = {"prompt_tokens": (8, 16), "max_tokens": 6, "snapshot": str(tiny_snapshot), "duration_s": 2.0}
    return ServeBenchConfig(url=loopback.url, route=loopback.routes["reference"], **{**fields, **kwargs})


def test_two_worker_processes_merge_every_request_once(loopback, expected, tiny_snapshot, tmp_path, record_property):
    cfg = _cfg(loopback, tiny_snapshot, concurrency=(2, 4), processes=2)
    report = run_serve_bench(cfg, expected=expected, log_dir=tmp_path / "logs")
    record_property("measured", "locust 2 processes: " + "; ".join(lv.summary() for lv in report.levels))
    assert report.config["engine"] == "locust" and report.config["processes"] == 2
    for level in report.levels:
        engine = level.engine
        assert engine["workers"] == 2 and engine["name"] == "locust"
        # Each request once: the samples the master merged are exactly what Locust counted.
        assert len(level.samples) == engine["requests"] > 0
        assert not level.errors and engine["failures"] == 0, level.error_examples
        assert level.mismatches == 0  # every answer is its own prompt's greedy answer
        assert {s.prompt for s in level.samples} == set(range(len(report.prompts)))
    assert not _locust_processes()


def test_an_open_loop_splits_the_poisson_arrivals_between_workers(loopback, expected, tiny_snapshot, tmp_path):
    cfg = _cfg(loopback, tiny_snapshot, concurrency=(4,), rate=8.0, processes=2)
    report = run_serve_bench(cfg, expected=expected, log_dir=tmp_path / "logs")
    (level,) = report.levels
    schedule = poisson_arrivals(cfg.rate, cfg.duration_s, cfg.seed)
    # Every arrival sent once, by one worker or the other, at its due time after that worker's start.
    assert np.allclose(sorted(s.sent_s for s in level.samples), schedule)
    assert level.engine["requests"] == len(schedule) and level.mismatches == 0
    assert not _locust_processes()


def test_the_locustfile_runs_under_plain_locust(loopback, tmp_path):
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(["What is MLflow?", "Why is the sky blue?"]))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--users",
            "2",
            "--spawn-rate",
            "2",
            "--run-time",
            "3s",
            "--host",
            loopback.url,
            "--route",
            loopback.routes["reference"],
            "--prompts-file",
            str(prompts),
            "--max-tokens",
            "4",
            "--json",
            "--only-summary",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    stats = json.loads(run.stdout)
    assert sum(s["num_requests"] for s in stats) > 0, stats
    assert sum(s["num_failures"] for s in stats) == 0, run.stderr[-3000:]


def test_distribution_is_checked_before_anything_starts():
    from harness import ConfigError

    with pytest.raises(ConfigError, match="processes=0 is invalid"):
        ServeBenchConfig(processes=0)
    assert Distribution(processes=0, remote_workers=2).workers == 2


_MARK = "HARNESS_LOCUST_PROBE"


def _bench_serve(loopback, tmp_path, mark, *args):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "bench",
            "serve",
            "--url",
            loopback.url,
            "--route",
            loopback.routes["reference"],
            "--no-mlflow",
            "--home",
            str(tmp_path / "home"),
            "--report-dir",
            str(tmp_path / "report"),
            "--prompt-tokens",
            "8",
            "--max-tokens",
            "4",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, _MARK: mark},
    )


def test_a_signal_stops_the_master_and_every_worker(loopback, tmp_path, record_property):
    from conftest import finish_owner
    from harness.gate.worker import processes_with_env

    mark = uuid.uuid4().hex
    process = _bench_serve(loopback, tmp_path, mark, "--processes", "2", "--concurrency", "2", "--duration", "60")
    deadline = time.monotonic() + 90  # a hang guard: the servers are already up
    while len([p for p in processes_with_env(_MARK, mark) if "_locust_run" in " ".join(p.cmdline())]) < 3:
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.2)
    time.sleep(1.0)  # the level is running
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output, left = finish_owner(process, _MARK, mark)
    record_property("measured", f"bench serve on locust stopped {time.monotonic() - sent:.2f}s after SIGTERM")
    assert process.returncode == 128 + signal.SIGTERM, output[-2000:]
    assert left == set(), [(p.pid, p.cmdline()) for p in left]


def _remote_worker():
    """What a load machine runs, `harness bench serve --worker HOST`, for a master on a free port."""
    from harness.serving.servers import free_port

    port = free_port()
    argv = [sys.executable, "-m", "harness.cli", "bench", "serve", "--worker", "127.0.0.1", "--master-port", str(port)]
    worker = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return port, worker


def test_a_master_waits_for_a_worker_started_apart(loopback, expected, tiny_snapshot, tmp_path):
    """The two-machine command lines, on one machine: `--worker HOST` workers for a master
    that runs no local worker of its own."""
    port, worker = _remote_worker()
    try:
        cfg = _cfg(loopback, tiny_snapshot, concurrency=(2,), duration_s=1.5, processes=0, remote_workers=1)
        where = Distribution(0, 1, "127.0.0.1", port)
        report = run_serve_bench(cfg, expected=expected, distribution=where, log_dir=tmp_path / "logs")
        output = worker.communicate(timeout=60)[0]  # the master let it go
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.communicate()
    (level,) = report.levels
    assert worker.returncode == 0 and "the master let the workers go" in output, output[-2000:]
    assert level.engine["workers"] == 1 and len(level.samples) == level.engine["requests"] > 0
    assert level.mismatches == 0 and not level.errors


def test_a_worker_stalled_mid_level_still_delivers_every_sample(loopback, expected, tiny_snapshot, tmp_path):
    """A busy machine stalls a worker process for longer than Locust's own 3-heartbeat
    liveness: the run waits for it and merges every request once, it does not fail."""
    from harness.bench._locust_share import WORKER_LIVENESS

    pause_s = 7.0  # Locust alone counts a worker lost after about 4 s without a heartbeat
    assert pause_s < WORKER_LIVENESS
    paused = threading.Event()

    def stall_the_worker_once_it_runs(message):
        if message.startswith("locust:"):

            def stall():
                deadline = time.monotonic() + 60  # a hang guard
                while not (found := [p for p in _locust_processes() if "worker" in p.cmdline()]):
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
                time.sleep(1.5)  # connected, and the level under way
                (worker,) = found
                worker.suspend()
                paused.set()
                time.sleep(pause_s)
                worker.resume()

            threading.Thread(target=stall, daemon=True).start()

    cfg = _cfg(loopback, tiny_snapshot, concurrency=(1,), duration_s=4.0, processes=1)
    report = run_serve_bench(cfg, expected=expected, log_dir=tmp_path / "logs", progress=stall_the_worker_once_it_runs)
    (level,) = report.levels
    assert paused.is_set()
    assert len(level.samples) == level.engine["requests"] > 0
    assert not level.errors and level.mismatches == 0
    assert not _locust_processes()


def test_a_worker_lost_mid_level_fails_the_run(loopback, expected, tiny_snapshot, tmp_path):
    """A remote worker that dies takes its samples with it: the run fails, it does not report
    a level with a worker's share missing."""
    from harness.bench.locust_engine import LocustRunError

    port, worker = _remote_worker()

    def kill_the_remote_worker_once_it_runs(message):
        if message.startswith("locust:"):

            def kill():
                deadline = time.monotonic() + 60  # a hang guard
                while not (found := _locust_children(worker.pid)) and time.monotonic() < deadline:
                    time.sleep(0.2)
                time.sleep(6.0)  # connected, and the 30 s level under way
                for process in found:
                    process.kill()  # the remote machine's Locust worker, not its owner

            threading.Thread(target=kill, daemon=True).start()

    cfg = _cfg(loopback, tiny_snapshot, concurrency=(2,), duration_s=30.0, processes=1, remote_workers=1)
    try:
        with pytest.raises(LocustRunError, match="samples went missing"):
            run_serve_bench(
                cfg,
                expected=expected,
                distribution=Distribution(1, 1, "127.0.0.1", port),
                log_dir=tmp_path / "logs",
                progress=kill_the_remote_worker_once_it_runs,
            )
        output = worker.communicate(timeout=60)[0]
        assert worker.returncode == 1, output[-2000:]  # its owner says its worker died, and stops
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.communicate()
    assert not _locust_processes()


def test_a_signal_stops_a_load_machine_and_its_workers(tmp_path):
    from conftest import finish_owner

    mark = uuid.uuid4().hex
    port = 9  # no master ever answers there: the workers wait for one
    argv = [sys.executable, "-m", "harness.cli", "bench", "serve", "--worker", "127.0.0.1", "--master-port", str(port)]
    process = subprocess.Popen(
        [*argv, "--processes", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, _MARK: mark},
    )
    deadline = time.monotonic() + 60  # a hang guard
    while len(_locust_children(process.pid)) < 2:
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    output, left = finish_owner(process, _MARK, mark)
    assert process.returncode == 128 + signal.SIGTERM, output[-2000:]
    assert left == set(), [(p.pid, p.cmdline()) for p in left]
