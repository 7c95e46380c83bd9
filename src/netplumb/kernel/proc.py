"""Processes named for good: a PID with its start time (a PID alone is reused)."""

from __future__ import annotations


def pid_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: with the PID, it identifies a process for good."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2 :].split()[19])
