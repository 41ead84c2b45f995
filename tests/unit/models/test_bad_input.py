"""Hostile and odd input: no crash, no NaN, documented behaviour.

Documented behaviour (docs/embedding.md): a text without tokens (empty, whitespace, control
characters) has no chunks and so no vector; long texts become several chunks; lone surrogates
and NUL become U+FFFD; :meth:`Embedder.embed` itself embeds any string (truncating at 256 tokens).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from models.chunking import TextChunker
from models.embedder import Embedder
from models.tokenizer import sanitize_text
from tidewire.settings import EmbeddingSettings

ODD_TEXTS = {
    "empty": "",
    "whitespace": " \n\t\r  \u3000",
    "lone_surrogates": "before \ud800 middle \udfff after",
    "nul": "null\x00byte\x00text",
    "emoji": "🚀🔥 launch day! 🎉👩‍👩‍👧‍👦",
    "mixed_scripts": "English, Ελληνικά, Русский, العربية, עברית, 日本語, 한국어, हिन्दी",
    "only_controls": "\x01\x02\x07\x1b",
    "combining_marks": "e\u0301e\u0301e\u0301 Z\u0351\u0352\u0353a\u0354\u0355lgo",
}


@pytest.fixture(scope="module")
def chunker(fp32_embedder: Embedder, embedding_settings: EmbeddingSettings) -> TextChunker:
    return TextChunker(
        fp32_embedder.tokenizer,
        chunk_tokens=embedding_settings.chunk_tokens,
        overlap_tokens=embedding_settings.chunk_overlap_tokens,
    )


@pytest.mark.parametrize("name", sorted(ODD_TEXTS))
def test_embed_never_crashes_or_returns_nan(name: str, fp32_embedder: Embedder) -> None:
    embeddings = fp32_embedder.embed([ODD_TEXTS[name]])
    assert embeddings.shape == (1, fp32_embedder.dim)
    assert np.isfinite(embeddings).all()
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", ["empty", "whitespace", "only_controls"])
def test_texts_without_tokens_have_no_chunks(name: str, chunker: TextChunker) -> None:
    assert chunker.chunk(ODD_TEXTS[name]) == []


@pytest.mark.parametrize("name", ["lone_surrogates", "nul", "emoji", "mixed_scripts", "combining_marks"])
def test_odd_texts_chunk_into_exact_slices(name: str, chunker: TextChunker, fp32_embedder: Embedder) -> None:
    clean = sanitize_text(ODD_TEXTS[name])
    chunks = chunker.chunk(ODD_TEXTS[name])
    assert len(chunks) == 1
    assert chunks[0].text == clean[chunks[0].start : chunks[0].end]
    assert np.isfinite(fp32_embedder.embed([chunk.text for chunk in chunks])).all()


def test_unrepresentable_characters_are_replaced_one_for_one() -> None:
    assert sanitize_text("a\x00b\ud800c") == "a\ufffdb\ufffdc"
    assert sanitize_text("plain") == "plain"


def test_one_megabyte_of_text_becomes_many_chunks_without_loss(
    chunker: TextChunker, fp32_embedder: Embedder
) -> None:
    paragraph = "Postgres streams every committed change into Kafka, and the index stays fresh. "
    text = (paragraph * (1_000_000 // len(paragraph) + 1))[:1_000_000]
    chunks = chunker.chunk(text)
    assert len(chunks) > 100
    assert chunks[0].start == 0
    assert chunks[-1].end == len(text.rstrip())
    assert all(left.start < right.start < left.end for left, right in itertools.pairwise(chunks))
    sample = [chunks[0].text, chunks[len(chunks) // 2].text, chunks[-1].text]
    assert np.isfinite(fp32_embedder.embed(sample)).all()


def test_one_megabyte_without_spaces_still_chunks(chunker: TextChunker) -> None:
    text = ("東京は日本の首都です" * 100_000)[:1_000_000]  # each CJK character is a word of its own
    chunks = chunker.chunk(text)
    assert len(chunks) > 1000
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert all(chunk.token_count <= chunker.window + 2 for chunk in chunks)


def test_a_word_over_100_characters_is_one_unknown_token(
    chunker: TextChunker, fp32_embedder: Embedder
) -> None:
    # WordPiece's rule (as in sentence-transformers): such a "word" becomes a single [UNK].
    chunks = chunker.chunk("x" * 1_000_000)
    assert [(chunk.start, chunk.end, chunk.token_count) for chunk in chunks] == [(0, 1_000_000, 3)]
    assert np.isfinite(fp32_embedder.embed([chunks[0].text])).all()
