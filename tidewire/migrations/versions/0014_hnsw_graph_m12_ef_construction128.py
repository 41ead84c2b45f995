"""A graph built with more care and fewer links: HNSW `m` 12 and `ef_construction` 128 (were 16 and 64).

Each vector keeps up to 24 neighbours on the bottom layer instead of 32, chosen among 128 candidates
instead of 64. A search then computes fewer distances per step and finds the same neighbours: with
`api.hnsw_ef_search` at 110 instead of 120, recall@10 of the benchmark's 200 held-out queries on the
KJV tenant is 0.960 (0.9605 before), and Postgres spent 1.38 ms of CPU per search under the benchmark's
load against 1.75–2.0 ms with the old graph, about a tenth of all the CPU a search costs on the 2-core
machine (docs/benchmarks.md). An insert costs about the same (5,000 verses into a graph of 20,000:
3.85 s against 3.70 s) and the pipeline benchmark's throughput did not move: the wider candidate search
is paid for by the fewer links to update. `ef_construction` 128 with `m` 16 searched as cheaply but
cost a third more per insert, and the pipeline fell below its throughput target.

The graph stays on half-precision copies of the vectors (migration 0009). The index is rebuilt on every
partition, with the table locked against writes meanwhile (a partitioned table's index cannot be built
CONCURRENTLY, and its storage parameters cannot be altered in place). Downgrade rebuilds 0009's graph.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-24
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

INDEX_NAME = "tidewire_chunks_embedding_hnsw_idx"
DIMENSION = 384


def _rebuild(graph: str) -> None:
    op.execute("SET LOCAL maintenance_work_mem = '256MB'")  # each partition's graph built in memory
    op.execute(f"DROP INDEX public.{INDEX_NAME}")
    op.execute(
        f"CREATE INDEX {INDEX_NAME} ON public.tidewire_chunks USING hnsw "
        f"((embedding::halfvec({DIMENSION})) halfvec_cosine_ops) WITH ({graph})"
    )


def upgrade() -> None:
    _rebuild("m = 12, ef_construction = 128")


def downgrade() -> None:
    _rebuild("m = 16, ef_construction = 64")
