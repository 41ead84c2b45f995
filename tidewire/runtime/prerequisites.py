"""System prerequisites of the local runtime (a JDK, Maven, free ports), each with a one-line fix."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tidewire.errors import PrerequisiteError
from tidewire.runtime.readiness import port_is_free

MINIMUM_JAVA_MAJOR = 17
MINIMUM_MAVEN = (3, 6)


@dataclass(frozen=True)
class JavaRuntime:
    executable: Path
    major_version: int


def find_java() -> JavaRuntime:
    """The JDK to run Kafka with: ``$JAVA_HOME/bin/java``, else ``java`` on PATH; 17 or newer."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate is None or not candidate.exists():
        found = shutil.which("java")
        if found is None:
            raise PrerequisiteError(
                f"Java not found: install a JDK {MINIMUM_JAVA_MAJOR}+ "
                "(e.g. `apt-get install openjdk-17-jdk-headless`) or set JAVA_HOME"
            )
        candidate = Path(found)
    major = _java_major_version(candidate)
    if major < MINIMUM_JAVA_MAJOR:
        raise PrerequisiteError(
            f"Java {major} at {candidate} is too old: Kafka 4 needs Java {MINIMUM_JAVA_MAJOR}+; "
            "install a newer JDK or point JAVA_HOME at one"
        )
    return JavaRuntime(executable=candidate, major_version=major)


def _java_major_version(java: Path) -> int:
    try:
        result = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except OSError as error:
        raise PrerequisiteError(f"cannot run {java}: {error.strerror}; check your JDK install") from None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if match is None:
        raise PrerequisiteError(f"cannot tell the version of {java}; check that it is a working JDK")
    major = int(match.group(1))
    # Java 8 and older report "1.8.0_x".
    return int(match.group(2) or 0) if major == 1 else major


def find_maven() -> Path:
    """``mvn`` on PATH, 3.6 or newer."""
    found = shutil.which("mvn")
    if found is None:
        raise PrerequisiteError(
            "Maven not found: install Maven 3.6+ (e.g. `apt-get install maven`); "
            "it fetches the Kafka and Debezium jars"
        )
    try:
        result = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=60)
    except OSError as error:
        raise PrerequisiteError(f"cannot run {found}: {error.strerror}; check your Maven install") from None
    match = re.search(r"Apache Maven (\d+)\.(\d+)", result.stdout)
    if match is None:
        raise PrerequisiteError(f"cannot tell the version of {found}; is it Apache Maven?")
    version = (int(match.group(1)), int(match.group(2)))
    if version < MINIMUM_MAVEN:
        raise PrerequisiteError(
            f"Maven {version[0]}.{version[1]} is too old: install Maven "
            f"{MINIMUM_MAVEN[0]}.{MINIMUM_MAVEN[1]}+"
        )
    return Path(found)


def require_free_ports(ports: dict[str, tuple[str, int]]) -> None:
    """Fail with one line naming every busy port and the setting that moves it."""
    busy = [
        f"{host}:{port} ({setting})"
        for setting, (host, port) in ports.items()
        if not port_is_free(host, port)
    ]
    if busy:
        raise PrerequisiteError(
            f"port in use: {', '.join(busy)}; stop what listens there or choose another port "
            "(e.g. TIDEWIRE_KAFKA__PORT=19092 or [kafka] port in tidewire.toml)"
        )
