"""Import direction: prompt and the timed core must not pull in MLflow (or torch, for prompt)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import harness


def _loaded_after(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_prompt_imports_neither_torch_nor_mlflow():
    loaded = _loaded_after("harness.model.prompt")
    assert "torch" not in loaded and "mlflow" not in loaded


@pytest.mark.parametrize(
    "module",
    [
        "harness",
        "harness.model.settings",
        "harness.model.generation",
        "harness.model.loading",
        "harness.bench.core",
        "harness.bench.measure",
        "harness.bench.report",
        "harness._stats",
        "harness.bench.compare",
    ],
)
def test_timed_core_imports_no_mlflow(module):
    assert "mlflow" not in _loaded_after(module)


def test_the_harness_process_never_imports_locust_or_gevent():
    """Locust's gevent patches the process that imports it: only its own workers may."""
    loaded = _loaded_after("harness.cli, harness.bench.serve, harness.bench.locust_engine, harness.bench._locust_share")
    assert "gevent" not in loaded and "locust" not in loaded


def test_public_api_resolves():
    for name in harness.__all__:
        assert getattr(harness, name) is not None


# What each part may import (besides itself): the data flows one way,
# cli -> gate/bench -> serving/store -> model, and nothing below cli imports it.
_ALLOWED = {
    "model": {"_mlflow_compat", "_validation"},
    "store": {"model", "_mlflow_compat", "_redact", "_reporting", "_validation"},
    "serving": {"store", "model", "_mlflow_compat", "_redact", "_stats", "_validation"},
    "bench": {"serving", "store", "model", "_reporting", "_redact", "_stats", "_validation"},
    "gate": {"bench", "serving", "store", "model", "_reporting", "_mlflow_compat", "_redact", "_stats", "_validation"},
    "testing": {"gate", "bench", "serving", "store", "model", "_reporting", "_mlflow_compat", "_validation"},
    "_reporting": {"_redact"},
    "_mlflow_compat": set(),
    "_redact": set(),
    "_stats": set(),
    "_validation": set(),
    "cli": {"gate", "bench", "serving", "store", "model", "testing", "_reporting", "_redact", "_validation"},
}


def _harness_imports(path):
    """Top-level harness parts a module imports, at module level or inside functions."""
    tree = ast.parse(path.read_text())
    parts = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "harness":  # the public API: its module
            names = [harness._EXPORTS[a.name] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        parts |= {n.split(".")[1] for n in names if n.startswith("harness.")}
    return parts


def _part(path):
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


PACKAGE = Path(harness.__file__).parent


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_imports_flow_one_way(path):
    part = _part(path)
    imported = _harness_imports(path) - {part}
    assert imported <= _ALLOWED[part], f"{part} may not import {sorted(imported - _ALLOWED[part])}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "cli").glob("*.py")), ids=lambda p: p.name)
def test_the_cli_imports_only_public_names(path):
    """The CLI is a client of the library: public modules and names only (its own
    package's helpers aside), so what it needs is what any user can use."""
    private = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
            if node.module.startswith("harness.cli"):
                continue
            hidden = [p for p in node.module.split(".") if p.startswith("_")]
            private += hidden + [a.name for a in node.names if a.name.startswith("_")]
    assert private == [], f"{path.name} imports private {private}"


def _declared_dependencies() -> set[str]:
    import re
    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    return {re.split(r"[\[<>=!~ ;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in project["dependencies"]}


def test_every_third_party_import_of_the_package_is_a_runtime_dependency():
    """`pip install harness` must be enough for everything the package imports (an extra
    only the test suite installs is not): MockGateway needs `responses` at runtime."""
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    # pytest loads the plugin itself; the rest are looked up with find_spec, never imported.
    provided = {"pytest", "_pytest"}
    imported = set()
    for path in Path(harness.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"harness"} - provided
    declared = _declared_dependencies()
    missing = {
        m: owners.get(m)
        for m in third_party
        if not {d.lower().replace("_", "-") for d in owners.get(m, [m])} & declared
    }
    assert missing == {}


def test_the_installed_distribution_requires_what_users_suites_import():
    """What `pip install harness` resolves: MockGateway and the mock_gateway fixture need
    responses, so it is a requirement without an extra marker (checked on the installed
    metadata, not only on pyproject.toml)."""
    from importlib.metadata import requires

    plain = {
        r.split(";")[0].split(">")[0].split("=")[0].strip().lower()
        for r in requires("harness") or ()
        if "extra ==" not in r
    }
    assert {"responses", "hypothesis", "pydantic", "pydantic-core"} <= plain
