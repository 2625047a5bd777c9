"""The README's test commands are the ones CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_readme_gives_ci_s_test_command_and_the_fast_tier_on_two_workers():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"^(python -m pytest .*)$", ci, re.MULTILINE)
    assert command is not None and f"`{command.group(1)}`" in readme
    fast = re.search(r"^(python -m pytest .*-m \"not slow\".*?)\s+#", readme, re.MULTILINE)
    assert fast is not None and "-n 2 --dist loadgroup" in fast.group(1)
