"""What the Kafka broker and the Kafka Connect worker share: a JVM started from the resolved jars."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tidewire.runtime.jars import JarLayout
from tidewire.runtime.prerequisites import JavaRuntime
from tidewire.runtime.processes import ProcessRecord, ProcessRegistry, start_detached
from tidewire.runtime.state import StatePaths

_LOG4J2_PROPERTIES = """\
# Written by `tidewire up`. Everything goes to stdout, which the runtime appends to the service log.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
logger.state_change.name = state.change.logger
logger.state_change.level = WARN
"""


def write_properties(path: Path, properties: dict[str, str]) -> Path:
    """Write a Java .properties file (values here never need escaping beyond what we control)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Written by `tidewire up` at every start; change tidewire.toml instead.\n"
    path.write_text(header + "".join(f"{key}={value}\n" for key, value in properties.items()))
    return path


class PropertiesConfiguredJvm(Protocol):
    """A service run as one JVM whose only argument is its .properties file (the broker, Connect)."""

    name: str
    main_class: str
    config_file: Path
    jars: JarLayout
    paths: StatePaths
    registry: ProcessRegistry

    @property
    def heap(self) -> str: ...


def launch(service: PropertiesConfiguredJvm, java: JavaRuntime) -> ProcessRecord:
    """Start ``service`` with its config file (already written) as the only argument."""
    return start_jvm(
        service.name,
        java=java,
        jars=service.jars,
        paths=service.paths,
        registry=service.registry,
        heap=service.heap,
        main_class=service.main_class,
        arguments=[str(service.config_file)],
    )


def start_jvm(
    name: str,
    *,
    java: JavaRuntime,
    jars: JarLayout,
    paths: StatePaths,
    registry: ProcessRegistry,
    heap: str,
    main_class: str,
    arguments: list[str],
) -> ProcessRecord:
    """Start a JVM service detached, logging to ``logs/<name>.log``."""
    log4j_config = paths.config / "log4j2.properties"
    if not log4j_config.exists():
        log4j_config.parent.mkdir(parents=True, exist_ok=True)
        log4j_config.write_text(_LOG4J2_PROPERTIES)
    command = [
        str(java.executable),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j_config}",
        # Tag the command line so `down` can find strays of this state directory.
        f"-Dtidewire.state={paths.root}",
        "-cp",
        jars.classpath(),
        main_class,
        *arguments,
    ]
    return start_detached(name, command, log_file=paths.log_file(name), registry=registry)
