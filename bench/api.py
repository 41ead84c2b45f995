"""``tidewire bench api``: the read API under load, on the running stack (``tidewire up``).

One run measures, against the stack's Postgres and Kafka, the KJV corpus indexed in a tenant of its
own, ``bench-api`` (rows ``bench-api:<demo verse id>`` in ``documents``, written and indexed through the
pipeline first when missing, as an upstream writer would): the demo tenant ``default`` may hold rows
that tests left there, which would be part of what search and recall measure.

1. **Search latency** — ``GET /v1/search`` (vector mode, k = 10) from 16 concurrent clients (aiohttp,
   asyncio, closed loop: each sends its next request when the previous one answered), every
   request a different query (the first 12 words of a verse), so neither a query embedding nor a
   search answer is cached:
   p50/p95/p99 and throughput, after a warm-up.
2. **Recall@10** of the API's vector search (HNSW) against an exact search: 200 held-out queries —
   verses spread evenly over the indexed corpus, none of them used as a query elsewhere in the run,
   each cut to the first 60% of its words (at least 4): a partial quotation, which is not itself a
   point of the index. The exact answer is a sequential scan of the tenant's chunks ordered by
   ``embedding <=> q`` in SQL, with index scans disabled, ``q`` embedded here by the same model and
   settings as the API. Ties (the KJV repeats verses) count as found (:mod:`bench.recall`).
3. **Cached search vs a bare endpoint** — the same query repeated, answered from the API's search
   response cache (:mod:`api.search_cache`: same tenant, q, k, mode and filter; authentication, rate
   limit, access log and metrics still run) vs ``GET /bare`` of a FastAPI app with one constant JSON
   endpoint, served by the same uvicorn set-up (:mod:`bench.bare_endpoint`) in another process;
   16 clients each, rounds interleaved; throughput of the best round of each.
4. **Idle event streams** — 1,000 concurrent ``GET /v1/events`` held open on one API process; its
   resident memory before and after, and per stream.
5. **Chat under a slow provider** — 200 concurrent ``POST /v1/chat`` (SSE) with an OpenAI-compatible
   stand-in provider that sends its first token after 500 ms, then 20 tokens/s
   (:mod:`bench.slow_chat_provider`), vs the same 200 requests to a synchronous, non-streaming,
   thread-per-request implementation of the same job (:mod:`bench.sync_chat`, 40 threads: the
   worker-thread pool a synchronous FastAPI endpoint gets by default) calling the same provider
   without streaming. Completed answers per second of each.

Clients: aiohttp wherever many requests run at once (search latency, cached vs bare, chat), because
httpx spends about 1.5–2 ms of CPU per request and more per streamed line — on a few cores shared with
the servers, the latency and the comparisons would measure the client; httpx (asyncio) for recall
(one request at a time) and the event streams.

The API measured is a dedicated ``tidewire serve`` process the benchmark starts (the command and
uvicorn set-up ``tidewire up`` uses), configured for the run: per-key rate limit lifted (16 clients
would otherwise measure the limiter), the slow provider as its only chat provider, the semantic
cache off (every question reaches the provider, as in the baseline). Everything — clients and
servers — shares this machine's cores; the JSON names them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from bench.bare_endpoint import BARE_PATH
from bench.embed import describe_machine
from bench.errors import BenchmarkError
from bench.latency import LatencySummary, ratio
from bench.recall import RankedHit, recall_at_k, recall_of_query
from bench.server_processes import ServerProcess, free_port
from bench.slow_chat_provider import MODEL as PROVIDER_MODEL
from bench.slow_chat_provider import GenerationSchedule
from bench.sync_chat import CHAT_PATH as SYNC_CHAT_PATH
from tidewire.kjv_corpus import Verse, load_kjv_verses
from tidewire.runtime.stack import RUNNING, LocalStack
from tidewire.settings import Settings

if TYPE_CHECKING:
    from rich.table import Table

# The benchmark's own tenant, holding the KJV corpus and nothing else (its rows' ids are the demo's with
# DOCUMENT_ID_PREFIX): search and recall measure the corpus, not whatever tests or demos left in the
# demo tenant, and the demo's own rows are left alone.
TENANT = "bench-api"
DOCUMENT_ID_PREFIX = "bench-api:"
_WRITE_BATCH_ROWS = 1_000
_UPSERT_VERSE = """
INSERT INTO documents (id, tenant_id, title, body, metadata)
VALUES (%s, %s, %s, %s, jsonb_build_object('book', %s::text, 'chapter', %s::int, 'verse', %s::int))
ON CONFLICT (id) DO UPDATE
  SET tenant_id = EXCLUDED.tenant_id, title = EXCLUDED.title, body = EXCLUDED.body,
      metadata = EXCLUDED.metadata, updated_at = now()
  WHERE (documents.tenant_id, documents.title, documents.body, documents.metadata)
        IS DISTINCT FROM (EXCLUDED.tenant_id, EXCLUDED.title, EXCLUDED.body, EXCLUDED.metadata)
"""
LATENCY_QUERY_WORDS = 12
RECALL_QUERY_SHARE = 0.6
RECALL_QUERY_MIN_WORDS = 4
CACHED_QUERY = "the light shines in the darkness"
_QUERY_SEED = 20261124
_OPENING_STREAMS_AT_ONCE = 100
_PROGRESS_EVERY_S = 2.0
# The exact scan: no index may answer, so the planner reads every chunk of the tenant.
_EXACT_SQL = """
SELECT document_id, chunk_index, min(embedding <=> %(embedding)s) AS distance
FROM tidewire_chunks
WHERE tenant_id = %(tenant)s
GROUP BY document_id, chunk_index
ORDER BY distance, document_id, chunk_index
LIMIT %(k)s
"""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """A number a phase must reach: at most (``"max"``) or at least (``"min"``) ``threshold``."""

    kind: str
    threshold: float
    unit: str

    def judge(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value <= self.threshold if self.kind == "max" else value >= self.threshold

    def describe(self) -> str:
        return f"{'≤' if self.kind == 'max' else '≥'} {self.threshold:g}{self.unit}"


TARGETS = {
    "search_p95_ms": Target("max", 50.0, " ms"),
    "search_p99_ms": Target("max", 100.0, " ms"),
    "recall_at_10": Target("min", 0.95, ""),
    "cached_search_vs_bare": Target("min", 0.7, "×"),
    "chat_sse_vs_sync": Target("min", 3.0, "×"),
}


@dataclass(frozen=True)
class ApiBenchConfig:
    """What one run measures."""

    search_clients: int = 16
    search_requests: int = 4_000
    warm_up_requests: int = 200
    recall_queries: int = 200
    k: int = 10
    cached_requests: int = 3_000  # per round and per side
    cached_rounds: int = 3
    idle_streams: int = 1_000
    chat_requests: int = 200
    chat_rounds: int = 2
    sync_threads: int = 40
    provider: GenerationSchedule = field(default_factory=GenerationSchedule)
    corpus_verses: int | None = None  # None: the whole KJV must be indexed
    index_timeout_s: float = 1_800.0
    quick: bool = False

    @classmethod
    def quick_run(cls) -> ApiBenchConfig:
        """A smoke run of seconds once the corpus is indexed (300 verses); it judges no target."""
        return cls(
            search_requests=48,
            warm_up_requests=8,
            recall_queries=10,
            cached_requests=48,
            cached_rounds=1,
            idle_streams=20,
            chat_requests=6,
            chat_rounds=1,
            sync_threads=4,
            provider=GenerationSchedule(first_token_s=0.5, tokens_per_s=20.0, tokens=4),
            corpus_verses=300,
            index_timeout_s=600.0,
            quick=True,
        )


# -- queries (pure) ---------------------------------------------------------------------------


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


# -- the report -------------------------------------------------------------------------------


@dataclass
class ApiBenchReport:
    """Everything one run measured, and the targets judged against it."""

    config: ApiBenchConfig
    machine: dict[str, Any]
    setup: dict[str, Any]
    search: LatencySummary
    search_cpu: dict[str, Any]
    recall: dict[str, Any]
    cached_vs_bare: dict[str, Any]
    idle_streams: dict[str, Any]
    chat: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def measured(self) -> dict[str, float | None]:
        """The value of each target's quantity."""
        return {
            "search_p95_ms": self.search.p95_ms,
            "search_p99_ms": self.search.p99_ms,
            "recall_at_10": self.recall.get("recall_at_k"),
            "cached_search_vs_bare": self.cached_vs_bare.get("ratio"),
            "chat_sse_vs_sync": self.chat.get("ratio"),
        }

    def targets(self) -> dict[str, dict[str, Any]]:
        """Each target with its measured value; ``met`` is None on a quick run (not a measurement)."""
        judged = {}
        for name, value in self.measured().items():
            target = TARGETS[name]
            judged[name] = {
                "value": value,
                "target": target.describe(),
                "met": None if self.config.quick else target.judge(value),
            }
        return judged

    def to_json(self) -> dict[str, Any]:
        config = asdict(self.config)
        return {
            "benchmark": "api",
            "quick": self.config.quick,
            "config": config,
            "machine": self.machine,
            "setup": self.setup,
            "search": {**self.search.to_json(), **self.search_cpu},
            "recall": self.recall,
            "cached_vs_bare": self.cached_vs_bare,
            "idle_streams": self.idle_streams,
            "chat": self.chat,
            "targets": self.targets(),
            "notes": self.notes,
        }


def write_report(report: ApiBenchReport, output: Path) -> None:
    """Write the JSON results (``--output``), creating the folder."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")


def render_table(report: ApiBenchReport) -> Table:
    """The measurements as a rich table (imported lazily: only the CLI renders)."""
    from rich.table import Table

    machine = report.machine
    table = Table(title=f"Read API — {machine['cpu']}, {machine['logical_cores']} logical cores")
    for column in ("measurement", "value", "detail"):
        table.add_column(column, justify="right" if column == "value" else "left")
    search = report.search
    table.add_row(
        f"search latency, {report.config.search_clients} clients",
        f"p95 {search.p95_ms} ms",
        f"p50 {search.p50_ms} · p99 {search.p99_ms} · max {search.max_ms} ms · "
        f"{search.requests} requests, {search.errors} errors",
    )
    table.add_row(
        "search throughput", f"{search.throughput_rps} req/s", "distinct queries (no embedding cached)"
    )
    recall = report.recall
    table.add_row(
        f"recall@{report.config.k}",
        f"{recall.get('recall_at_k')}",
        f"{recall.get('queries')} held-out partial quotations; worst query {recall.get('worst_query_recall')}",
    )
    cached = report.cached_vs_bare
    table.add_row(
        "cached search ÷ bare endpoint",
        f"{cached.get('ratio')}×",
        f"{cached.get('cached_rps_best')} vs {cached.get('bare_rps_best')} req/s (best rounds)",
    )
    streams = report.idle_streams
    table.add_row(
        f"{streams.get('established')} idle /v1/events streams",
        f"{streams.get('kib_per_stream')} KiB/stream",
        f"API RSS {streams.get('rss_mib_before')} → {streams.get('rss_mib_with_streams')} MiB",
    )
    chat = report.chat
    table.add_row(
        f"chat, {report.config.chat_requests} concurrent",
        f"{chat.get('ratio')}×",
        f"SSE {chat.get('sse', {}).get('answers_per_s')} vs sync ({report.config.sync_threads} threads) "
        f"{chat.get('sync', {}).get('answers_per_s')} answers/s",
    )
    return table


def format_targets(report: ApiBenchReport) -> list[str]:
    """The lines printed under the table: each target, met or not, and the notes."""
    lines = []
    for name, judged in report.targets().items():
        verdict = {True: "met", False: "NOT met", None: "not judged (quick run)"}[judged["met"]]
        if judged["value"] is None:
            verdict = "not measured"
        lines.append(f"{name}: {judged['value']} (target {judged['target']}, {verdict})")
    return lines + report.notes


# -- the run ----------------------------------------------------------------------------------


def run_api_benchmark(
    settings: Settings,
    config: ApiBenchConfig,
    *,
    config_file: Path | None,
    log_dir: Path,
    progress: Progress = lambda _: None,
) -> ApiBenchReport:
    """Run every phase once; see the module docstring.

    1. Check the stack runs; raise the open-file limit (inherited by the servers started next).
    2. Make sure the corpus is indexed (writing it into ``documents`` if it is not there).
    3. Create an API key for the tenant (revoked at the end).
    4. Start the servers: slow provider, bare endpoint, dedicated API, synchronous chat baseline.
    5. Measure the phases, then stop the servers.
    """
    # 1. The stack
    states = LocalStack(settings).service_states()
    down = [name for name in ("postgres", "kafka") if states.get(name) != RUNNING]
    if down:
        raise BenchmarkError(f"not running: {', '.join(down)}; start the stack with `tidewire up`")
    file_limit = raise_open_file_limit(4 * config.idle_streams + 1_024)
    # 2. The corpus
    verses = load_kjv_verses()
    indexed = config.corpus_verses or len(verses)
    chunks = ensure_corpus_indexed(
        settings, verses[:indexed], timeout_s=config.index_timeout_s, progress=progress
    )
    queries = choose_queries(
        verses,
        indexed=indexed,
        recall=config.recall_queries,
        latency=config.warm_up_requests + config.search_requests,
        chat=config.chat_requests * (config.chat_rounds * 2 + 1),
    )
    # 3. The key
    from api.auth import KeyStore  # imported here: the API package is only needed once the run starts

    pepper = settings.api.key_pepper.get_secret_value().encode() if settings.api.key_pepper else None
    keys = KeyStore(settings.postgres.dsn(), pepper=pepper)
    key = keys.create(TENANT, name="bench-api")
    try:
        # 4. The servers
        with ExitStack() as servers:
            started = start_servers(
                settings, config, config_file=config_file, log_dir=log_dir, progress=progress
            )
            for server in started.values():
                servers.enter_context(server)
            for server in started.values():
                server.wait_ready()
            # 5. The phases
            measurements = asyncio.run(
                measure_phases(settings, config, started, key.key, queries, progress=progress)
            )
    finally:
        keys.revoke(key.key_id)
    setup = {
        "tenant": TENANT,
        "document_ids": f"{DOCUMENT_ID_PREFIX}<demo verse id>, e.g. {bench_document_id(verses[0])}",
        "corpus_verses_indexed": indexed,
        "tenant_chunks": chunks,
        "api_process": "a dedicated `tidewire serve` (the command and uvicorn set-up of `tidewire up`), "
        "rate limit lifted, semantic cache off, the slow provider as its chat provider",
        "open_file_limit": file_limit,
        "logs": str(log_dir),
    }
    return ApiBenchReport(
        config=config,
        machine=describe_machine(),
        setup=setup,
        notes=_notes(config, indexed=indexed, chunks=chunks),
        **measurements,
    )


def _notes(config: ApiBenchConfig, *, indexed: int, chunks: int) -> list[str]:
    notes = [
        "Clients and servers share this machine's cores: the load generator's CPU is part of what limits "
        "throughput (server CPU per request is reported next to it for the cached/bare comparison).",
    ]
    if chunks > indexed * 1.1:
        notes.append(
            f"Tenant {TENANT!r} holds {chunks} chunks for {indexed} corpus verses: rows of an earlier, larger "
            "run (the corpus is never removed) are part of what search and recall measured."
        )
    if config.quick:
        notes.insert(0, "Quick run: a smoke test of the benchmark; its numbers are not measurements.")
    return notes


def raise_open_file_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files towards ``wanted`` (never above the hard limit);
    servers started afterwards inherit it. Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


def bench_document_id(verse: Verse) -> str:
    """The id of a verse's row in the benchmark's tenant."""
    return DOCUMENT_ID_PREFIX + verse.document_id


def write_bench_corpus(connection: psycopg.Connection[Any], verses: Sequence[Verse]) -> None:
    """Upsert the verses into ``documents`` under the benchmark's tenant, as an upstream writer would
    (batched, one transaction per batch; unchanged rows are left alone, so no event is emitted)."""
    for start in range(0, len(verses), _WRITE_BATCH_ROWS):
        batch = verses[start : start + _WRITE_BATCH_ROWS]
        with connection.transaction(), connection.cursor() as cursor:
            cursor.executemany(
                _UPSERT_VERSE,
                [(bench_document_id(v), TENANT, v.title, v.text, v.book, v.chapter, v.verse) for v in batch],
            )


def ensure_corpus_indexed(
    settings: Settings, verses: Sequence[Verse], *, timeout_s: float, progress: Progress
) -> int:
    """Write the verses into ``documents`` under the benchmark's tenant unless all are there, wait
    until all are indexed, and return how many chunks the tenant has."""
    ids = [bench_document_id(verse) for verse in verses]
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM documents WHERE id = ANY(%s) AND tenant_id = %s", (ids, TENANT)
        ).fetchone()
        if row is None or row[0] < len(ids):
            progress(f"writing {len(ids)} KJV verses into documents (tenant {TENANT!r})")
            write_bench_corpus(connection, verses)
        deadline = time.monotonic() + timeout_s
        while True:
            row = connection.execute(
                "SELECT count(*) FROM tidewire_document_state "
                "WHERE document_id = ANY(%s) AND tenant_id = %s AND NOT deleted",
                (ids, TENANT),
            ).fetchone()
            done = row[0] if row else 0
            if done >= len(ids):
                break
            if time.monotonic() > deadline:
                raise BenchmarkError(
                    f"only {done} of {len(ids)} verses indexed after {timeout_s:.0f}s; "
                    "`tidewire lag` and the worker log tell why"
                )
            progress(f"waiting for the pipeline to index the corpus: {done}/{len(ids)}")
            time.sleep(1.0)
        row = connection.execute(
            "SELECT count(*) FROM tidewire_chunks WHERE tenant_id = %s", (TENANT,)
        ).fetchone()
    return int(row[0]) if row else 0


def start_servers(
    settings: Settings, config: ApiBenchConfig, *, config_file: Path | None, log_dir: Path, progress: Progress
) -> dict[str, ServerProcess]:
    """The four servers, not started yet (enter each as a context manager)."""
    python = sys.executable
    provider_port, bare_port, api_port, sync_port = (free_port() for _ in range(4))
    provider_url = f"http://127.0.0.1:{provider_port}/v1"
    schedule = config.provider
    environment = {"TIDEWIRE_CONFIG": str(config_file)} if config_file is not None else {}
    chat_provider = {
        "kind": "openai",
        "name": "slow-bench",
        "base_url": provider_url,
        "model": PROVIDER_MODEL,
        "max_retries": 0,
        "first_token_timeout_s": 60,
        "timeout_s": 60,
    }
    api_environment = {
        **environment,
        "TIDEWIRE_API__RATE_LIMIT_PER_S": "1000000",
        "TIDEWIRE_API__RATE_LIMIT_BURST": "1000000",
        "TIDEWIRE_API__SEMANTIC_CACHE": "false",
        "TIDEWIRE_API__CHAT_PROVIDERS": json.dumps([chat_provider]),
    }
    progress("starting the provider stand-in, the bare endpoint, a dedicated API and the sync baseline")
    return {
        "provider": ServerProcess(
            "slow chat provider",
            [python, "-m", "bench.slow_chat_provider", "--port", str(provider_port),
             "--first-token-s", str(schedule.first_token_s), "--tokens-per-s", str(schedule.tokens_per_s),
             "--tokens", str(schedule.tokens)],
            port=provider_port, log_file=log_dir / "slow-chat-provider.log", environment=environment,
        ),
        "bare": ServerProcess(
            "bare endpoint",
            [python, "-m", "bench.bare_endpoint", "--port", str(bare_port)],
            port=bare_port, log_file=log_dir / "bare-endpoint.log", environment=environment, ready_path=BARE_PATH,
        ),
        "api": ServerProcess(
            "dedicated API",
            [python, "-c", "from tidewire.cli import run; run()", "serve", "--host", "127.0.0.1",
             "--port", str(api_port)],
            port=api_port, log_file=log_dir / "api.log", environment=api_environment, ready_path="/healthz",
        ),
        "sync": ServerProcess(
            "synchronous chat baseline",
            [python, "-m", "bench.sync_chat", "--port", str(sync_port), "--provider-url", provider_url,
             "--tenant", TENANT, "--threads", str(config.sync_threads)],
            port=sync_port, log_file=log_dir / "sync-chat.log", environment=environment,
        ),
    }  # fmt: skip


async def measure_phases(
    settings: Settings,
    config: ApiBenchConfig,
    servers: dict[str, ServerProcess],
    api_key: str,
    queries: QuerySets,
    *,
    progress: Progress,
) -> dict[str, Any]:
    """Phases 1–5 of the module docstring, in order, in one event loop."""
    api = servers["api"]
    headers = {"Authorization": f"Bearer {api_key}"}
    search_url = f"{api.url}/v1/search"
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(300.0, pool=None)
    # aiohttp for every phase with many requests in flight: httpx's ~1.5-2 ms of CPU per request,
    # on the cores the servers use, would be measured; httpx for recall and the event streams.
    session_timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
    async with (
        httpx.AsyncClient(limits=limits, timeout=timeout, headers=headers) as client,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), headers=headers, timeout=session_timeout
        ) as session,
    ):
        progress(
            f"search latency: {config.search_requests} distinct queries, {config.search_clients} clients"
        )
        warm_up, timed = (
            queries.latency[: config.warm_up_requests],
            queries.latency[config.warm_up_requests :],
        )
        await drive(
            _search_sender(session, search_url, warm_up, config.k), len(warm_up), config.search_clients
        )
        client_cpu_before, api_cpu_before = time.process_time(), api.cpu_seconds()
        search = await drive(
            _search_sender(session, search_url, timed, config.k), len(timed), config.search_clients
        )
        served = max(search.requests, 1)
        search_cpu = {
            "client": "aiohttp (asyncio)",
            "client_cpu_ms_per_request": round((time.process_time() - client_cpu_before) * 1000 / served, 3),
            "api_cpu_ms_per_request": round((api.cpu_seconds() - api_cpu_before) * 1000 / served, 3),
        }

        progress(f"recall@{config.k}: {len(queries.recall)} held-out queries against an exact scan")
        recall = await measure_recall(settings, client, search_url, queries, config.k)

        progress("cached search vs bare endpoint")
        cached_vs_bare = await measure_cached_vs_bare(session, search_url, servers, config)

        progress(f"holding {config.idle_streams} idle /v1/events streams")
        idle_streams = await measure_idle_streams(client, f"{api.url}/v1/events", api, config.idle_streams)

        progress(f"chat: {config.chat_requests} concurrent requests, SSE vs synchronous")
        chat = await measure_chat(session, servers, queries.chat, config)
    return {
        "search": search,
        "search_cpu": search_cpu,
        "recall": recall,
        "cached_vs_bare": cached_vs_bare,
        "idle_streams": idle_streams,
        "chat": chat,
    }


async def drive(send: Callable[[int], Awaitable[bool]], count: int, concurrency: int) -> LatencySummary:
    """Send requests ``0 .. count-1`` from ``concurrency`` clients in a closed loop (each client sends
    its next request once its previous one answered); latencies of the successful ones."""
    next_index = 0
    latencies: list[float] = []
    errors = 0

    async def client_loop() -> None:
        nonlocal next_index, errors
        while next_index < count:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            if await send(index):
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    began = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(max(1, min(concurrency, count)))))
    return LatencySummary.of(latencies, errors=errors, wall_s=max(time.perf_counter() - began, 1e-9))


def _search_sender(
    session: aiohttp.ClientSession, url: str, texts: Sequence[str], k: int
) -> Callable[[int], Awaitable[bool]]:
    async def send(index: int) -> bool:
        return await _get_ok(session, url, {"q": texts[index], "k": str(k)})

    return send


async def measure_recall(
    settings: Settings, client: httpx.AsyncClient, search_url: str, queries: QuerySets, k: int
) -> dict[str, Any]:
    """Recall@k of the API's answers against exact scans (one query at a time, so the API embeds
    each alone, as the exact side does)."""
    from models.embedder import Embedder  # imported here: loading ONNX Runtime is slow

    embedder = Embedder.from_settings(settings.embedding)
    approximate: list[list[RankedHit]] = []
    exact: list[list[RankedHit]] = []
    errors = 0
    with psycopg.connect(settings.postgres.dsn()) as connection:
        register_vector(connection)
        for text in queries.recall:
            response = await client.get(search_url, params={"q": text, "k": k})
            if response.status_code != 200:
                errors += 1
                continue
            hits = response.json()["hits"]
            approximate.append(
                [RankedHit((hit["document_id"], hit["chunk_index"]), 1.0 - hit["score"]) for hit in hits]
            )
            embedding = np.asarray(embedder.embed([text])[0], dtype=np.float32)
            with connection.transaction():
                connection.execute("SET LOCAL enable_indexscan = off")
                connection.execute("SET LOCAL enable_bitmapscan = off")
                rows = connection.execute(
                    _EXACT_SQL, {"embedding": embedding, "tenant": TENANT, "k": k}
                ).fetchall()
            exact.append([RankedHit((row[0], row[1]), float(row[2])) for row in rows])
    if not exact:
        return {"queries": 0, "errors": errors, "recall_at_k": None}
    per_query = [recall_of_query(a, e, k) for a, e in zip(approximate, exact, strict=True)]
    return {
        "queries": len(exact),
        "errors": errors,
        "k": k,
        "recall_at_k": round(recall_at_k(approximate, exact, k), 4),
        "worst_query_recall": round(min(per_query), 2),
        "queries_below_1": sum(1 for value in per_query if value < 1.0),
        "query_kind": f"the first {RECALL_QUERY_SHARE:.0%} of the words (at least {RECALL_QUERY_MIN_WORDS}) "
        "of verses spread evenly over the indexed corpus, used nowhere else in the run",
        "exact": "sequential scan, ORDER BY embedding <=> q, index and bitmap scans disabled",
        "hnsw_ef_search": settings.api.hnsw_ef_search,
    }


async def measure_cached_vs_bare(
    session: aiohttp.ClientSession, search_url: str, servers: dict[str, ServerProcess], config: ApiBenchConfig
) -> dict[str, Any]:
    """Interleaved rounds: the bare endpoint, then the same search repeated (embedding cached)."""
    bare_url = servers["bare"].url + BARE_PATH
    search_params = {"q": CACHED_QUERY, "k": str(config.k)}

    async def bare(index: int) -> bool:
        return await _get_ok(session, bare_url)

    async def cached(index: int) -> bool:
        return await _get_ok(session, search_url, search_params)

    clients = config.search_clients
    await drive(bare, 4 * clients, clients)
    await drive(cached, 4 * clients, clients)  # the first embeds the query; the rest hit the cache
    rounds: list[dict[str, Any]] = []
    for _ in range(config.cached_rounds):
        for side, send, server in (("bare", bare, servers["bare"]), ("cached", cached, servers["api"])):
            server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
            summary = await drive(send, config.cached_requests, clients)
            served = max(summary.requests, 1)
            rounds.append(
                {
                    "side": side,
                    **summary.to_json(),
                    "server_cpu_ms_per_request": round(
                        (server.cpu_seconds() - server_cpu) * 1000 / served, 3
                    ),
                    "client_cpu_ms_per_request": round((time.process_time() - client_cpu) * 1000 / served, 3),
                }
            )
    best = {
        side: max((r for r in rounds if r["side"] == side), key=lambda r: r["throughput_rps"])
        for side in ("bare", "cached")
    }
    return {
        "clients": clients,
        "client": "aiohttp",
        "requests_per_round": config.cached_requests,
        "query": CACHED_QUERY,
        "rounds": rounds,
        "bare_rps_best": best["bare"]["throughput_rps"],
        "cached_rps_best": best["cached"]["throughput_rps"],
        "ratio": ratio(best["cached"]["throughput_rps"], best["bare"]["throughput_rps"]),
        "api_cpu_ms_per_cached_search": best["cached"]["server_cpu_ms_per_request"],
        "bare_cpu_ms_per_request": best["bare"]["server_cpu_ms_per_request"],
        "errors": sum(r["errors"] for r in rounds),
    }


async def _get_ok(session: aiohttp.ClientSession, url: str, params: dict[str, str] | None = None) -> bool:
    """GET ``url`` and read the whole body; True on a 200."""
    try:
        async with session.get(url, params=params) as response:
            await response.read()
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def measure_idle_streams(
    client: httpx.AsyncClient, events_url: str, api: ServerProcess, count: int
) -> dict[str, Any]:
    """Open ``count`` ``/v1/events`` streams, hold them idle, and compare the API's resident memory."""
    release = asyncio.Event()
    all_open = asyncio.Event()
    opening = asyncio.Semaphore(_OPENING_STREAMS_AT_ONCE)  # connection set-ups in flight at once
    established = 0
    failed = 0

    def settled() -> None:
        if established + failed == count:
            all_open.set()

    async def hold() -> None:
        nonlocal established, failed
        try:
            async with contextlib.AsyncExitStack() as stream:
                async with opening:
                    response = await stream.enter_async_context(client.stream("GET", events_url))
                    if response.status_code != 200:
                        raise httpx.HTTPStatusError("refused", request=response.request, response=response)
                    # The first message carries only the stream's position: the stream is set up.
                    chunks = response.aiter_bytes()
                    received = b""
                    while b"\n\n" not in received.replace(b"\r\n", b"\n"):
                        received += await anext(chunks)
                established += 1
                settled()
                await release.wait()
        except (httpx.HTTPError, StopAsyncIteration):
            failed += 1
            settled()

    rss_before = api.rss_bytes()
    holders = [asyncio.create_task(hold()) for _ in range(count)]
    began = time.perf_counter()
    if count:
        await all_open.wait()
    opened_s = time.perf_counter() - began
    await asyncio.sleep(2.0)  # let the allocator settle before reading the memory
    rss_with_streams = api.rss_bytes()
    release.set()
    await asyncio.gather(*holders)
    await asyncio.sleep(2.0)
    rss_after_close = api.rss_bytes()
    mib = 2**20
    return {
        "requested": count,
        "established": established,
        "failed": failed,
        "seconds_to_open": round(opened_s, 2),
        "api_pid": api.pid,
        "rss_mib_before": round(rss_before / mib, 1),
        "rss_mib_with_streams": round(rss_with_streams / mib, 1),
        "rss_mib_after_close": round(rss_after_close / mib, 1),
        "kib_per_stream": round((rss_with_streams - rss_before) / 1024 / max(established, 1), 1),
    }


async def measure_chat(
    session: aiohttp.ClientSession,
    servers: dict[str, ServerProcess],
    questions: Sequence[str],
    config: ApiBenchConfig,
) -> dict[str, Any]:
    """Rounds of ``chat_requests`` questions sent at once, alternating synchronous and SSE; with the
    CPU each side's server process (and this client) spent per answer."""
    api_url, sync_url = servers["api"].url, servers["sync"].url
    per_round = config.chat_requests
    question_sets = [
        list(questions[start : start + per_round]) for start in range(0, len(questions), per_round)
    ]
    # One request each first: code paths, connections to the provider, the sync side's threads.
    await _chat_sse_once(session, api_url, question_sets[0][0])
    await _chat_sync_once(session, sync_url, question_sets[0][-1])
    runs: dict[str, list[dict[str, Any]]] = {"sync": [], "sse": []}
    for round_index in range(config.chat_rounds):
        for side_index, side in enumerate(("sync", "sse")):
            batch = question_sets[1 + round_index * 2 + side_index]
            send = _chat_sync_once if side == "sync" else _chat_sse_once
            url = sync_url if side == "sync" else api_url
            server = servers["sync" if side == "sync" else "api"]
            server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
            began = time.perf_counter()
            results = await asyncio.gather(*(send(session, url, question) for question in batch))
            wall_s = time.perf_counter() - began
            answered = max(1, sum(1 for result in results if result.completed))
            runs[side].append(
                {
                    **_chat_round(results, wall_s),
                    "server_cpu_ms_per_answer": round(
                        (server.cpu_seconds() - server_cpu) * 1000 / answered, 2
                    ),
                    "client_cpu_ms_per_answer": round(
                        (time.process_time() - client_cpu) * 1000 / answered, 2
                    ),
                }
            )
    best = {side: max(runs[side], key=lambda run: run["answers_per_s"]) for side in runs}
    schedule = config.provider
    return {
        "requests": per_round,
        "provider": {
            "first_token_s": schedule.first_token_s,
            "tokens_per_s": schedule.tokens_per_s,
            "tokens": schedule.tokens,
            "generation_s": round(schedule.total_s, 3),
        },
        "sync_threads": config.sync_threads,
        "sse": {**best["sse"], "rounds": runs["sse"]},
        "sync": {**best["sync"], "rounds": runs["sync"]},
        "ratio": ratio(best["sse"]["answers_per_s"], best["sync"]["answers_per_s"]),
    }


@dataclass(frozen=True)
class ChatResult:
    """One chat request as the client saw it."""

    completed: bool
    first_token_s: float | None
    total_s: float


def _chat_round(results: Sequence[ChatResult], wall_s: float) -> dict[str, Any]:
    completed = [result for result in results if result.completed]
    first_tokens = [result.first_token_s for result in completed if result.first_token_s is not None]
    totals = LatencySummary.of(
        [result.total_s for result in completed], errors=len(results) - len(completed), wall_s=wall_s
    )
    return {
        "completed": len(completed),
        "failed": len(results) - len(completed),
        "wall_s": round(wall_s, 3),
        "answers_per_s": round(len(completed) / wall_s, 2),
        "answer_ms_p50": totals.p50_ms,
        "answer_ms_p95": totals.p95_ms,
        "first_token_ms_p50": LatencySummary.of(first_tokens, errors=0, wall_s=wall_s).p50_ms
        if first_tokens
        else None,
    }


async def _chat_sse_once(session: aiohttp.ClientSession, api_url: str, question: str) -> ChatResult:
    """``POST /v1/chat`` read to its last event: completed when it ends with ``done``."""
    started = time.perf_counter()
    first_token_s: float | None = None
    last_event = b""
    try:
        async with session.post(f"{api_url}/v1/chat", json={"question": question}) as response:
            if response.status != 200:
                return ChatResult(False, None, time.perf_counter() - started)
            async for line in response.content:  # one SSE line at a time
                if line.startswith(b"event:"):
                    last_event = line.removeprefix(b"event:").strip()
                    if last_event == b"token" and first_token_s is None:
                        first_token_s = time.perf_counter() - started
    except aiohttp.ClientError:
        return ChatResult(False, first_token_s, time.perf_counter() - started)
    return ChatResult(last_event == b"done", first_token_s, time.perf_counter() - started)


async def _chat_sync_once(session: aiohttp.ClientSession, sync_url: str, question: str) -> ChatResult:
    """``POST /chat`` of the baseline: completed when a whole answer came back."""
    started = time.perf_counter()
    try:
        async with session.post(f"{sync_url}{SYNC_CHAT_PATH}", json={"question": question}) as response:
            completed = response.status == 200 and bool((await response.json()).get("answer"))
    except (aiohttp.ClientError, ValueError):
        completed = False
    total_s = time.perf_counter() - started
    # The whole answer arrives at once: its first token is its last.
    return ChatResult(completed, total_s if completed else None, total_s)


def with_overrides(config: ApiBenchConfig, **overrides: Any) -> ApiBenchConfig:
    """``config`` with the CLI's options applied (None: keep)."""
    return replace(config, **{name: value for name, value in overrides.items() if value is not None})
