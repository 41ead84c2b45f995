"""Recall@k of an approximate nearest-neighbour search against an exact one, with ties handled.

A hit of the approximate search counts as correct when it is one of the exact top k, or when its
distance is no larger than the exact k-th distance: corpora have duplicates (the KJV repeats whole
verses), and among equally distant chunks any choice is as good as the exact scan's. Pure functions.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

# Distances from the API's score (1 − cosine distance, float4 arithmetic) and from the exact scan
# differ in the last bits; a smaller difference is a tie.
DISTANCE_TOLERANCE = 1e-5


@dataclass(frozen=True)
class RankedHit:
    """One result row: what it is (``key``) and its distance to the query."""

    key: Hashable
    distance: float


def recall_of_query(approximate: Sequence[RankedHit], exact: Sequence[RankedHit], k: int) -> float:
    """The share of the exact top ``k`` that the approximate top ``k`` found (1.0 when exact is empty)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    truth = list(exact[:k])
    if not truth:
        return 1.0
    true_keys = {hit.key for hit in truth}
    kth_distance = max(hit.distance for hit in truth)
    found = {
        hit.key
        for hit in approximate[:k]
        if hit.key in true_keys or hit.distance <= kth_distance + DISTANCE_TOLERANCE
    }
    return min(len(found), len(truth)) / len(truth)


def recall_at_k(
    approximate: Sequence[Sequence[RankedHit]], exact: Sequence[Sequence[RankedHit]], k: int
) -> float:
    """Mean recall@k over queries (``approximate[i]`` and ``exact[i]`` answer the same query)."""
    if len(approximate) != len(exact):
        raise ValueError(f"{len(approximate)} approximate result lists for {len(exact)} exact ones")
    if not exact:
        raise ValueError("recall of no queries")
    return sum(recall_of_query(a, e, k) for a, e in zip(approximate, exact, strict=True)) / len(exact)
