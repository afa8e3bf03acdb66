"""What the benchmark reads from and sets on the operating system (Linux /proc)."""

from __future__ import annotations

import contextlib
import os
import resource
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """CPU seconds a process (all its threads) has used: user and kernel."""

    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user - other.user, self.system - other.system)


def parse_stat(text: str) -> CpuTimes:
    """utime and stime of a /proc/<pid>/stat line (fields 14 and 15, in clock ticks)."""
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return CpuTimes(user=int(fields[11]) / _TICKS, system=int(fields[12]) / _TICKS)


def cpu_times(pid: int) -> CpuTimes:
    return parse_stat(Path(f"/proc/{pid}/stat").read_text())


def parse_schedstat(text: str) -> float:
    """Seconds a thread waited runnable for a core: /proc/.../schedstat's second field (ns)."""
    return int(text.split()[1]) / 1e9


def runqueue_wait(pid: int) -> float:
    """Seconds the process's threads spent runnable but not running, summed over them.

    Time the scheduler gave the process's core to other work while the process had
    something to do: on a shared machine, what a server's latency owes to its neighbours.
    Threads that ended meanwhile drop out of the sum.
    """
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += parse_schedstat((task / "schedstat").read_text())
        except (OSError, IndexError, ValueError):
            continue  # the thread ended, or no scheduler statistics here
    return total


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/statm (second field, in pages)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE


def raise_nofile_limit() -> int:
    """Raise this process's open-file soft limit to the hard limit; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft if hard == resource.RLIM_INFINITY else hard


def cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


@dataclass(frozen=True, slots=True)
class Placement:
    """Which cores the server under test and the load (clients, brokers, driver) use."""

    server: frozenset[int]
    load: frozenset[int]

    @property
    def pinned(self) -> bool:
        return not self.server & self.load


def placement(available: list[int]) -> Placement:
    """Server alone on the first core, everything else on the others (when there are two+)."""
    if len(available) < 2:
        everything = frozenset(available)
        return Placement(server=everything, load=everything)
    return Placement(server=frozenset(available[:1]), load=frozenset(available[1:]))


def pin_process(pid: int, cpus: frozenset[int]) -> None:
    """Pin every thread of a process; threads it starts later inherit the mask."""
    try:
        tasks = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        return
    for tid in tasks:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.sched_setaffinity(tid, cpus)
