"""Real MLflow servers on loopback: the scoring server and the AI Gateway.

Each binds 127.0.0.1 on a free port, is owned (see :mod:`harness.serving.processes`)
from the moment it is spawned, is waited for with a timeout (a failure says why, with the
server's log tail), and is stopped with SIGTERM to its whole process group, then SIGKILL,
so no gunicorn/uvicorn worker is left behind. Its output goes to a redacted, size-capped
log (:mod:`harness.serving.logs`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from harness._validation import IntIn, checked
from harness.serving.logs import DEFAULT_MAX_BYTES, LogPump
from harness.serving.processes import disown, own, spawning
from harness.serving.route import RouteSpec

HOST = "127.0.0.1"


class ServerError(RuntimeError):
    """A server that did not come up; carries the tail of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A server in its own process group; owned from the moment it is spawned, and a context
    manager that always stops it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        health_path: str | None,  # None: no HTTP readiness to wait for (owned from the spawn)
        env: Mapping[str, str] | None = None,
        ready_timeout_s: float = 90.0,
        log_dir: str | os.PathLike | None = None,
        log_max_bytes: int = DEFAULT_MAX_BYTES,
        watch: Sequence[str] = (),
        stop_signal: int = signal.SIGTERM,
    ):
        self.name, self.argv, self.port = name, list(argv), port
        self.health_path = health_path
        self.env = dict(env or {})
        self.ready_timeout_s = ready_timeout_s
        log_dir = Path(log_dir or tempfile.mkdtemp(prefix="harness-serve-"))
        self.log_path = log_dir / f"{name}.log"
        self.log_max_bytes = log_max_bytes
        self.watch = tuple(watch)  # values the log is searched for (secrets.no_leak)
        self.stop_signal = stop_signal
        self.log: LogPump | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def start(self) -> ServerProcess:
        env = {**os.environ, **self.env}
        self.log = LogPump(self.log_path, self.log_max_bytes, self.watch)
        with spawning():
            try:
                self.process = subprocess.Popen(
                    self.argv,
                    stdout=self.log.child_fd,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
            except BaseException:
                self.log.abandon()
                raise
            own(self)
        self.log.started()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        if self.process is None:
            raise ServerError(f"{self.name} was never started")
        if self.health_path is None:
            return
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(
                    f"{self.name} {self.exit_description()} before it was ready; log tail:\n{self.log_tail()}"
                )
            try:
                if requests.get(self.url + self.health_path, timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise ServerError(
            f"{self.name} not ready on {self.url} after {self.ready_timeout_s:g}s; log tail:\n{self.log_tail()}"
        )

    def exit_description(self) -> str:
        """How the server ended, in words: exit code or signal."""
        code = None if self.process is None else self.process.poll()
        if code is None:
            return "is running"
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def terminate(self) -> None:
        """The stop signal to the whole group, without waiting (see :func:`processes.stop_all`)."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, self.stop_signal)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self, grace_s: float = 2.0) -> None:
        """The stop signal to the whole group (gunicorn/uvicorn shut down their workers on
        it), then SIGKILL after ``grace_s``: a loopback server holds nothing worth waiting for."""
        if self.process is None:
            return
        if self.process.poll() is None or _group_alive(self.process.pid):
            for sig, wait in ((self.stop_signal, grace_s), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                if _wait_group(self.process, wait):
                    break
        disown(self)
        if self.log is not None:
            self.log.join(timeout=1.0)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _wait_group(process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.poll()
        if not _group_alive(process.pid):
            return True
        time.sleep(0.1)
    return False


def _mlflow_cli() -> list[str]:
    return [sys.executable, "-m", "mlflow"]


def scoring_server(
    model_uri: str,
    tracking_uri: str | None = None,
    port: int | None = None,
    log_dir: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    watch: Sequence[str] = (),
) -> ServerProcess:
    """``mlflow models serve`` for ``model_uri`` (not started: use ``with``); ``env`` adds
    to (or overrides) this process's environment for the server; ``watch``: values whose
    appearance in its log is recorded (they are masked when written)."""
    checked("workers", workers, IntIn(1, 64, "an integer in [1, 64]"), int)
    port = port or free_port()
    argv = _mlflow_cli() + [
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    # Both: MLflow resolves models:/ URIs through the registry URI, which a parent's
    # mlflow.set_registry_uri may have left pointing at another store.
    uris = {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": tracking_uri} if tracking_uri else {}
    return ServerProcess(
        "scoring-server", argv, port, "/ping", env={**(env or {}), **uris}, log_dir=log_dir, watch=watch
    )


def gateway_server(
    routes: Sequence[RouteSpec],
    port: int | None = None,
    log_dir: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    watch: Sequence[str] = (),
) -> ServerProcess:
    """``mlflow gateway start`` with a generated config holding ``routes``."""
    port = port or free_port()
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="harness-gateway-"))
    config = log_dir / "gateway.yaml"
    config.write_text(_gateway_yaml(routes))
    argv = _mlflow_cli() + [
        "gateway",
        "start",
        "--config-path",
        str(config),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # gunicorn's graceful SIGTERM takes about 2 s; SIGINT is its quick shutdown (about 1 s).
    return ServerProcess(
        "gateway", argv, port, "/health", env=env, log_dir=log_dir, watch=watch, stop_signal=signal.SIGINT
    )


def _gateway_yaml(routes: Sequence[RouteSpec]) -> str:
    import yaml

    endpoints = [yaml.safe_load(r.to_gateway_yaml())["endpoints"][0] for r in routes]
    return yaml.safe_dump({"endpoints": endpoints}, sort_keys=False)


@dataclass
class Loopback:
    """Scoring servers by name, the gateway routing to them, and each one's route."""

    servers: dict[str, ServerProcess]
    gateway: ServerProcess
    routes: dict[str, RouteSpec]

    def endpoint(self, name: str) -> str:
        return f"{self.gateway.url}/endpoints/{self.routes[name].name}/invocations"

    def stop(self) -> None:
        """All asked at once (their grace periods overlap), then each waited for."""
        everything = [self.gateway, *self.servers.values()]
        for server in everything:
            server.terminate()
        for server in everything:
            server.stop()


def start_loopback(
    model_uris: Mapping[str, str],
    tracking_uri: str | None,
    log_dir: str | os.PathLike,
    route_for: Callable[[str, str], RouteSpec] | None = None,
    workers: int = 1,
    progress: Callable[[str], None] = lambda _: None,
) -> Loopback:
    """What ``harness serve``, ``harness bench serve`` and the tests start: a scoring server
    per model (started together), then one AI Gateway with a completions route to each
    (``route_for(name, url)``; default: the seed's route). Every process is owned from its
    spawn, so a signal or a failed start leaves none behind; :meth:`Loopback.stop` stops
    them all."""
    from harness.serving.route import seed_route

    route_for = route_for or (lambda _name, url: seed_route(url))
    servers = {
        name: scoring_server(uri, tracking_uri, log_dir=log_dir, workers=workers) for name, uri in model_uris.items()
    }
    if len(servers) > 1:  # one log file each
        for server in servers.values():
            server.log_path = server.log_path.with_name(f"scoring-{server.port}.log")
    progress(f"starting the scoring server for {', '.join(model_uris.values())} ({workers} worker(s)) ...")
    started: list[ServerProcess] = list(servers.values())
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(lambda server: server.start(), servers.values()))
        routes = {name: route_for(name, server.url) for name, server in servers.items()}
        progress("starting the AI Gateway ...")
        gateway = gateway_server(list(routes.values()), log_dir=log_dir)
        started.append(gateway)
        gateway.start()
    except BaseException:  # a failed start (or a signal) stops what did start, then says why
        for server in started:
            server.terminate()
        for server in started:
            server.stop()
        raise
    return Loopback(servers, gateway, routes)


def first_exit(servers: Sequence[ServerProcess], poll_s: float = 0.2) -> ServerProcess:
    """Block until one of ``servers`` exits; return it (see its ``exit_description``)."""
    while True:
        for server in servers:
            if server.process is not None and server.process.poll() is not None:
                return server
        time.sleep(poll_s)
