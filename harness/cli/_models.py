"""`harness snapshot` and `harness register`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from harness.cli import (
    DEFAULT_HOME,
    DEFAULT_TINY_DIR,
    SIGNATURE_KINDS,
    _SIGNATURES,
    _echo_err,
    _tiny_snapshot,
    main,
    prompt_format_options,
)
from harness.store import DEFAULT_MODEL_NAME, FLAVOURS, TRANSFORMERS_TASKS


@main.group()
def snapshot() -> None:
    """Build the offline tiny MPT snapshot, or download a real one."""


@snapshot.command("tiny")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_TINY_DIR)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the random weights; the same seed gives byte-identical weights.",
)
@click.option("--force", is_flag=True, help="Rebuild even when a cached snapshot matches.")
@click.option(
    "--chat",
    is_flag=True,
    help="A chat model: a ChatML chat_template in its tokenizer config (<|im_start|>/<|im_end|> "
    "special tokens, BOS in the template and added by the tokenizer) and <|im_end|> an EOS "
    "in its generation config; judge it with --prompt-format auto.",
)
def snapshot_tiny(directory: Path, seed: int, force: bool, chat: bool) -> None:
    """Build a tiny random-weight MPT with a locally trained tokenizer in DIRECTORY
    (default .harness/snapshots/tiny), in the Hugging Face layout of mpt-7b-instruct."""
    from harness.model.snapshot import TinySpec, build_tiny, weights_digest

    kind = "chat " if chat else ""
    _echo_err(f"building tiny {kind}MPT snapshot (seed {seed}) in {directory} ...")
    start = time.perf_counter()
    path = build_tiny(directory, TinySpec(seed=seed, chat=chat), force=force)
    _echo_err(f"done in {time.perf_counter() - start:.1f}s; weights sha256 {weights_digest(path)[:16]}")
    click.echo(str(path))


@snapshot.command("download")
@click.argument("repo_id")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--revision", default=None, help="Branch, tag or commit of the hub repository.")
def snapshot_download(repo_id: str, directory: Path, revision: str | None) -> None:
    """Download REPO_ID (e.g. mosaicml/mpt-7b-instruct) from the Hugging Face hub into
    DIRECTORY. Needs network access; fails fast when offline."""
    from harness.model.snapshot import download

    click.echo(str(download(repo_id, directory, revision=revision)))


def _key_value(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(
            f"{text[:30]!r}: expected KEY=VALUE, e.g. do_sample=false", param_hint="--model-config"
        )
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw  # a bare word is a string
    return key.strip(), value


@main.command()
@click.option(
    "--snapshot",
    "snapshot_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Model snapshot folder (default: the cached tiny snapshot, built if missing).",
)
@click.option(
    "--signature",
    type=_SIGNATURES,
    default=SIGNATURE_KINDS[0],
    show_default=True,
    help="gateway: prompt column + params (what the MLflow gateway sends); "
    "columns: the seed's prompt/temperature/max_tokens columns.",
)
@click.option("--name", default=DEFAULT_MODEL_NAME, show_default=True, help="Registered model name.")
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow tracking/registry URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<home>/mlflow.db).",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_HOME,
    show_default=True,
    help="Folder of the embedded MLflow store and its artifacts.",
)
@click.option(
    "--flavour",
    type=click.Choice(FLAVOURS),
    default=FLAVOURS[0],
    show_default=True,
    help="pyfunc: the reference wrapper; transformers: MLflow's own flavour (a "
    "text-generation pipeline, task llm/v1/completions, the MPT-Instruct "
    "prompt_template), to gate and benchmark both paths side by side.",
)
@click.option(
    "--prompt-template",
    default=None,
    metavar="TEXT|none",
    help="transformers flavour: its prompt_template, with {prompt} once (default: "
    "MPT-Instruct's; none: log without one, as many users do).",
)
@click.option(
    "--model-config",
    "model_config",
    multiple=True,
    metavar="KEY=VALUE",
    help="transformers flavour: a generate default in its model_config, VALUE as "
    "JSON (e.g. do_sample=false, max_new_tokens=64); repeatable.",
)
@click.option(
    "--task",
    type=click.Choice(TRANSFORMERS_TASKS),
    default=TRANSFORMERS_TASKS[0],
    show_default=True,
    help="transformers flavour: the LLM task it is logged for; llm/v1/chat renders the "
    "tokenizer's chat_template itself (no --prompt-template).",
)
@prompt_format_options
def register(
    snapshot_dir: Path | None,
    signature: str,
    name: str,
    tracking_uri: str | None,
    home: Path,
    flavour: str,
    prompt_template: str | None,
    model_config: tuple[str, ...],
    task: str,
    prompt_format: str,
    system_prompt: str | None,
) -> None:
    """Log the reference wrapper (or, with --flavour transformers, MLflow's transformers
    flavour) with a snapshot, register it, load it back and predict an example. Prints the
    model URI."""
    from harness.model.loading import LoadConfig
    from harness.model.signature import SignatureKind
    from harness.store import MPT_TEMPLATE, RegisterConfig, StoreConfig, register as do_register

    template: str | None = MPT_TEMPLATE
    if prompt_template is not None:
        template = None if prompt_template.strip().lower() == "none" else prompt_template
    cfg = RegisterConfig(
        snapshot=_tiny_snapshot(snapshot_dir),
        signature=SignatureKind(signature),
        name=name,
        store=StoreConfig(home=home, tracking_uri=tracking_uri),
        flavour=flavour,
        prompt_template=template,
        generate_config=tuple(_key_value(kv) for kv in model_config),
        load=LoadConfig(prompt_format=prompt_format, system_prompt=system_prompt),
        task=task,
    )
    cfg.store.require_reachable()
    result = do_register(cfg, progress=_echo_err)
    _echo_err(
        f"registered {result.name} version {result.version} (run {result.run_id}); "
        f"input example answered: {result.example_output[0][:60]!r}"
    )
    click.echo(result.model_uri)
