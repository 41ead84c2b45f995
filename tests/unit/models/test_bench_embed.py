"""Smoke test of ``tidewire bench embed --quick`` (the real numbers live in docs/benchmarks.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.embed import PARAGRAPH_TOKENS, build_paragraphs, load_kjv_verses
from models.build import BuildResult
from models.embedder import Embedder
from tidewire.cli import main
from tidewire.settings import EmbeddingSettings


def test_corpus_is_the_kjv_in_order() -> None:
    verses = load_kjv_verses(3)
    assert verses[0] == "In the beginning God created the heaven and the earth."
    assert len(verses) == 3


def test_paragraphs_have_exactly_200_tokens(fp32_embedder: Embedder) -> None:
    paragraphs = build_paragraphs(load_kjv_verses(100), fp32_embedder.tokenizer, 3)
    assert len(paragraphs) == 3
    for paragraph in paragraphs:
        assert len(fp32_embedder.tokenizer.spans(paragraph).ids) == PARAGRAPH_TOKENS


def test_quick_bench_writes_json(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    embedding_settings: EmbeddingSettings,
    built_model: BuildResult,
) -> None:
    monkeypatch.setenv("TIDEWIRE_EMBEDDING__MODEL_DIR", str(embedding_settings.model_dir))
    output = tmp_path / "embed.json"
    assert (
        main(["bench", "embed", "--quick", "--no-sentence-transformers", "--output", str(output), "--json"])
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    written = json.loads(output.read_text(encoding="utf-8"))
    assert printed == written
    modes = {(row["dataset"], row["variant"], row["mode"]) for row in written["results"]}
    assert ("verses", "int8", "batched") in modes and ("paragraphs", "fp32", "naive") in modes
    assert all(row["sentences_per_s"] > 0 for row in written["results"])
    assert written["ratios"]["int8_batched_vs_naive"]["value"] is not None
    assert written["ratios"]["int8_batched_vs_sentence_transformers"]["value"] is None
    assert "rss_mib_at_end" in written["memory"]


def test_no_paragraphs_means_no_paragraph_rows(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    embedding_settings: EmbeddingSettings,
    built_model: BuildResult,
) -> None:
    monkeypatch.setenv("TIDEWIRE_EMBEDDING__MODEL_DIR", str(embedding_settings.model_dir))
    output = tmp_path / "embed.json"
    arguments = ["bench", "embed", "--quick", "--paragraphs", "0", "--no-sentence-transformers"]
    assert main([*arguments, "--output", str(output), "--json"]) == 0
    capsys.readouterr()
    datasets = {row["dataset"] for row in json.loads(output.read_text(encoding="utf-8"))["results"]}
    assert datasets == {"verses"}
