"""Shared fixtures and the hypothesis profiles for every test kind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=40, derandomize=True, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO_ROOT = Path(__file__).parent
SEED_DIR = REPO_ROOT.parent / "shared" / "seed"


@pytest.fixture(scope="session")
def generator(tiny_snapshot):
    from harness.generation import Generator
    from harness.loading import LoadConfig

    return Generator.from_pretrained(str(tiny_snapshot), LoadConfig(device="cpu"))


class _Context:
    def __init__(self, snapshot: Path, model_config: dict | None = None):
        self.artifacts = {"repository": str(snapshot)}
        self.model_config = model_config or {}


@pytest.fixture(scope="session")
def make_context():
    """A stand-in for MLflow's PythonModelContext: artifacts and model_config."""
    return _Context


@pytest.fixture
def generate_spy():
    """Install the gate's recording spy on a model; returns its list of GenerateCall."""
    from harness.spy import GenerateSpy

    spies = []

    def install(model):
        spies.append(GenerateSpy(model, pad_token_id=0))
        return spies[-1].calls

    yield install
    for spy in spies:
        spy.remove()


@pytest.fixture
def mlflow_store(tmp_path):
    """An embedded MLflow store under tmp_path; the global tracking URI is restored after."""
    import mlflow

    from harness.registry import StoreConfig

    previous = mlflow.get_tracking_uri()
    store = StoreConfig(home=tmp_path / "home")
    yield store
    mlflow.set_tracking_uri(previous)
    mlflow.set_registry_uri(previous)


@pytest.fixture(scope="session")
def seed_wrapper_source() -> str:
    """The seed's Step 2 wrapper as published (shared/seed beside the repo, as in CI)."""
    from harness.seed import find_seed_doc, wrapper_source

    if find_seed_doc(SEED_DIR) is None:
        pytest.skip(f"seed document not found under {SEED_DIR}")
    return wrapper_source(SEED_DIR)


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def gate_store(tmp_path_factory):
    """One embedded store for every gate run of the session (logging is the slow part)."""
    from harness.registry import StoreConfig

    return StoreConfig(home=tmp_path_factory.mktemp("gate-store"))


@pytest.fixture(scope="session")
def run_candidate(tiny_snapshot, gate_store):
    """Run the gate on a candidate; returns the report. Restores MLflow's tracking URI."""
    import mlflow

    from harness.candidate import CandidateSpec
    from harness.gate import GateConfig, run_gate

    def run(spec: CandidateSpec | None = None, **options):
        previous = mlflow.get_tracking_uri()
        try:
            cfg = GateConfig(candidate=spec or CandidateSpec(), snapshot=tiny_snapshot,
                             store=gate_store, **options)
            return run_gate(cfg)
        finally:
            mlflow.set_tracking_uri(previous)

    return run


MUTANTS_FILE = REPO_ROOT / "tests" / "data" / "mutants.py"
