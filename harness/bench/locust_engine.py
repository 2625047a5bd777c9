"""Load through Locust, from the harness's side: Locust's master and workers run as owned
processes (:mod:`harness.bench._locust_run`), so gevent never patches this one; what comes
back is every request as a raw sample, one :class:`~harness.serving.load.LoadResult` per
level, with Locust's own statistics of the same requests beside it.

``processes`` local workers connect to a master on loopback. For more than one machine,
the master also waits for ``remote_workers`` started elsewhere with :func:`run_workers`
(``harness bench serve --worker MASTER_HOST``) and binds where they can reach it.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from harness._validation import ConfigError, IntIn, Matching, settings
from harness.serving.load import LoadResult, Sample
from harness.serving.servers import HOST, ServerProcess, free_port

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
DEFAULT_MASTER_PORT = 5557  # Locust's own default
_RUN = (sys.executable, "-m", "harness.bench._locust_run")
_LOCAL_BINDS = ("127.0.0.1", "*", "0.0.0.0")
MAX_PROCESSES = 64
# Declared once: the serve-bench settings and the distribution check them alike.
Processes = Annotated[int, IntIn(0, MAX_PROCESSES)]
RemoteWorkers = Annotated[int, IntIn(0, 1024)]


class LocustRunError(RuntimeError):
    """Locust's master failed, or a sample went missing between a worker and the master."""


@dataclass(frozen=True)
class LevelPlan:
    users: int  # closed loop: concurrent users; open loop: the cap on requests in flight
    rate: float | None  # open loop: Poisson arrivals per second
    duration_s: float
    seed: int


@settings()
class Distribution:
    """Where the load comes from: local worker processes, and workers on other machines."""

    processes: Processes = 1
    remote_workers: RemoteWorkers = 0
    # Where the master listens; workers on other machines need an address they can reach.
    master_bind: Annotated[str, Matching(r"^(\*|[A-Za-z0-9.:-]{1,253})$", "a host name or IP address, or *")] = HOST
    master_port: Annotated[int | None, IntIn(1, 65535)] = None  # None: a free port (local runs)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError("processes", f"processes=0 is invalid without remote workers: allowed 1-{MAX_PROCESSES}")

    @property
    def workers(self) -> int:
        return self.processes + self.remote_workers


@dataclass(frozen=True)
class LevelRun:
    result: LoadResult
    engine: dict[str, Any]  # Locust's own count and percentiles of the same requests (a Level's `engine`)


def run_levels(
    url: str,
    request: Mapping[str, Any],
    levels: Sequence[LevelPlan],
    expected: Sequence[str] | None = None,
    distribution: Distribution = Distribution(),
    log_dir: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[LevelRun]:
    """Every level through Locust. ``request`` holds route, api, max_tokens and prompts."""
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="locust-", dir=log_dir))
    plan = {"url": url, "request": dict(request), "levels": [vars(level) for level in levels]}
    (folder / "plan.json").write_text(json.dumps(plan))
    out = folder / "samples.json"
    port = distribution.master_port or free_port()
    argv = [*_RUN, "master", str(folder / "plan.json"), str(out), "--bind", distribution.master_bind]
    argv += ["--port", str(port), "--workers", str(distribution.workers)]
    budget = sum(level.duration_s + 120.0 for level in levels) + 180.0
    remote = distribution.remote_workers
    progress(
        f"locust: a master and {distribution.processes} local worker process(es)"
        + (f", waiting for {remote} remote worker(s) on port {port}" if remote else "")
        + f"; logs in {folder}"
    )
    master = ServerProcess("locust-master", argv, port, None, log_dir=folder)
    workers: list[ServerProcess] = []
    try:
        master.start()
        host = HOST if distribution.master_bind in _LOCAL_BINDS else distribution.master_bind
        for index in range(distribution.processes):
            workers.append(_worker(host, port, folder, index))
        _wait_for(master, workers, budget)
    finally:
        _stop(master, *workers)
    if master.process is None or master.process.returncode != 0 or not out.exists():
        raise LocustRunError(f"locust master {master.exit_description()}; log tail:\n{master.log_tail()}")
    data = json.loads(out.read_text())
    engine = {"name": "locust", "version": data["locust_version"], "workers": data["workers"]}
    prompts = tuple(request["prompts"])
    runs = [_level_run(got, level, prompts, expected, engine) for got, level in zip(data["levels"], levels)]
    if len(runs) != len(levels):  # the master stops early only on an incomplete level, which raised above
        raise LocustRunError(f"locust master ran {len(runs)} of {len(levels)} level(s); log tail:\n{master.log_tail()}")
    return runs


def run_workers(master_host: str, port: int, processes: int, log_dir: Path | None = None) -> None:
    """``processes`` workers for a master elsewhere; returns when the master lets them go."""
    folder = Path(tempfile.mkdtemp(prefix="locust-workers-", dir=log_dir))
    workers: list[ServerProcess] = []
    try:
        for index in range(processes):
            workers.append(_worker(master_host, port, folder, index))
        while any(w.process is not None and w.process.poll() is None for w in workers):
            _raise_if_failed(workers)
            time.sleep(0.2)
        _raise_if_failed(workers)
    finally:
        _stop(*workers)


def _stop(*processes: ServerProcess) -> None:
    """Only these: the servers the caller may have started stay up."""
    for process in processes:
        process.terminate()
    for process in processes:
        process.stop()


def _worker(master_host: str, port: int, folder: Path, index: int) -> ServerProcess:
    argv = [*_RUN, "worker", "--master-host", master_host, "--port", str(port)]
    return ServerProcess(f"locust-worker-{index}", argv, port, None, log_dir=folder).start()


def _wait_for(master: ServerProcess, workers: list[ServerProcess], budget_s: float) -> None:
    deadline = time.monotonic() + budget_s
    while master.process is not None and master.process.poll() is None:
        _raise_if_failed(workers)
        if time.monotonic() > deadline:
            raise LocustRunError(f"locust master still running after {budget_s:g} s; log tail:\n{master.log_tail()}")
        time.sleep(0.2)


def _raise_if_failed(workers: list[ServerProcess]) -> None:
    for worker in workers:
        if worker.process is not None and worker.process.poll() not in (None, 0):
            raise LocustRunError(f"{worker.name} {worker.exit_description()}; log tail:\n{worker.log_tail()}")


def _level_run(
    level: dict[str, Any],
    plan: LevelPlan,
    prompts: tuple[str, ...],
    expected: Sequence[str] | None,
    engine: dict[str, Any],
) -> LevelRun:
    lost = [a for a in level["workers"] if a["sent"] != a["received"]]
    if lost or not level["complete"]:
        detail = "; ".join(f"worker share {a['share']}: sent {a['sent']}, received {a['received']}" for a in lost)
        why = "; ".join(filter(None, (detail, level.get("why")))) or "a worker never finished"
        raise LocustRunError(f"level {level['index']}: samples went missing ({why})")
    samples = tuple(Sample(*row) for row in level["rows"])
    # As the thread engine counts it: to the last answer, and a closed loop at least until its deadline.
    ends = [s.latency_s + (s.sent_s or 0.0) for s in samples]
    elapsed = max(ends, default=plan.duration_s)
    if plan.rate is None:
        elapsed = max(elapsed, plan.duration_s)
    result = LoadResult(prompts, samples, elapsed, plan.users, tuple(expected) if expected is not None else None)
    return LevelRun(result, {**engine, **level["locust"]})
