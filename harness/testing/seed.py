"""The published seed document's code, extracted verbatim so tests can run it as shipped."""

from __future__ import annotations

import textwrap
from pathlib import Path


def code_blocks(text: str) -> list[str]:
    """The ``.. code-block:: python`` bodies of an reStructuredText page, dedented."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip().startswith(".. code-block:: python"):
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                body.append(lines[i])
                i += 1
            blocks.append(textwrap.dedent("\n".join(body)).strip("\n") + "\n")
        else:
            i += 1
    return blocks


def find_seed_doc(seed_dir: Path) -> Path | None:
    for path in sorted(Path(seed_dir).glob("*")):
        if path.is_file() and "class MPT(mlflow.pyfunc.PythonModel)" in path.read_text():
            return path
    return None


def wrapper_source(seed_dir: Path) -> str:
    """Step 2 of the seed: the published MPT PythonModel, exactly as printed."""
    doc = find_seed_doc(seed_dir)
    if doc is None:
        raise FileNotFoundError(f"no seed document with the MPT wrapper under {seed_dir}")
    return next(b for b in code_blocks(doc.read_text()) if "class MPT(" in b)
