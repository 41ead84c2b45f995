"""The run's queries, chosen deterministically from the KJV (pure): held-out partial quotations for recall,
distinct verse openings for latency, chat questions."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from tidewire.kjv_corpus import Verse

LATENCY_QUERY_WORDS = 12
RECALL_QUERY_SHARE = 0.6
RECALL_QUERY_MIN_WORDS = 4
CACHED_QUERY = "the light shines in the darkness"
_QUERY_SEED = 20261124


def partial_quotation(
    text: str, share: float = RECALL_QUERY_SHARE, min_words: int = RECALL_QUERY_MIN_WORDS
) -> str:
    """The first ``share`` of the words of ``text`` (at least ``min_words``, at most all of them)."""
    words = text.split()
    keep = min(len(words), max(min_words, round(len(words) * share)))
    return " ".join(words[:keep])


@dataclass(frozen=True)
class QuerySets:
    """The run's queries: held-out recall queries, distinct latency queries, chat questions."""

    recall: list[str]
    recall_document_ids: list[str]
    latency: list[str]
    chat: list[str]


def choose_queries(
    verses: Sequence[Verse], *, indexed: int, recall: int, latency: int, chat: int
) -> QuerySets:
    """Deterministic query sets. Recall queries come from ``recall`` verses spread evenly over the
    first ``indexed`` (the ones in the index); latency queries and chat questions from the other
    verses, shuffled with a fixed seed, each text distinct and none sharing a verse with another set."""
    if not 0 < recall <= indexed <= len(verses):
        raise ValueError(f"cannot pick {recall} recall verses from {indexed} indexed of {len(verses)}")
    step = indexed / recall
    recall_positions = [int(step * index + step / 2) for index in range(recall)]
    held_out = set(recall_positions)
    others = [position for position in range(len(verses)) if position not in held_out]
    random.Random(_QUERY_SEED).shuffle(others)
    recall_texts = [partial_quotation(verses[position].text) for position in recall_positions]
    # The KJV repeats verses: a text that opens a held-out verse (or is a recall query) is not asked
    # elsewhere, even when it comes from another verse.
    seen: set[str] = {
        CACHED_QUERY,
        *recall_texts,
        *(_opening(verses[position]) for position in recall_positions),
    }
    texts: list[str] = []
    for position in others:
        text = _opening(verses[position])
        if text not in seen:
            seen.add(text)
            texts.append(text)
        if len(texts) == latency + chat:
            break
    if len(texts) < latency + chat:
        raise ValueError(f"only {len(texts)} distinct query texts for {latency + chat} requests")
    return QuerySets(
        recall=recall_texts,
        recall_document_ids=[verses[position].document_id for position in recall_positions],
        latency=texts[:latency],
        chat=[f"What is said about this: {text}?" for text in texts[latency:]],
    )


def _opening(verse: Verse) -> str:
    """A latency query: the verse's first words."""
    return " ".join(verse.text.split()[:LATENCY_QUERY_WORDS])
