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
