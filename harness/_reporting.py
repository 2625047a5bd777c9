"""What every report shares: the versioned header, machine facts and atomic writes.

Gate and bench reports both import this; neither imports the other.
"""

from __future__ import annotations

import os
import platform
import tempfile
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness._redact import redact

SCHEMA_DIR = Path(__file__).parent / "schemas"


class ReportDirError(OSError):
    """A report folder that cannot be created or written (found before any work starts)."""


def ensure_writable(directory: Path) -> Path:
    """Create ``directory`` and prove a file can be written in it, before hours of checks
    depend on it."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise ReportDirError(
            f"report folder {str(directory)[:200]} is not writable: {error.strerror or error}"
        ) from None
    return directory


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def report_folder(kind: str, device: str | None = None) -> Path:
    """Where a report goes unless told: ``reports/<kind>/<UTC time>``, or for a benchmark
    of one device ``reports/<kind>/<device>-<UTC date>`` (a day's runs on it compare)."""
    if device is not None:
        return Path("reports") / kind / f"{device.replace(' ', '-')}-{utc_now()[:10]}"
    return Path("reports") / kind / utc_now().replace(":", "")


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _mlflow_version() -> str:
    found = package_version("mlflow")
    if found == "unknown" and (skinny := package_version("mlflow-skinny")) != "unknown":
        return f"{skinny} (mlflow-skinny)"
    return found


def header(report: Any) -> dict[str, str]:
    """The fields every report starts with, in the order its JSON shows them."""
    return {
        "schema_version": report.schema_version,
        "harness_version": report.harness_version,
        "created_at": report.created_at,
    }


def require_schema(data: dict[str, Any], expected: str | tuple[str, ...]) -> None:
    """Refuse a report written under another schema version instead of misreading it
    (``expected``: the one version, or every version this reader understands)."""
    allowed = (expected,) if isinstance(expected, str) else expected
    if data.get("schema_version") not in allowed:
        shown = repr(allowed[0]) if len(allowed) == 1 else f"one of {list(allowed)}"
        raise ValueError(f"schema_version={str(data.get('schema_version'))[:40]!r} is not supported: expected {shown}")


def machine_info() -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "cuda": torch.version.cuda if cuda else None,
        "torch": package_version("torch"),
        "transformers": package_version("transformers"),
        # A GPU machine may carry only mlflow-skinny (the same code, fewer dependencies).
        "mlflow": _mlflow_version(),
    }


def atomic_write(path: Path, text: str | bytes) -> None:
    """Write via a temporary file in the same folder and rename: never half-written. Text is
    redacted on the way out (every report goes through here)."""
    if isinstance(text, str):
        text = redact(text)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8") if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
