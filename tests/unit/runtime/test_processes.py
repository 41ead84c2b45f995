"""Pid records survive only while their process lives; a reused pid is not "running"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tidewire.runtime.processes import ProcessRecord, ProcessRegistry, start_detached, stop_process_tree


def test_a_detached_process_is_recorded_then_stopped(tmp_path: Path) -> None:
    registry = ProcessRegistry(tmp_path / "run")
    record = start_detached(
        "sleeper",
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
        log_file=tmp_path / "logs" / "sleeper.log",
        registry=registry,
    )
    assert registry.get("sleeper") == record
    process = record.process()
    assert process is not None
    stop_process_tree(process, timeout_s=5)
    assert not record.is_running()


def test_a_record_whose_pid_was_reused_is_not_running(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stale = ProcessRecord(name="x", pid=other.pid, started_at=0.0, command=["gone"], log_file="")
        assert not stale.is_running()
    finally:
        other.kill()
        other.wait()


def test_a_corrupt_record_is_dropped(tmp_path: Path) -> None:
    registry = ProcessRegistry(tmp_path)
    (tmp_path / "kafka.json").write_text('{"name": "kafka", "pid":')
    assert registry.get("kafka") is None
    assert registry.names() == []
