"""The CPU breakdown of a measured phase: per-role sums, new processes, the machine's busy time."""

from __future__ import annotations

import os
import time

from bench.machine_cpu import CpuSample, cpu_per_request, take_sample


def sample(wall_s: float, busy_s: float, steal_s: float, **by_process: tuple[str, float]) -> CpuSample:
    return CpuSample(
        wall_s=wall_s,
        busy_s=busy_s,
        steal_s=steal_s,
        by_process={int(pid.removeprefix("pid")): times for pid, times in by_process.items()},
    )


def test_each_role_gets_what_its_processes_spent_per_request() -> None:
    before = sample(100.0, 50.0, 1.0, pid1=("API", 10.0), pid2=("Postgres", 3.0), pid3=("Postgres", 4.0))
    after = sample(
        110.0,
        66.0,
        1.5,
        pid1=("API", 14.0),
        pid2=("Postgres", 4.0),
        pid3=("Postgres", 5.0),
        pid4=("Postgres", 0.5),  # started during the phase: counts from zero
    )
    breakdown = cpu_per_request(before, after, 1000)
    assert breakdown["machine_busy_ms_per_request"] == 16.0
    assert breakdown["machine_steal_ms_per_request"] == 0.5
    assert breakdown["machine_busy_cores"] == 1.6
    assert breakdown["ms_per_request_by_role"] == {
        "API": 4.0,
        "Postgres": 2.5,
    }  # largest first, idle left out
    assert list(breakdown["ms_per_request_by_role"]) == ["API", "Postgres"]


def test_a_sample_names_this_process_by_the_role_given_and_sees_its_cpu_grow() -> None:
    first = take_sample({os.getpid(): "benchmark client"})
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    second = take_sample({os.getpid(): "benchmark client"})
    role, seconds = second.by_process[os.getpid()]
    assert role == "benchmark client"
    assert seconds - first.by_process[os.getpid()][1] >= 0.04
    assert second.busy_s - first.busy_s >= 0.04
    assert {role for role, _ in second.by_process.values()} >= {"benchmark client"}
