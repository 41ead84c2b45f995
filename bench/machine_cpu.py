"""Where the machine's CPU went during a measured phase.

On a small machine the load generator, the servers and the whole stack share the cores, so a
throughput says little without the split: this takes every process's CPU time, and the machine's busy
and stolen time, before and after a phase, and reports them per request, grouped by role (the API,
Postgres, Kafka, the stream workers...).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psutil

KERNEL_THREADS = "kernel threads"
OTHER = "other processes"

# Java processes by the main class on their command line.
_JAVA_MAIN_CLASSES = {"kafka.Kafka": "Kafka", "ConnectDistributed": "Kafka Connect"}


@dataclass(frozen=True)
class CpuSample:
    """The machine's CPU times at one moment, in seconds summed over every core."""

    wall_s: float
    busy_s: float
    steal_s: float
    by_process: Mapping[int, tuple[str, float]]  # pid → (role, user + system seconds)


def process_role(process: psutil.Process, roles: Mapping[int, str]) -> str:
    """The role a process is reported under: the one named for its pid, else one told by its name and
    command line."""
    if process.pid in roles:
        return roles[process.pid]
    name = process.name()
    if name == "postgres":
        return "Postgres"
    if process.pid == 2 or process.ppid() == 2:
        return KERNEL_THREADS
    command_line = " ".join(process.cmdline())
    if name == "java":
        for main_class, role in _JAVA_MAIN_CLASSES.items():
            if main_class in command_line:
                return role
    if "tidewire" in command_line and " worker" in command_line:
        return "stream workers"
    if "tidewire" in command_line and " serve" in command_line:
        return "the stack's API"
    return OTHER


def take_sample(roles: Mapping[int, str]) -> CpuSample:
    """Every process's CPU time so far, with the roles of ``roles`` (pid → role) taking precedence."""
    machine = psutil.cpu_times()
    by_process: dict[int, tuple[str, float]] = {}
    for process in psutil.process_iter():
        try:
            with process.oneshot():
                times = process.cpu_times()
                by_process[process.pid] = (process_role(process, roles), times.user + times.system)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # gone since the listing, or not ours to read: its time shows in the machine's
    steal = getattr(machine, "steal", 0.0)
    idle = machine.idle + getattr(machine, "iowait", 0.0)
    # guest time is counted in user time already (Linux); steal is time the hypervisor kept.
    total = sum(machine) - getattr(machine, "guest", 0.0) - getattr(machine, "guest_nice", 0.0)
    return CpuSample(
        wall_s=time.monotonic(), busy_s=total - idle - steal, steal_s=steal, by_process=by_process
    )


def cpu_per_request(before: CpuSample, after: CpuSample, requests: int) -> dict[str, Any]:
    """Milliseconds of CPU per request between two samples: the machine's busy and stolen time, and
    each role's share (processes that started in between count from zero; one that ended in between
    is missing from the roles but not from ``machine_busy``)."""
    per_request = max(requests, 1)
    by_role: dict[str, float] = {}
    for pid, (role, seconds) in after.by_process.items():
        earlier = before.by_process.get(pid)
        spent = seconds - (earlier[1] if earlier is not None else 0.0)
        by_role[role] = by_role.get(role, 0.0) + spent
    wall_s = max(after.wall_s - before.wall_s, 1e-9)
    busy_s = after.busy_s - before.busy_s
    return {
        "machine_busy_ms_per_request": round(busy_s * 1000 / per_request, 3),
        "machine_steal_ms_per_request": round((after.steal_s - before.steal_s) * 1000 / per_request, 3),
        "machine_busy_cores": round(busy_s / wall_s, 2),
        "cores": psutil.cpu_count(),
        "ms_per_request_by_role": {
            role: round(seconds * 1000 / per_request, 3)
            for role, seconds in sorted(by_role.items(), key=lambda item: -item[1])
            if seconds > 0
        },
    }
