"""``tidewire bench embed``: throughput of the embedding engine against the libraries people use.

Inputs are fixed and public: the first 2,000 verses of the King James Bible (PyPI ``bible-cli``,
read as a file, never imported) and paragraphs of 200 tokens cut from the same text. Every
configuration runs on the same inputs in the same process, interleaved round by round so that
background load on a shared machine hits them alike; the table reports the median round.

Rows: each built variant batched (sorted by length, padded per batch), the naive path (one model
call per text), sentence-transformers on PyTorch when it is importable (2 threads, batch 64,
max_seq_length 256, normalized), and CUDA variants when a GPU is present.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from models.batch_planning import PlannedBatch, bucketed_length
from models.build import Variant, ensure_models_built
from models.embedder import Embedder, cuda_available
from models.errors import EmbeddingError
from models.tokenizer import TextTokenizer
from models.weights import locate_minilm
from tidewire.settings import EmbeddingSettings

if TYPE_CHECKING:
    from rich.table import Table

PARAGRAPH_TOKENS = 200
SENTENCE_TRANSFORMERS_THREADS = 2
SENTENCE_TRANSFORMERS_BATCH = 64
TARGETS = {
    "int8_vs_sentence_transformers": 3.0,
    "fp32_vs_sentence_transformers": 1.3,
    "batched_vs_naive": 2.5,
}


@dataclass(frozen=True)
class EmbedBenchConfig:
    """What one benchmark run measures."""

    verses: int = 2000
    paragraphs: int = 100
    rounds: int = 3
    naive_texts: int = 300
    variants: tuple[Variant, ...] = ("fp32", "int8")
    sentence_transformers: bool = True
    slices: int = 4
    memory_batches: int = 300
    memory_max_rows: int | None = None

    @classmethod
    def quick(cls) -> EmbedBenchConfig:
        """A smoke run of a few seconds (unit tests, CI)."""
        return cls(
            verses=32, paragraphs=2, rounds=1, slices=1, naive_texts=4, memory_batches=3, memory_max_rows=4
        )


@dataclass
class Measurement:
    """One configuration on one data set, timed slice by slice over several rounds."""

    dataset: str
    engine: str
    variant: str
    provider: str
    mode: str
    texts: list[str]
    tokens: int
    # seconds[slice][round]; tokenize_seconds likewise, for the rows that tokenize separately
    seconds: list[list[float]] = field(default_factory=list)
    tokenize_seconds: list[list[float]] = field(default_factory=list)

    @property
    def best_seconds(self) -> float:
        """Sum over slices of each slice's fastest round: the run least disturbed by other load."""
        return sum(min(rounds) for rounds in self.seconds)

    @property
    def median_seconds(self) -> float:
        rounds = len(self.seconds[0])
        return statistics.median(
            sum(per_slice[index] for per_slice in self.seconds) for index in range(rounds)
        )

    @property
    def sentences_per_s(self) -> float:
        return len(self.texts) / self.best_seconds

    @property
    def median_sentences_per_s(self) -> float:
        return len(self.texts) / self.median_seconds

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.best_seconds

    @property
    def tokenize_share(self) -> float | None:
        if not self.tokenize_seconds:
            return None
        tokenizing = sum(value for per_slice in self.tokenize_seconds for value in per_slice)
        return tokenizing / sum(value for per_slice in self.seconds for value in per_slice)

    def summary(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "engine": self.engine,
            "variant": self.variant,
            "provider": self.provider,
            "mode": self.mode,
            "texts": len(self.texts),
            "tokens": self.tokens,
            "best_seconds": round(self.best_seconds, 4),
            "median_seconds": round(self.median_seconds, 4),
            "sentences_per_s": round(self.sentences_per_s, 1),
            "median_sentences_per_s": round(self.median_sentences_per_s, 1),
            "tokens_per_s": round(self.tokens_per_s, 0),
            "tokenize_share": None if self.tokenize_share is None else round(self.tokenize_share, 3),
            "slice_round_seconds": [[round(value, 4) for value in rounds] for rounds in self.seconds],
        }


@dataclass
class EmbedBenchReport:
    """Everything ``tidewire bench embed`` prints and writes."""

    machine: dict[str, Any]
    config: dict[str, Any]
    measurements: list[Measurement]
    ratios: dict[str, dict[str, float | bool | None]]
    memory: dict[str, Any]
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "config": self.config,
            "results": [measurement.summary() for measurement in self.measurements],
            "ratios": self.ratios,
            "memory": self.memory,
            "notes": self.notes,
        }


def load_kjv_verses(limit: int) -> list[str]:
    """The first ``limit`` verses of the KJV, in canonical order, from ``bible_cli/dataset.json``."""
    spec = importlib.util.find_spec("bible_cli")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError("the bench corpus needs the bible-cli package; run `make setup`")
    dataset = Path(next(iter(spec.submodule_search_locations))) / "dataset.json"
    # The file starts with a byte-order mark; `import bible_cli` would need a terminal.
    books = json.loads(dataset.read_text(encoding="utf-8-sig"))
    verses = [verse for book in books for chapter in book["chapters"] for verse in chapter]
    return verses[:limit]


def build_paragraphs(verses: Sequence[str], tokenizer: TextTokenizer, count: int) -> list[str]:
    """Paragraphs of exactly :data:`PARAGRAPH_TOKENS` tokens: consecutive verses, cut at a token end."""
    paragraphs: list[str] = []
    buffer: list[str] = []
    for verse in _cycle(verses):
        if len(paragraphs) >= count:
            break
        buffer.append(verse)
        text = " ".join(buffer)
        spans = tokenizer.spans(text)
        if len(spans.ids) >= PARAGRAPH_TOKENS:
            paragraphs.append(text[: spans.offsets[PARAGRAPH_TOKENS - 1][1]])
            buffer = []
    return paragraphs


def _cycle(items: Sequence[str]) -> Any:
    while True:
        yield from items


def run_embed_benchmark(
    settings: EmbeddingSettings,
    config: EmbedBenchConfig,
    *,
    progress: Callable[[str], None] = lambda _message: None,
) -> EmbedBenchReport:
    """Measure every configuration on the verses and paragraphs; see the module docstring.

    1. Build (or reuse) the models, load the inputs.
    2. Open one embedder per variant and provider; warm each up on every input once.
    3. Time ``config.rounds`` interleaved rounds of every configuration.
    4. Compute the ratios against the targets and the memory check on random shapes.
    """
    # 1. Models and inputs
    ensure_models_built(settings.model_dir, model_id=settings.model_id)
    verses = load_kjv_verses(config.verses)
    cpu_settings = settings.model_copy(update={"provider": "cpu"})
    embedders: dict[tuple[str, str], Embedder] = {
        (variant, "cpu"): Embedder.from_settings(cpu_settings, variant=variant) for variant in config.variants
    }
    notes: list[str] = []
    if cuda_available():
        cuda_settings = settings.model_copy(update={"provider": "cuda"})
        for variant in ("fp16", "fp32"):
            try:
                embedders[(variant, "cuda")] = Embedder.from_settings(cuda_settings, variant=variant)
            except EmbeddingError as error:
                notes.append(f"cuda {variant}: {error.message}")
    else:
        notes.append("GPU: not yet measured (no CUDA GPU / onnxruntime-gpu available in this run)")
    tokenizer = next(iter(embedders.values())).tokenizer
    datasets = {"verses": verses, "paragraphs": build_paragraphs(verses, tokenizer, config.paragraphs)}
    # `--paragraphs 0` asks for no paragraph run at all, not for an empty one.
    datasets = {name: texts for name, texts in datasets.items() if texts}

    # 2. Configurations: a measurement and a function timing one slice of its texts.
    runners: list[tuple[Measurement, SliceRunner]] = []

    def add(
        dataset: str,
        engine: str,
        variant: str,
        provider: str,
        mode: str,
        texts: list[str],
        runner: SliceRunner,
    ) -> None:
        tokens = sum(len(ids) for ids in tokenizer.encode_batch(texts))
        runners.append((Measurement(dataset, engine, variant, provider, mode, texts, tokens), runner))

    sentence_transformers = _load_sentence_transformers() if config.sentence_transformers else None
    if sentence_transformers is None and config.sentence_transformers:
        notes.append(
            "sentence-transformers: not importable here, no comparison row (pip install sentence-transformers)"
        )
    for dataset, texts in datasets.items():
        for (variant, provider), embedder in embedders.items():
            add(dataset, "tidewire", variant, provider, "batched", texts, _batched_runner(embedder))
        for variant in config.variants:
            add(
                dataset,
                "tidewire",
                variant,
                "cpu",
                "naive",
                texts[: config.naive_texts],
                _naive_runner(embedders[(variant, "cpu")]),
            )
        if sentence_transformers is not None:
            add(
                dataset,
                "sentence-transformers",
                "fp32",
                "cpu",
                "batched",
                texts,
                _sentence_transformers_runner(sentence_transformers),
            )

    # 3. Warm-up on the first slice, then rounds interleaved slice by slice: a burst of load from
    # other processes then hits every configuration alike, and each slice keeps its best round.
    for measurement, runner in runners:
        progress(f"warm-up {_label(measurement)}")
        runner(_slices(measurement.texts, config.slices)[0])
        measurement.seconds = [[] for _ in _slices(measurement.texts, config.slices)]
        measurement.tokenize_seconds = [[] for _ in measurement.seconds]
    for round_index in range(config.rounds):
        for slice_index in range(config.slices):
            progress(f"round {round_index + 1}/{config.rounds}, slice {slice_index + 1}/{config.slices}")
            for measurement, runner in runners:
                slices = _slices(measurement.texts, config.slices)
                if slice_index >= len(slices):
                    continue
                gc.collect()
                total, tokenize = runner(slices[slice_index])
                measurement.seconds[slice_index].append(total)
                if tokenize is not None:
                    measurement.tokenize_seconds[slice_index].append(tokenize)
    for measurement, _ in runners:
        if not any(measurement.tokenize_seconds):
            measurement.tokenize_seconds = []

    # 4. Ratios and memory
    measurements = [measurement for measurement, _ in runners]
    memory = measure_memory_on_random_shapes(
        embedders[(config.variants[-1], "cpu")], config.memory_batches, max_rows=config.memory_max_rows
    )
    return EmbedBenchReport(
        machine=describe_machine(),
        config={
            **asdict(config),
            "onnxruntime": _onnxruntime_version(),
            "threads": cpu_settings.intra_op_threads,
        },
        measurements=measurements,
        ratios=compute_ratios(measurements),
        memory=memory,
        notes=notes,
    )


def _label(measurement: Measurement) -> str:
    return f"{measurement.dataset} {measurement.engine} {measurement.variant} {measurement.provider} {measurement.mode}"


SliceRunner = Callable[[Sequence[str]], tuple[float, float | None]]


def _slices(texts: Sequence[str], count: int) -> list[Sequence[str]]:
    size = -(-len(texts) // count)
    return [texts[start : start + size] for start in range(0, len(texts), size)]


def _batched_runner(embedder: Embedder) -> SliceRunner:
    def run(texts: Sequence[str]) -> tuple[float, float | None]:
        started = time.perf_counter()
        token_ids = embedder.tokenizer.encode_batch(texts)
        tokenized = time.perf_counter()
        embedder.embed_token_ids(token_ids)
        finished = time.perf_counter()
        return finished - started, tokenized - started

    return run


def _naive_runner(embedder: Embedder) -> SliceRunner:
    def run(texts: Sequence[str]) -> tuple[float, float | None]:
        started = time.perf_counter()
        for text in texts:
            embedder.embed([text])
        return time.perf_counter() - started, None

    return run


def _load_sentence_transformers() -> Any | None:
    # Optional comparison only: nothing in Tidewire needs PyTorch.
    if importlib.util.find_spec("sentence_transformers") is None or importlib.util.find_spec("torch") is None:
        return None
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(SENTENCE_TRANSFORMERS_THREADS)
    # A local directory: no hub access.
    model = SentenceTransformer(str(locate_minilm().directory), device="cpu")
    model.max_seq_length = 256
    return model


def _sentence_transformers_runner(model: Any) -> SliceRunner:
    def run(texts: Sequence[str]) -> tuple[float, float | None]:
        started = time.perf_counter()
        model.encode(list(texts), batch_size=SENTENCE_TRANSFORMERS_BATCH, normalize_embeddings=True)
        return time.perf_counter() - started, None

    return run


def compute_ratios(measurements: Sequence[Measurement]) -> dict[str, dict[str, float | bool | None]]:
    """Speed-ups on the verses against the targets of the issue (None when a row is missing)."""

    def rate(engine: str, variant: str, mode: str) -> float | None:
        for measurement in measurements:
            if (
                measurement.dataset,
                measurement.engine,
                measurement.variant,
                measurement.provider,
                measurement.mode,
            ) == (
                "verses",
                engine,
                variant,
                "cpu",
                mode,
            ):
                return measurement.sentences_per_s
        return None

    def ratio(
        numerator: float | None, denominator: float | None, target: float
    ) -> dict[str, float | bool | None]:
        if numerator is None or denominator is None:
            return {"value": None, "target": target, "met": None}
        value = numerator / denominator
        return {"value": round(value, 2), "target": target, "met": value >= target}

    baseline = rate("sentence-transformers", "fp32", "batched")
    return {
        "int8_batched_vs_sentence_transformers": ratio(
            rate("tidewire", "int8", "batched"), baseline, TARGETS["int8_vs_sentence_transformers"]
        ),
        "fp32_batched_vs_sentence_transformers": ratio(
            rate("tidewire", "fp32", "batched"), baseline, TARGETS["fp32_vs_sentence_transformers"]
        ),
        "int8_batched_vs_naive": ratio(
            rate("tidewire", "int8", "batched"),
            rate("tidewire", "int8", "naive"),
            TARGETS["batched_vs_naive"],
        ),
        "fp32_batched_vs_naive": ratio(
            rate("tidewire", "fp32", "batched"),
            rate("tidewire", "fp32", "naive"),
            TARGETS["batched_vs_naive"],
        ),
    }


def measure_memory_on_random_shapes(
    embedder: Embedder, batches: int, *, max_rows: int | None = None, seed: int = 20
) -> dict[str, Any]:
    """RSS after a warm-up third of random (rows, length) batches, and after all of them."""
    rng = random.Random(seed)
    limits = embedder.options.limits
    process = psutil.Process()
    samples: list[float] = []
    warm_up = max(1, batches // 3)
    for index in range(batches):
        rows = rng.randint(1, max_rows or limits.max_rows)
        length = bucketed_length(rng.randint(2, embedder.max_tokens), limits)
        token_ids = [[101, *rng.choices(range(1000, 29000), k=length - 2), 102] for _ in range(rows)]
        embedder.run_batch(token_ids, PlannedBatch(tuple(range(rows)), length))
        if index + 1 == warm_up or index + 1 == batches:
            samples.append(process.memory_info().rss / 2**20)
    return {
        "variant": embedder.variant,
        "batches": batches,
        "rss_mib_after_warm_up": round(samples[0], 1),
        "rss_mib_at_end": round(samples[-1], 1),
        "growth_mib": round(samples[-1] - samples[0], 1),
        "cpu_memory_arena": embedder.options.cpu_memory_arena,
        "pad_multiple": limits.pad_multiple,
    }


def describe_machine() -> dict[str, Any]:
    """CPU model, cores and memory, as the benchmark document names them."""
    cpu_model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu_model,
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "cuda": cuda_available(),
    }


def _onnxruntime_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def write_report(report: EmbedBenchReport, output: Path) -> None:
    """Write the JSON results (``--output``), creating the folder."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")


def render_table(report: EmbedBenchReport) -> Table:
    """The results as a rich table (imported lazily: only the CLI renders)."""
    from rich.table import Table

    table = Table(
        title=f"Embedding throughput — {report.machine['cpu']}, {report.machine['physical_cores']} cores"
    )
    for column in (
        "data set",
        "engine",
        "variant",
        "provider",
        "mode",
        "texts",
        "sentences/s (best)",
        "sentences/s (median)",
        "tokens/s (best)",
        "tokenize",
    ):
        table.add_column(
            column,
            justify="left" if column in {"data set", "engine", "variant", "provider", "mode"} else "right",
        )
    for measurement in report.measurements:
        share = measurement.tokenize_share
        table.add_row(
            measurement.dataset,
            measurement.engine,
            measurement.variant,
            measurement.provider,
            measurement.mode,
            str(len(measurement.texts)),
            f"{measurement.sentences_per_s:,.1f}",
            f"{measurement.median_sentences_per_s:,.1f}",
            f"{measurement.tokens_per_s:,.0f}",
            "" if share is None else f"{share:.1%}",
        )
    return table


def format_ratios(report: EmbedBenchReport) -> list[str]:
    """The lines printed under the table: ratios against the targets, memory, notes."""
    lines = []
    for name, ratio in report.ratios.items():
        if ratio["value"] is None:
            lines.append(f"{name}: not measured (target ≥ {ratio['target']}×)")
        else:
            verdict = "met" if ratio["met"] else "NOT met"
            lines.append(f"{name}: {ratio['value']}× (target ≥ {ratio['target']}×, {verdict})")
    memory = report.memory
    lines.append(
        f"memory ({memory['variant']}, {memory['batches']} random shapes): RSS {memory['rss_mib_after_warm_up']} MiB "
        f"after warm-up → {memory['rss_mib_at_end']} MiB at the end ({memory['growth_mib']:+} MiB)"
    )
    return lines + report.notes
