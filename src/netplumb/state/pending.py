"""Attachments in progress: ``attach.pending/<owner>@<ifname>`` holds the PID of an attach or
detach from before its first kernel change until after its record is written or removed.

``reconcile`` leaves such an attachment alone: between marking an interface and recording it,
an attach would otherwise look like an orphan (a DHCP attach waits seconds there for a lease),
and between deleting one and forgetting it, a detach like a loss. (A file, not a shared flock:
the one-shot path does not pay for importing fcntl.)
"""

from __future__ import annotations

import posix

from netplumb import state
from netplumb.lightos import exists

PENDING = "attach.pending"


def mark(name: str) -> str:
    p = state.path(PENDING, name)
    flags = posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC
    try:
        fd = state.open_file(p, flags)
    except FileNotFoundError:
        state.ensure_dir(PENDING)
        fd = state.open_file(p, flags)
    try:
        posix.write(fd, str(posix.getpid()).encode())
    finally:
        posix.close(fd)
    return p


def clear(p: str) -> None:
    try:
        posix.unlink(p)
    except FileNotFoundError:
        pass


def busy_names() -> set[str]:
    """The attachments an attach or detach of a live process is working on now."""
    out = set()
    for name in state.names(PENDING):
        try:
            with open(state.path(PENDING, name)) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            continue
        if pid > 0 and exists(f"/proc/{pid}"):
            out.add(name)
    return out
