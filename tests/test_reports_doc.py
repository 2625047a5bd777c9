"""reports/README.md documents the schema versions the code writes."""

import re
from pathlib import Path

import pytest

from harness.bench import report as bench_report
from harness.bench import serve_report
from harness.gate import report as gate_report

README = Path(__file__).parents[1] / "reports" / "README.md"


@pytest.mark.parametrize(
    "name, version",
    [
        ("gate.json", gate_report.SCHEMA_VERSION),
        ("bench.json", bench_report.SCHEMA_VERSION),
        ("bench-serve.json", serve_report.SCHEMA_VERSION),
    ],
)
def test_the_readme_states_the_version_each_report_is_written_in(name, version):
    found = re.search(rf"^## {re.escape(name)} \(schema_version ([0-9.]+)", README.read_text(), re.MULTILINE)
    assert found is not None, f"reports/README.md has no section for {name}"
    assert found.group(1) == version
