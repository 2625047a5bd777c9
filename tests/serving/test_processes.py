"""One owner for every process: a server is owned from spawn, and stopped on exit, on an
exception and on SIGINT/SIGTERM/SIGHUP, also while it is still starting. Fake servers
(http.server) keep these in the fast tier; the real gate and serve are in test_signals."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from harness.gate.worker import processes_with_env
from harness.serving.logs import LogPump

_MARK = "HARNESS_PROCESSES_PROBE"

_DRIVER = textwrap.dedent("""
    import signal, sys, time
    from harness.serving.processes import stop_on_signals
    from harness.serving.servers import ServerProcess, free_port

    phase, log_dir, stubborn = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    port = free_port()
    delay = 600 if phase == "starting" else 0
    ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if stubborn else ""
    code = (f"import signal, time, http.server; {ignore}time.sleep({delay}); "
            f"http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, "
            f"port={port}, bind='127.0.0.1')")
    server = ServerProcess("fake", [sys.executable, "-c", code], port, "/", log_dir=log_dir,
                           ready_timeout_s=600)
    with stop_on_signals():
        print("spawning", flush=True)
        server.start()
        print("ready", flush=True)
        if phase == "exit":
            sys.exit(0)  # no stop(): atexit must do it
        if phase == "raise":
            raise RuntimeError("the owner failed")
        time.sleep(600)
""")


def _run_driver(tmp_path, phase, stubborn=False):
    (tmp_path / "driver.py").write_text(_DRIVER)
    mark = uuid.uuid4().hex
    process = subprocess.Popen(
        [sys.executable, str(tmp_path / "driver.py"), phase, str(tmp_path / "logs"), "1" if stubborn else "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, _MARK: mark},
    )
    return process, mark


def _fake_servers(mark):
    return [p for p in processes_with_env(_MARK, mark) if "http.server" in " ".join(p.cmdline())]


def _wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _assert_nothing_left(process, mark):
    try:
        process.wait(timeout=30)  # a hang guard, not a timing assertion
    finally:
        process.stdout.close()
        left = processes_with_env(_MARK, mark)
        for proc in left:
            proc.kill()
    assert left == set(), [(p.pid, p.cmdline()) for p in left]
    return process.returncode


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("phase", ["starting", "ready"])
def test_a_signal_to_the_owner_stops_its_server_at_any_phase(tmp_path, phase, sig):
    process, mark = _run_driver(tmp_path, phase)
    if phase == "ready":
        assert process.stdout.readline().strip() == "spawning"
        assert process.stdout.readline().strip() == "ready"
    else:  # the server exists but will not listen for minutes
        assert _wait_for(lambda: _fake_servers(mark)), "the fake server never spawned"
    process.send_signal(sig)
    code = _assert_nothing_left(process, mark)
    assert code != 0  # an interrupted owner does not report success


@pytest.mark.parametrize("phase", ["exit", "raise"])
def test_an_owner_that_exits_or_raises_without_stopping_stops_its_server(tmp_path, phase):
    process, mark = _run_driver(tmp_path, phase)
    code = _assert_nothing_left(process, mark)
    assert code == (0 if phase == "exit" else 1)


def test_a_server_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    process, mark = _run_driver(tmp_path, "ready", stubborn=True)
    assert process.stdout.readline().strip() == "spawning"
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGTERM)
    _assert_nothing_left(process, mark)


def test_the_log_is_redacted_capped_and_records_watched_values(tmp_path, monkeypatch):
    canary = f"harness-canary-{uuid.uuid4().hex[:12]}"
    pump = LogPump(tmp_path / "child.log", max_bytes=4096, watch=[canary])
    code = f"import sys\nfor i in range(400): print('line', i, 'x' * 40)\nprint('leak {canary}')"
    monkeypatch.setenv("SOME_API_TOKEN", canary)  # credential-looking: masked everywhere
    child = subprocess.Popen([sys.executable, "-c", code], stdout=pump.child_fd, stderr=subprocess.STDOUT)
    pump.started()
    assert child.wait(timeout=30) == 0
    pump.join(timeout=10)
    text = pump.path.read_text()
    assert pump.path.stat().st_size <= 4096 and pump.backup.stat().st_size <= 4096
    assert "leak ***" in text and canary not in text + pump.backup.read_text()
    assert pump.seen == {canary}
    assert "line 399" in text and "line 0 " not in text + pump.backup.read_text()


def test_workers_pass_through_to_the_scoring_server_and_are_validated():
    from harness.serving.servers import scoring_server

    argv = scoring_server("models:/m/1", workers=3).argv
    assert argv[argv.index("--workers") + 1] == "3"
    for bad in (0, 65, True, "2"):
        with pytest.raises(ValueError, match=r"workers=.* allowed an integer in \[1, 64\]"):
            scoring_server("models:/m/1", workers=bad)


# Python reports the dropped exception as unraisable: that drop is this test's subject.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_signal_whose_exception_was_swallowed_still_interrupts_the_next_step():
    """A handler that runs inside a weakref finalizer has its exception printed and dropped
    by Python (the gate then ran to PASS after SIGTERM): the next step raises it again."""
    import gc
    import os
    import signal
    import weakref

    from harness.serving.processes import Interrupted, raise_if_interrupted, stop_on_signals

    class Held:
        pass

    with stop_on_signals():
        held = Held()
        weakref.finalize(held, os.kill, os.getpid(), signal.SIGTERM)
        try:
            del held
            gc.collect()
        except Interrupted:
            pass  # delivered outside the finalizer on this interpreter: nothing was lost
        with pytest.raises(Interrupted) as raised:
            raise_if_interrupted()
        assert raised.value.signame == "SIGTERM"
    raise_if_interrupted()  # the block is over: nothing is pending any more
