"""Import direction: prompt and the timed core must not pull in MLflow (or torch, for prompt)."""

import subprocess
import sys

import pytest

import harness


def _loaded_after(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_prompt_imports_neither_torch_nor_mlflow():
    loaded = _loaded_after("harness.prompt")
    assert "torch" not in loaded and "mlflow" not in loaded


@pytest.mark.parametrize("module", ["harness", "harness.settings", "harness.generation",
                                    "harness.loading", "harness.bench", "harness.bench_report",
                                    "harness.bench_compare"])
def test_timed_core_imports_no_mlflow(module):
    assert "mlflow" not in _loaded_after(module)


def test_public_api_resolves():
    for name in harness.__all__:
        assert getattr(harness, name) is not None
