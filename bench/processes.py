"""What processes cost, read from /proc: resident memory, and CPU time split by who spent it
(the service processes, the fake model, the database server, the benchmark's own clients)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int) -> int:
    """The resident set of one process (its own memory, shared libraries' pages included)."""
    resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return resident * _PAGE


def cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """User and system CPU time one process has spent so far (with `reaped`, also that of its
    children that exited and were waited for); 0 once it has exited."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # The command name, in parentheses, may hold spaces: the fields follow its closing one.
    fields = stat.rpartition(")")[2].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICKS


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def server_cpu_seconds(postmaster: int) -> float:
    """CPU time of a PostgreSQL server: its postmaster, the backends and background processes
    running now, and those that have exited (the postmaster reaps them)."""
    return cpu_seconds(postmaster, reaped=True) + sum(cpu_seconds(child) for child in _children(postmaster))


@dataclass
class CpuWindow:
    """CPU seconds spent between `start` and `stop` by groups of processes, and by a PostgreSQL
    server (all of it: the server is the scenario's own) when given its postmaster."""

    groups: dict[str, list[int]]
    postmaster: int | None = None
    _before: dict[str, float] | None = None
    spent: dict[str, float] | None = None

    def _read(self) -> dict[str, float]:
        found = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self.groups.items()}
        if self.postmaster is not None:
            found["database"] = server_cpu_seconds(self.postmaster)
        return found

    def start(self) -> None:
        self._before = self._read()

    def stop(self) -> dict[str, float]:
        assert self._before is not None, "stop() before start()"
        before = self._before
        self.spent = {name: seconds - before[name] for name, seconds in self._read().items()}
        return self.spent

    def shares(self) -> dict[str, float]:
        """Each group's part of the CPU time all of them spent (0..1)."""
        assert self.spent is not None, "shares() before stop()"
        total = sum(self.spent.values())
        return {name: (spent / total if total else 0.0) for name, spent in self.spent.items()}
