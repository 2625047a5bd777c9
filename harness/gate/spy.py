"""A recording (and optionally scripting) spy on transformers' ``generate``.

Installed on the model *class* (``GenerationMixin``) in the candidate's process, so it
sees every model the candidate holds, wherever it keeps it: an attribute, a dict, a
pipeline. It records what ``generate`` was asked and what each forward pass received
(one new position per step with a KV cache, the whole sequence without), and can script
what ``generate`` returns, so the hard trimming cases are judged deterministically.

A scripted ``generate`` behaves as the real one would for whatever a wrapper passes that a
script can honour (a streamer, stopping criteria, lengths, a dict output), so a correct
wrapper in any style is judged on its trimming, not on the script's shortcuts; what it cannot
honour (scores, beams, a logits processor that would change the ids) is recorded on the call
and raised as :class:`ScriptUnsupported`, for the check to skip rather than misjudge.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.model.intercept import GenerateInputs, generate_inputs, intercept, sequences, to_lists, with_argument


@dataclass(frozen=True)
class Script:
    """What a scripted ``generate`` returns, as data (it crosses a process boundary).

    ``by_marker``: (text, new ids) pairs; a row whose decoded prompt contains the text gets
    those ids (the first pair otherwise). ``raise_message``: ``generate`` raises instead.
    ``suppress_eos``: not scripted; the real ``generate`` runs with EOS banned, so every row
    generates exactly as many tokens as the candidate asked for. ``eos_after``: not scripted
    either; (text, n) pairs: a row whose prompt contains the text emits EOS right after its
    n-th new token, in the real ``generate``, so the candidate's own stopping and padding
    show (the tiny model rarely emits EOS by itself).
    """

    by_marker: tuple[tuple[str, tuple[int, ...]], ...] = ()
    raise_message: str | None = None
    suppress_eos: bool = False
    eos_after: tuple[tuple[str, int], ...] = ()

    @property
    def replaces_output(self) -> bool:
        return bool(self.by_marker) or self.raise_message is not None


class ScriptedFailure(RuntimeError):
    """Raised by a scripted ``generate``: the gate checks the candidate surfaces it."""


class ScriptUnsupported(RuntimeError):
    """A scripted ``generate`` was asked for something a script cannot give as ``generate``
    would (the reason is also on the :class:`GenerateCall`): the case cannot be judged."""


@dataclass
class GenerateCall:
    input_ids: list[list[int]]
    attention_mask: list[list[int]] | None
    kwargs: dict[str, Any]
    output: list[list[int]] = field(default_factory=list)
    scripted: bool = False
    # Sequence length each forward pass received during this call.
    forward_widths: list[int] = field(default_factory=list)
    # Why a scripted generate could not answer as generate would (None: it could).
    unsupported: str | None = None

    @property
    def width(self) -> int:
        return len(self.input_ids[0]) if self.input_ids else 0

    def prompt_ids(self, row: int) -> list[int]:
        """The row's input ids without its padding, as the attention mask says."""
        return GenerateInputs(None, self.input_ids, self.attention_mask).prompt_ids(row)

    def new_ids(self, row: int) -> list[int]:
        return self.output[row][self.width :]


_to_lists = to_lists

_SIMPLE = (bool, int, float, str, type(None))

Decode = Callable[[list[int]], str]  # prompt ids -> text


class GenerateSpy:
    """Wraps ``owner.generate`` (a model class or one model instance) until :meth:`remove`.

    ``decode`` turns prompt ids into text for :class:`Script` markers; ``eos_token_id`` is
    what ``suppress_eos`` bans; ``pad_token_id`` pads finished scripted rows only where
    neither the call nor the model names a padding or EOS id (generate pads with those).
    """

    def __init__(
        self,
        owner: Any,
        pad_token_id: int,
        decode: Decode | None = None,
        eos_token_id: int | Sequence[int] | None = None,
    ) -> None:
        self.owner, self.pad_token_id = owner, pad_token_id
        # Every id that ends an answer (a chat model's end of turn too); the first is forced.
        self.end_ids: tuple[int, ...] = (
            () if eos_token_id is None else (eos_token_id,) if isinstance(eos_token_id, int) else tuple(eos_token_id)
        )
        self.decode = decode
        self.eos_token_id = self.end_ids[0] if self.end_ids else None
        self.calls: list[GenerateCall] = []
        self.script: Script | None = None
        self.model: Any = None  # the last model generate ran on
        self._lock = threading.Lock()
        self._interception = intercept(owner, self._generate)

    @property
    def _wrapper(self) -> Any:
        return self._interception._wrapper

    def remove(self) -> None:
        self._interception.remove()

    def reset(self, script: Script | None = None) -> None:
        with self._lock:
            self.calls = []
            self.script = script

    def _generate(self, model: Any, original: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        inputs = generate_inputs(args, kwargs)
        call = GenerateCall(
            input_ids=inputs.input_ids,
            attention_mask=inputs.attention_mask,
            kwargs={k: v for k, v in kwargs.items() if isinstance(v, _SIMPLE)},
        )
        with self._lock:
            self.calls.append(call)
            self.model = model
            script = self.script
        if script is not None and script.replaces_output:
            call.scripted = True
            return _Scripted(self, model, call, script, inputs).run()
        if script is not None and script.suppress_eos and self.eos_token_id is not None:
            kwargs = {**kwargs, "suppress_tokens": list(self.end_ids)}
        if script is not None and script.eos_after and self.eos_token_id is not None:
            args, kwargs = self._with_forced_eos(args, kwargs, inputs, call, script, self.eos_token_id)
        hook = model.register_forward_pre_hook(_width_recorder(call), with_kwargs=True)
        try:
            output = original(*args, **kwargs)
        finally:
            hook.remove()
        call.output = to_lists(sequences(output)) or []
        return output

    def _with_forced_eos(
        self, args: tuple, kwargs: dict, inputs: GenerateInputs, call: GenerateCall, script: Script, eos: int
    ) -> tuple[tuple, dict]:
        from transformers import LogitsProcessorList

        rows: dict[int, int] = {}
        for r in range(len(call.input_ids)):
            text = self.decode(call.prompt_ids(r)) if self.decode else ""
            rows.update({r: n for marker, n in script.eos_after if marker in text})
        if not rows:
            return args, kwargs
        forced = _ForceEos(call.width, rows, eos)
        processors = LogitsProcessorList([*(inputs.arguments.get("logits_processor") or []), forced])
        return with_argument(args, kwargs, "logits_processor", processors)

    def pick(self, script: Script, ids: Sequence[int]) -> list[int]:
        """The scripted new ids for a row whose prompt is ``ids``."""
        text = self.decode(list(ids)) if self.decode else ""
        chosen = next((new for marker, new in script.by_marker if marker in text), script.by_marker[0][1])
        return list(chosen)


# generate's own parameters and what it hands to decoding strategies: not generation settings.
_NOT_SETTINGS = frozenset(
    {
        "inputs",
        "input_ids",
        "attention_mask",
        "generation_config",
        "logits_processor",
        "stopping_criteria",
        "prefix_allowed_tokens_fn",
        "synced_gpus",
        "assistant_model",
        "streamer",
        "negative_prompt_ids",
        "negative_prompt_attention_mask",
        "custom_generate",
        "tokenizer",
        "assistant_tokenizer",
    }
)


class _Scripted:
    """One scripted ``generate`` call, stepped as ``generate`` steps: the prompt and each
    step's tokens go to the streamer, stopping criteria and lengths end rows, finished rows
    get padding, and the streamer is ended however the call ends."""

    def __init__(
        self, spy: GenerateSpy, model: Any, call: GenerateCall, script: Script, inputs: GenerateInputs
    ) -> None:
        self.spy, self.model, self.call, self.script = spy, model, call, script
        self.named = inputs.arguments
        self.device = getattr(inputs.source, "device", "cpu")

    def run(self) -> Any:
        import torch

        streamer = self.named.get("streamer")
        try:
            if self.script.raise_message is not None:
                raise ScriptedFailure(self.script.raise_message)
            config = self._config()
            self._refuse(_unsupported(config))
            if streamer is not None:
                streamer.put(torch.tensor(self.call.input_ids, dtype=torch.long))
            rows = self._steps(config, streamer)
        finally:
            if streamer is not None:
                streamer.end()
        self.call.output = rows
        ids = torch.tensor(rows, dtype=torch.long, device=self.device)
        if config.return_dict_in_generate:
            from transformers.generation.utils import GenerateDecoderOnlyOutput

            return GenerateDecoderOnlyOutput(sequences=ids)
        return ids

    def _refuse(self, reason: str | None) -> None:
        if reason is not None:
            self.call.unsupported = reason
            raise ScriptUnsupported(f"a scripted generate cannot honour {reason}")

    def _config(self) -> Any:
        """The settings ``generate`` would run with: the passed config or the model's, the
        call's keyword settings over it, transformers' defaults under it."""
        import copy

        from transformers import GenerationConfig

        passed = self.named.get("generation_config")
        settings = {k: v for k, v in self.named.items() if k not in _NOT_SETTINGS}
        prepare = getattr(self.model, "_prepare_generation_config", None)
        if prepare is not None:
            return prepare(passed, **settings)[0]
        config = copy.deepcopy(passed or getattr(self.model, "generation_config", None) or GenerationConfig())
        config.update(**settings)
        return config

    def _lengths(self, config: Any) -> tuple[int, int]:
        """(most, least) new tokens, as ``generate`` reads max/min settings: max_new_tokens
        over max_length; with neither set anywhere, 20 new tokens."""
        width = self.call.width
        passed = self.named.get("generation_config")
        default = (
            self.named.get("max_length") is None
            and getattr(passed, "max_length", None) is None
            and getattr(getattr(self.model, "generation_config", None), "max_length", None) is None
        )
        if config.max_new_tokens is not None:
            most = config.max_new_tokens
        else:
            most = (config.max_length or 20) - (0 if default else width)
        if most <= 0:
            raise ValueError(f"Input length of input_ids is {width}, but `max_length` is set to {config.max_length}")
        least = config.min_new_tokens if config.min_new_tokens is not None else max((config.min_length or 0) - width, 0)
        return most, min(least, most)

    def _criteria(self, config: Any) -> Any:
        from transformers import StoppingCriteriaList

        criteria = StoppingCriteriaList(self.named.get("stopping_criteria") or [])
        if config.stop_strings:
            from transformers.generation.stopping_criteria import StopStringCriteria

            if self.named.get("tokenizer") is None:
                raise ValueError(
                    "There are one or more stop strings, but we could not locate a "
                    "tokenizer: pass it to `generate` as `tokenizer`"
                )
            criteria.append(StopStringCriteria(self.named["tokenizer"], config.stop_strings))
        return criteria

    def _processors(self) -> Any:
        from transformers import LogitsProcessorList

        processors = LogitsProcessorList(self.named.get("logits_processor") or [])
        if (allowed := self.named.get("prefix_allowed_tokens_fn")) is not None:
            from transformers.generation.logits_process import PrefixConstrainedLogitsProcessor

            processors.append(PrefixConstrainedLogitsProcessor(allowed, num_beams=1))
        return processors

    def _steps(self, config: Any, streamer: Any) -> list[list[int]]:
        import torch

        most, least = self._lengths(config)
        eos = _id_set(config.eos_token_id)
        pad = config.pad_token_id if config.pad_token_id is not None else min(eos) if eos else self.spy.pad_token_id
        criteria, processors = self._criteria(config), self._processors()
        planned = [self.spy.pick(self.script, self.call.prompt_ids(r)) for r in range(len(self.call.input_ids))]
        rows = [list(ids) for ids in self.call.input_ids]
        done = [False] * len(rows)
        for step in range(most):
            # A row whose script is spent has finished, as if it had emitted EOS.
            done = [d or step >= len(ids) for d, ids in zip(done, planned)]
            if all(done) and step >= least:
                break
            tokens = [pad if d else ids[step] for d, ids in zip(done, planned)]
            if processors:
                self._refuse(self._changed_by(processors, rows, tokens, done))
            for row, token in zip(rows, tokens):
                row.append(token)
            if streamer is not None:
                streamer.put(torch.tensor(tokens, dtype=torch.long))
            done = [d or t in eos for d, t in zip(done, tokens)]
            if criteria:
                done = [d or bool(s) for d, s in zip(done, self._stopped(criteria, rows))]
        return rows

    def _stopped(self, criteria: Any, rows: list[list[int]]) -> list[bool]:
        import torch

        try:
            stopped = criteria(torch.tensor(rows, dtype=torch.long, device=self.device), None)
        except Exception as error:  # noqa: BLE001 - a criterion that needs scores
            self._refuse(f"a stopping criterion that fails without scores ({type(error).__name__}: {str(error)[:120]})")
        return torch.as_tensor(stopped).reshape(-1).expand(len(rows)).tolist()

    def _changed_by(self, processors: Any, rows: list[list[int]], tokens: list[int], done: list[bool]) -> str | None:
        """Whether the processors would make greedy decoding pick other than the script: the
        scripted token leads every row's scores by a margin; a processor that bans or
        outranks it changes the ids."""
        import torch

        vocab = max(getattr(getattr(self.model, "config", None), "vocab_size", 0) or 0, max(tokens) + 1)
        scores = torch.full((len(rows), vocab), -1.0, device=self.device)
        scores[torch.arange(len(rows)), torch.tensor(tokens)] = 0.0
        ids = torch.tensor(rows, dtype=torch.long, device=self.device)
        try:
            picked = processors(ids, scores).argmax(dim=-1).tolist()
        except Exception as error:  # noqa: BLE001 - any failure: it cannot be honoured
            return f"a logits processor that fails on scripted scores ({type(error).__name__}: {str(error)[:120]})"
        changed = [r for r, (p, t, d) in enumerate(zip(picked, tokens, done)) if not d and p != t]
        if changed:
            return (
                f"a logits_processor or prefix_allowed_tokens_fn that changes the scripted "
                f"ids (row {changed[0]}: {tokens[changed[0]]} -> {picked[changed[0]]})"
            )
        return None


def _unsupported(config: Any) -> str | None:
    """Why a script cannot answer as ``generate`` would with these settings, if it cannot."""
    for flag, why in (
        ("output_scores", "scores"),
        ("output_logits", "logits"),
        ("output_attentions", "attentions"),
        ("output_hidden_states", "hidden states"),
    ):
        if getattr(config, flag, False):
            return f"{flag}=True: a script has no {why} to return"
    for name in ("num_return_sequences", "num_beams"):
        if (getattr(config, name, None) or 1) > 1:
            return f"{name}={getattr(config, name)}: a script has one sequence per row"
    return None


def _id_set(value: Any) -> set[int]:
    if value is None:
        return set()
    if hasattr(value, "tolist"):
        value = value.tolist()
    return {int(v) for v in value} if isinstance(value, (list, tuple, set)) else {int(value)}


class _ForceEos:
    """A logits processor: row r may emit only EOS once it has ``rows[r]`` new tokens."""

    def __init__(self, width: int, rows: dict[int, int], eos: int) -> None:
        self.width, self.rows, self.eos = width, rows, eos

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        step = input_ids.shape[-1] - self.width
        for row, after in self.rows.items():
            if step == after and row < scores.shape[0]:
                scores[row, :] = float("-inf")
                scores[row, self.eos] = 0.0
        return scores


def _width_recorder(call: GenerateCall) -> Callable[[Any, tuple, dict], None]:
    def record(module: Any, args: tuple, kwargs: dict) -> None:
        ids: Any = kwargs.get("input_ids", args[0] if args else None)
        call.forward_widths.append(int(ids.shape[-1]) if hasattr(ids, "shape") else -1)

    return record
