"""The harness's serving load as a Locust user: ``locust -f $(harness bench locustfile)``.

:class:`CompletionsUser` sends completions at temperature 0 to one route of an MLflow AI
Gateway (Locust's ``--host``) through the harness's own client, on Locust's HTTP session,
so that Locust times and counts every request as it does any other. With plain Locust
(its web UI, its CSV) the options are ``--route``, ``--api``, ``--max-tokens`` and
``--prompts-file`` (a JSON list of strings, or a ``bench-serve.json`` whose prompts to
reuse); every user sends back to back (a closed loop).

Under ``harness bench serve`` (:mod:`harness.bench._locust_run` runs the master and the
workers) the master sends each worker its share of every level: a closed loop until the
level's deadline, or its share of the level's Poisson arrivals (an open loop, where the
users are the slots for requests in flight). A worker keeps every request as a raw sample
and sends them to the master in numbered batches, then the count it sent, so that the
master merges each request exactly once and knows when one went missing.

Only Locust's own processes import this module: gevent patches the process that does.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import gevent
from locust import HttpUser, constant, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import StatsEntry

from harness.bench._locust_share import Collector, Row, Share
from harness.serving.gateway import CompletionRequest, DeploymentsGatewayClient, GatewayError, Transport
from harness.serving.load import LOAD_APIS, poisson_arrivals
from harness.serving.route import SEED_ROUTE_NAME

LEVEL, SAMPLES, DONE = "harness_level", "harness_samples", "harness_done"
_BATCH_S = 0.5  # how often a worker sends what it has
_IDLE_S = 0.05  # how long a user with nothing to send waits before it looks again
DEFAULT_PROMPTS = ("What is MLflow?",)

# This process's current share, and Locust's own record of its requests (kept apart from
# Locust's per-report statistics, which a worker resets each time it reports to the master).
_state: dict[str, Any] = {"share": None, "driven": False, "stats": None}


class CompletionsUser(HttpUser):
    """Sends the current share's requests back to back (closed loop) or when due (open loop)."""

    wait_time = constant(0)
    host = "http://127.0.0.1:5000"

    def on_start(self) -> None:
        self._gateway = DeploymentsGatewayClient(Transport(self.host or "", session=self.client))

    @task
    def complete(self) -> None:
        share: Share | None = _state["share"]
        job = share.next_job(time.perf_counter()) if share is not None else None
        if share is None or job is None:
            gevent.sleep(_IDLE_S)
            return
        prompt, due = job
        if (wait := due - time.perf_counter()) > 0:
            gevent.sleep(wait)
        row: Row = [prompt, 0.0, False, None, "not sent", due - share.started]
        try:
            request = CompletionRequest(share.prompts[prompt], temperature=0.0, max_tokens=share.max_tokens)
            text = self._gateway.complete(share.api, share.route, request).text
            row = [prompt, time.perf_counter() - due, True, 200, text, due - share.started]
        except GatewayError as error:
            row = [prompt, time.perf_counter() - due, False, error.status, error.message, due - share.started]
        finally:
            share.record(row)


# --- plain Locust ---------------------------------------------------------------------------


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("harness", "The completions route to load (harness bench locustfile).")
    group.add_argument("--route", default=SEED_ROUTE_NAME, help="The completions route (endpoint) to load.")
    group.add_argument(
        "--api", choices=LOAD_APIS, default=LOAD_APIS[0], help="invocations, or openai (/v1/completions)."
    )
    group.add_argument("--max-tokens", type=int, default=16, help="max_tokens of every request.")
    group.add_argument(
        "--prompts-file",
        default="",
        help="A JSON list of prompts, or a bench-serve.json whose prompts to send (default: one prompt).",
    )


def read_prompts(path: str) -> tuple[str, ...]:
    """Prompts from a JSON list of strings or from a ``bench-serve.json`` report."""
    if not path:
        return DEFAULT_PROMPTS
    data = json.loads(Path(path).read_text())
    items = data.get("prompts") if isinstance(data, dict) else data
    found = [p.get("text") if isinstance(p, dict) else p for p in items or ()]
    prompts = tuple(p for p in found if isinstance(p, str) and p)
    if not prompts or len(prompts) != len(found):
        raise ValueError(f"prompts_file={path[:60]!r} is invalid: allowed a JSON list of non-empty strings or a report")
    return prompts


@events.test_start.add_listener
def _plain_start(environment: Environment, **_: Any) -> None:
    if _state["driven"] or isinstance(environment.runner, MasterRunner):
        return
    options = environment.parsed_options
    _state["share"] = Share(
        level=0,
        route=getattr(options, "route", SEED_ROUTE_NAME),
        api=getattr(options, "api", LOAD_APIS[0]),
        max_tokens=getattr(options, "max_tokens", 16),
        prompts=read_prompts(getattr(options, "prompts_file", "")),
        duration_s=None,
    )


# --- driven by harness bench serve -----------------------------------------------------------


def attach_worker(runner: WorkerRunner) -> None:
    """Take levels from the master (harness mode) and report every sample back."""
    _state["driven"] = True

    def on_level(environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data
        arrivals = None
        if data["rate"] is not None:
            every = poisson_arrivals(data["rate"], data["duration_s"], data["seed"])
            arrivals = tuple(float(t) for t in every[data["share"] :: data["shares"]])
        share = Share(
            level=data["level"],
            route=data["route"],
            api=data["api"],
            max_tokens=data["max_tokens"],
            prompts=tuple(data["prompts"]),
            duration_s=data["duration_s"],
            arrivals=arrivals,
            share=data["share"],
            shares=data["shares"],
        )
        _state["share"], _state["stats"] = share, StatsEntry(None, "harness", "POST")  # type: ignore[arg-type]
        gevent.spawn(_report, runner, share, _state["stats"])

    def on_request(response_time: Any = None, response_length: int = 0, exception: Any = None, **_: Any) -> None:
        if (stats := _state["stats"]) is not None:
            stats.log(response_time, response_length or 0)
            if exception is not None:
                stats.log_error(exception)

    runner.register_message(LEVEL, on_level)
    runner.environment.events.request.add_listener(on_request)


def _report(runner: WorkerRunner, share: Share, stats: StatsEntry) -> None:
    """Numbered batches while the level runs; then the last one and the count sent."""
    sent, batches = 0, 0
    while True:
        gevent.sleep(_BATCH_S)
        done = share.finished(time.perf_counter())  # before the batch: nothing is added after
        if rows := share.rows[sent:]:
            runner.send_message(SAMPLES, {"level": share.level, "seq": batches, "rows": rows})
            sent, batches = sent + len(rows), batches + 1
        if done:
            locust = stats.serialize()
            runner.send_message(DONE, {"level": share.level, "count": sent, "batches": batches, "locust": locust})
            return


def attach_master(runner: MasterRunner) -> Collector:
    collector = Collector()

    def on_samples(environment: Environment, msg: Any, **_: Any) -> None:
        key = (msg.node_id, msg.data["level"], msg.data["seq"])
        collector.batches.setdefault(key, msg.data["rows"])  # a batch delivered twice counts once

    def on_done(environment: Environment, msg: Any, **_: Any) -> None:
        collector.done[(msg.node_id, msg.data["level"])] = msg.data

    runner.register_message(SAMPLES, on_samples)
    runner.register_message(DONE, on_done)
    return collector


def locust_stats(serialized: list[Any]) -> dict[str, Any]:
    """Locust's count, failures and percentiles over the workers' stats of one level."""
    total = StatsEntry(None, "Aggregated", "")  # type: ignore[arg-type]
    for entry in serialized:
        total.extend(StatsEntry.unserialize(entry, None))  # type: ignore[arg-type]
    counted = total.num_requests > 0
    found: dict[str, Any] = {"requests": total.num_requests, "failures": total.num_failures}
    for name, q in (("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99)):
        found[name] = total.get_response_time_percentile(q) if counted else None
    found["max_ms"] = total.max_response_time if counted else None
    return found
