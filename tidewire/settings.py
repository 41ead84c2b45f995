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
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tidewire.errors import ConfigurationError
from tidewire.pipeline_spec import PipelineSpec, default_pipelines

DEVELOPMENT_PASSWORDS = frozenset({"tidewire-dev", "tidewire-replication-dev"})


class PostgresSettings(BaseModel):
    """PostgreSQL with pgvector: the source tables and the vector index."""

    host: str = "127.0.0.1"
    port: int = Field(default=55432, ge=1, le=65535)
    database: str = "tidewire"
    user: str = "tidewire"
    password: SecretStr = SecretStr("tidewire-dev")
    replication_user: str = "tidewire_replication"
    replication_password: SecretStr = SecretStr("tidewire-replication-dev")
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=8, ge=1)

    def dsn(self, *, database: str | None = None) -> str:
        """libpq connection string of the application role."""
        return _dsn(self.host, self.port, database or self.database, self.user, self.password)

    def replication_dsn(self) -> str:
        """libpq connection string of the replication role Debezium uses."""
        return _dsn(self.host, self.port, self.database, self.replication_user, self.replication_password)

    def sqlalchemy_url(self) -> str:
        """SQLAlchemy URL of the application role (psycopg 3 driver), used by migrations."""
        password = self.password.get_secret_value()
        return f"postgresql+psycopg://{self.user}:{password}@{self.host}:{self.port}/{self.database}"


def _dsn(host: str, port: int, database: str, user: str, password: SecretStr) -> str:
    return f"host={host} port={port} dbname={database} user={user} password={password.get_secret_value()}"


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


class ApiSettings(BaseModel):
    """The FastAPI read side."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class EmbeddingSettings(BaseModel):
    """The embedding engine (``models/``)."""

    model_id: str = "sentence-transformers/all-MiniLM-L6-v2"
    provider: Literal["auto", "cuda", "cpu"] = "auto"
    variant: Literal["auto", "fp32", "int8", "fp16"] = "auto"
    model_dir: Path = Path(".tidewire-models")
    intra_op_threads: int = Field(default=0, ge=0, description="0: one per physical core")
    max_batch_rows: int = Field(default=64, ge=1)
    max_batch_tokens: int = Field(default=8192, ge=1)
    max_wait_ms: float = Field(default=5.0, ge=0)
    chunk_tokens: int = Field(default=256, ge=16)
    chunk_overlap_tokens: int = Field(default=32, ge=0)

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> EmbeddingSettings:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError("chunk_overlap_tokens must be smaller than chunk_tokens")
        return self


class StreamsSettings(BaseModel):
    """The Faust stream processors (``streams/``): consumer group, batching, retries, webhooks."""

    app_id: str = "tidewire-streams"
    workers: int = Field(default=1, ge=0, description="Worker processes `tidewire up` starts")


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
