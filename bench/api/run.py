"""One ``tidewire bench api`` run, top to bottom: the stack checked, the corpus indexed, a key made, the
servers started, the phases measured, the report returned."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from contextlib import ExitStack
from pathlib import Path

from bench.api.config import DOCUMENT_ID_PREFIX, TENANT, ApiBenchConfig, Progress
from bench.api.corpus import bench_document_id, ensure_corpus_indexed
from bench.api.phases import measure_phases
from bench.api.queries import choose_queries
from bench.api.report import ApiBenchReport
from bench.bare_endpoint import BARE_PATH
from bench.embed import describe_machine
from bench.errors import BenchmarkError
from bench.server_processes import ServerProcess, free_port
from bench.slow_chat_provider import MODEL as PROVIDER_MODEL
from tidewire.kjv_corpus import load_kjv_verses
from tidewire.runtime.stack import RUNNING, LocalStack
from tidewire.settings import Settings


def run_api_benchmark(
    settings: Settings,
    config: ApiBenchConfig,
    *,
    config_file: Path | None,
    log_dir: Path,
    progress: Progress = lambda _: None,
) -> ApiBenchReport:
    """Run every phase once; what each measures is in the package docstring (:mod:`bench.api`).

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
    keys = KeyStore(settings.postgres, pepper=pepper)
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
