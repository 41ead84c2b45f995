"""The upstream writer of the pipeline benchmark: a separate process inserting rows on a schedule.

It plays an upstream system writing to the source table, so its CPU is its own process's and its
commits are real commits other sessions see. Two schedules:

- **as fast as possible** (``rate_per_s=None``): transactions of ``batch_rows`` rows back to back,
  like ``make demo`` loading the corpus;
- **a fixed rate**: every :data:`WRITE_TICK_S` the rows that are due by then
  (:func:`rows_due`) go in one transaction. A writer that falls behind catches up with bigger
  transactions (at most ``batch_rows`` rows each) and records how far behind it was.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import psycopg
from psycopg import sql

from bench.errors import BenchmarkError

# A 20 Hz commit cadence: fine enough that a writer at a few hundred rows/s is smooth, coarse
# enough that each commit carries several rows instead of hundreds of one-row transactions.
WRITE_TICK_S = 0.05
# How long the parent waits for the writer to finish after its schedule should have ended.
_FINISH_GRACE_S = 600.0


def rows_due(elapsed_s: float, rate_per_s: float | None, total: int) -> int:
    """Rows a writer at ``rate_per_s`` has to have committed ``elapsed_s`` after it started.

    ``None`` is "as fast as possible": everything is due at once. Never more than ``total``.
    """
    if rate_per_s is None:
        return total
    if rate_per_s <= 0:
        raise ValueError(f"rate must be positive, not {rate_per_s}")
    return min(total, max(0, math.floor(elapsed_s * rate_per_s + 1e-9)))


def next_tick(elapsed_s: float, tick_s: float = WRITE_TICK_S) -> float:
    """The first tick boundary strictly after ``elapsed_s`` (ticks at 0, tick_s, 2·tick_s, …)."""
    return (math.floor(elapsed_s / tick_s + 1e-9) + 1) * tick_s


@dataclass(frozen=True)
class SourceRow:
    """One row of the benchmark's source table (the columns of ``documents``)."""

    document_id: str
    tenant_id: str
    title: str
    body: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class WritePlan:
    """What the writer process inserts, where, and how fast."""

    dsn: str
    table: str  # schema.table
    rows: Sequence[SourceRow]
    rate_per_s: float | None  # None: as fast as possible
    batch_rows: int = 1000  # the most rows in one transaction


@dataclass(frozen=True)
class WriteResult:
    """What the writer did: rows, transactions, wall-clock span and how far it fell behind."""

    rows: int
    transactions: int
    started_at: float  # time.time() of the first transaction's start
    finished_at: float  # time.time() after the last commit
    max_backlog_rows: int  # the most rows that were due but not yet written, seen before a write

    @property
    def seconds(self) -> float:
        return self.finished_at - self.started_at

    @property
    def achieved_rate_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else math.inf


def write_rows(plan: WritePlan, written: Synchronized[int] | None = None) -> WriteResult:
    """Insert ``plan.rows`` into ``plan.table`` on the plan's schedule (runs in the writer process).

    ``written`` (shared with the parent) is updated after every commit.
    """
    schema, table = plan.table.split(".")
    insert = sql.SQL(
        "INSERT INTO {} (id, tenant_id, title, body, metadata) VALUES (%s, %s, %s, %s, %s)"
    ).format(sql.Identifier(schema, table))
    total = len(plan.rows)
    done = transactions = max_backlog = 0
    with psycopg.connect(plan.dsn) as connection:
        started = time.monotonic()
        started_at = time.time()
        while done < total:
            elapsed = time.monotonic() - started
            due = rows_due(elapsed, plan.rate_per_s, total)
            if due <= done:
                time.sleep(max(0.0, next_tick(elapsed) - elapsed))
                continue
            max_backlog = max(max_backlog, due - done)
            end = min(due, done + plan.batch_rows)
            with connection.transaction(), connection.cursor() as cursor:
                cursor.executemany(
                    insert,
                    [
                        (row.document_id, row.tenant_id, row.title, row.body, json.dumps(row.metadata))
                        for row in plan.rows[done:end]
                    ],
                )
            done = end
            transactions += 1
            if written is not None:
                written.value = done
        finished_at = time.time()
    return WriteResult(total, transactions, started_at, finished_at, max_backlog)


def _writer_process_main(plan: WritePlan, written: Synchronized[int], results: Connection) -> None:
    # The child's only way to report: a WriteResult, or the one-line reason it failed.
    try:
        results.send(write_rows(plan, written))
    except psycopg.Error as error:
        results.send(f"{type(error).__name__}: {str(error).strip().splitlines()[0]}")
    finally:
        results.close()


class WriterProcess:
    """The writer running in a process of its own (spawned: it shares no state with the benchmark)."""

    def __init__(self, plan: WritePlan) -> None:
        context = multiprocessing.get_context("spawn")
        self.plan = plan
        self.written: Synchronized[int] = context.Value("q", 0)
        self._results, child_end = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_writer_process_main,
            args=(plan, self.written, child_end),
            name="tidewire-bench-writer",
            daemon=True,
        )
        self._process.start()
        child_end.close()

    def is_alive(self) -> bool:
        return self._process.is_alive()

    def result(self, timeout_s: float = _FINISH_GRACE_S) -> WriteResult:
        """Wait for the writer; raise :class:`BenchmarkError` if it failed or never finished."""
        if not self._results.poll(timeout_s):
            self.stop()
            raise BenchmarkError(f"the benchmark's writer process did not finish within {timeout_s:.0f}s")
        try:
            outcome = self._results.recv()
        except EOFError:
            outcome = f"it exited with status {self._process.exitcode} without a result"
        self._process.join(timeout=10)
        if isinstance(outcome, str):
            raise BenchmarkError(
                f"the benchmark's writer process failed writing to {self.plan.table}: {outcome}"
            )
        result: WriteResult = outcome
        return result

    def stop(self) -> None:
        """End the writer now (benchmark interrupted); nothing it committed is undone."""
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=10)
