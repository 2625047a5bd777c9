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


@pytest.fixture(scope="session")
def make_context():
    """A stand-in for MLflow's PythonModelContext: artifacts and model_config."""
    from types import SimpleNamespace

    def make(snapshot: Path, model_config: dict | None = None):
        return SimpleNamespace(artifacts={"repository": str(snapshot)},
                               model_config=model_config or {})

    return make


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
def mlflow_store(tmp_path, monkeypatch):
    """An embedded MLflow store under tmp_path (not taken from MLFLOW_TRACKING_URI)."""
    from harness.registry import StoreConfig

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return StoreConfig(home=tmp_path / "home")


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
    """Run the gate on a candidate (servers off unless serve=True); returns the report."""
    from harness.candidate import CandidateSpec
    from harness.gate import GateConfig, run_gate

    def run(spec: CandidateSpec | None = None, **options):
        options.setdefault("serve", False)  # server checks have tests of their own
        options.setdefault("store", gate_store)
        return run_gate(GateConfig(candidate=spec or CandidateSpec(), snapshot=tiny_snapshot,
                                   **options))

    return run


MUTANTS_FILE = REPO_ROOT / "tests" / "data" / "mutants.py"


BARE_STRING_MODEL = '''
from harness.wrapper import MPTInstruct


class BareString(MPTInstruct):
    """Returns a bare string, as the seed's predict does."""

    def predict(self, context, model_input, params=None):
        return super().predict(context, model_input, params)[0]
'''


@pytest.fixture(scope="session")
def loopback(tiny_snapshot, tmp_path_factory):
    """Real servers on 127.0.0.1: scoring servers for the reference (gateway signature), the
    seed's column signature and a bare-string model, and one AI Gateway routing to all three."""
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace


    from harness.candidate import CandidateSpec, log_candidate
    from harness.route import MlflowServingConfig, RouteSpec, seed_route
    from harness.registry import StoreConfig
    from harness.serving import gateway_server, scoring_server

    home = tmp_path_factory.mktemp("loopback")
    (home / "bare_string_model.py").write_text(BARE_STRING_MODEL)
    store = StoreConfig(home=home / "store")
    specs = {"reference": CandidateSpec(), "columns": CandidateSpec(signature="columns"),
             "bare": CandidateSpec.from_file(f"{home / 'bare_string_model.py'}:BareString")}
    with store.activated():
        uris = {name: log_candidate(spec, tiny_snapshot) for name, spec in specs.items()}
    servers = {name: scoring_server(uri, store.uri, log_dir=home) for name, uri in uris.items()}
    for server in servers.values():
        server.log_path = server.log_path.with_name(f"scoring-{server.port}.log")
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(lambda s: s.start(), servers.values()))
        routes = {"reference": seed_route(servers["reference"].url)}
        for name in ("columns", "bare"):
            routes[name] = RouteSpec(f"completions-{name}", f"model-{name}", "mlflow-model-serving",
                                     MlflowServingConfig(servers[name].url))
        with gateway_server(list(routes.values()), log_dir=home) as gateway:
            yield SimpleNamespace(url=gateway.url, gateway=gateway, servers=servers,
                                  routes={k: r.name for k, r in routes.items()}, uris=uris,
                                  store=store)
    finally:
        for server in servers.values():
            server.stop()


_SERVER_WORDS = ("mlflow", "gunicorn", "uvicorn")


def _server_pids() -> set[int]:
    """PIDs of mlflow/gunicorn/uvicorn processes on this machine (from /proc)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(word in cmdline for word in _SERVER_WORDS) and "pytest" not in cmdline:
            pids.add(int(entry.name))
    return pids


def pytest_sessionstart(session):
    session.config._harness_server_pids = _server_pids()


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if a server the suite started outlived it."""
    import time

    before = getattr(session.config, "_harness_server_pids", set())
    for _ in range(20):
        left = _server_pids() - before
        if not left:
            return
        time.sleep(0.5)
    session.config.pluginmanager.get_plugin("terminalreporter").write_line(
        f"ORPHANS: server processes left running after the suite: {sorted(left)}", red=True)
    session.exitstatus = 1


@pytest.fixture
def record(benchmark):
    """pytest-benchmark suites: adds the case and tokens/s to extra_info, which
    `harness bench compare` reads."""

    def add(batch: int, prompt: int, new: int):
        benchmark.extra_info.update(batch_size=batch, prompt_tokens=prompt, new_tokens=new)
        benchmark.extra_info["tokens_per_s"] = batch * new / benchmark.stats.stats.median

    return add
