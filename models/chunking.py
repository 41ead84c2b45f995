"""Token-aware chunking: long texts become overlapping chunks that each fit the model.

Nothing is silently truncated: a text longer than the model limit is cut into windows of at
most ``chunk_tokens`` model tokens ([CLS] and [SEP] included) that overlap by about
``chunk_overlap_tokens``. Cuts fall between words (a word longer than a whole window is the only
exception), so re-tokenizing a chunk's text gives the same tokens. Each chunk's text is an exact
slice ``text[start:end]`` of the (sanitized, see :func:`models.tokenizer.sanitize_text`) input,
and the result depends only on the text and the two sizes: chunking is deterministic.

A text without tokens (empty, only whitespace or control characters) has no chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.tokenizer import TextTokenizer, TokenSpans, sanitize_text

SPECIAL_TOKENS_PER_INPUT = 2  # [CLS] and [SEP]


@dataclass(frozen=True)
class Chunk:
    """One piece of a document: its text, where it sits in the document, and its token count."""

    index: int
    text: str
    start: int
    end: int
    token_count: int


class TextChunker:
    """Cuts texts into model-sized, overlapping chunks with the model's own tokenizer."""

    def __init__(self, tokenizer: TextTokenizer, *, chunk_tokens: int, overlap_tokens: int) -> None:
        window = min(chunk_tokens, tokenizer.max_tokens) - SPECIAL_TOKENS_PER_INPUT
        if window < 1:
            raise ValueError(f"chunk_tokens {chunk_tokens} leaves no room for text")
        if not 0 <= overlap_tokens < window:
            raise ValueError(
                f"chunk_overlap_tokens {overlap_tokens} must be below the window of {window} tokens"
            )
        self._tokenizer = tokenizer
        self.window = window
        self.overlap = overlap_tokens

    def chunk(self, text: str) -> list[Chunk]:
        """The chunks of ``text``; an empty list when it has no tokens."""
        clean = sanitize_text(text)
        spans = self._tokenizer.spans(clean)
        return [
            Chunk(
                index=index,
                text=clean[spans.offsets[first][0] : spans.offsets[last - 1][1]],
                start=spans.offsets[first][0],
                end=spans.offsets[last - 1][1],
                token_count=last - first + SPECIAL_TOKENS_PER_INPUT,
            )
            for index, (first, last) in enumerate(token_windows(spans, self.window, self.overlap))
        ]


def token_windows(spans: TokenSpans, window: int, overlap: int) -> list[tuple[int, int]]:
    """Half-open token ranges ``[first, last)`` covering every token, cut at word starts."""
    count = len(spans.ids)
    ranges: list[tuple[int, int]] = []
    first = 0
    while first < count:
        last = min(first + window, count)
        if last < count:
            last = _word_start_at_or_before(spans, last, lowest=first + 1) or first + window
        ranges.append((first, last))
        if last == count:
            break
        # Step back by the overlap to a word start, but always move forward.
        first = _word_start_at_or_before(spans, last - overlap, lowest=first + 1) or _next_word_start(
            spans, last - overlap, last
        )
    return ranges


def _is_word_start(spans: TokenSpans, position: int) -> bool:
    return spans.word_ids[position] is None or spans.word_ids[position] != spans.word_ids[position - 1]


def _word_start_at_or_before(spans: TokenSpans, position: int, *, lowest: int) -> int | None:
    for candidate in range(position, lowest - 1, -1):
        if _is_word_start(spans, candidate):
            return candidate
    return None


def _next_word_start(spans: TokenSpans, position: int, highest: int) -> int:
    for candidate in range(position, highest):
        if _is_word_start(spans, candidate):
            return candidate
    return highest
