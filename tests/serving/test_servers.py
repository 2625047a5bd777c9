"""Registered model -> real scoring server -> real MLflow AI Gateway -> client, on loopback."""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import mlflow
import pandas as pd
import pytest

from harness.serving.gateway import (
    NO_RETRY,
    AnswerShape,
    CompletionRequest,
    DeploymentsGatewayClient,
    GatewayError,
    LegacyGatewayClient,
    Transport,
)
from conftest import finish_owner
from harness.gate.worker import processes_with_env
from harness.serving.servers import ServerError, ServerProcess, scoring_server, start_loopback

_MARK = "HARNESS_SERVE_PROBE"

pytestmark = pytest.mark.e2e
PROMPT = "What is MLflow?"


# Every test here starts real servers.
# One worker holds the shared loopback servers (xdist --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("loopback")]


@pytest.fixture(autouse=True)
def _fail_fast(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def _direct(loopback, max_tokens=8):
    with loopback.store.activated():
        model = mlflow.pyfunc.load_model(loopback.uris["reference"])
    return model.predict(pd.DataFrame({"prompt": [PROMPT]}), params={"temperature": 0.0, "max_tokens": max_tokens})


def test_query_through_the_gateway_equals_the_direct_answer(loopback):
    request = CompletionRequest(PROMPT, temperature=0.0, max_tokens=8)
    current = DeploymentsGatewayClient(loopback.url).query(loopback.routes["reference"], request)
    assert current.shape is AnswerShape.CHOICES and len(current.texts) == 1
    assert list(current.texts) == _direct(loopback)


def test_the_seed_step_7_path_gets_choices_not_the_documented_candidates(loopback):
    legacy = LegacyGatewayClient(Transport(loopback.url, retry=NO_RETRY))
    result = legacy.query(loopback.routes["reference"], CompletionRequest(PROMPT, 0.0, 8))
    assert result.shape is AnswerShape.CHOICES  # code written to the doc's `candidates` breaks
    assert list(result.texts) == _direct(loopback)


def _status(loopback, route_key, request) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        DeploymentsGatewayClient(loopback.url).query(loopback.routes[route_key], request)
    return info.value


def test_the_seed_column_signature_rejects_the_gateway_payload(loopback):
    error = _status(loopback, "columns", CompletionRequest(PROMPT, 0.0, 8))
    assert 400 <= error.status < 500, error
    assert "schema" in error.message.lower()


def test_a_bare_string_answer_is_a_502(loopback):
    assert _status(loopback, "bare", CompletionRequest(PROMPT, 0.0, 8)).status == 502


@pytest.mark.parametrize(
    "request_, field",
    [
        (CompletionRequest(PROMPT, temperature=3.0), "temperature"),
        (CompletionRequest(PROMPT, temperature=-1.0), "temperature"),
        (CompletionRequest(PROMPT, max_tokens=0), "max_tokens"),
        (CompletionRequest(PROMPT, max_tokens=100_000), "max_tokens"),
    ],
)
def test_invalid_settings_are_4xx_naming_the_field(loopback, request_, field):
    error = _status(loopback, "reference", request_)
    assert 400 <= error.status < 500 and field in error.message, error


def test_route_backed_model_answers_through_the_real_gateway(loopback, tmp_path):
    from harness.serving.route_model import RouteModelConfig, log_route_model

    from harness.store import StoreConfig

    with StoreConfig(home=tmp_path).activated():
        with mlflow.start_run():
            info = log_route_model(
                RouteModelConfig(gateway_url=loopback.url, route=loopback.routes["reference"], api="deployments")
            )
        model = mlflow.pyfunc.load_model(info.model_uri)
    answers = model.predict(pd.DataFrame({"prompt": [PROMPT, PROMPT]}), params={"temperature": 0.0, "max_tokens": 8})
    assert answers == _direct(loopback) * 2


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_server_is_stopped_even_when_the_block_fails(loopback):
    server = scoring_server(loopback.uris["reference"], loopback.store.uri)
    with pytest.raises(RuntimeError, match="test failed"), server:
        assert _listening(server.port)
        pgid = server.process.pid
        raise RuntimeError("test failed while the server ran")
    assert _group_gone(pgid) and not _listening(server.port)


def test_a_server_that_cannot_start_fails_fast_with_its_log(loopback):
    with pytest.raises(ServerError, match="exited with code") as info:
        scoring_server("models:/no-such-model/1", loopback.store.uri).start()
    assert "no-such-model" in str(info.value) or "RESOURCE_DOES_NOT_EXIST" in str(info.value)


def test_a_loopback_that_cannot_start_leaves_no_server_behind(loopback, tmp_path):
    """One model starts, the other cannot: the one that started is stopped before the error."""
    spawned = []
    original = ServerProcess.start

    def start(self):
        spawned.append(self)
        return original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ServerProcess, "start", start)
        with pytest.raises(ServerError, match="exited with code"):
            start_loopback(
                {"good": loopback.uris["reference"], "bad": "models:/no-such-model/1"}, loopback.store.uri, tmp_path
            )
    assert len(spawned) == 2 and all(s.process is not None for s in spawned)
    assert all(_group_gone(s.process.pid) and not _listening(s.port) for s in spawned)


def _serve(loopback, tmp_path, mark):
    """`harness serve` on the loopback store's model (already logged: no registration)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "serve",
            "--model-uri",
            loopback.uris["reference"],
            "--tracking-uri",
            loopback.store.uri,
            "--home",
            str(tmp_path / "home"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, _MARK: mark},
    )
    lines, deadline = [], time.monotonic() + 120
    for line in process.stdout:
        lines.append(line)
        if "press Ctrl-C" in line or time.monotonic() > deadline:
            break
    return process, lines


def _finish(process, mark):
    output, left = finish_owner(process, _MARK, mark)
    assert left == set(), [(p.pid, p.cmdline()) for p in left]
    return output


def test_harness_serve_stops_everything_on_sigterm(loopback, tmp_path, record_property):
    mark = uuid.uuid4().hex
    process, lines = _serve(loopback, tmp_path, mark)
    urls = [line.split()[-1] for line in lines if line.startswith(("scoring server:", "gateway:"))]
    assert len(urls) == 2, "".join(lines)
    ports = [int(url.split(":")[2].split("/")[0]) for url in urls]
    assert all(_listening(p) for p in ports)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output = _finish(process, mark)
    record_property("measured", f"serve stopped {time.monotonic() - sent:.2f}s after SIGTERM")
    assert process.returncode == 0, "".join(lines) + output
    assert not any(_listening(p) for p in ports)


def test_serve_exits_non_zero_naming_the_child_that_died(loopback, tmp_path, record_property):
    mark = uuid.uuid4().hex
    process, lines = _serve(loopback, tmp_path, mark)
    scoring = [p for p in processes_with_env(_MARK, mark) if "models serve" in " ".join(p.cmdline())]
    assert scoring, "".join(lines)
    sent = time.monotonic()
    min(scoring, key=lambda p: p.pid).send_signal(signal.SIGKILL)  # what serve started
    output = "".join(lines) + _finish(process, mark)
    record_property("measured", f"serve exited {time.monotonic() - sent:.2f}s after its scoring server was killed")
    assert process.returncode == 1, output[-2000:]
    assert "the scoring-server was killed by SIGKILL; stopping the gateway" in output
    logs = list((tmp_path / "home" / "logs").glob("serve-*/gateway.log"))
    assert logs and f"logs: {logs[0].parent}" in output
