"""Where a child process's output goes: a redacted, size-capped file.

The child writes into a pipe; a thread copies it line by line into ``path`` through
:func:`harness._redact.redact`, rotating to ``path.1`` past ``max_bytes``, so a failing
upstream that logs a traceback per request cannot fill the disk (at most twice
``max_bytes`` on disk). A side effect worth having: a child whose owner died gets EPIPE on
its next write instead of logging on forever.
"""

from __future__ import annotations

import os
import threading
from io import BufferedWriter
from collections.abc import Iterable
from pathlib import Path

from harness._redact import redact, secrets_in

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
_MAX_LINE = 64 * 1024


class LogPump:
    """Give :attr:`child_fd` to the child as stdout/stderr, then call :meth:`started`."""

    def __init__(self, path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES, watch: Iterable[str] = ()):
        if max_bytes < 1024:
            raise ValueError(f"max_bytes={max_bytes!r} is invalid: allowed >= 1024")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.watch = tuple(watch)
        self.seen: set[str] = set()  # watched values that passed through (and were masked)
        self._read_fd, self.child_fd = os.pipe()
        self._thread = threading.Thread(target=self._copy, name=f"log:{self.path.name}", daemon=True)

    @property
    def backup(self) -> Path:
        return self.path.with_name(self.path.name + ".1")

    def started(self) -> None:
        """The child has its copy of the write end: close ours and start copying."""
        os.close(self.child_fd)
        self._thread.start()

    def abandon(self) -> None:
        """The child never started: close both ends."""
        for fd in (self.child_fd, self._read_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _copy(self) -> None:
        out = open(self.path, "ab")
        try:
            with os.fdopen(self._read_fd, "rb") as source:
                for raw in iter(lambda: source.readline(_MAX_LINE), b""):
                    line = raw.decode("utf-8", errors="replace")
                    if self.watch:
                        self.seen |= secrets_in(line, self.watch)
                    data = redact(line).encode("utf-8")
                    if out.tell() + len(data) > self.max_bytes and out.tell() > 0:
                        out = self._rotate(out)
                    out.write(data)
                    out.flush()
        finally:
            out.close()

    def _rotate(self, out: BufferedWriter) -> BufferedWriter:
        out.close()
        os.replace(self.path, self.backup)
        return open(self.path, "ab")
