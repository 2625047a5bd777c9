"""How the gate's torch processes share the machine's cores."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


def torch_threads(environ: Mapping[str, str] | None = None, cores: int | None = None) -> int:
    """Threads each of the gate's torch processes gets: ``OMP_NUM_THREADS`` when the user set
    it, else half the cores. Two such processes always run at once (the reference while the
    candidate loads, the candidate while its servers start), and torch's threads, two to a
    core, spin against each other: a check took 14 s instead of 0.6 s on two cores."""
    value = (os.environ if environ is None else environ).get("OMP_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, (cores or os.cpu_count() or 2) // 2)


@contextmanager
def shared_cores() -> Iterator[None]:
    """The gate's own torch (the reference) and every process it starts (the candidate's
    worker, its servers) use :func:`torch_threads` threads: the same on both sides, so the
    reference and the candidate run the same kernels. What was set before comes back."""
    import torch

    threads, before, env = torch_threads(), torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env


__all__ = ["shared_cores", "torch_threads"]
