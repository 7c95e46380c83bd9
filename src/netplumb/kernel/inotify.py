"""inotify(7) on directories, through libc: a file descriptor that becomes readable when an
entry of a watched directory is created, renamed into it or removed (records are written by
rename, so a rewrite is one ``IN_MOVED_TO``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct

IN_MODIFY = 0x002
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

CHANGES = IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


IN_Q_OVERFLOW = 0x4000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then the name, NUL-padded


class Watcher:
    """Watches directories for entries coming and going; ``fd`` is for the event loop."""

    def __init__(self) -> None:
        fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd: int = fd
        self.paths: dict[int, str] = {}  # watch descriptor -> directory

    def watch(self, path: str) -> bool:
        """Watch ``path`` (a directory) if it exists; True when it is watched (adding a watch
        that exists returns its descriptor again)."""
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), CHANGES | IN_ONLYDIR)
        if wd < 0:
            return False
        self.paths[wd] = path
        return True

    def drain(self) -> set[tuple[str, str]] | None:
        """The entries that changed since the last call, as (directory, name); None when the
        kernel dropped events (the caller looks at everything again)."""
        changed: set[tuple[str, str]] = set()
        lost = False
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not data:
                break
            at = 0
            while at + _EVENT.size <= len(data):
                wd, mask, _cookie, size = _EVENT.unpack_from(data, at)
                name = data[at + _EVENT.size : at + _EVENT.size + size].rstrip(b"\0")
                at += _EVENT.size + size
                if mask & IN_Q_OVERFLOW:
                    lost = True
                elif wd in self.paths:
                    changed.add((self.paths[wd], os.fsdecode(name)))
        return None if lost else changed

    def close(self) -> None:
        os.close(self.fd)
