"""Shared fixtures and the hypothesis profiles for every test kind."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO_ROOT = Path(__file__).parent
# The seed page as published (vendored, file name kept), so seed tests run from any clone.
SEED_DIR = REPO_ROOT / "tests" / "data"


@pytest.fixture(scope="session")
def generator(tiny_snapshot):
    from harness.model.generation import Generator
    from harness.model.loading import LoadConfig

    return Generator.from_pretrained(str(tiny_snapshot), LoadConfig(device="cpu"))


@pytest.fixture(scope="session")
def chat_snapshot(pytestconfig):
    """The tiny MPT as a ChatML chat model (``harness snapshot tiny --chat``)."""
    from harness.model.snapshot import cached_tiny

    return cached_tiny(pytestconfig.rootpath, variant="tiny-chat")


@pytest.fixture(scope="session")
def chat_generator(chat_snapshot):
    from harness.model.generation import Generator
    from harness.model.loading import LoadConfig

    return Generator.from_pretrained(str(chat_snapshot), LoadConfig(device="cpu", prompt_format="chat-template"))


@pytest.fixture(scope="session")
def make_context():
    """A stand-in for MLflow's PythonModelContext: artifacts and model_config."""
    from types import SimpleNamespace

    def make(snapshot: Path, model_config: dict | None = None):
        return SimpleNamespace(artifacts={"repository": str(snapshot)}, model_config=model_config or {})

    return make


@pytest.fixture
def generate_spy():
    """Install the gate's recording spy on a model; returns its list of GenerateCall."""
    from harness.gate.spy import GenerateSpy

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
    from harness.store import StoreConfig

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return StoreConfig(home=tmp_path / "home")


@pytest.fixture(scope="session")
def seed_wrapper_source() -> str:
    """The seed's Step 2 wrapper as published."""
    from harness.testing.seed import wrapper_source

    return wrapper_source(SEED_DIR)


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    from harness.serving.servers import free_port as pick

    return pick()


@pytest.fixture(scope="session")
def gate_store(tmp_path_factory):
    """One embedded store for every gate run of the session (logging is the slow part)."""
    from harness.store import StoreConfig

    return StoreConfig(home=tmp_path_factory.mktemp("gate-store"))


@pytest.fixture(scope="session")
def shared_references():
    """The reference's models and exact-rule traces, shared by every gate of the session
    (a trace decoded alone in float32 on a CPU is the same whichever test made it)."""
    from harness.gate.reference import ReferencePool

    return ReferencePool()


@pytest.fixture(scope="session")
def session_judge(tiny_snapshot, shared_references):
    """The in-process judge of tests/gate/_judge.py (there on sys.path once a gate test is
    collected). Session fixtures live here, defined once: one imported into several test
    modules would be a separate fixture, made once per module."""
    from _judge import make_judge

    return make_judge(tiny_snapshot, shared_references)


@pytest.fixture(scope="session")
def reference_judged(session_judge):
    """Every model check on the reference, judged once per session: the tests that read it
    share the xdist group ``reference-judged``, so the suite runs it once."""
    from harness.model.wrapper import MPTInstruct

    return session_judge(MPTInstruct)


@pytest.fixture(scope="session")
def run_candidate(tiny_snapshot, gate_store, shared_references):
    """Run the gate on a candidate (servers off unless serve=True); returns the report."""
    from harness.gate.candidate import CandidateSpec
    from harness.gate.runner import GateConfig, run_gate

    def run(spec: CandidateSpec | None = None, **options):
        options.setdefault("serve", False)  # server checks have tests of their own
        options.setdefault("store", gate_store)
        # The exploration has tests of its own (tests/gate/test_explore*.py); whole gates
        # here judge everything else, so a small one keeps the suite's time.
        options.setdefault("explore", 4)
        options.setdefault("shared_references", shared_references)
        options.setdefault("snapshot", tiny_snapshot)
        return run_gate(GateConfig(candidate=spec or CandidateSpec(), **options))

    return run


@pytest.fixture(scope="session")
def reference_gate(tiny_snapshot, gate_store, tmp_path_factory):
    """`harness gate` on the reference, whole, its real scoring server and gateway included,
    run once for the tests that read it (its exit code, output and reports); they share an
    xdist group so it runs once per suite."""
    from types import SimpleNamespace

    from click.testing import CliRunner

    from harness.cli import main

    folder = tmp_path_factory.mktemp("reference-gate") / "report"
    args = ["gate", "--snapshot", str(tiny_snapshot), "--home", str(gate_store.home), "--report-dir", str(folder)]
    result = CliRunner().invoke(main, [*args, "--explore", "4"])
    return SimpleNamespace(result=result, folder=folder)


MUTANTS_FILE = REPO_ROOT / "tests" / "data" / "mutants.py"


def finish_owner(process, tag_name: str, tag: str):
    """Wait for an owner process (a hang guard, not a timing assertion), then kill and
    return what is still running under its tag: (its output, the processes left)."""
    from harness.gate.worker import processes_with_env

    try:
        output = process.communicate(timeout=60)[0]
    finally:
        left = processes_with_env(tag_name, tag)
        for proc in left:
            proc.kill()
        if process.poll() is None:
            process.kill()
    return output, left


BARE_STRING_MODEL = '''
from harness.model.wrapper import MPTInstruct


class BareString(MPTInstruct):
    """Returns a bare string, as the seed's predict does."""

    def predict(self, context, model_input, params=None):
        return super().predict(context, model_input, params)[0]
'''


@pytest.fixture(scope="session")
def loopback(tiny_snapshot, tmp_path_factory):
    """Real servers on 127.0.0.1: scoring servers for the reference (gateway signature), the
    seed's column signature and a bare-string model, and one AI Gateway routing to all three."""
    from types import SimpleNamespace

    from harness.gate.candidate import CandidateSpec, log_candidate
    from harness.serving.route import MlflowServingConfig, RouteSpec, seed_route
    from harness.serving.servers import start_loopback
    from harness.store import StoreConfig

    home = tmp_path_factory.mktemp("loopback")
    (home / "bare_string_model.py").write_text(BARE_STRING_MODEL)
    store = StoreConfig(home=home / "store")
    specs = {
        "reference": CandidateSpec(),
        "columns": CandidateSpec(signature="columns"),
        "bare": CandidateSpec.from_file(f"{home / 'bare_string_model.py'}:BareString"),
    }
    with store.activated():
        uris = {name: log_candidate(spec, tiny_snapshot) for name, spec in specs.items()}

    def route_for(name, url):
        if name == "reference":
            return seed_route(url)
        return RouteSpec(f"completions-{name}", f"model-{name}", "mlflow-model-serving", MlflowServingConfig(url))

    loopback = start_loopback(uris, store.uri, home, route_for=route_for)
    try:
        yield SimpleNamespace(
            url=loopback.gateway.url,
            gateway=loopback.gateway,
            servers=loopback.servers,
            routes={k: r.name for k, r in loopback.routes.items()},
            uris=uris,
            store=store,
        )
    finally:
        loopback.stop()


# Every process the suite starts inherits this tag (servers pass os.environ on), so the
# orphan check counts only the suite's own processes, never other work on the machine.
_TAG = "HARNESS_TEST_SUITE_TAG"
# MLflow writes ./mlflow.db when no tracking URI is set; the suite must never do that.
_STORE_NAMES = ("mlflow.db", "mlruns", "mlartifacts", ".harness/mlflow.db", ".harness/artifacts")


def _stores_outside_tmp(config) -> set[Path]:
    roots = {config.rootpath, Path.cwd()}
    return {root / name for root in roots for name in _STORE_NAMES if (root / name).exists()}


def pytest_configure(config):
    # One tag per pytest process: an xdist worker checks only what it started itself.
    os.environ[_TAG] = f"{os.getpid()}-{uuid.uuid4().hex}"
    if hasattr(config, "workerinput"):
        # Two workers on two cores, each with torch's default of one thread per core (and
        # the gate workers and servers they start), spin against each other: one thread each.
        os.environ["OMP_NUM_THREADS"] = "1"
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
    config.stash[_STORES_KEY] = _stores_outside_tmp(config)


_STORES_KEY = pytest.StashKey[set]()
_SLOW_FIXTURES = {"loopback", "run_candidate", "reference_gate", "pytester"}


def pytest_collection_modifyitems(config, items):
    """A test that starts servers, runs a whole gate or spawns pytest must say so with
    ``slow``, or the fast tier would not be fast."""
    unmarked = [
        item.nodeid
        for item in items
        if _SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("slow") is None
    ]
    if unmarked:
        raise pytest.UsageError(f"mark these tests slow (they use {sorted(_SLOW_FIXTURES)}): {unmarked[:5]}")


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if a process the suite started outlived it, or if the suite wrote an
    MLflow store outside its temp folders."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    from harness.gate.worker import processes_with_env

    left = [p for p in processes_with_env(_TAG, os.environ[_TAG]) if p.pid != os.getpid()]
    if left:
        _, alive = psutil.wait_procs(left, timeout=10)
        if alive:
            names = [f"{p.pid}" for p in alive]
            if reporter:
                reporter.write_line(f"ORPHANS: processes the suite started are still running: {names}", red=True)
            session.exitstatus = 1
    if not hasattr(session.config, "workerinput"):  # the xdist controller finishes last
        new = _stores_outside_tmp(session.config) - session.config.stash[_STORES_KEY]
        if new:
            if reporter:
                reporter.write_line(
                    f"STORE LEAK: the suite wrote MLflow state outside its temp folders: {sorted(map(str, new))}",
                    red=True,
                )
            session.exitstatus = 1


@pytest.fixture
def record(benchmark):
    """pytest-benchmark suites: adds the case and tokens/s to extra_info, which
    `harness bench compare` reads."""

    def add(batch: int, prompt: int, new: int):
        benchmark.extra_info.update(batch_size=batch, prompt_tokens=prompt, new_tokens=new)
        if benchmark.disabled:  # under xdist the body runs once as a smoke test, untimed
            return
        benchmark.extra_info["tokens_per_s"] = batch * new / benchmark.stats.stats.median

    return add


# What tests measured (`record_property("measured", ...)`: load latencies, stop times),
# shown, never asserted. user_properties travel with the reports from xdist workers to the
# controller, where print() output would be swallowed.
_MEASURED: list[str] = []


def pytest_runtest_logreport(report):
    if report.when == "call":
        _MEASURED.extend(f"{report.nodeid}: {value}" for name, value in report.user_properties if name == "measured")


def pytest_terminal_summary(terminalreporter, config):
    if _MEASURED and not hasattr(config, "workerinput"):
        terminalreporter.section("measured (shown, not asserted)", sep="-")
        for line in _MEASURED:
            terminalreporter.write_line(line)
