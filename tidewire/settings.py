"""The one settings object of a Tidewire process.

Values come, highest precedence first, from keyword arguments, ``TIDEWIRE_*``
environment variables (nested fields use ``__``: ``TIDEWIRE_POSTGRES__PORT=5433``),
the ``tidewire.toml`` file (path overridable with ``TIDEWIRE_CONFIG``), and the
defaults below. Read it once at an entry point with :func:`load_settings` and pass
it down; nothing else reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tidewire.errors import ConfigurationError
from tidewire.pipeline_spec import PipelineSpec, default_pipelines

DEVELOPMENT_PASSWORDS = frozenset({"tidewire-dev", "tidewire-replication-dev", "tidewire-api-dev"})


class PostgresSettings(BaseModel):
    """PostgreSQL with pgvector: the source tables and the vector index."""

    host: str = "127.0.0.1"
    port: int = Field(default=55432, ge=1, le=65535)
    database: str = "tidewire"
    user: str = "tidewire"
    password: SecretStr = SecretStr("tidewire-dev")
    replication_user: str = "tidewire_replication"
    replication_password: SecretStr = SecretStr("tidewire-replication-dev")
    api_user: str = Field(
        default="tidewire_api",
        description="The read API's role: LOGIN, no superuser, no BYPASSRLS, so row-level security binds it",
    )
    api_password: SecretStr = SecretStr("tidewire-api-dev")
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=8, ge=1)

    def dsn(self, *, database: str | None = None) -> str:
        """libpq connection string of the application role."""
        return _dsn(self.host, self.port, database or self.database, self.user, self.password)

    def replication_dsn(self) -> str:
        """libpq connection string of the replication role Debezium uses."""
        return _dsn(self.host, self.port, self.database, self.replication_user, self.replication_password)

    def api_dsn(self) -> str:
        """libpq connection string of the read API's role (row-level security applies to it)."""
        return _dsn(self.host, self.port, self.database, self.api_user, self.api_password)

    def sqlalchemy_url(self) -> str:
        """SQLAlchemy URL of the application role (psycopg 3 driver), used by migrations."""
        # Percent-encoded: a password may hold "@", ":" or "/" (SQLAlchemy decodes them back).
        user, password = quote(self.user, safe=""), quote(self.password.get_secret_value(), safe="")
        return (
            f"postgresql+psycopg://{user}:{password}@{self.host}:{self.port}/{quote(self.database, safe='')}"
        )


def _dsn(host: str, port: int, database: str, user: str, password: SecretStr) -> str:
    # make_conninfo quotes what libpq would otherwise split or unescape (spaces, quotes, backslashes).
    from psycopg.conninfo import make_conninfo  # imported here: reading settings needs no driver

    return make_conninfo(
        host=host, port=port, dbname=database, user=user, password=password.get_secret_value()
    )


class KafkaSettings(BaseModel):
    """The Kafka broker (KRaft, single node in the local runtime)."""

    host: str = "127.0.0.1"
    port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(default=9093, ge=1, le=65535)
    heap: str = "512m"
    default_partitions: int = Field(default=6, ge=1)
    bootstrap_servers: str | None = Field(
        default=None, description="Overrides host:port, e.g. for an external cluster."
    )
    schema_registry_url: str | None = Field(
        default=None,
        description="Confluent Schema Registry; without it Avro uses single-object encoding.",
    )

    @property
    def bootstrap(self) -> str:
        return self.bootstrap_servers or f"{self.host}:{self.port}"


class ConnectSettings(BaseModel):
    """Kafka Connect in distributed mode, with the Debezium PostgreSQL plugin."""

    host: str = "127.0.0.1"
    port: int = Field(default=8083, ge=1, le=65535)
    heap: str = "768m"
    group_id: str = "tidewire-connect"
    url_override: str | None = Field(default=None, alias="url")
    request_timeout_s: float = Field(default=10.0, gt=0)

    model_config = {"populate_by_name": True}

    @property
    def url(self) -> str:
        return self.url_override or f"http://{self.host}:{self.port}"


class TopicSettings(BaseModel):
    """Kafka topic names. CDC topics are ``<cdc_prefix>.<schema>.<table>``."""

    cdc_prefix: str = "cdc"
    prefix: str = "tidewire"

    @property
    def ingest(self) -> str:
        return f"{self.prefix}.ingest"

    @property
    def notifications(self) -> str:
        return f"{self.prefix}.notifications"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}.dlq"

    def cdc_topic(self, schema: str, table: str) -> str:
        return f"{self.cdc_prefix}.{schema}.{table}"


class OpenAIChatProvider(BaseModel):
    """Any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, Ollama, llama.cpp server)."""

    model_config = {"extra": "forbid"}

    kind: Literal["openai"] = "openai"
    name: str = Field(default="openai", description="Names the provider in logs, metrics and `done.usage`.")
    base_url: str = Field(pattern=r"^https?://", description="e.g. https://api.openai.com/v1")
    model: str
    api_key: SecretStr | None = None
    timeout_s: float = Field(default=30.0, gt=0, description="Longest silence while streaming an answer")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    first_token_timeout_s: float = Field(default=30.0, gt=0, description="Longest wait for the first token")
    max_retries: int = Field(default=2, ge=0, description="Retries on 429/5xx/connection errors")
    max_retry_after_s: float = Field(default=10.0, ge=0, description="A longer Retry-After moves on instead")
    breaker_failures: int = Field(default=5, ge=1, description="Consecutive failures that open the circuit")
    breaker_reset_s: float = Field(
        default=30.0, gt=0, description="How long an open circuit skips the provider"
    )
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.2, ge=0, le=2)


class ExtractiveChatProvider(BaseModel):
    """The built-in offline provider: the most relevant retrieved sentences, with citations."""

    model_config = {"extra": "forbid"}

    kind: Literal["extractive"] = "extractive"
    name: str = "extractive"
    max_sentences: int = Field(default=4, ge=1, le=20)


ChatProviderSettings = Annotated[OpenAIChatProvider | ExtractiveChatProvider, Field(discriminator="kind")]


class ApiSettings(BaseModel):
    """The FastAPI read side (``api/``): auth, limits, search, chat and the SSE streams."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    key_pepper: SecretStr | None = Field(
        default=None, description="HMAC key mixed into stored API key hashes; changing it revokes every key"
    )
    event_id_secret: SecretStr | None = Field(
        default=None,
        description="Key material of /v1/events ids (every API process needs the same); "
        "default: derived from postgres.api_password. Changing it makes clients' Last-Event-IDs a 422",
    )
    key_cache_ttl_s: float = Field(
        default=5.0,
        ge=0,
        description="How long a verified key is trusted without a lookup (revocation delay)",
    )
    rate_limit_per_s: float = Field(default=20.0, gt=0, description="Sustained requests per second per key")
    rate_limit_burst: int = Field(default=40, ge=1, description="Requests a key may send at once")
    max_body_bytes: int = Field(default=65_536, ge=1_024, description="Larger request bodies get 413")
    max_header_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=16_384,
        description="Longest request head (line and headers) accepted; longer ones get 431",
    )
    database_pool_size: int = Field(default=8, ge=1)
    inference_niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Nice value of the threads that run the query-embedding model (Linux): above the event "
        "loop's, so model calls yield the cores to it; 0 runs them at the event loop's priority",
    )
    query_cache_size: int = Field(default=1_024, ge=0, description="Query embeddings kept (LRU); 0: off")
    search_cache_entries: int = Field(
        default=1_024, ge=0, description="Search answers kept for repeated identical searches (LRU); 0: off"
    )
    search_cache_max_bytes: int = Field(
        default=32 * 1024 * 1024, ge=0, description="Bound on the serialized hits the search cache keeps"
    )
    search_cache_ttl_s: float = Field(
        default=30.0,
        ge=0,
        description="Longest life of a cached search answer; notifications of the tenant drop it sooner",
    )
    hnsw_ef_search: int = Field(
        default=110,
        ge=1,
        le=1_000,
        description="Candidates an HNSW search visits in the tenant's own graph (its partition)",
    )
    iterative_scan: Literal["relaxed_order", "strict_order", "off"] = Field(
        default="relaxed_order",
        description="pgvector iterative index scans, so filtered searches return k rows",
    )
    hnsw_max_scan_tuples: int = Field(default=20_000, ge=1)
    read_your_writes_max_wait_s: float = Field(
        default=5.0, ge=0, le=60, description="Longest wait for an `after` token to become searchable"
    )
    chat_k: int = Field(default=5, ge=1, le=20, description="Chunks retrieved for a chat question by default")
    chat_providers: list[ChatProviderSettings] = Field(
        default_factory=list, description="Tried in order; the extractive provider when empty"
    )
    chat_timeout_s: float = Field(default=120.0, gt=0, description="Longest whole chat answer")
    semantic_cache: bool = True
    semantic_cache_distance: float = Field(
        default=0.08, ge=0, le=2, description="Cosine distance under which a cached answer is reused"
    )
    semantic_cache_max_age_s: float = Field(
        default=7 * 86_400, gt=0, description="Oldest stored answer the semantic cache reuses"
    )
    answer_retention_days: float = Field(
        default=30, gt=0, description="Age past which `tidewire answers prune` deletes stored answers"
    )
    sse_ping_s: float = Field(default=15.0, gt=0, description="Comment heartbeat interval while idle")
    sse_send_timeout_s: float = Field(
        default=30.0, gt=0, description="A client that reads no event this long is dropped"
    )
    events_buffer: int = Field(
        default=10_000, ge=100, description="Recent notifications kept in memory for Last-Event-ID resumes"
    )
    events_client_queue: int = Field(
        default=1_000, ge=10, description="Events queued per SSE client before drop"
    )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class EmbeddingSettings(BaseModel):
    """The embedding engine (``models/``)."""

    model_id: str = "sentence-transformers/all-MiniLM-L6-v2"
    provider: Literal["auto", "cuda", "cpu"] = "auto"
    variant: Literal["auto", "fp32", "int8", "fp16"] = "auto"
    model_dir: Path = Path(".tidewire-models")
    intra_op_threads: int = Field(
        default=0, ge=0, description="Threads of a single model call; 0: one per physical core"
    )
    concurrent_calls: int = Field(
        default=0,
        ge=0,
        description=(
            "When a request splits into several model calls, how many run side by side, each on one "
            "thread; 0: one per physical core on the CPU, 1 (one call at a time) on CUDA"
        ),
    )
    max_batch_rows: int = Field(default=64, ge=1)
    max_batch_tokens: int = Field(
        default=8192, ge=1, description="Padded tokens the batcher gathers from its callers at most"
    )
    inference_batch_tokens: int = Field(
        default=0,
        ge=0,
        description=(
            "Padded tokens per model call at most; 0: 256 on the CPU (a small batch's activations stay "
            "in the CPU caches, measured faster), max_batch_tokens on CUDA"
        ),
    )
    max_wait_ms: float = Field(default=5.0, ge=0, description="How long the batcher waits to fill a batch")
    pad_multiple: int = Field(
        default=0,
        ge=0,
        description=(
            "Padded lengths are rounded up to this (shape buckets); 0: 1 on the CPU without the arena "
            "(no memory is kept per shape there), else 8"
        ),
    )
    cpu_memory_arena: bool = Field(
        default=False,
        description="ONNX Runtime's CPU arena: faster allocation, but keeps peak memory per shape",
    )
    reuse_freed_heap_memory: bool = Field(
        default=True,
        description=(
            "On the CPU with glibc, keep freed activation buffers in the heap for the next model call "
            "instead of unmapping them (mallopt thresholds); measured 15-20% faster batched calls"
        ),
    )
    intra_op_spinning: bool = Field(
        default=False, description="Let idle ORT threads spin; helps only on cores nothing else uses"
    )
    chunk_tokens: int = Field(
        default=256, ge=16, description="Tokens per chunk, [CLS]/[SEP] included; capped at the model limit"
    )
    chunk_overlap_tokens: int = Field(default=32, ge=0)

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> EmbeddingSettings:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError("chunk_overlap_tokens must be smaller than chunk_tokens")
        return self


class WebhookEndpoint(BaseModel):
    """An HTTP endpoint that receives every notification (of one tenant, when ``tenant`` is set)."""

    model_config = {"extra": "forbid"}

    url: str = Field(pattern=r"^https?://", description="Where notifications are POSTed.")
    secret: SecretStr = Field(description="HMAC-SHA256 key of the X-Tidewire-Signature header.")
    tenant: str | None = Field(default=None, description="Only this tenant's notifications; all when unset.")


class StreamsSettings(BaseModel):
    """The Faust stream processors (``streams/``): consumer group, batching, retries, webhooks."""

    app_id: str = Field(default="tidewire-streams", description="Faust app id = Kafka consumer group")
    workers: int = Field(default=1, ge=0, description="Worker processes `tidewire up` starts")
    batch_max_events: int = Field(default=512, ge=1, description="Most CDC events in one micro-batch")
    batch_max_wait_s: float = Field(default=0.1, gt=0, description="Longest wait to fill a micro-batch")
    retry_attempts: int = Field(
        default=6, ge=1, description="Tries of a batch's database/model work before the worker exits"
    )
    retry_initial_backoff_s: float = Field(default=0.5, gt=0)
    retry_max_backoff_s: float = Field(default=10.0, gt=0)
    web_port: int | None = Field(
        default=6066, ge=0, le=65535, description="Faust web server of worker 0 (worker i: +i); 0/None: off"
    )
    metrics_port: int | None = Field(
        default=9466,
        ge=0,
        le=65535,
        description="Prometheus /metrics of worker 0 (worker i: +i); 0/None: off",
    )
    webhooks: list[WebhookEndpoint] = Field(default_factory=list)
    webhook_attempts: int = Field(default=5, ge=1, description="Deliveries tried before the dead letter")
    webhook_initial_backoff_s: float = Field(default=1.0, gt=0)
    webhook_max_backoff_s: float = Field(default=30.0, gt=0)
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    webhook_circuit_failures: int = Field(
        default=3,
        ge=1,
        description=(
            "Deliveries in a row to one endpoint that failed every attempt before its circuit opens "
            "(its deliveries are then dead-lettered untried for webhook_circuit_open_s)"
        ),
    )
    webhook_circuit_open_s: float = Field(
        default=30.0, gt=0, description="How long an open circuit dead-letters before one delivery tests it"
    )
    startup_timeout_s: float = Field(
        default=90.0, gt=0, description="`tidewire up` waits this long per worker"
    )


class Settings(BaseSettings):
    """Everything a Tidewire process is configured with."""

    environment: Literal["development", "production"] = "development"
    state_dir: Path = Path(".tidewire")
    jars_dir: Path = Path(".tidewire-jars")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    postgres: PostgresSettings = PostgresSettings()
    kafka: KafkaSettings = KafkaSettings()
    connect: ConnectSettings = ConnectSettings()
    topics: TopicSettings = TopicSettings()
    api: ApiSettings = ApiSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    streams: StreamsSettings = StreamsSettings()
    pipelines: list[PipelineSpec] = Field(default_factory=default_pipelines)

    model_config = SettingsConfigDict(
        env_prefix="TIDEWIRE_",
        env_nested_delimiter="__",
        extra="forbid",
        toml_file="tidewire.toml",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @field_validator("state_dir", "jars_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("pipelines")
    @classmethod
    def _distinct_pipelines(cls, pipelines: list[PipelineSpec]) -> list[PipelineSpec]:
        if not pipelines:
            raise ValueError("declare at least one [[pipelines]] entry (or none, for the default)")
        for attribute in ("name", "source_table"):
            values = [getattr(pipeline, attribute) for pipeline in pipelines]
            duplicates = sorted({value for value in values if values.count(value) > 1})
            if duplicates:
                raise ValueError(f"two pipelines share the {attribute} {', '.join(duplicates)}")
        return pipelines

    def pipeline(self, name: str) -> PipelineSpec:
        """The pipeline called ``name``; a :class:`ConfigurationError` lists the known ones otherwise."""
        for pipeline in self.pipelines:
            if pipeline.name == name:
                return pipeline
        known = ", ".join(pipeline.name for pipeline in self.pipelines)
        raise ConfigurationError(f"no pipeline named {name!r}; known pipelines: {known}")

    @model_validator(mode="after")
    def _no_development_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            for name, secret in (
                ("postgres.password", self.postgres.password),
                ("postgres.replication_password", self.postgres.replication_password),
                ("postgres.api_password", self.postgres.api_password),
            ):
                if secret.get_secret_value() in DEVELOPMENT_PASSWORDS:
                    raise ValueError(f"{name} is the development default; set a real secret for production")
        return self


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Read the settings once, turning validation errors into one readable :class:`ConfigurationError`.

    ``config_file`` replaces ``tidewire.toml``; a path given explicitly must exist.
    """
    if config_file is not None and not config_file.is_file():
        raise ConfigurationError(f"config file {config_file} does not exist; check the --config path")
    toml_file = config_file or Path(os.environ.get("TIDEWIRE_CONFIG", "tidewire.toml"))
    # A subclass carries the file name, so nothing global (like os.environ) has to change.
    settings_class = type(
        "Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": toml_file}}
    )
    try:
        return settings_class(**overrides)
    except ValidationError as error:
        raise ConfigurationError(describe_validation_error(error)) from None


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, naming the setting as a user writes it (dotted path and env variable)."""
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        env_name = "TIDEWIRE_" + "__".join(str(part).upper() for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{location} ({env_name}): {message}" if location else message)
    return "invalid settings: " + "; ".join(problems)
