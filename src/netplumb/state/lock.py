"""The one lock API of netplumb's records: an exclusive ``flock`` on a file of the state
directory, held for a ``with`` block.

Every table that must not be changed by two commands at once takes one: network definitions
(``networks.lock``), each table of the allocator (``leases.d/<table>.lock`` through
``leases.lock(table)``: a network's addresses, ``%lan``, ``%cni-<name>``), the LAN bridge
(``lan/bridge.lock``), published ports (``ports.lock``, which also guards ``%ports``) and
projects. A lock file is created 0600 on first use (its directory 0700), and never removed:
removing a lock file another process is waiting on would let a third one lock a new file of the
same name. ``flock`` is released by the kernel when the process dies, so a ``kill -9`` never
leaves a table locked.
"""

from __future__ import annotations

import posix

from netplumb import state


class Lock:
    """``with Lock("leases", "net1.lock"):`` -- exclusive, blocking, not re-entrant (a second
    ``Lock`` of the same file in the same process waits for the first: hold one at a time)."""

    __slots__ = ("fd", "parts")

    def __init__(self, *parts: str) -> None:
        self.parts = parts
        self.fd = -1

    def __enter__(self) -> Lock:
        import fcntl

        p = state.path(*self.parts)
        try:
            self.fd = state.open_file(p, posix.O_RDWR | posix.O_CREAT)
        except FileNotFoundError:
            state.ensure_dir(*self.parts[:-1])
            self.fd = state.open_file(p, posix.O_RDWR | posix.O_CREAT)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        posix.close(self.fd)
        self.fd = -1
