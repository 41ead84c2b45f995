"""What `make demo` runs after the stack is up: the KJV corpus written as an upstream writer would.

1. Write every verse into `documents` (batched inserts, tenant `default`, title `Book C:V`).
2. Follow the pipeline with a progress bar until every verse has its vectors.
3. Create a demo API key, search what was just indexed through the read API, print requests to try.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import psycopg
import requests
from psycopg import errors as pg_errors
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tidewire.errors import ServiceError
from tidewire.kjv_corpus import Verse, load_kjv_verses
from tidewire.settings import Settings

INSERT_BATCH_ROWS = 1000
DEMO_TENANT = "default"
DEMO_QUERY = "the light shines in the darkness"

_UPSERT_VERSE = """
    INSERT INTO documents (id, tenant_id, title, body, metadata)
    VALUES (%s, %s, %s, %s, jsonb_build_object('book', %s::text, 'chapter', %s::int, 'verse', %s::int))
    ON CONFLICT (id) DO UPDATE
      SET title = EXCLUDED.title, body = EXCLUDED.body, metadata = EXCLUDED.metadata, updated_at = now()
      WHERE (documents.title, documents.body, documents.metadata)
            IS DISTINCT FROM (EXCLUDED.title, EXCLUDED.body, EXCLUDED.metadata)
"""


def write_corpus(settings: Settings, verses: Sequence[Verse], progress: Progress) -> None:
    """Insert the verses in batches, one transaction each; unchanged rows are left alone."""
    task = progress.add_task("writing verses to documents", total=len(verses))
    with psycopg.connect(settings.postgres.dsn()) as connection:
        for start in range(0, len(verses), INSERT_BATCH_ROWS):
            batch = verses[start : start + INSERT_BATCH_ROWS]
            with connection.transaction(), connection.cursor() as cursor:
                cursor.executemany(
                    _UPSERT_VERSE,
                    [
                        (v.document_id, DEMO_TENANT, v.title, v.text, v.book, v.chapter, v.verse)
                        for v in batch
                    ],
                )
            progress.advance(task, len(batch))


def indexed_count(connection: psycopg.Connection, pipeline: str = "documents") -> int:
    """How many demo verses have their vectors (the pipeline's per-document state)."""
    row = connection.execute(
        "SELECT count(*) FROM tidewire_document_state "
        "WHERE pipeline = %s AND document_id LIKE 'kjv-%%' AND NOT deleted",
        [pipeline],
    ).fetchone()
    return int(row[0]) if row else 0


def follow_indexing(settings: Settings, total: int, progress: Progress, *, timeout_s: float = 900) -> bool:
    """Show indexing progress until every verse is indexed; False if it stalls past the timeout."""
    task = progress.add_task("indexing (CDC → embeddings → pgvector)", total=total)
    deadline = time.monotonic() + timeout_s
    # One connection for the whole wait: the poll runs twice a second for minutes.
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        while time.monotonic() < deadline:
            done = indexed_count(connection)
            progress.update(task, completed=min(done, total))
            if done >= total:
                return True
            time.sleep(0.5)
    return False


def run_demo(settings: Settings, console: Console) -> None:
    verses = load_kjv_verses()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        try:
            write_corpus(settings, verses, progress)
            finished = follow_indexing(settings, len(verses), progress)
        except pg_errors.UndefinedTable:
            console.print(
                "[yellow]the tables do not exist yet: is the database migrated (`tidewire db upgrade`)?[/]"
            )
            return
        except psycopg.OperationalError as error:
            raise ServiceError.postgres_unreachable(
                settings.postgres, error, "to index the demo corpus"
            ) from None
    if not finished:
        console.print("[yellow]indexing has not finished; `tidewire lag` and the worker log tell why[/]")
    api_key = create_demo_key(settings)
    show_search_example(settings, api_key, console)
    show_api_examples(settings, api_key, console)


def show_search_example(settings: Settings, api_key: str, console: Console) -> None:
    """A semantic search through the read API, as a client would make it."""
    response = requests.get(
        f"{settings.api.url}/v1/search",
        params={"q": DEMO_QUERY, "k": "5"},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=30,
    )
    if response.status_code != 200:
        console.print(f"[yellow]search answered HTTP {response.status_code}: {response.text[:200]}[/]")
        return
    console.print(f"\nGET /v1/search?q={DEMO_QUERY} (took {response.json()['took_ms']} ms):")
    for hit in response.json()["hits"]:
        console.print(f"  {hit['score']:.3f}  {hit['document_id']:<16} {hit['text'][:90]!r}")


def create_demo_key(settings: Settings) -> str:
    """A fresh API key for the demo tenant (shown once, like `tidewire keys create`)."""
    from api.auth import KeyStore

    pepper = settings.api.key_pepper.get_secret_value().encode() if settings.api.key_pepper else None
    return KeyStore(settings.postgres, pepper=pepper).create(DEMO_TENANT, name="demo").key


def show_api_examples(settings: Settings, key: str, console: Console) -> None:
    """Requests to try with the demo key."""
    url = settings.api.url
    console.print(
        f"\nRead API     {url}   (OpenAPI: {url}/docs)\n"
        f"Demo API key {key}   (tenant {DEMO_TENANT}; shown once)\n\n"
        "Try:\n"
        f'  curl -s -H "Authorization: Bearer {key}" "{url}/v1/search?q=love+your+enemies&k=3"\n'
        f"  curl -N -H \"Authorization: Bearer {key}\" -H 'Content-Type: application/json' "
        f'-d \'{{"question": "What did God create in the beginning?"}}\' {url}/v1/chat\n'
        f'  curl -N -H "Authorization: Bearer {key}" {url}/v1/events\n'
        f'  curl -s -H "Authorization: Bearer {key}" {url}/v1/documents/kjv-gn-1-1',
        soft_wrap=True,
    )
