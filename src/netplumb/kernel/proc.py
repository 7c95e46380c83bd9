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


def alive(pid: int, tag: str) -> bool:
    """Whether ``pid`` is a daemon with ``tag`` (``kernel/daemon.py``) still: a reused PID is
    not. Here, not beside ``spawn``: the CNI plugin asks it on every ADD."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return tag.encode() in f.read().split(b"\0")
    except OSError:
        return False
