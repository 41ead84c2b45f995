"""Split token sequences into inference batches: a pure function with explicit limits.

Rows are sorted longest first and cut greedily, so each batch holds sequences of similar
length (little padding) and its padded size stays under both limits. Padded lengths are
rounded up to a multiple (a "bucket"), which bounds the number of distinct shapes ONNX Runtime
sees and so the memory it keeps per shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchLimits:
    """Bounds of one inference batch."""

    max_rows: int
    max_tokens: int
    pad_multiple: int = 8
    max_length: int | None = None

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.max_tokens < 1 or self.pad_multiple < 1:
            raise ValueError(f"batch limits must be positive: {self}")


@dataclass(frozen=True)
class PlannedBatch:
    """Indices (into the planner's input) of the rows of one batch, and their padded length."""

    indices: tuple[int, ...]
    padded_length: int

    @property
    def padded_tokens(self) -> int:
        return len(self.indices) * self.padded_length


def bucketed_length(length: int, limits: BatchLimits) -> int:
    """``length`` rounded up to the bucket multiple, never past ``max_length`` (unless it already is)."""
    rounded = -(-max(length, 1) // limits.pad_multiple) * limits.pad_multiple
    if limits.max_length is not None:
        return max(length, min(rounded, limits.max_length))
    return rounded


def plan_batches(lengths: Sequence[int], limits: BatchLimits) -> list[PlannedBatch]:
    """Group row indices into batches bounded by rows and by padded tokens.

    Longest rows come first; ties keep input order, so the plan is deterministic. A row longer
    than ``max_tokens`` on its own still gets a batch (of one): rows are never split here.
    """
    order = sorted(range(len(lengths)), key=lambda index: (-lengths[index], index))
    batches: list[PlannedBatch] = []
    current: list[int] = []
    current_length = 0
    for index in order:
        # Sorted longest first, so the batch's padded length is fixed by its first row.
        if current and (
            len(current) + 1 > limits.max_rows or (len(current) + 1) * current_length > limits.max_tokens
        ):
            batches.append(PlannedBatch(tuple(current), current_length))
            current = []
        if not current:
            current_length = bucketed_length(lengths[index], limits)
        current.append(index)
    if current:
        batches.append(PlannedBatch(tuple(current), current_length))
    return batches
