"""Tokenization with the model's own ``tokenizer.json`` (Hugging Face ``tokenizers``).

The packaged file pads every input to 128 tokens and truncates at 128. sentence-transformers
(and the reference embeddings) pad per batch and truncate at the model limit (256), so both
settings are replaced here: no padding (batches are padded by :mod:`models.batch_planning`) and
truncation at ``max_tokens``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from models.errors import ModelSourceError

# Python strings may hold lone surrogates (e.g. from JSON "\\ud800" escapes); they are not valid
# Unicode, the tokenizer cannot take them and Postgres cannot store them. NUL is likewise refused
# by Postgres text columns.
_UNREPRESENTABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT_CHARACTER = "\ufffd"


def sanitize_text(text: str) -> str:
    """Replace lone surrogates and NUL with U+FFFD, one character for one, so offsets are unchanged."""
    if _UNREPRESENTABLE.search(text) is None:
        return text
    return _UNREPRESENTABLE.sub(REPLACEMENT_CHARACTER, text)


@dataclass(frozen=True)
class TokenSpans:
    """A text's tokens without the special ones: ids, character offsets, and word indices."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]


class TextTokenizer:
    """The model's tokenizer, configured for inference (truncating) and for chunking (not truncating)."""

    def __init__(self, tokenizer_file: Path, max_tokens: int) -> None:
        try:
            self._model_input = Tokenizer.from_file(str(tokenizer_file))
            self._full_text = Tokenizer.from_file(str(tokenizer_file))
        except Exception as error:  # tokenizers raises a bare Exception for unreadable files
            raise ModelSourceError(f"cannot load tokenizer {tokenizer_file}: {error}") from None
        self.max_tokens = max_tokens
        # Two instances because padding and truncation are per-instance state.
        self._model_input.no_padding()
        self._model_input.enable_truncation(max_length=max_tokens)
        self._full_text.no_padding()
        self._full_text.no_truncation()
        self.pad_id = self._model_input.token_to_id("[PAD]") or 0

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids (with [CLS] and [SEP]) of each text, truncated at ``max_tokens``."""
        if not texts:
            return []
        encodings = self._model_input.encode_batch([sanitize_text(text) for text in texts])
        return [encoding.ids for encoding in encodings]

    def spans(self, text: str) -> TokenSpans:
        """Every token of ``text`` (already sanitized), no special tokens, no truncation."""
        encoding = self._full_text.encode(text, add_special_tokens=False)
        return TokenSpans(ids=encoding.ids, offsets=list(encoding.offsets), word_ids=list(encoding.word_ids))
