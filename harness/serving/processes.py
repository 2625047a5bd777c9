"""One owner for every process the harness starts.

A server or worker is owned from the moment it is spawned (not once it is ready), and every
owned process is stopped on normal exit (``atexit``), on an exception (the owners' own
``finally``) and on SIGINT, SIGTERM or SIGHUP, which :func:`stop_on_signals` turns into
:class:`Interrupted` so that every ``finally`` runs.
"""

from __future__ import annotations

import atexit
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Owned(Protocol):
    def terminate(self) -> None:
        """Ask the process to stop, without waiting."""

    def stop(self) -> None:
        """Stop it for good (escalating as needed); idempotent."""


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived; the owners' ``finally`` blocks stop what they own."""

    def __init__(self, signum: int = signal.SIGINT):
        self.signum = int(signum)
        self.signame = signal.Signals(self.signum).name
        super().__init__(self.signame)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_owned: dict[int, Owned] = {}
_lock = threading.Lock()
_deferring = threading.local()
_pending: list[int] = []
_arrived: list[int] = []  # the signal that interrupted, once one has


def own(process: Owned) -> None:
    with _lock:
        _owned[id(process)] = process


def disown(process: Owned) -> None:
    with _lock:
        _owned.pop(id(process), None)


def owned() -> list[Owned]:
    with _lock:
        return list(_owned.values())


def stop_all() -> None:
    """Stop every owned process: all are asked first, then each is waited for, so the
    grace periods run side by side rather than one after another."""
    live = owned()
    for process in live:
        try:
            process.terminate()
        except Exception:  # noqa: BLE001 - one failure must not keep the others running
            pass
    for process in reversed(live):
        try:
            process.stop()
        except Exception:  # noqa: BLE001
            pass


atexit.register(stop_all)


@contextmanager
def spawning() -> Iterator[None]:
    """Hold signals back while a process is spawned and registered: an interrupt between
    the fork and :func:`own` would leave a process nobody owns."""
    _deferring.depth = getattr(_deferring, "depth", 0) + 1
    try:
        yield
    finally:
        _deferring.depth -= 1
        if _deferring.depth == 0 and _pending:
            _raise(_pending.pop())


def _raise(signum: int) -> None:
    # The first signal wins; later ones are ignored so the clean-up it starts can finish
    # (it is bounded: a couple of seconds, then SIGKILL).
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    _arrived.append(signum)
    raise Interrupted(signum)


def raise_if_interrupted() -> None:
    """Raise :class:`Interrupted` again for a signal whose exception was swallowed where it
    landed: a handler that runs while a weakref finalizer or ``__del__`` runs has its
    exception printed as "Exception ignored" and dropped, and later signals are ignored by
    then, so long work calls this between its steps to stop as the signal asked."""
    if _arrived and threading.current_thread() is threading.main_thread():
        raise Interrupted(_arrived[0])


def _handler(signum: int, _frame: object) -> None:
    if getattr(_deferring, "depth", 0) > 0:
        _pending.append(signum)
        return
    _raise(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` in the main
    thread (so ``finally`` blocks run, where SIGTERM would have killed the process outright);
    the previous handlers come back after it."""
    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    _pending.clear()
    _arrived.clear()
    for sig in _SIGNALS:
        signal.signal(sig, _handler)
    try:
        yield
    finally:
        _arrived.clear()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
