"""Load an MPT snapshot onto the right device with the right attention.

No MLflow here: the timed core runs on machines without it.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Strict

from harness._validation import Allowed, IntIn, OneOf, settings
from harness.model.config import from_mapping
from harness.model.formats import DEFAULT_FORMAT, FORMAT_CHOICES

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
ATTN_IMPLS = ("torch", "flash", "triton")


class LoadError(RuntimeError):
    """The snapshot cannot be loaded as asked on this machine."""


@settings()
class LoadConfig:
    """How to load the snapshot; the PyFunc ``model_config`` maps onto it."""

    device: Annotated[str, OneOf(DEVICES)] = "auto"
    dtype: Annotated[str, OneOf(DTYPES)] = "auto"
    attn_impl: Annotated[str, OneOf(ATTN_IMPLS)] = "torch"
    max_batch_size: Annotated[int, IntIn(1, 1024)] = 8
    trust_remote_code: Annotated[bool, Strict(), Allowed("true or false")] = False
    # How instructions become prompts (harness.model.formats); auto: the tokenizer's own
    # chat_template when it has one, else MPT-Instruct's.
    prompt_format: Annotated[str, OneOf(FORMAT_CHOICES)] = DEFAULT_FORMAT
    system_prompt: Annotated[str | None, Strict(), Allowed("a string, or null for none")] = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> LoadConfig:
        return from_mapping(cls, values)


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise LoadError("device='cuda' was requested but this machine has no CUDA GPU; use device='auto' or 'cpu'")
    return requested


def resolve_dtype(requested: str, device: str) -> torch.dtype:
    import torch

    if requested == "auto":
        # bfloat16 halves memory and is what MPT was trained in; CPUs run it slowly.
        return torch.bfloat16 if device == "cuda" else torch.float32
    return getattr(torch, requested)


def _unavailable_reason(impl: str, remote_code: bool, device: str) -> str | None:
    if impl == "torch":
        return None
    if not remote_code:
        return "the native transformers MPT implements only 'torch' attention"
    if device != "cuda":
        return f"'{impl}' attention needs a CUDA GPU"
    module = "flash_attn" if impl == "flash" else "triton"
    if importlib.util.find_spec(module) is None:
        return f"'{impl}' attention needs the {module} package, which is not installed"
    return None


def set_attn_impl(config: Any, wanted: str, device: str) -> str:
    """Set the attention implementation on either MPT config flavour; return the one used.

    The remote-code config keeps ``attn_config`` as a dict, the native transformers
    config as an ``MptAttentionConfig`` object (where item assignment raises TypeError).
    """
    attn = getattr(config, "attn_config", None)
    remote_code = isinstance(attn, dict)
    if (reason := _unavailable_reason(wanted, remote_code, device)) is not None:
        logger.warning("attention %r unavailable (%s); falling back to 'torch'", wanted, reason)
        wanted = "torch"
    if isinstance(attn, dict):  # remote_code
        attn["attn_impl"] = wanted
    elif attn is not None:
        attn.attn_impl = wanted
    return wanted


def context_length(model: Any, tokenizer: Any = None) -> int:
    """The model's context window: MPT's max_seq_len, else the usual config names."""
    return config_context_length(model.config, tokenizer)


def config_context_length(config: Any, tokenizer: Any = None) -> int:
    """The context window a model config declares (no model needs loading to read it)."""
    fallback = getattr(tokenizer, "model_max_length", None) or 2048
    return int(getattr(config, "max_seq_len", None) or getattr(config, "max_position_embeddings", None) or fallback)


def end_ids(tokenizer: Any, generation_config: Any = None) -> tuple[int, ...]:
    """Every id that ends an answer: the generation config's EOS (one id, or a list where a
    chat model ends its turn with a token of its own, ``<|im_end|>``) and the tokenizer's."""
    configured = getattr(generation_config, "eos_token_id", None)
    ids = [configured] if isinstance(configured, int) else list(configured or [])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return tuple(dict.fromkeys(int(i) for i in ids))


def snapshot_end_ids(path: str, tokenizer: Any) -> tuple[int, ...]:
    """:func:`end_ids` of a snapshot, read from its files (no model is loaded)."""
    from transformers import GenerationConfig

    try:
        config = GenerationConfig.from_pretrained(path)
    except OSError:  # no generation_config.json: the tokenizer's EOS alone
        config = None
    return end_ids(tokenizer, config)


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    return ensure_pad_token(AutoTokenizer.from_pretrained(path, padding_side="left"))


def ensure_pad_token(tokenizer: Any) -> Any:
    """Left padding, and a pad token when the tokenizer declares none (MPT's doesn't)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        # EOS is a special token, so decoding with skip_special_tokens drops the padding.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str, cfg: LoadConfig) -> tuple[Any, str, str]:
    """Return ``(model, device, attn_impl)`` loaded as ``cfg`` asks."""
    from transformers import AutoConfig, AutoModelForCausalLM

    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    config = AutoConfig.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    attn_impl = set_attn_impl(config, cfg.attn_impl, device)
    model = AutoModelForCausalLM.from_pretrained(
        path, config=config, dtype=dtype, trust_remote_code=cfg.trust_remote_code
    )
    model.to(device)
    model.eval()
    # The published generation_config turns the KV cache off: every decode step
    # would recompute the whole sequence.
    model.generation_config.use_cache = True
    return model, device, attn_impl
