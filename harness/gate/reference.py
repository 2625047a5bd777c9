"""The gate's oracle: the reference on the candidate's device and dtype, its greedy
decodings (with each step's top-k) kept on disk and reused across runs.

The cost of judging a 7B model is the reference's generations; a user re-gating the same
weights after changing only the wrapper should not pay it twice. Traces are keyed by
everything that can change them: the weights' fingerprint, the tokenizer, the dtype, the
device (its name, for a GPU), the torch version, and whether rows were decoded alone
(exact rule) or batched (tolerant rule); the row's instruction is the key inside.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

from harness._validation import OneOf, settings
from harness.gate.tolerance import Agreement, Rule, Trace, agree
from harness.model.formats import PromptFormat
from harness.model.generation import cut_at_stop
from harness.model.loading import DEVICES, DTYPES
from harness.model.settings import GenerationSettings

_CACHE_VERSION = 2  # bump when a trace's meaning changes, so old files are never read
_TOP = 10  # top-k kept per step: k can be recalibrated up to this without recomputing


@settings()
class Runtime:
    """Where and in what precision a model runs: asked (``auto`` allowed) or observed."""

    device: Annotated[str, OneOf(DEVICES)] = "auto"
    dtype: Annotated[str, OneOf(DTYPES)] = "auto"

    def resolved(self) -> Runtime:
        """``auto`` made concrete for this machine (a GPU and bfloat16 when there is one)."""
        from harness.model.loading import resolve_device, resolve_dtype

        device = resolve_device(self.device)
        return Runtime(device, str(resolve_dtype(self.dtype, device)).removeprefix("torch."))

    @classmethod
    def observed(cls, facts: dict[str, Any]) -> Runtime | None:
        """The runtime a candidate's model reports (``cuda:0``, ``torch.bfloat16``), or None
        when it is not one the gate can reproduce."""
        device = str(facts.get("device", "")).split(":")[0]
        dtype = str(facts.get("dtype", "")).removeprefix("torch.")
        if "auto" not in (device, dtype) and device in DEVICES and dtype in DTYPES:
            return cls(device, dtype)
        return None

    def to_dict(self) -> dict[str, str]:
        return {"device": self.device, "dtype": self.dtype}


class TraceStore:
    """Traces on disk, one SQLite file per key; safe for parallel gates on one home."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS traces (instruction TEXT PRIMARY KEY, asked INTEGER, trace TEXT)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def get(self, instruction: str) -> tuple[int, Trace] | None:
        with self._connect() as db:
            row = db.execute("SELECT asked, trace FROM traces WHERE instruction = ?", (instruction,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[1])
        return row[0], Trace(
            tuple(data["ids"]), tuple(map(tuple, data["top_ids"])), tuple(map(tuple, data["top_logprobs"]))
        )

    def put(self, instruction: str, asked: int, trace: Trace) -> None:
        data = json.dumps(
            {
                "ids": trace.ids,
                "top_ids": trace.top_ids,
                "top_logprobs": [[round(x, 5) for x in row] for row in trace.top_logprobs],
            }
        )
        with self._connect() as db:
            db.execute(
                "INSERT INTO traces VALUES (?, ?, ?) ON CONFLICT(instruction) DO UPDATE "
                "SET asked = excluded.asked, trace = excluded.trace "
                "WHERE excluded.asked > traces.asked",
                (instruction, asked, data),
            )


def cache_key(
    fingerprint: str, snapshot: Path, runtime: Runtime, rule: Rule, fmt: PromptFormat = PromptFormat()
) -> str:
    """What a trace depends on besides its row, as a file name (the prompt format too: the
    row's key is its instruction, not the prompt built from it)."""
    import torch

    digest = hashlib.sha256()
    device = runtime.device
    if device == "cuda" and torch.cuda.is_available():
        device = f"cuda:{torch.cuda.get_device_name()}"
    for part in (
        _CACHE_VERSION,
        fingerprint,
        runtime.dtype,
        device,
        platform.machine(),
        torch.__version__,
        torch.get_num_threads(),  # a kernel may split its sums by thread
        "alone" if rule.exact else "batched",
        json.dumps(fmt.describe(), sort_keys=True),
    ):
        digest.update(f"{part}\0".encode())
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (file := Path(snapshot) / name).is_file():
            digest.update(file.read_bytes())
    return f"{fingerprint}-{runtime.dtype}-{runtime.device}-{digest.hexdigest()[:12]}"


class ReferenceAnswers:
    """The reference's greedy traces, from memory, from disk, or generated: batched when the
    rule tolerates batch effects, each row alone when it asks for exact answers."""

    def __init__(
        self,
        generator: Any,
        rule: Rule,
        store: TraceStore | None = None,
        fingerprint: str = "",
        memory: dict[str, tuple[int, Trace]] | None = None,
    ):
        self.generator, self.rule, self.store = generator, rule, store
        self.fingerprint = fingerprint  # of the reference's weights, as the candidate's is taken
        # Traces held in memory: this object's own, or a pool's shared with other gates.
        self._traces: dict[str, tuple[int, Trace]] = {} if memory is None else memory
        self.generated = 0  # rows the reference decoded in this run
        self.from_disk = 0  # rows read from the store instead
        self.near_ties = 0  # answers accepted at a tolerated divergence, not exactly

    @property
    def eos(self) -> tuple[int, ...]:
        """The ids that end an answer: the tokenizer's EOS and the format's end of turn."""
        ends: tuple[int, ...] = self.generator.end_ids
        return ends

    def decode(self, ids: Sequence[int]) -> str:
        return self.generator.tokenizer.decode(list(ids), skip_special_tokens=True)

    def traces(self, rows: Sequence[tuple[str, int]]) -> list[Trace]:
        """One trace per (instruction, max_tokens); the missing ones generated together."""
        missing: dict[str, int] = {}
        for instruction, max_tokens in rows:
            if not self._covers(instruction, max_tokens):
                missing[instruction] = max(max_tokens, missing.get(instruction, 0))
        if missing:
            self._generate(missing)
        return [self._traces[i][1].first(n) for i, n in rows]

    def trace(self, instruction: str, max_tokens: int) -> Trace:
        return self.traces([(instruction, max_tokens)])[0]

    def answer(self, instruction: str, max_tokens: int, stop: Sequence[str] = ()) -> str:
        """The one exact answer: the greedy text cut before its earliest stop string."""
        return cut_at_stop(self.decode(self.trace(instruction, max_tokens).ids), stop)

    def agree(self, got: str, instruction: str, max_tokens: int, stop: Sequence[str] = ()) -> Agreement:
        result = agree(got, self.trace(instruction, max_tokens), self.decode, stop, self.rule, self.eos)
        self.near_ties += result.ok and not result.exact
        return result

    def facts(self) -> dict[str, Any]:
        return {
            "rule": self.rule.facts(),
            "generated_rows": self.generated,
            "cached_rows": self.from_disk,
            "near_ties_accepted": self.near_ties,
            "cache": str(self.store.path) if self.store is not None else None,
        }

    def _covers(self, instruction: str, max_tokens: int) -> bool:
        held = self._traces.get(instruction)
        if held is None and self.store is not None and (held := self.store.get(instruction)):
            self._traces[instruction] = held
            self.from_disk += 1
        if held is None:
            return False
        asked, trace = held
        return asked >= max_tokens or (bool(trace.ids) and trace.ids[-1] in self.eos)

    def _generate(self, missing: dict[str, int]) -> None:
        """Rows asking for the same number of tokens share a batch (a row near the context
        has no room for a longer neighbour's count)."""
        size = 1 if self.rule.exact else self.generator.max_batch_size
        groups: dict[int, list[str]] = {}
        for instruction, asked in missing.items():
            groups.setdefault(asked, []).append(instruction)
        for asked, instructions in sorted(groups.items()):
            for start in range(0, len(instructions), size):
                chunk = instructions[start : start + size]
                for instruction, trace in zip(chunk, self._decode(chunk, asked)):
                    self._traces[instruction] = (asked, trace)
                    if self.store is not None:
                        self.store.put(instruction, asked, trace)
                self.generated += len(chunk)

    def _decode(self, instructions: list[str], max_tokens: int) -> list[Trace]:
        import torch

        ref = self.generator
        encoded = ref.pad(ref.tokenize(instructions))
        width = encoded["input_ids"].shape[1]
        out = ref.generate_ids(
            encoded, GenerationSettings(0.0, max_tokens), output_logits=True, return_dict_in_generate=True
        )
        tops = [torch.log_softmax(step.float(), -1).topk(_TOP, -1) for step in out.logits]
        traces = []
        for row, new in enumerate(out.sequences[:, width:].tolist()):
            n = next((i + 1 for i, t in enumerate(new) if t in self.eos), len(new))
            traces.append(
                Trace(
                    tuple(new[:n]),
                    tuple(tuple(t.indices[row].tolist()) for t in tops[:n]),
                    tuple(tuple(t.values[row].tolist()) for t in tops[:n]),
                )
            )
        return traces


_T = TypeVar("_T")


class ReferencePool:
    """The reference's models, and what is computed from them alone, by snapshot and runtime.
    A gate run owns one. Gates in one process may share one (``shared``: a test session's),
    but only for the exact rule, float32 on a CPU, where each row is decoded alone, so a
    trace is the same whichever gate made it; batched traces (the tolerant rule) depend on
    their batch's other rows, so those stay the gate's own."""

    def __init__(self, shared: ReferencePool | None = None):
        self.shared = shared
        self._kept: dict[tuple[str, Runtime, PromptFormat, str], Any] = {}

    def _owner(self, runtime: Runtime) -> ReferencePool:
        if self.shared is not None and Rule.for_runtime(runtime.device, runtime.dtype).exact:
            return self.shared._owner(runtime)
        return self

    def kept(
        self, snapshot: Path, runtime: Runtime, name: str, make: Callable[[], _T], fmt: PromptFormat = PromptFormat()
    ) -> _T:
        """``name``'s value for the reference on ``snapshot``, ``runtime`` and prompt format,
        made once."""
        owner, key = self._owner(runtime), (str(Path(snapshot).absolute()), runtime, fmt, name)
        if key not in owner._kept:
            owner._kept[key] = make()
        value: _T = owner._kept[key]
        return value

    def generator(self, snapshot: Path, runtime: Runtime, fmt: PromptFormat = PromptFormat()) -> Any:
        """The reference's :class:`harness.model.generation.Generator`, loaded once."""

        def load() -> Any:
            from harness.model.generation import Generator
            from harness.model.loading import LoadConfig

            cfg = LoadConfig(
                device=runtime.device, dtype=runtime.dtype, prompt_format=fmt.name, system_prompt=fmt.system
            )
            return Generator.from_pretrained(str(snapshot), cfg)

        return self.kept(snapshot, runtime, "generator", load, fmt)

    def memory(
        self, snapshot: Path, runtime: Runtime, fmt: PromptFormat = PromptFormat()
    ) -> dict[str, tuple[int, Trace]]:
        """The traces held in memory for this reference (what :class:`ReferenceAnswers` reads
        before its disk store)."""
        traces: dict[str, tuple[int, Trace]] = self.kept(snapshot, runtime, "traces", dict, fmt)
        return traces


__all__ = ["ReferenceAnswers", "ReferencePool", "Runtime", "TraceStore", "cache_key"]
