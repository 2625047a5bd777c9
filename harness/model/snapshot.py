"""Model snapshots: the offline tiny MPT the tests run on, and real downloads.

The tiny snapshot has random weights and a byte-level BPE tokenizer trained here
on a built-in corpus, saved in the Hugging Face layout of
``mosaicml/mpt-7b-instruct`` so that ``AutoTokenizer`` / ``AutoModelForCausalLM``
load it through the same code path as the real model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from filelock import FileLock

from harness.model.config import DEFAULT_HOME
from harness.model.prompt import INSTRUCTION_KEY, INTRO_BLURB, RESPONSE_KEY

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import GPTNeoXTokenizer, MptForCausalLM, PreTrainedTokenizerFast

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|padding|>"  # in the vocabulary, as in GPT-NeoX, but not declared as pad
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
# ChatML, as chat models ship it, starting with the BOS the template itself holds: a wrapper
# that lets the tokenizer add BOS to the rendered text again puts it in twice.
CHATML_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Multiplies <|im_end|>'s (tied) embedding row, so a random model ends a greedy answer with it
# often enough for the format's EOS to matter: measured in tests/model/test_snapshot.py.
_IM_END_SCALE = 2.0
DEFAULT_TINY_DIR = DEFAULT_HOME / "snapshots" / "tiny"
_STAMP = "harness_snapshot.json"
_BUILD_VERSION = 3  # bump when the build changes, so cached snapshots are rebuilt

_CORPUS_LINES = (
    f"{INTRO_BLURB}\n{INSTRUCTION_KEY}\n{{q}}\n{RESPONSE_KEY}\n{{a}}",
    "What is machine learning? Machine learning is a field of study in artificial intelligence.",
    "What is MLflow? MLflow is an open source platform for the machine learning lifecycle.",
    "Explain the difference between a model, a signature, a route and an endpoint.",
    "Summarize the following text in one sentence. Translate it into French and German.",
    "Write a short poem about the ocean, the mountains, the sky and the city at night.",
    "List three reasons why tests matter: correctness, speed, and confidence to deploy.",
    "The quick brown fox jumps over the lazy dog. 0123456789 + - * / = ( ) [ ] { } < > ! ? , ; :",
    "Numbers: one two three four five six seven eight nine ten hundred thousand million.",
    "Python code: def f(x):\n    return x * 2\n\nprint(f(21))",
    "Unicode: café naïve façade 東京 Москва 🎉 ✓ — “quotes” and ‘apostrophes’.",
)


@dataclass(frozen=True)
class TinySpec:
    """Shape of the tiny MPT; small enough to build and run in seconds on a CPU."""

    seed: int = 0
    vocab_size: int = 1024
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    max_seq_len: int = 512
    # Multiplies the final layer norm's weight, so every logit: random weights give
    # near-uniform next-token distributions (median top-1 probability 0.06 on the tiny
    # snapshot) where a trained model's are peaked; 4.0 gives a median of 0.67.
    logit_scale: float = 1.0
    # A chat model: a ChatML chat_template in the tokenizer config, <|im_start|>/<|im_end|>
    # as special tokens, the tokenizer adding BOS, and <|im_end|> an EOS in the generation
    # config (the tokenizer's eos_token stays <|endoftext|>, as in many chat models).
    chat: bool = False

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        for name in ("vocab_size", "d_model", "n_heads", "n_layers", "max_seq_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.logit_scale <= 100:
            raise ValueError(f"logit_scale must be in (0, 100], got {self.logit_scale}")
        if self.vocab_size < 300:
            raise ValueError(f"vocab_size must be >= 300 (256 bytes + merges), got {self.vocab_size}")


class SnapshotError(RuntimeError):
    """A snapshot could not be built, found or downloaded."""


def _corpus() -> list[str]:
    questions = [line.split("?")[0] + "?" for line in _CORPUS_LINES[1:3]]
    templated = [_CORPUS_LINES[0].format(q=q, a=a) for q in questions for a in _CORPUS_LINES[3:]]
    return templated + list(_CORPUS_LINES[1:]) * 4


def _train_tokenizer(spec: TinySpec) -> GPTNeoXTokenizer | PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPTNeoXTokenizer

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN, *((IM_START, IM_END) if spec.chat else ())],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    if spec.chat:
        return _chat_tokenizer(tok, spec)
    # MPT-7B-Instruct ships the GPT-NeoX tokenizer: <|endoftext|> as bos/eos/unk, no pad token.
    return GPTNeoXTokenizer(
        tokenizer_object=tok,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=None,
        add_prefix_space=False,
        clean_up_tokenization_spaces=False,
        model_max_length=spec.max_seq_len,
    )


def _chat_tokenizer(tok: Tokenizer, spec: TinySpec) -> PreTrainedTokenizerFast:
    """As Llama 3 ships its tokenizer: a plain fast tokenizer whose post-processor adds BOS
    (GPT-NeoX's class drops an added BOS when it loads a tokenizer.json), the chat tokens
    special, and a chat template that holds BOS itself."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{EOS_TOKEN} $A",
                pair=f"{EOS_TOKEN} $A {EOS_TOKEN} $B",
                special_tokens=[(EOS_TOKEN, tok.token_to_id(EOS_TOKEN))],
            ),
        ]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        additional_special_tokens=[IM_START, IM_END],
        clean_up_tokenization_spaces=False,
        model_max_length=spec.max_seq_len,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def _build_model(spec: TinySpec, vocab_size: int, im_end: int | None = None) -> MptForCausalLM:
    import torch
    from transformers import GenerationConfig, MptConfig, MptForCausalLM

    config = MptConfig(
        d_model=spec.d_model,
        n_heads=spec.n_heads,
        n_layers=spec.n_layers,
        max_seq_len=spec.max_seq_len,
        vocab_size=vocab_size,
        eos_token_id=0,
        bos_token_id=0,
        use_cache=False,  # as published
        # With the default 0.02 a random model answers every prompt with the same
        # newline; 0.2 gives varied, prompt-dependent greedy output to test on.
        initializer_range=0.2,
    )
    torch.manual_seed(spec.seed)
    model = MptForCausalLM(config).eval()
    if spec.logit_scale != 1.0:
        with torch.no_grad():
            model.transformer.norm_f.weight.mul_(spec.logit_scale)
    eos: int | list[int] = 0
    if im_end is not None:
        with torch.no_grad():
            model.transformer.wte.weight[im_end].mul_(_IM_END_SCALE)
        eos = [0, im_end]
    # As published for mpt-7b-instruct: use_cache false, which the wrapper must override.
    model.generation_config = GenerationConfig(eos_token_id=eos, bos_token_id=0, use_cache=False)
    return model


def _is_complete(path: Path, spec: TinySpec) -> bool:
    stamp = path / _STAMP
    if not stamp.is_file():
        return False
    try:
        data = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return data == {"build_version": _BUILD_VERSION, "spec": _stamped(spec)}


def _stamped(spec: TinySpec) -> dict[str, object]:
    """The spec as stamped; an unscaled snapshot's stamp predates logit_scale, so snapshots
    already built stay valid."""
    data = asdict(spec)
    if data["logit_scale"] == 1.0:
        del data["logit_scale"]
    if not data["chat"]:
        del data["chat"]
    return data


def build_tiny(path: str | os.PathLike = DEFAULT_TINY_DIR, spec: TinySpec = TinySpec(), force: bool = False) -> Path:
    """Build (or reuse the cached) tiny snapshot at ``path`` and return it.

    Built into a sibling temporary folder and renamed into place, so an
    interrupted build never leaves a half-written snapshot behind.
    """
    path = Path(path).absolute()
    if not force and _is_complete(path, spec):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    # Parallel test workers (or two shells) may ask for the same cached snapshot: one
    # builds, the others wait and reuse it instead of deleting it under a reader.
    with FileLock(path.parent / f".{path.name}.lock"):
        if not force and _is_complete(path, spec):
            return path
        _build_into(path, spec)
    return path


def _build_into(path: Path, spec: TinySpec) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        tokenizer = _train_tokenizer(spec)
        im_end = tokenizer.convert_tokens_to_ids(IM_END) if spec.chat else None
        model = _build_model(spec, len(tokenizer), im_end)
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp, safe_serialization=True)
        stamp = {"build_version": _BUILD_VERSION, "spec": _stamped(spec)}
        (tmp / _STAMP).write_text(json.dumps(stamp, indent=2, sort_keys=True))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


PEAKED = TinySpec(logit_scale=4.0)  # next-token distributions peaked like a trained model's
CHAT = TinySpec(chat=True)  # the tiny MPT as a ChatML chat model
TINY_VARIANTS: dict[str, TinySpec] = {"tiny": TinySpec(), "tiny-peaked": PEAKED, "tiny-chat": CHAT}


def cached_tiny(
    root: str | os.PathLike | None = None,
    progress: Callable[[str], None] = lambda _: None,
    peaked: bool = False,
    home: str | os.PathLike | None = None,
    variant: str | None = None,
) -> Path:
    """A tiny snapshot (``<root>/.harness/snapshots/<variant>``, or
    ``<home>/snapshots/<variant>`` when a home folder is named), built if missing. Variants:
    ``tiny`` (the default), ``tiny-peaked`` (:data:`PEAKED`, for judging near-ties; also
    ``peaked=True``) and ``tiny-chat`` (:data:`CHAT`)."""
    variant = variant or ("tiny-peaked" if peaked else "tiny")
    if variant not in TINY_VARIANTS:
        raise ValueError(f"variant must be one of {sorted(TINY_VARIANTS)}, got {variant!r}")
    folder = DEFAULT_TINY_DIR.with_name(variant)
    if home is not None:
        path = Path(home) / folder.relative_to(DEFAULT_TINY_DIR.parent.parent)
    else:
        path = Path(root) / folder if root is not None else folder
    progress(f"tiny offline snapshot at {path} (built if missing)")
    return build_tiny(path, TINY_VARIANTS[variant])


def weights_digest(path: str | os.PathLike) -> str:
    """SHA-256 of the snapshot's safetensors files, for determinism checks and reports."""
    digest = hashlib.sha256()
    for file in sorted(Path(path).glob("*.safetensors")):
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _reachable(endpoint: str, timeout: float) -> bool:
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def download(
    repo_id: str,
    path: str | os.PathLike,
    endpoint: str | None = None,
    probe_timeout: float = 3.0,
    revision: str | None = None,
) -> Path:
    """Download a hub snapshot for users who are online; fail fast when offline."""
    from huggingface_hub import constants, snapshot_download

    endpoint = endpoint or constants.ENDPOINT
    start = time.monotonic()
    if constants.HF_HUB_OFFLINE or not _reachable(endpoint, probe_timeout):
        raise SnapshotError(
            f"cannot reach the model hub at {endpoint} (offline?) after "
            f"{time.monotonic() - start:.1f}s; download {repo_id} on a machine that is online "
            "and pass its folder with --snapshot DIR"
        )
    return Path(
        snapshot_download(repo_id=repo_id, local_dir=str(path), revision=revision, endpoint=endpoint, etag_timeout=10)
    )
