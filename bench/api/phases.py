"""The measured phases of a run, against the servers it started: search latency, recall@k, cached
search vs a bare endpoint, idle event streams, chat over SSE vs a synchronous baseline."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from bench.api.config import TENANT, ApiBenchConfig, Progress
from bench.api.queries import CACHED_QUERY, RECALL_QUERY_MIN_WORDS, RECALL_QUERY_SHARE, QuerySets
from bench.bare_endpoint import BARE_PATH
from bench.latency import LatencySummary, ratio
from bench.machine_cpu import cpu_per_request, take_sample
from bench.recall import RankedHit, recall_at_k, recall_of_query
from bench.server_processes import ServerProcess
from bench.sync_chat import CHAT_PATH as SYNC_CHAT_PATH
from tidewire.settings import Settings

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


async def measure_phases(
    settings: Settings,
    config: ApiBenchConfig,
    servers: dict[str, ServerProcess],
    api_key: str,
    queries: QuerySets,
    *,
    progress: Progress,
) -> dict[str, Any]:
    """Phases 1–5 of the package docstring (:mod:`bench.api`), in order, in one event loop."""
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
        roles = {
            server.pid: "other benchmark servers (idle)" for name, server in servers.items() if name != "api"
        }
        roles |= {api.pid: "dedicated API", os.getpid(): "benchmark client"}
        machine_before = take_sample(roles)
        search = await drive(
            _search_sender(session, search_url, timed, config.k), len(timed), config.search_clients
        )
        machine_cpu = cpu_per_request(machine_before, take_sample(roles), search.requests)
        by_role = machine_cpu["ms_per_request_by_role"]
        search_cpu = {
            "client": "aiohttp (asyncio)",
            "client_cpu_ms_per_request": by_role.get("benchmark client", 0.0),
            "api_cpu_ms_per_request": by_role.get("dedicated API", 0.0),
            "machine_cpu": machine_cpu,
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
