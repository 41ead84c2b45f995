"""``tidewire embed`` and ``tidewire model build`` through the CLI entry point."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from models.build import BuildResult
from tests.unit.models.conftest import Reference, cosine
from tidewire.cli import main
from tidewire.cli.embedding_commands import read_text_array
from tidewire.settings import EmbeddingSettings


@pytest.fixture
def configured(
    monkeypatch: pytest.MonkeyPatch, embedding_settings: EmbeddingSettings, built_model: BuildResult
) -> None:
    monkeypatch.setenv("TIDEWIRE_EMBEDDING__MODEL_DIR", str(embedding_settings.model_dir))
    monkeypatch.setenv("TIDEWIRE_EMBEDDING__PROVIDER", "cpu")


def _run(monkeypatch: pytest.MonkeyPatch, stdin: str, *args: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(list(args))


@pytest.mark.usefixtures("configured")
def test_embed_prints_model_variant_dim_and_vectors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], reference: Reference
) -> None:
    assert _run(monkeypatch, json.dumps(reference.texts[:3]), "embed", "--variant", "fp32", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert (document["variant"], document["dim"]) == ("fp32", 384)
    embeddings = np.array(document["embeddings"], dtype=np.float32)
    assert cosine(embeddings, reference.embeddings[:3]).min() >= 0.999


@pytest.mark.usefixtures("configured")
def test_embed_defaults_to_int8_on_cpu(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(monkeypatch, '["hello"]', "embed") == 0
    assert json.loads(capsys.readouterr().out)["variant"] == "int8"


@pytest.mark.usefixtures("configured")
@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("not json", "stdin is not JSON"),
        ('{"a": 1}', "got dict"),
        ('["ok", 3]', "non-string"),
        ("", "not JSON"),
    ],
)
def test_bad_input_is_one_line_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str, message: str
) -> None:
    assert _run(monkeypatch, stdin, "embed") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err
    assert len(captured.err.strip().splitlines()) == 1


@pytest.mark.usefixtures("configured")
def test_model_build_is_idempotent_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "build"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["model", "build", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["rebuilt"] is False
    assert document["seconds"] < 1.0


def test_read_text_array_accepts_an_empty_array() -> None:
    assert read_text_array("[]") == []
