"""Locust's master and workers for ``harness bench serve``, each its own process:

    python -m harness.bench._locust_run master PLAN.json OUT.json --bind HOST --port N --workers N
    python -m harness.bench._locust_run worker --master-host HOST --port N

The master waits for its workers, then runs the plan's levels one after another: it sends
each worker its share, starts the level's users, waits until every worker has sent its
count (or the level's time is well past), stops the users, and after the last level writes
every level's merged samples to OUT.json (atomically) and tells the workers to quit.
Importing Locust patches this process with gevent; the harness process never does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import locust.runners
from locust import events
from locust.env import Environment

import gevent

from harness._reporting import atomic_write
from harness.bench._locust_share import WORKER_LIVENESS
from harness.bench.locustfile import LEVEL, CompletionsUser, attach_master, attach_worker, locust_stats

_GRACE_S = 90.0  # past a level's duration: two request timeouts and the last batch
_READY_S = 60.0  # for the workers to report ready again after a level's users stopped


def _wait(ready: Callable[[], bool], timeout_s: float, poll_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            return False
        gevent.sleep(poll_s)
    return True


def _say(message: str) -> None:
    print(message, flush=True)


def run_master(plan: dict[str, Any], out: Path, bind: str, port: int, workers: int, connect_timeout_s: float) -> int:
    # Read by the master at each worker's first and every later heartbeat.
    locust.runners.HEARTBEAT_LIVENESS = WORKER_LIVENESS
    env = Environment(user_classes=[CompletionsUser], events=events, host=plan["url"])
    runner = env.create_master_runner(bind, port)
    collector = attach_master(runner)
    _say(f"master on {bind}:{port}: waiting for {workers} worker(s)")
    if not _wait(lambda: len(runner.clients.ready) >= workers, connect_timeout_s):
        _say(f"error: {len(runner.clients.ready)} of {workers} worker(s) connected within {connect_timeout_s:g} s")
        runner.quit()
        return 3
    levels: list[dict[str, Any]] = []
    for index, level in enumerate(plan["levels"]):
        # Every worker again, or the level would run on fewer and count as comparable.
        if not _wait(lambda: len(runner.clients.ready) >= workers, _READY_S):
            unready = f"{len(runner.clients.ready)} of {workers} worker(s) ready for it within {_READY_S:g} s"
            _say(f"level {index}: INCOMPLETE ({unready})")
            empty = {"index": index, "workers": [], "rows": [], "locust": locust_stats([])}
            levels.append({**empty, "complete": False, "why": unready})
            break
        ids = sorted(c.id for c in runner.clients.ready)
        for share, worker in enumerate(ids):
            runner.send_message(
                LEVEL,
                {**plan["request"], **level, "level": index, "share": share, "shares": len(ids)},
                client_id=worker,
            )
        _say(f"level {index}: {level['users']} user(s) on {len(ids)} worker(s)")
        runner.start(level["users"], spawn_rate=max(level["users"], 1))
        _wait(
            lambda: all((w, index) in collector.done for w in ids) or _lost_worker(runner, ids),
            level["duration_s"] + _GRACE_S,
            poll_s=0.05,
        )
        finished = all((w, index) in collector.done for w in ids)
        why = None if finished else _why_incomplete(runner, ids, level["duration_s"] + _GRACE_S)
        runner.stop()
        stats = locust_stats(collector.engine_stats(index, ids))
        levels.append({**collector.level(index, ids), "locust": stats, "complete": finished, "why": why})
        _say(f"level {index}: {'done' if finished else f'INCOMPLETE ({why})'}, {len(levels[-1]['rows'])} sample(s)")
        if not finished:  # a worker was lost or ran out of time: what follows would not be comparable
            break
    atomic_write(out, json.dumps({"locust_version": _locust_version(), "workers": workers, "levels": levels}))
    runner.quit()
    return 0


def _why_incomplete(runner: Any, ids: list[str], waited_s: float) -> str:
    if _lost_worker(runner, ids):
        return f"a worker quit or sent no heartbeat for {WORKER_LIVENESS} s"
    return f"a worker's count had not come {waited_s:g} s after the level started"


def _lost_worker(runner: Any, ids: list[str]) -> bool:
    """A worker of this level quit, or sent no heartbeat for ``WORKER_LIVENESS`` seconds:
    its count will not come."""
    present = {c.id for c in runner.clients.all} - {c.id for c in runner.clients.missing}
    return any(w not in present for w in ids)


def run_worker(master_host: str, port: int) -> int:
    env = Environment(user_classes=[CompletionsUser], events=events)
    runner = env.create_worker_runner(master_host, port)
    attach_worker(runner)
    _say(f"worker connected to {master_host}:{port}")
    runner.greenlet.join()
    return 0


def _locust_version() -> str:
    import locust

    return str(locust.__version__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench._locust_run")
    roles = parser.add_subparsers(dest="role", required=True)
    master = roles.add_parser("master")
    master.add_argument("plan", type=Path)
    master.add_argument("out", type=Path)
    master.add_argument("--bind", default="127.0.0.1")
    master.add_argument("--port", type=int, required=True)
    master.add_argument("--workers", type=int, required=True)
    master.add_argument("--connect-timeout", type=float, default=120.0)
    worker = roles.add_parser("worker")
    worker.add_argument("--master-host", required=True)
    worker.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.role == "master":
        plan = json.loads(args.plan.read_text())
        return run_master(plan, args.out, args.bind, args.port, args.workers, args.connect_timeout)
    return run_worker(args.master_host, args.port)


if __name__ == "__main__":
    sys.exit(main())
