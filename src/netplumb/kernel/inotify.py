"""inotify(7) on directories, through libc: a file descriptor that becomes readable when an
entry of a watched directory is created, renamed into it or removed (records are written by
rename, so a rewrite is one ``IN_MOVED_TO``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

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


class Watcher:
    """Watches directories for entries coming and going; ``fd`` is for the event loop."""

    def __init__(self) -> None:
        fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd: int = fd
        self.watched: set[str] = set()

    def watch(self, path: str) -> bool:
        """Watch ``path`` (a directory) if it exists; True when it is watched."""
        if path in self.watched:
            return True
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), CHANGES | IN_ONLYDIR)
        if wd < 0:
            return False
        self.watched.add(path)
        return True

    def drain(self) -> None:
        """Read (and drop) the pending events: the caller looks at the directories again.
        A directory that went is watched again once it is back (``watch``)."""
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            if not data:
                return
            # a watched directory may have gone (IN_DELETE_SELF): forget every path, watch()
            # adds them again (adding an existing watch returns the same descriptor)
            self.watched.clear()

    def close(self) -> None:
        os.close(self.fd)
