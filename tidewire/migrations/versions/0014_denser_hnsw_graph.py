"""A denser HNSW graph: `ef_construction` 128 instead of 64.

Each vector is linked to neighbours chosen among 128 candidates instead of 64, so a search finds the
same neighbours while walking fewer of them: with `api.hnsw_ef_search` lowered from 120 to 80, recall@10
of the benchmark's 200 held-out queries on the KJV tenant is 0.9655 (0.9635 at 120 on the old graph),
and Postgres spends about 0.5 ms less CPU per search under the benchmark's load (1.26 against
1.75–1.93 ms): about 12% of all the CPU a search costs on the 2-core machine. The price is on the write
side: an HNSW insert costs about 0.99 ms of Postgres CPU instead of 0.76 (5,000 verses into a graph of
20,000), some 3–4% of what indexing a verse costs in all, and a graph build takes about 5 s instead of 4
per 31,000 chunks (docs/benchmarks.md).

`m` stays 16 and the graph stays on half-precision copies of the vectors (migration 0009). The index is
rebuilt on every partition, with the table locked against writes meanwhile (a partitioned table's index
cannot be built CONCURRENTLY, and its storage parameters cannot be altered in place). Downgrade rebuilds
0009's graph.

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


def _rebuild(ef_construction: int) -> None:
    op.execute("SET LOCAL maintenance_work_mem = '256MB'")  # each partition's graph built in memory
    op.execute(f"DROP INDEX public.{INDEX_NAME}")
    op.execute(
        f"CREATE INDEX {INDEX_NAME} ON public.tidewire_chunks USING hnsw "
        f"((embedding::halfvec({DIMENSION})) halfvec_cosine_ops) WITH (m = 16, ef_construction = {ef_construction})"
    )


def upgrade() -> None:
    _rebuild(128)


def downgrade() -> None:
    _rebuild(64)
