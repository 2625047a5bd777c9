"""The bookkeeping of a Locust-driven level, apart from Locust: what one worker process
sends (:class:`Share`) and how the master merges what the workers send back
(:class:`Collector`). Nothing here imports Locust or gevent, so it runs (and is tested) in
any process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

# Heartbeats (one a second) a worker may miss before the master counts it lost. Locust's 3
# fails a level whenever a busy machine stalls a worker for 4 s (seen on a 2-core CI runner);
# a worker that really died is found by its owner at once, or after this silence if remote.
WORKER_LIVENESS = 20

# A sample on the wire: [prompt, latency_s, ok, status, answer, sent_s], the fields of
# harness.serving.load.Sample in order.
Row = list[Any]


@dataclass
class Share:
    """One process's share of one level, and what came back."""

    level: int
    route: str
    api: str
    max_tokens: int
    prompts: tuple[str, ...]
    duration_s: float | None  # closed loop: send until then; None: until Locust stops the users
    arrivals: tuple[float, ...] | None = None  # open loop: this share's due times (s after the start)
    share: int = 0
    shares: int = 1
    started: float = field(default_factory=time.perf_counter)
    taken: int = 0
    pending: int = 0  # taken and not yet recorded (waiting for its due time, or in flight)
    rows: list[Row] = field(default_factory=list)

    def next_job(self, now: float) -> tuple[int, float] | None:
        """(prompt index, due time) of the next request, reserved; None when there is none.
        Shares interleave: share ``s`` of ``n`` takes requests ``s, s+n, s+2n, ...``."""
        if self.arrivals is not None:
            if self.taken >= len(self.arrivals):
                return None
            due = self.started + self.arrivals[self.taken]
        elif self.duration_s is not None and now >= self.started + self.duration_s:
            return None
        else:
            due = now
        prompt = (self.share + self.taken * self.shares) % len(self.prompts)
        self.taken += 1
        self.pending += 1
        return prompt, due

    def record(self, row: Row) -> None:
        self.rows.append(row)
        self.pending -= 1

    def finished(self, now: float) -> bool:
        """Nothing left to send and nothing in flight."""
        if self.pending:
            return False
        if self.arrivals is not None:
            return self.taken >= len(self.arrivals)
        return self.duration_s is not None and now >= self.started + self.duration_s


@dataclass
class Collector:
    """The master's view: every batch by (worker, level, number), and each worker's count."""

    batches: dict[tuple[str, int, int], list[Row]] = field(default_factory=dict)
    done: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)

    def level(self, index: int, workers: list[str]) -> dict[str, Any]:
        """The level's samples merged in order of when they were sent, each batch once, and
        per worker (by share) how many it sent and how many arrived."""
        rows: list[Row] = []
        accounts = []
        for share, worker in enumerate(workers):
            batches = sorted((seq, rows) for (w, lv, seq), rows in self.batches.items() if (w, lv) == (worker, index))
            mine = [row for _, rows in batches for row in rows]
            done = self.done.get((worker, index))
            accounts.append({"share": share, "sent": None if done is None else done["count"], "received": len(mine)})
            rows += mine
        rows.sort(key=lambda r: r[5])
        return {"index": index, "workers": accounts, "rows": rows}

    def engine_stats(self, index: int, workers: list[str]) -> list[Any]:
        """What each worker's load engine said about its share (Locust's serialized stats)."""
        return [done["locust"] for w in workers if (done := self.done.get((w, index))) is not None]
