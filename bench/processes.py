"""What processes cost, read from /proc: resident memory, and CPU time split by who spent it
(the service processes, the fake model, the database's backends, the benchmark's own clients)."""

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


def cpu_seconds(pid: int) -> float:
    """User and system CPU time one process has spent so far; 0 once it has exited."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # The command name, in parentheses, may hold spaces: the fields follow its closing one.
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def database_backends(database: str) -> list[int]:
    """The PostgreSQL backends serving connections to `database` (their title names it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if title.startswith("postgres: ") and f" {database} " in title:
            found.append(int(entry.name))
    return found


@dataclass
class CpuWindow:
    """CPU seconds spent by groups of processes between `start` and `stop`. The database's
    group is re-listed at `stop`, so backends that connected meanwhile count; backends that
    exited during the window are missed (the services' pools keep theirs open)."""

    groups: dict[str, list[int]]
    database: str
    _before: dict[int, float] | None = None
    spent: dict[str, float] | None = None

    def _pids(self) -> dict[str, list[int]]:
        return {**self.groups, "database": database_backends(self.database)}

    def start(self) -> None:
        self._before = {pid: cpu_seconds(pid) for pids in self._pids().values() for pid in pids}

    def stop(self) -> dict[str, float]:
        assert self._before is not None, "stop() before start()"
        before = self._before
        now = {pid: cpu_seconds(pid) for pids in self._pids().values() for pid in pids}
        self.spent = {
            name: sum(now[pid] - before.get(pid, 0.0) for pid in pids if now[pid])
            for name, pids in self._pids().items()
        }
        return self.spent

    def shares(self) -> dict[str, float]:
        """Each group's part of the CPU time all of them spent (0..1)."""
        assert self.spent is not None, "shares() before stop()"
        total = sum(self.spent.values())
        return {name: (spent / total if total else 0.0) for name, spent in self.spent.items()}
