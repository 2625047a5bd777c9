"""Record the gateway contracts from real servers, or replay them there to report drift.

    python scripts/record_contracts.py [--create-venv] [--verify] [--home DIR]

Starts, on loopback: a scoring server with the reference on the tiny snapshot (this
environment), MLflow 2.8.1's legacy gateway (its own virtual environment,
``<home>/venvs/mlflow-2.8.1``, created with ``--create-venv``) and the current MLflow
gateway, both routing to it. Sends every case of ``harness.testing.contracts`` to each,
and writes one JSON per interaction under ``harness/testing/contracts/`` (or, with
``--verify``, compares the answers with the committed files: provider-side drift). Also
runs the seed's Step 7 verbatim with MLflow 2.8.1's ``mlflow.gateway.query`` against both
gateways and records what happened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from harness.model.config import DEFAULT_HOME
from harness.testing import contracts as c

LEGACY_VERSION = "2.8.1"
_PINS = (f"mlflow[gateway]=={LEGACY_VERSION}", "numpy<2", "pandas<2.2", "pydantic<2")
SEED_PAGE = Path(__file__).parents[1] / "tests" / "data" / "000_2457a5f0c55d6470.txt"


def legacy_python(home: Path, create: bool) -> Path:
    venv = home / "venvs" / f"mlflow-{LEGACY_VERSION}"
    python = venv / "bin" / "python"
    if python.exists():
        return python
    if not create:
        raise click.ClickException(f"no legacy environment at {venv}: run with --create-venv")
    click.echo(f"creating {venv} with {' '.join(_PINS)} ...", err=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *_PINS], check=True)
    click.echo(f"created in {time.perf_counter() - start:.1f}s", err=True)
    return python


def legacy_gateway(python: Path, model_server_url: str, folder: Path):
    from harness.serving.servers import HOST, ServerProcess, free_port

    config = folder / "legacy-gateway.yaml"
    config.write_text(
        f"routes:\n  - name: {c.ROUTE}\n    route_type: llm/v1/completions\n    model:\n"
        f"      provider: mlflow-model-serving\n      name: mpt-7b-instruct\n      config:\n"
        f"        model_server_url: {model_server_url}\n"
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


def record(base_url: str, profile: str, server: str, greedy: str) -> list[c.Interaction]:
    found = []
    for case in c.CASES[profile]():
        status, content_type, body = c.send(base_url, case.request())
        interaction = c.Interaction(
            case=case.name,
            server=server,
            compare=case.compare,
            request=case.request(),
            response=c.RecordedResponse(status=status, content_type=content_type, body=body),
        )
        if case.compare == "greedy" and c._texts(body) != [greedy]:
            raise click.ClickException(
                f"{profile}/{case.name}: {c._texts(body)} is not the reference's greedy answer {greedy!r}"
            )
        found.append(interaction)
    return found


def verify(base_url: str, profile: str) -> list[str]:
    drift = []
    cases = {case.name: case for case in c.CASES[profile]()}
    for recorded in c.load(profile):
        if recorded.case in cases:
            status, content_type, body = c.send(base_url, cases[recorded.case].request())
            if (problem := c.mismatch(recorded, status, content_type, body)) is not None:
                drift.append(problem)
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
    help="Where the legacy virtual environment is cached.",
)
@click.option("--create-venv", is_flag=True, help="Create the MLflow 2.8.1 environment if missing.")
@click.option(
    "--verify",
    "verify_only",
    is_flag=True,
    help="Replay the committed contracts against the real servers; exit 1 on drift.",
)
def main(home: Path, create_venv: bool, verify_only: bool) -> None:
    from harness.gate.candidate import CandidateSpec, log_candidate
    from harness._reporting import package_version
    from harness.model.snapshot import cached_tiny
    from harness.serving.processes import stop_all, stop_on_signals
    from harness.serving.route import seed_route
    from harness.serving.servers import gateway_server, scoring_server
    from harness.store import StoreConfig

    started = time.perf_counter()
    python = legacy_python(home.absolute(), create_venv)
    snapshot = cached_tiny(progress=lambda m: click.echo(m, err=True))
    folder = Path(tempfile.mkdtemp(prefix="harness-contracts-"))
    store = StoreConfig(home=folder / "store")
    with store.activated():
        model_uri = log_candidate(CandidateSpec(), snapshot)
    greedy = greedy_answer(snapshot)
    with stop_on_signals():
        try:
            scoring = scoring_server(model_uri, store.uri, log_dir=folder).start()
            legacy = legacy_gateway(python, scoring.url, folder).start()
            current = gateway_server([seed_route(scoring.url)], log_dir=folder).start()
            servers = {
                "legacy": (legacy.url, f"mlflow-gateway {LEGACY_VERSION}"),
                "current": (current.url, f"mlflow-gateway {package_version('mlflow')}"),
            }
            if verify_only:
                drift = [d for p, (url, _) in servers.items() for d in verify(url, p)]
                for problem in drift:
                    click.echo(f"DRIFT {problem}")
                click.echo(f"{len(drift)} drifted in {time.perf_counter() - started:.1f}s")
                raise SystemExit(1 if drift else 0)
            for profile, (url, server) in servers.items():
                recorded = record(url, profile, server, greedy)
                click.echo(f"{profile}: {len(recorded)} interactions from {server} -> {c.write(recorded, profile)}")
            step7 = {"legacy": seed_step7(python, legacy.url), "current": seed_step7(python, current.url)}
            (c.CONTRACTS_DIR / "seed-step-7.json").write_text(json.dumps(step7, indent=2) + "\n")
            for name, outcome in step7.items():
                click.echo(
                    f"seed Step 7 with mlflow {LEGACY_VERSION} against the {name} gateway: "
                    f"answer keys {outcome['response_keys']}; documented "
                    f"response['candidates'][0]['text'] -> {outcome['documented_access']}"
                )
        finally:
            stop_all()
    click.echo(f"recorded in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
