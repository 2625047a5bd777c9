"""Record the gateway contracts from real servers, or replay them there to report drift.

    python scripts/record_contracts.py [--create-venv] [--verify] [--profile P ...]
                                       [--new-cases-only] [--home DIR]

Starts, on loopback: a scoring server with the reference on the tiny snapshot (this
environment), MLflow 2.8.1's legacy gateway twice, each from its own virtual environment
under ``<home>/venvs`` (created with ``--create-venv``):

- ``legacy``: ``mlflow-2.8.1``, pinned to ``pydantic<2`` (and what goes with it), the stack
  2.8.1 was released on;
- ``legacy-pydantic2``: ``mlflow-2.8.1-pydantic2``, a plain ``pip install
  "mlflow[gateway]==2.8.1"``, which resolves pydantic 2 and today's FastAPI;

and the current MLflow gateway (this environment), all routing to the scoring server. Sends
every case of ``harness.testing.contracts`` to each, and writes one JSON per interaction
under ``harness/testing/contracts/<profile folder>/`` (or, with ``--verify``, compares the
answers with the committed files: provider-side drift). Also runs the seed's Step 7
verbatim with MLflow 2.8.1's ``mlflow.gateway.query`` against the gateways and records what
happened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from harness.model.config import DEFAULT_HOME
from harness.testing import contracts as c

LEGACY_VERSION = "2.8.1"
SEED_PAGE = Path(__file__).parents[1] / "tests" / "data" / "000_2457a5f0c55d6470.txt"
_LABELLED = ("pydantic", "fastapi", "starlette")


@dataclass(frozen=True)
class LegacyStack:
    """One way MLflow 2.8.1's gateway gets installed: its own venv and what pip is asked for."""

    profile: str
    venv: str
    pins: tuple[str, ...]


LEGACY_STACKS = {
    s.profile: s
    for s in (
        LegacyStack(
            "legacy",
            f"mlflow-{LEGACY_VERSION}",
            (f"mlflow[gateway]=={LEGACY_VERSION}", "numpy<2", "pandas<2.2", "pydantic<2"),
        ),
        # Nothing pinned: what a user's `pip install` resolves on the day it is recorded.
        LegacyStack("legacy-pydantic2", f"mlflow-{LEGACY_VERSION}-pydantic2", (f"mlflow[gateway]=={LEGACY_VERSION}",)),
    )
}


def legacy_python(home: Path, stack: LegacyStack, create: bool) -> Path:
    venv = home / "venvs" / stack.venv
    python = venv / "bin" / "python"
    if python.exists():
        return python
    if not create:
        raise click.ClickException(f"no {stack.profile} environment at {venv}: run with --create-venv")
    click.echo(f"creating {venv} with {' '.join(stack.pins)} ...", err=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *stack.pins], check=True)
    click.echo(f"created in {time.perf_counter() - start:.1f}s", err=True)
    return python


def server_label(python: Path) -> str:
    """``mlflow-gateway X (pydantic Y, fastapi Z, starlette W)`` as installed for ``python``."""
    names = ("mlflow", *_LABELLED)
    code = "import importlib.metadata as m; print(' '.join(m.version(n) for n in %r))" % (names,)
    found = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.split()
    versions = dict(zip(names, found))
    return f"mlflow-gateway {versions['mlflow']} (" + ", ".join(f"{n} {versions[n]}" for n in _LABELLED) + ")"


def legacy_gateway(python: Path, model_server_url: str, folder: Path):
    from harness.serving.servers import HOST, ServerProcess, free_port

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "legacy-gateway.yaml"
    config.write_text(
        "routes:\n"
        + "".join(
            f"  - name: {name}\n    route_type: {kind}\n    model:\n"
            f"      provider: mlflow-model-serving\n      name: mpt-7b-instruct\n      config:\n"
            f"        model_server_url: {model_server_url}\n"
            for name, kind in ((c.ROUTE, "llm/v1/completions"), (c.CHAT_ROUTE, "llm/v1/chat"))
        )
    )
    port = free_port()
    argv = [
        str(python),
        "-m",
        "mlflow",
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
    return ServerProcess("legacy-gateway", argv, port, "/health", log_dir=folder)


def record(base_url: str, profile: str, server: str, greedy: str, new_only: bool) -> list[c.Interaction]:
    committed = {i.case for i in c.load(profile)} if new_only else set()
    found = []
    for case in c.CASES[profile]():
        if case.name in committed:
            continue
        response = c.send(base_url, case.request())
        interaction = c.Interaction(
            case=case.name, server=server, compare=case.compare, request=case.request(), response=response
        )
        if case.compare == "greedy" and c._texts(response.body) != [greedy]:
            raise click.ClickException(
                f"{profile}/{case.name}: {c._texts(response.body)} is not the reference's greedy answer {greedy!r}"
            )
        found.append(interaction)
    return found


def verify(base_url: str, profile: str) -> list[str]:
    drift = []
    cases = {case.name: case for case in c.CASES[profile]()}
    for recorded in c.load(profile):
        if recorded.case in cases:
            if (problem := c.mismatch(recorded, c.send(base_url, cases[recorded.case].request()))) is not None:
                drift.append(f"{profile}/{problem}")
    return drift


_AFTER_STEP7 = """
print("HARNESS-STEP7-KEYS", sorted(response))
text = response["candidates"][0]["text"]  # the structure the page documents
print("HARNESS-STEP7-DOCUMENTED-ACCESS-OK")
"""


def seed_step7(python: Path, gateway_url: str) -> dict:
    """The seed's Step 7 code block, verbatim, with MLflow 2.8.1 against ``gateway_url``; then
    the documented ``response["candidates"][0]["text"]``."""
    from harness.testing.seed import code_blocks

    block = next(b for b in code_blocks(SEED_PAGE.read_text()) if "from mlflow.gateway import query" in b)
    run = subprocess.run(
        [str(python), "-c", block + _AFTER_STEP7],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MLFLOW_GATEWAY_URI": gateway_url},
    )
    keys = next(
        (line.split(" ", 1)[1] for line in run.stdout.splitlines() if line.startswith("HARNESS-STEP7-KEYS")), None
    )
    last = (run.stderr.strip().splitlines() or [""])[-1]
    return {
        "code": block,
        "verbatim_ran": keys is not None,
        "response_keys": keys,
        "documented_access": "ok" if "HARNESS-STEP7-DOCUMENTED-ACCESS-OK" in run.stdout else last,
    }


def greedy_answer(snapshot: Path) -> str:
    from harness.model.generation import Generator, Request
    from harness.model.loading import LoadConfig
    from harness.model.settings import GenerationSettings

    generator = Generator.from_pretrained(str(snapshot), LoadConfig(device="cpu", dtype="float32"))
    return generator.generate([Request(c.PROMPT, GenerationSettings(0.0, 8))])[0]


@click.command()
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_HOME,
    show_default=True,
    help="Where the legacy virtual environments are cached.",
)
@click.option("--create-venv", is_flag=True, help="Create the MLflow 2.8.1 environments that are missing.")
@click.option(
    "--verify",
    "verify_only",
    is_flag=True,
    help="Replay the committed contracts against the real servers; exit 1 on drift.",
)
@click.option(
    "--profile",
    "profiles",
    type=click.Choice(list(c.RECORDINGS)),
    multiple=True,
    help="Record or verify only this profile (repeatable; default: all).",
)
@click.option(
    "--new-cases-only",
    is_flag=True,
    help="Record only the cases that have no committed file; keep the committed ones as they are.",
)
def main(home: Path, create_venv: bool, verify_only: bool, profiles: Sequence[str], new_cases_only: bool) -> None:
    """Record the gateway contracts from real servers on loopback, or (--verify) replay the
    committed ones there and report drift. Servers are stopped on exit and on any signal."""
    from harness.model.snapshot import cached_tiny
    from harness.serving.processes import stop_all, stop_on_signals

    started = time.perf_counter()
    chosen = list(profiles) or list(c.RECORDINGS)
    # The seed's Step 7 against the current gateway runs on the pydantic-1 stack's client.
    needed = {p for p in chosen if p in LEGACY_STACKS} | ({"legacy"} if "current" in chosen else set())
    pythons = {p: legacy_python(home.absolute(), LEGACY_STACKS[p], create_venv) for p in sorted(needed)}
    snapshot = cached_tiny(progress=lambda m: click.echo(m, err=True), home=home.absolute())
    folder = Path(tempfile.mkdtemp(prefix="harness-contracts-"))
    with stop_on_signals():
        try:
            servers = _start_servers(snapshot, folder, chosen, pythons)
            if verify_only:
                drift = [d for p, (url, _) in servers.items() for d in verify(url, p)]
                for problem in drift:
                    click.echo(f"DRIFT {problem}")
                counts = ", ".join(f"{p} {len(c.load(p))}" for p in servers)
                click.echo(f"{len(drift)} drifted ({counts} interactions) in {time.perf_counter() - started:.1f}s")
                raise SystemExit(1 if drift else 0)
            _record_all(servers, pythons, greedy_answer(snapshot), new_cases_only)
        finally:
            stop_all()
    click.echo(f"recorded in {time.perf_counter() - started:.1f}s")


def _start_servers(
    snapshot: Path, folder: Path, chosen: list[str], pythons: dict[str, Path]
) -> dict[str, tuple[str, str]]:
    """profile -> (base URL, server label), every server started in front of one scoring server."""
    from harness.gate.candidate import CandidateSpec, log_candidate
    from harness.serving.route import Provider, RouteSpec, RouteType, seed_route
    from harness.serving.servers import gateway_server, scoring_server
    from harness.store import StoreConfig

    store = StoreConfig(home=folder / "store")
    with store.activated():
        model_uri = log_candidate(CandidateSpec(), snapshot)
    scoring = scoring_server(model_uri, store.uri, log_dir=folder).start()
    servers = {}
    for profile in chosen:
        if profile in LEGACY_STACKS:
            python = pythons[profile]
            gateway = legacy_gateway(python, scoring.url, folder / profile).start()
        else:
            python = Path(sys.executable)
            served = seed_route(scoring.url)
            chat = RouteSpec(
                c.CHAT_ROUTE, served.model_name, Provider.MLFLOW_MODEL_SERVING, served.config, RouteType.CHAT
            )
            gateway = gateway_server([served, chat], log_dir=folder).start()
        servers[profile] = (gateway.url, server_label(python))
    return servers


def _record_all(servers: dict[str, tuple[str, str]], pythons: dict[str, Path], greedy: str, new_only: bool) -> None:
    step7_file = c.CONTRACTS_DIR / "seed-step-7.json"
    step7 = json.loads(step7_file.read_text()) if step7_file.exists() else {}
    for profile, (url, server) in servers.items():
        recorded = record(url, profile, server, greedy, new_only)
        click.echo(f"{profile}: {len(recorded)} interactions from {server} -> {c.write(recorded, profile)}")
        if new_only and profile in step7:
            continue
        step7[profile] = seed_step7(pythons.get(profile, pythons["legacy"]), url)
        outcome = step7[profile]
        click.echo(
            f"seed Step 7 with mlflow {LEGACY_VERSION} against the {profile} gateway: "
            f"answer keys {outcome['response_keys']}; documented "
            f"response['candidates'][0]['text'] -> {outcome['documented_access']}"
        )
    from harness._reporting import atomic_write

    atomic_write(step7_file, json.dumps(step7, indent=2) + "\n")


if __name__ == "__main__":
    main()
