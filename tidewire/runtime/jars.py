"""Resolving the Java runtime (Kafka, Kafka Connect, Debezium) from Maven Central with the pinned pom."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tidewire.errors import PrerequisiteError
from tidewire.runtime.prerequisites import find_java, find_maven
from tidewire.runtime.processes import read_log_tail

POM = Path("infra/maven/pom.xml")
MARKER = ".resolved"


class JarLayout:
    """Where the resolved jars live: ``kafka/`` (one classpath) and ``plugins/debezium/``."""

    def __init__(self, jars_dir: Path) -> None:
        self.root = jars_dir

    @property
    def kafka_classpath_dir(self) -> Path:
        return self.root / "kafka"

    @property
    def plugin_path(self) -> Path:
        return self.root / "plugins"

    @property
    def debezium_dir(self) -> Path:
        return self.plugin_path / "debezium"

    def classpath(self) -> str:
        return str(self.kafka_classpath_dir / "*")

    def is_resolved(self) -> bool:
        return (self.root / MARKER).exists() and any(self.kafka_classpath_dir.glob("kafka_2.13-*.jar"))

    def require_resolved(self) -> None:
        if not self.is_resolved():
            raise PrerequisiteError(
                f"Kafka jars missing in {self.root}: run `make setup` (or `tidewire install-jars`)"
            )


def install_jars(project_root: Path, jars_dir: Path, log_file: Path) -> JarLayout:
    """Run ``mvn dependency:copy-dependencies`` into a fresh folder, then swap it in.

    Copying into a fresh folder drops jars of older pinned versions; the swap keeps the
    previous set intact if resolution fails.
    """
    find_java()
    maven = find_maven()
    pom = project_root / POM
    if not pom.is_file():
        raise PrerequisiteError(f"{pom} not found: run this from the Tidewire checkout")
    staging = jars_dir.with_name(jars_dir.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(maven),
        "--batch-mode",
        "--no-transfer-progress",
        "-f",
        str(pom),
        f"-Djars.root={staging}",
        "dependency:copy-dependencies",
    ]
    with open(log_file, "w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        last_error = next(
            (line for line in reversed(read_log_tail(log_file, 60).splitlines()) if "[ERROR]" in line),
            "see the log",
        )
        raise PrerequisiteError(
            f"Maven could not resolve the Kafka/Debezium jars ({last_error.strip()[:200]}); "
            f"check access to Maven Central or ~/.m2/settings.xml; full log: {log_file}"
        )
    (staging / MARKER).write_text("resolved by tidewire install-jars\n")
    shutil.rmtree(jars_dir, ignore_errors=True)
    staging.replace(jars_dir)
    return JarLayout(jars_dir)
