"""Settings: defaults, precedence (env over tidewire.toml), and errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidewire.errors import ConfigurationError
from tidewire.settings import PostgresSettings, load_settings


def test_defaults_describe_a_loopback_stack(clean_tidewire_environment: Path) -> None:
    settings = load_settings()
    assert settings.postgres.dsn().startswith("host=127.0.0.1 port=55432 dbname=tidewire user=tidewire")
    assert settings.kafka.bootstrap == "127.0.0.1:9092"
    assert settings.connect.url == "http://127.0.0.1:8083"
    assert settings.state_dir == clean_tidewire_environment / ".tidewire"
    assert settings.topics.cdc_topic("public", "documents") == "cdc.public.documents"
    assert settings.topics.dead_letter == "tidewire.dlq"


def test_the_toml_file_is_read_and_the_environment_wins(
    clean_tidewire_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_tidewire_environment / "tidewire.toml").write_text(
        '[postgres]\nport = 6000\ndatabase = "fromtoml"\n[topics]\nprefix = "acme"\n'
    )
    monkeypatch.setenv("TIDEWIRE_POSTGRES__PORT", "7000")
    settings = load_settings()
    assert settings.postgres.port == 7000
    assert settings.postgres.database == "fromtoml"
    assert settings.topics.ingest == "acme.ingest"


def test_an_explicit_config_file_replaces_tidewire_toml(clean_tidewire_environment: Path) -> None:
    other = clean_tidewire_environment / "other.toml"
    other.write_text('[kafka]\nbootstrap_servers = "broker:29092"\n')
    assert load_settings(other).kafka.bootstrap == "broker:29092"


def test_a_missing_explicit_config_file_is_an_error(clean_tidewire_environment: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_settings(clean_tidewire_environment / "nope.toml")


def test_a_bad_value_names_the_setting_and_its_variable(
    clean_tidewire_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEWIRE_POSTGRES__PORT", "not-a-port")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert "postgres.port (TIDEWIRE_POSTGRES__PORT)" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_an_unknown_section_in_the_toml_file_is_rejected(clean_tidewire_environment: Path) -> None:
    (clean_tidewire_environment / "tidewire.toml").write_text("[postgress]\nport = 1\n")
    with pytest.raises(ConfigurationError, match="postgress"):
        load_settings()


def test_production_rejects_the_development_passwords(
    clean_tidewire_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEWIRE_ENVIRONMENT", "production")
    with pytest.raises(ConfigurationError, match=r"postgres\.password is the development default"):
        load_settings()
    monkeypatch.setenv("TIDEWIRE_POSTGRES__PASSWORD", "s3cret-for-real")
    monkeypatch.setenv("TIDEWIRE_POSTGRES__REPLICATION_PASSWORD", "another-real-one")
    with pytest.raises(ConfigurationError, match=r"postgres\.api_password is the development default"):
        load_settings()
    monkeypatch.setenv("TIDEWIRE_POSTGRES__API_PASSWORD", "a-third-real-one")
    settings = load_settings()
    assert settings.environment == "production"
    assert "user=tidewire_api password=a-third-real-one" in settings.postgres.api_dsn()


def test_chunk_overlap_must_be_smaller_than_the_chunk(
    clean_tidewire_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEWIRE_EMBEDDING__CHUNK_TOKENS", "64")
    monkeypatch.setenv("TIDEWIRE_EMBEDDING__CHUNK_OVERLAP_TOKENS", "64")
    with pytest.raises(ConfigurationError, match="chunk_overlap_tokens"):
        load_settings()


@pytest.mark.parametrize("password", ["p@ss:w/rd", "two words", "back\\slash", "a%41b", "it's"])
def test_a_password_with_special_characters_reaches_both_drivers_intact(password: str) -> None:
    from psycopg.conninfo import conninfo_to_dict
    from sqlalchemy.engine import make_url

    postgres = PostgresSettings(password=password)  # type: ignore[arg-type]
    assert conninfo_to_dict(postgres.dsn())["password"] == password
    url = make_url(postgres.sqlalchemy_url())
    assert (url.password, url.host, url.port) == (password, "127.0.0.1", postgres.port)
