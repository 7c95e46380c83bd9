"""A resolved guest: its namespace, held open, and the key that names it in records and marks.

Apart from ``guests`` (which resolves a reference, trying every runtime) so that each runtime
(``docker``) can make one without importing the resolver that imports it.
"""

from __future__ import annotations

import errno
import posix


class Guest:
    """A resolved guest. ``key`` identifies it in ownership marks and records."""

    __slots__ = ("fd", "key", "kind", "name", "pid", "short")

    def __init__(
        self, key: str, kind: str, name: str, fd: int, pid: int | None, short: str
    ) -> None:
        self.key = key
        self.kind = kind
        self.name = name
        self.fd = fd
        self.pid = pid
        self.short = short

    def close(self) -> None:
        if self.fd >= 0:
            posix.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_netns(path: str) -> int:
    """Open a namespace file; refuse anything that is not one (by its file system, nsfs).

    Whether it is a *network* namespace is checked by the kernel at the first setns(2), which
    fails with EINVAL otherwise (an ioctl here would cost the one-shot path ~1.5 ms to load
    ``fcntl``).
    """
    fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    if posix.fstat(fd).st_dev != _nsfs_dev():
        posix.close(fd)
        raise OSError(errno.EINVAL, "not a namespace file")
    return fd


_nsfs: list[int] = []


def _nsfs_dev() -> int:
    if not _nsfs:
        _nsfs.append(posix.stat("/proc/self/ns/net").st_dev)
    return _nsfs[0]
