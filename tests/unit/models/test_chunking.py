"""Token-aware chunking: exact slices, bounded sizes, overlap, full coverage, determinism."""

from __future__ import annotations

import itertools

import pytest

from models.chunking import Chunk, TextChunker
from models.embedder import Embedder

SAMPLE = (
    "In the beginning God created the heaven and the earth. And the earth was without form, and void; "
    "and darkness was upon the face of the deep. Crème brûlée at the café — naïve façade. "
    "東京は日本の首都です。 Москва — столица России. antidisestablishmentarianism 🚀🔥 "
) * 30


@pytest.fixture(scope="module")
def small_chunker(fp32_embedder: Embedder) -> TextChunker:
    return TextChunker(fp32_embedder.tokenizer, chunk_tokens=48, overlap_tokens=8)


def test_chunk_text_is_an_exact_slice_of_the_input(small_chunker: TextChunker) -> None:
    for chunk in small_chunker.chunk(SAMPLE):
        assert SAMPLE[chunk.start : chunk.end] == chunk.text


def test_chunks_fit_the_window_and_retokenize_to_the_same_size(
    small_chunker: TextChunker, fp32_embedder: Embedder
) -> None:
    chunks = small_chunker.chunk(SAMPLE)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.token_count <= 48
        assert len(fp32_embedder.tokenizer.encode_batch([chunk.text])[0]) == chunk.token_count


def test_chunks_overlap_and_cover_every_token(small_chunker: TextChunker, fp32_embedder: Embedder) -> None:
    chunks = small_chunker.chunk(SAMPLE)
    spans = fp32_embedder.tokenizer.spans(SAMPLE)
    assert chunks[0].start == spans.offsets[0][0]
    assert chunks[-1].end == spans.offsets[-1][1]
    for left, right in itertools.pairwise(chunks):
        assert right.start < left.end, "consecutive chunks overlap"
        assert right.start > left.start, "chunking always moves forward"
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))


def test_chunking_is_deterministic(small_chunker: TextChunker, fp32_embedder: Embedder) -> None:
    again = TextChunker(fp32_embedder.tokenizer, chunk_tokens=48, overlap_tokens=8)
    assert small_chunker.chunk(SAMPLE) == again.chunk(SAMPLE)


def test_a_short_text_is_one_chunk_without_surrounding_whitespace(small_chunker: TextChunker) -> None:
    assert small_chunker.chunk("  Hello, world!\n") == [
        Chunk(index=0, text="Hello, world!", start=2, end=15, token_count=6)
    ]


def test_a_document_longer_than_the_model_limit_is_not_truncated(fp32_embedder: Embedder) -> None:
    chunker = TextChunker(fp32_embedder.tokenizer, chunk_tokens=256, overlap_tokens=32)
    chunks = chunker.chunk(SAMPLE)
    assert len(fp32_embedder.tokenizer.spans(SAMPLE).ids) > 256
    assert len(chunks) >= 2
    assert all(chunk.token_count <= fp32_embedder.max_tokens for chunk in chunks)


def test_chunk_size_is_capped_at_the_model_limit(fp32_embedder: Embedder) -> None:
    chunker = TextChunker(fp32_embedder.tokenizer, chunk_tokens=4096, overlap_tokens=0)
    assert chunker.window == fp32_embedder.max_tokens - 2


@pytest.mark.parametrize(("size", "overlap"), [(2, 0), (48, 46), (48, 100)])
def test_invalid_sizes_are_rejected(size: int, overlap: int, fp32_embedder: Embedder) -> None:
    with pytest.raises(ValueError, match="chunk"):
        TextChunker(fp32_embedder.tokenizer, chunk_tokens=size, overlap_tokens=overlap)


def test_a_word_longer_than_the_window_is_cut_inside(fp32_embedder: Embedder) -> None:
    text = "supercalifragilisticexpialidocious antidisestablishmentarianism"
    chunker = TextChunker(fp32_embedder.tokenizer, chunk_tokens=6, overlap_tokens=1)
    chunks = chunker.chunk(text)
    assert len(chunks) > 2
    assert "".join(text[chunk.start : chunk.end] for chunk in chunks).replace(" ", "").startswith("supercal")
    assert all(chunk.token_count <= 6 for chunk in chunks)
    assert chunks[-1].end == len(text)
