"""Missing or outdated Java and Maven, and Maven failures: one clear line naming the fix."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

TIDEWIRE = str(Path(sys.executable).with_name("tidewire"))


def _fake_program(folder: Path, name: str, script: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / name
    program.write_text("#!/bin/sh\n" + script)
    program.chmod(program.stat().st_mode | stat.S_IEXEC)


def _run(
    args: list[str], *, path: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "JAVA_HOME"}
    env.update({"PATH": path, **(extra_env or {})})
    return subprocess.run(
        [TIDEWIRE, *args], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120
    )


def _assert_one_clear_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_java_is_one_line(tmp_path: Path) -> None:
    result = _run(["up", "--detach"], path=str(tmp_path / "empty"))
    _assert_one_clear_line(result, "Java not found: install a JDK 17+")


def test_java_too_old_is_one_line(tmp_path: Path) -> None:
    _fake_program(tmp_path / "bin", "java", "echo 'openjdk version \"11.0.22\" 2024-01-16' >&2\n")
    result = _run(["up", "--detach"], path=str(tmp_path / "bin"))
    _assert_one_clear_line(result, "Java 11")


def test_missing_maven_is_one_line(tmp_path: Path) -> None:
    java_dir = str(
        Path(subprocess.check_output(["readlink", "-f", "/usr/bin/java"], text=True).strip()).parent
    )
    result = _run(["install-jars"], path=java_dir)
    _assert_one_clear_line(result, "Maven not found")


@pytest.mark.slow
def test_a_maven_resolution_failure_is_one_line_and_keeps_the_old_jars(tmp_path: Path) -> None:
    # Offline, with an empty local repository: nothing can resolve.
    home = tmp_path / "home"
    _fake_settings = home / ".m2" / "settings.xml"
    _fake_settings.parent.mkdir(parents=True)
    _fake_settings.write_text("<settings><offline>true</offline></settings>")
    jars_dir = tmp_path / "jars"
    (jars_dir / "kafka").mkdir(parents=True)
    (jars_dir / "kafka" / "kept.jar").write_text("previous")
    result = _run(
        ["install-jars"],
        path=os.environ["PATH"],
        extra_env={
            "MAVEN_OPTS": f"-Duser.home={home} -Dmaven.repo.local={home / 'repository'}",
            "TIDEWIRE_JARS_DIR": str(jars_dir),
            "TIDEWIRE_STATE_DIR": str(tmp_path / "state"),
        },
    )
    _assert_one_clear_line(result, "Maven could not resolve the Kafka/Debezium jars")
    assert (jars_dir / "kafka" / "kept.jar").read_text() == "previous"
    assert (tmp_path / "state" / "logs" / "maven.log").is_file()
