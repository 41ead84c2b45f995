"""The built-in offline provider: an answer assembled from the retrieved sentences that share the
most words with the question, each followed by its citation ``[n]``. Deterministic, no model."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from api.chat.base import ChatRequest, Usage

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "he",
        "her",
        "his",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "she",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "how",
        "do",
        "does",
        "did",
        "shall",
        "unto",
        "ye",
        "thee",
        "thou",
    ]
)
NO_ANSWER = "I could not find an answer in the indexed documents."


@dataclass(frozen=True)
class ScoredSentence:
    text: str
    source_n: int
    score: float
    order: tuple[int, int]


def words(text: str) -> set[str]:
    return {word for word in _WORD.findall(text.lower()) if word not in _STOPWORDS}


def select_sentences(request: ChatRequest, max_sentences: int) -> list[ScoredSentence]:
    """The most relevant sentences, in reading order (source rank, then position)."""
    question_words = words(request.question)
    candidates = []
    for source_rank, source in enumerate(request.sources):
        for position, match in enumerate(_SENTENCE.finditer(source.text)):
            sentence = " ".join(match.group(0).split())
            if len(sentence) < 3:
                continue
            overlap = len(question_words & words(sentence))
            # Word overlap first, then the chunk's retrieval score, then earlier sentences.
            score = overlap + 0.5 * source.score - 0.01 * position
            candidates.append(ScoredSentence(sentence, source.n, score, (source_rank, position)))
    best = sorted(candidates, key=lambda sentence: -sentence.score)[:max_sentences]
    return sorted(best, key=lambda sentence: sentence.order)


class ExtractiveProvider:
    """Streams the selected sentences word by word with citations."""

    def __init__(self, *, name: str = "extractive", max_sentences: int = 4) -> None:
        self.name = name
        self.model: str | None = None
        self._max_sentences = max_sentences

    async def stream(self, request: ChatRequest, usage: Usage) -> AsyncIterator[str]:
        sentences = select_sentences(request, self._max_sentences)
        text = " ".join(f"{sentence.text} [{sentence.source_n}]" for sentence in sentences) or NO_ANSWER
        pieces = re.findall(r"\S+\s*", text)
        for index, piece in enumerate(pieces):
            usage.completion_tokens += 1
            yield piece
            if index % 16 == 15:
                await asyncio.sleep(0)  # let other streams run
