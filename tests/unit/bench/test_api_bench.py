"""The pure parts of ``tidewire bench api``: latency summaries, recall@k with ties, the query sets,
the targets, the provider stand-in's schedule."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest

from bench.api.config import TARGETS, ApiBenchConfig, with_overrides
from bench.api.phases import drive
from bench.api.queries import choose_queries, partial_quotation
from bench.api.report import ApiBenchReport, render_table
from bench.latency import LatencySummary, ratio
from bench.recall import RankedHit, recall_at_k, recall_of_query
from bench.slow_chat_provider import GenerationSchedule, create_provider_app, token_text
from tidewire.kjv_corpus import Verse, load_kjv_verses

# -- latency ----------------------------------------------------------------------------------


def test_latency_summary_percentiles_in_milliseconds_and_throughput_of_successes() -> None:
    latencies_s = [index / 1000 for index in range(1, 101)]  # 1 ms .. 100 ms
    summary = LatencySummary.of(latencies_s, errors=3, wall_s=2.0)
    assert summary.requests == 100 and summary.errors == 3
    assert summary.p50_ms == pytest.approx(50.5)
    assert summary.p95_ms == pytest.approx(95.05)
    assert summary.p99_ms == pytest.approx(99.01)
    assert summary.max_ms == 100.0 and summary.mean_ms == pytest.approx(50.5)
    assert summary.throughput_rps == 50.0  # errors do not count as throughput


def test_latency_summary_of_nothing_has_no_percentiles() -> None:
    summary = LatencySummary.of([], errors=5, wall_s=1.0)
    assert summary.requests == 0 and summary.p95_ms is None and summary.throughput_rps == 0.0
    with pytest.raises(ValueError, match="wall time"):
        LatencySummary.of([0.1], errors=0, wall_s=0.0)


def test_ratio_refuses_to_divide_by_nothing() -> None:
    assert ratio(3.0, 4.0) == 0.75
    assert ratio(3.0, 0.0) is None


def test_drive_sends_every_request_once_with_bounded_concurrency() -> None:
    seen: list[int] = []
    in_flight = 0
    most_in_flight = 0

    async def send(index: int) -> bool:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        await asyncio.sleep(0.001)
        seen.append(index)
        in_flight -= 1
        return index % 10 != 0  # every tenth fails

    summary = asyncio.run(drive(send, 50, 4))
    assert sorted(seen) == list(range(50))
    assert most_in_flight == 4
    assert (summary.requests, summary.errors) == (45, 5)


# -- recall -----------------------------------------------------------------------------------


def hits(*pairs: tuple[str, float]) -> list[RankedHit]:
    return [RankedHit(key, distance) for key, distance in pairs]


def test_recall_counts_the_exact_top_k_found() -> None:
    exact = hits(("a", 0.1), ("b", 0.2), ("c", 0.3), ("d", 0.4))
    assert recall_of_query(hits(("a", 0.1), ("b", 0.2), ("c", 0.3), ("d", 0.4)), exact, 4) == 1.0
    assert recall_of_query(hits(("a", 0.1), ("x", 0.5), ("c", 0.3), ("y", 0.6)), exact, 4) == 0.5
    assert recall_of_query(hits(("x", 0.9)), exact, 4) == 0.0
    assert recall_of_query([], exact, 2) == 0.0


def test_recall_treats_equally_distant_rows_as_found() -> None:
    # Two identical verses at the k-th distance: the exact scan kept one, the index the other.
    exact = hits(("a", 0.1), ("dup-1", 0.3))
    assert recall_of_query(hits(("a", 0.1), ("dup-2", 0.3 + 1e-7)), exact, 2) == 1.0
    assert recall_of_query(hits(("a", 0.1), ("far", 0.31)), exact, 2) == 0.5


def test_recall_at_k_is_the_mean_over_queries() -> None:
    exact = [hits(("a", 0.1), ("b", 0.2)), hits(("c", 0.1), ("d", 0.2))]
    approximate = [hits(("a", 0.1), ("b", 0.2)), hits(("c", 0.1), ("z", 0.9))]
    assert recall_at_k(approximate, exact, 2) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="result lists"):
        recall_at_k(approximate[:1], exact, 2)
    with pytest.raises(ValueError, match="k must be"):
        recall_of_query([], exact[0], 0)


# -- queries ----------------------------------------------------------------------------------


def test_partial_quotation_keeps_the_first_share_of_the_words() -> None:
    assert (
        partial_quotation("one two three four five six seven eight nine ten") == "one two three four five six"
    )
    assert partial_quotation("one two three four five") == "one two three four"  # at least four words
    assert partial_quotation("Jesus wept.") == "Jesus wept."


def test_query_sets_are_deterministic_distinct_and_disjoint() -> None:
    verses = load_kjv_verses()
    first = choose_queries(verses, indexed=3_000, recall=200, latency=4_200, chat=1_000)
    assert first == choose_queries(verses, indexed=3_000, recall=200, latency=4_200, chat=1_000)
    assert len(first.recall) == len(set(first.recall_document_ids)) == 200
    # Held-out verses lie in the indexed part, spread over it.
    positions = {verse.document_id: index for index, verse in enumerate(verses)}
    recall_positions = sorted(positions[document_id] for document_id in first.recall_document_ids)
    assert recall_positions[0] < 30 and recall_positions[-1] > 2_970 and recall_positions[-1] < 3_000
    # No text is asked twice, and no latency query or chat question comes from a held-out verse.
    assert len(set(first.latency)) == 4_200 and len(set(first.chat)) == 1_000
    held_out_texts = {" ".join(verses[position].text.split()[:12]) for position in recall_positions}
    assert not held_out_texts & set(first.latency)
    for query, document_id in zip(first.recall, first.recall_document_ids, strict=True):
        assert verses[positions[document_id]].text.startswith(query)
    assert not set(first.recall) & set(first.latency)


def test_query_sets_refuse_impossible_requests() -> None:
    verses = [Verse("Genesis", "gn", 1, number, "the same words every time") for number in range(1, 30)]
    with pytest.raises(ValueError, match="distinct query texts"):
        choose_queries(verses, indexed=20, recall=5, latency=10, chat=0)
    with pytest.raises(ValueError, match="recall verses"):
        choose_queries(verses, indexed=20, recall=21, latency=1, chat=0)


# -- targets and the report --------------------------------------------------------------------


def test_targets_judge_in_their_direction() -> None:
    assert TARGETS["search_p95_ms"].judge(49.0) is True
    assert TARGETS["search_p95_ms"].judge(51.0) is False
    assert TARGETS["recall_at_10"].judge(0.95) is True
    assert TARGETS["chat_sse_vs_sync"].judge(2.9) is False
    assert TARGETS["cached_search_vs_bare"].judge(None) is None
    assert TARGETS["search_p99_ms"].describe() == "≤ 100 ms"
    assert TARGETS["chat_sse_vs_sync"].describe() == "≥ 3×"


def _report(config: ApiBenchConfig) -> ApiBenchReport:
    return ApiBenchReport(
        config=config,
        machine={"cpu": "test", "logical_cores": 2},
        setup={},
        search=LatencySummary.of([0.01, 0.02, 0.2], errors=0, wall_s=1.0),
        search_cpu={
            "machine_cpu": {
                "machine_busy_ms_per_request": 7.0,
                "machine_steal_ms_per_request": 0.1,
                "machine_busy_cores": 1.9,
                "cores": 2,
                "ms_per_request_by_role": {"dedicated API": 3.5, "Postgres": 1.2},
            }
        },
        recall={"recall_at_k": 0.97},
        cached_vs_bare={"ratio": 0.5},
        idle_streams={},
        chat={"ratio": 4.0},
    )


def test_a_full_run_judges_every_target_and_a_quick_run_none() -> None:
    judged = _report(ApiBenchConfig()).targets()
    assert {name: item["met"] for name, item in judged.items()} == {
        "search_p95_ms": False,
        "search_p99_ms": False,
        "recall_at_10": True,
        "cached_search_vs_bare": False,
        "chat_sse_vs_sync": True,
    }
    quick = _report(ApiBenchConfig.quick_run())
    assert all(item["met"] is None for item in quick.targets().values())
    document = quick.to_json()
    assert document["benchmark"] == "api" and document["quick"] is True
    assert math.isclose(document["targets"]["search_p95_ms"]["value"], quick.search.p95_ms or 0)


def test_the_table_shows_where_the_machine_cpu_went() -> None:
    rows = render_table(_report(ApiBenchConfig())).columns
    measurements, values, details = (list(column.cells) for column in rows)
    row = measurements.index("machine CPU per search")
    assert values[row] == "7.0 ms"
    assert (
        details[row] == "1.9 of 2 cores busy, 0.1 ms stolen; by role (ms): dedicated API 3.5 · Postgres 1.2"
    )


def test_cli_overrides_replace_only_what_was_given() -> None:
    config = with_overrides(ApiBenchConfig(), search_clients=8, idle_streams=None)
    assert config.search_clients == 8 and config.idle_streams == ApiBenchConfig().idle_streams


# -- the provider stand-in ---------------------------------------------------------------------


def test_the_schedule_spaces_tokens_after_the_first() -> None:
    schedule = GenerationSchedule(first_token_s=0.5, tokens_per_s=20.0, tokens=30)
    assert schedule.ready_at_s(0) == 0.5
    assert schedule.ready_at_s(1) == pytest.approx(0.55)
    assert schedule.total_s == pytest.approx(0.5 + 29 / 20)


def test_the_provider_streams_or_answers_whole_on_its_schedule() -> None:
    schedule = GenerationSchedule(first_token_s=0.05, tokens_per_s=100.0, tokens=3)
    transport = httpx.ASGITransport(app=create_provider_app(schedule))

    async def exchange() -> tuple[float, str, list[str]]:
        async with httpx.AsyncClient(transport=transport, base_url="http://provider") as client:
            started = asyncio.get_running_loop().time()
            whole = await client.post(
                "/v1/chat/completions", json={"model": "m", "messages": [], "stream": False}
            )
            waited = asyncio.get_running_loop().time() - started
            streamed = await client.post(
                "/v1/chat/completions", json={"model": "m", "messages": [], "stream": True}
            )
            lines = [line for line in streamed.text.splitlines() if line.startswith("data:")]
        return waited, whole.json()["choices"][0]["message"]["content"], lines

    waited, answer, lines = asyncio.run(exchange())
    assert waited >= schedule.total_s
    assert answer == "".join(token_text(index) for index in range(3))
    assert len(lines) == 4 and lines[-1] == "data: [DONE]"
