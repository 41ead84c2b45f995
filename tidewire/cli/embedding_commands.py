"""``tidewire embed`` and ``tidewire model ...``: the embedding engine from the command line."""

from __future__ import annotations

import json
import sys
import time
from typing import get_args

import click

from models.build import Variant, ensure_models_built
from models.errors import EmbeddingInputError
from tidewire.cli.app import CliContext, cli, json_option, pass_cli_context, print_json


@cli.group()
def model() -> None:
    """Build and inspect the ONNX embedding models."""


@model.command("build")
@click.option("--force", is_flag=True, help="Rebuild even when the cached models are up to date.")
@json_option
@pass_cli_context
def build_command(context: CliContext, force: bool, as_json: bool) -> None:
    """Build the fp32, int8 and fp16 ONNX models from the packaged weights (skipped when up to date)."""
    settings = context.settings.embedding
    started = time.perf_counter()
    result = ensure_models_built(settings.model_dir, model_id=settings.model_id, force=force)
    elapsed = time.perf_counter() - started
    if as_json:
        print_json(
            {
                "directory": str(result.directory),
                "rebuilt": result.rebuilt,
                "seconds": round(elapsed, 3),
                "manifest": result.manifest.model_dump(),
            }
        )
        return
    variants = ", ".join(result.manifest.variants)
    if result.rebuilt:
        click.echo(f"built {result.manifest.model_id} ({variants}) in {elapsed:.1f}s → {result.directory}")
    else:
        click.echo(f"models are up to date in {result.directory} ({variants})")


@cli.command("embed")
@click.option(
    "--variant",
    type=click.Choice(get_args(Variant)),
    default=None,
    help="Model variant (default: embedding.variant, i.e. fp16 on CUDA, int8 on CPU).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Accepted like every command's: the output is always one JSON document.",
)
@pass_cli_context
def embed_command(context: CliContext, variant: Variant | None, as_json: bool) -> None:
    """Embed a JSON array of strings read from stdin; print the vectors as JSON.

    Each string is one model input, truncated at the model's token limit (256), exactly as
    sentence-transformers' encode() does; use it to debug the engine, not to index documents.
    """
    from models.embedder import Embedder  # onnxruntime loads only for the commands that run it

    texts = read_text_array(sys.stdin.read())
    settings = context.settings.embedding
    ensure_models_built(settings.model_dir, model_id=settings.model_id)
    embedder = Embedder.from_settings(settings, variant=variant)
    embeddings = embedder.embed(texts)
    document = {
        "model": embedder.model_id,
        "variant": embedder.variant,
        "provider": embedder.provider,
        "dim": embedder.dim,
        "embeddings": [[round(float(value), 7) for value in row] for row in embeddings],
    }
    click.echo(json.dumps(document))


def read_text_array(raw: str) -> list[str]:
    """Parse stdin of ``tidewire embed``: a JSON array of strings, or an :class:`EmbeddingInputError`."""
    try:
        texts = json.loads(raw)
    except json.JSONDecodeError as error:
        raise EmbeddingInputError(
            f"stdin is not JSON ({error.msg} at line {error.lineno} column {error.colno}); "
            'expected an array of strings, e.g. ["first text", "second"]'
        ) from None
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        found = type(texts).__name__ if not isinstance(texts, list) else "an array with non-string items"
        raise EmbeddingInputError(f'expected a JSON array of strings on stdin, e.g. ["a", "b"]; got {found}')
    return texts
