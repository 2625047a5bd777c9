"""pytest plugin (entry point ``pytest11: harness``).

Fixtures ``tiny_snapshot``, ``reference_model`` and ``candidate``; markers ``gpu``
and ``e2e``; and ``--harness-candidate FILE.py:CLASS``, which runs the gate's
checks as individual tests (one per check id) inside any pytest suite.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest

from harness.model.loading import DEVICES, DTYPES

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr, TracebackStyle
    from mlflow.pyfunc import PyFuncModel

    from harness.gate.report import GateReport
    from harness.model.wrapper import MPTInstruct
    from harness.testing.mock_gateway import MockGateway

_REPORT_KEY: pytest.StashKey[GateReport] = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "harness pre-deploy gate")
    group.addoption(
        "--harness-candidate",
        metavar="FILE.py:CLASS",
        default=None,
        help="run the gate's checks against this PythonModel, one test per check",
    )
    group.addoption(
        "--harness-signature",
        choices=("gateway", "columns"),
        default="gateway",
        help="signature the candidate is logged with (default gateway)",
    )
    group.addoption(
        "--harness-snapshot", metavar="DIR", default=None, help="model snapshot (default: the cached tiny snapshot)"
    )
    group.addoption(
        "--harness-check-timeout", type=float, default=120.0, help="seconds each gate check may take (default 120)"
    )
    group.addoption(
        "--harness-route", metavar="FILE", default=None, help="route (MLflow gateway YAML) for the gate's route checks"
    )
    group.addoption("--harness-no-serve", action="store_true", help="skip the gate checks that start real servers")
    group.addoption(
        "--harness-seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of the gate's exploration (explore.*; default: the gate's)",
    )
    group.addoption(
        "--harness-explore",
        type=int,
        default=None,
        metavar="N",
        help="requests the gate's exploration draws (default: the gate's)",
    )
    group.addoption(
        "--harness-device",
        choices=DEVICES,
        default=None,
        help="device the candidate is asked to run on, and the reference runs on",
    )
    group.addoption(
        "--harness-dtype",
        choices=DTYPES,
        default=None,
        help="dtype asked for; off float32 on a CPU the oracle tolerates near-ties",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU; skipped with a reason elsewhere")
    config.addinivalue_line("markers", "e2e: end-to-end through real MLflow servers on loopback")


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if gpu_items and not _cuda_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU; none is available on this machine")
        for item in gpu_items:
            item.add_marker(skip)
    if config.getoption("harness_candidate"):
        from harness.gate.checks import CHECKS

        collector = _GateCollector.from_parent(session, name="harness-gate")
        items.extend(_GateCheckItem.from_parent(collector, name=check_id) for check_id in CHECKS)


class _GateCollector(pytest.Collector):
    def collect(self) -> list[pytest.Item | pytest.Collector]:
        return []


class GateCheckFailed(Exception):
    pass


class _GateCheckItem(pytest.Item):
    def runtest(self) -> None:
        from harness.gate.report import Status

        result = _gate_report(self.config).check(self.name)
        if result.status is Status.SKIPPED:
            pytest.skip(result.message)
        if result.status is not Status.PASS:
            raise GateCheckFailed(f"{self.name}: {result.status.value}: {result.message}")

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: TracebackStyle | None = None
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, GateCheckFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"harness gate check {self.name}"


def _gate_report(config: pytest.Config) -> GateReport:
    """Run the gate once per session and share its report among the check items."""
    if _REPORT_KEY not in config.stash:
        from harness.gate.candidate import CandidateSpec
        from harness.gate.runner import GateConfig, run_gate
        from harness.store import StoreConfig

        snapshot = config.getoption("harness_snapshot")
        cfg = GateConfig(
            candidate=CandidateSpec.from_file(
                config.getoption("harness_candidate"), config.getoption("harness_signature")
            ),
            snapshot=Path(snapshot) if snapshot else _default_snapshot(config),
            store=StoreConfig(home=Path(tempfile.mkdtemp(prefix="harness-gate-"))),
            check_timeout=config.getoption("harness_check_timeout"),
            route_file=Path(route) if (route := config.getoption("harness_route")) else None,
            serve=not config.getoption("harness_no_serve"),
            **{
                name: value
                for name in ("seed", "explore", "device", "dtype")
                if (value := config.getoption(f"harness_{name}")) is not None
            },
        )
        config.stash[_REPORT_KEY] = run_gate(cfg)
    return config.stash[_REPORT_KEY]


def _default_snapshot(config: pytest.Config) -> Path:
    from harness.model.snapshot import cached_tiny

    return cached_tiny(config.rootpath)


@pytest.fixture(scope="session")
def tiny_snapshot(pytestconfig: pytest.Config) -> Path:
    """The tiny offline MPT snapshot, cached under <rootdir>/.harness/snapshots/tiny."""
    return _default_snapshot(pytestconfig)


@pytest.fixture(scope="session")
def reference_model(tiny_snapshot: Path) -> MPTInstruct:
    """The reference PythonModel, loaded on the tiny snapshot (CPU unless a GPU is present)."""
    from harness.model.wrapper import MPTInstruct

    model = MPTInstruct()
    model.load_context(SimpleNamespace(artifacts={"repository": str(tiny_snapshot)}, model_config={}))
    return model


@pytest.fixture(scope="session")
def candidate(
    pytestconfig: pytest.Config, tiny_snapshot: Path, tmp_path_factory: pytest.TempPathFactory
) -> PyFuncModel:
    """The --harness-candidate (else the reference), logged and loaded as the gate does it:
    an MLflow PyFuncModel."""
    import mlflow

    from harness.gate.candidate import CandidateSpec, log_candidate
    from harness.store import StoreConfig

    option = pytestconfig.getoption("harness_candidate")
    signature = pytestconfig.getoption("harness_signature")
    spec = CandidateSpec.from_file(option, signature) if option else CandidateSpec(signature=signature)
    with StoreConfig(home=tmp_path_factory.mktemp("candidate-store")).activated():
        model = mlflow.pyfunc.load_model(log_candidate(spec, tiny_snapshot))
    return model


@pytest.fixture
def mock_gateway(request: pytest.FixtureRequest, candidate: PyFuncModel) -> Iterator[MockGateway]:
    """A started ``responses`` mock of the AI Gateway with the seed's route
    (``completions-mpt-7b-instruct``) answered by ``candidate``. Profile ``legacy`` (the
    open-source 2.8.1 server on pydantic 1, as recorded) unless parametrized indirectly
    with ``legacy-pydantic2`` (2.8.1 as a plain install resolves it today), ``databricks``
    or ``current``. Inject faults with ``mock_gateway.inject(Fault(...))``; the bearer token
    (``databricks`` only) is ``mock_gateway.token``."""
    from harness.testing.mock_gateway import MockGateway
    from harness.serving.route import seed_route

    with MockGateway(profile=getattr(request, "param", "legacy")) as gateway:
        gateway.serve_model("mpt-7b-instruct", candidate)
        gateway.add_route(seed_route("http://127.0.0.1:1"))
        yield gateway
