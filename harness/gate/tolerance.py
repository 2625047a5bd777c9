"""When an answer agrees with the reference's: exactly, or within a calibrated tolerance.

On float32 on a CPU a correct wrapper's greedy answer is the reference's, exactly. In
bfloat16 or float16, or on a GPU, batch size, padding and kernels change the order of
reductions, so two correct runs can pick different tokens where the top two are nearly
tied. The tolerant rule follows vLLM's ``check_logprobs_close`` (its HF-vs-engine model
tests): the two greedy outputs agree up to the first step where they differ; there the
candidate's token must be among the reference's top ``k`` with a log-probability within
``margin`` of the reference's own choice, and nothing after that step is compared (the
two texts no longer share a context). We see the candidate's text, not its
log-probabilities, so vLLM's symmetric test (each token in the other's top-k) becomes a
margin on the reference's side.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Annotated

from harness._validation import IntIn, Number, settings
from harness.model.generation import cut_at_stop

# Calibrated with benchmarks/tolerance_calibration.py (README, "Where users deploy"): on the
# peaked tiny snapshot in bfloat16 on a CPU, 2 of 400 rows answered in
# batches diverged from the same row alone, at ranks 0-1 and log-probability gaps 0.0 and
# 0.125 (float16: 3 of 400, gaps up to 0.016). GPU kernels are yet to be measured.
DEFAULT_K = 5  # vLLM's default number of logprobs in its HF comparison tests
DEFAULT_MARGIN = 0.5  # nats: four times the largest gap measured, still below a real change


@dataclass(frozen=True)
class Trace:
    """The reference's greedy decoding of one row: the new ids (up to and including EOS)
    and, per step, its top token ids and their log-probabilities, best first."""

    ids: tuple[int, ...]
    top_ids: tuple[tuple[int, ...], ...]
    top_logprobs: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        if not len(self.ids) == len(self.top_ids) == len(self.top_logprobs):
            raise ValueError("a trace needs one top-k list per generated id")

    def first(self, n: int) -> Trace:
        """The trace of the same row asked for ``n`` tokens: greedy ids for fewer tokens
        are a prefix of those for more."""
        return Trace(self.ids[:n], self.top_ids[:n], self.top_logprobs[:n])


@settings()
class Rule:
    """``exact``: the answer must equal the reference's. Otherwise the tolerant rule."""

    exact: bool = True
    k: Annotated[int, IntIn(1, 20)] = DEFAULT_K
    margin: Annotated[float, Number(0.0, 10.0, "[0, 10] nats", closed=True)] = DEFAULT_MARGIN

    @classmethod
    def for_runtime(cls, device: str, dtype: str) -> Rule:
        """Exact on float32 on a CPU, where a correct wrapper matches bit for bit."""
        return cls(exact=device == "cpu" and dtype == "float32")

    def describe(self) -> str:
        if self.exact:
            return "exact: every answer equals the reference's"
        return (
            f"top-{self.k}, margin {self.margin:g} nats: equal up to the first differing "
            f"token, which must be among the reference's top {self.k} and within "
            f"{self.margin:g} nats of its choice; not compared after it"
        )

    def facts(self) -> dict[str, object]:
        return {
            "kind": "exact" if self.exact else "top-k",
            "k": None if self.exact else self.k,
            "margin": None if self.exact else self.margin,
        }


@dataclass(frozen=True)
class Agreement:
    ok: bool
    exact: bool = False
    step: int | None = None  # the tolerated divergence: the step, and the reference's gap
    gap: float | None = None
    expected: str = ""

    def describe(self) -> str:
        if self.ok and self.exact:
            return "equal"
        if self.ok:
            return f"equal up to a near-tie at token {self.step} (gap {self.gap:.3f} nats)"
        return f"differs from the reference's {self.expected[:80]!r}"


def agree(
    got: str,
    trace: Trace,
    decode: Callable[[Sequence[int]], str],
    stop: Sequence[str] = (),
    rule: Rule = Rule(),
    eos: Collection[int] = (),
) -> Agreement:
    """Whether ``got`` is an answer the reference accepts for the row ``trace`` decodes
    (``eos``: the ids that end an answer, so a branch on one must end there)."""
    stops = [s for s in stop if s]
    want = cut_at_stop(decode(trace.ids), stops)
    if got == want:
        return Agreement(True, exact=True, expected=want)
    if rule.exact:
        return Agreement(False, expected=want)
    for step in reversed(_shared_steps(got, trace, decode)):
        chosen = trace.top_logprobs[step][0]  # greedy took the most likely token
        for token, logprob in zip(trace.top_ids[step][: rule.k], trace.top_logprobs[step][: rule.k]):
            if token == trace.ids[step] or chosen - logprob > rule.margin:
                continue
            branch = decode([*trace.ids[:step], token])
            # A special token (EOS, padding) adds no text: the answer ends with it.
            ended = token in eos or branch == decode(trace.ids[:step])
            if _continues(got, branch, stops, ended):
                return Agreement(True, step=step, gap=chosen - logprob, expected=want)
    return Agreement(False, expected=want)


def _shared_steps(got: str, trace: Trace, decode: Callable[[Sequence[int]], str]) -> list[int]:
    """The steps before which ``got`` and the reference may still share their text (a
    split multi-byte character at the prefix's end counts as shared)."""
    steps = []
    for step in range(len(trace.ids)):
        prefix = decode(trace.ids[:step]).rstrip("\ufffd")
        if not (got.startswith(prefix) or prefix.startswith(got)):
            break
        steps.append(step)
    return steps


def _continues(got: str, branch: str, stops: Sequence[str], ended: bool) -> bool:
    """Whether some continuation of ``branch`` (any text, or none if it ``ended``) cut at
    its earliest stop string gives ``got``."""
    if ended:  # the branch token was EOS: the answer ends with it
        return got == cut_at_stop(branch, stops)
    if any(s in got for s in stops):
        return False  # a cut answer never holds a stop string
    if got.startswith(branch):
        return True
    if not branch.startswith(got) or len(cut_at_stop(branch, stops)) < len(got):
        return False
    tail = branch[len(got) :]  # the cut falls inside the branch: a stop starts right here
    return any(s.startswith(tail) or tail.startswith(s) for s in stops)


__all__ = ["DEFAULT_K", "DEFAULT_MARGIN", "Agreement", "Rule", "Trace", "agree"]
