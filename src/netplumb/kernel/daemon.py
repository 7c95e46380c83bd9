"""A long-running helper process of netplumb's (the name server): started detached, waited
for until it says it is ready.

Double fork with ``setsid`` in between, as ``deadman.py`` does: the daemon is in a session of
its own, re-parented to init, its standard streams on /dev/null (or a log), so the command that
started it returns and a caller capturing its output is not kept waiting. It gets the write
end of a pipe as file descriptor 3 and writes one line to it once it serves (``ready``), or
exits, which closes it: the caller returns then, in both cases.
"""

from __future__ import annotations

import os
import select
import sys
import time

READY_FD = 3


def spawn(tag: str, entry: str, args: list[str], log: str | None, timeout: float = 5.0) -> bool:
    """Start ``entry`` (``module:function``, called with ``args``) as a daemon whose command
    line carries ``tag``; True once it said it is ready, False if it exited first."""
    module, _, func = entry.partition(":")
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (
        f"import sys; sys.path.insert(0, {src!r}); "
        f"from {module} import {func}; {func}(sys.argv[2:])"
    )
    argv = [sys.executable, "-S", "-c", code, tag, *args]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(read_fd)
            os.setsid()
            if os.fork() == 0:
                null = os.open(os.devnull, os.O_RDWR)
                out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600) if log else null
                os.dup2(null, 0)
                os.dup2(out, 1)
                os.dup2(out, 2)
                os.dup2(write_fd, READY_FD)
                os.closerange(READY_FD + 1, 1 << 16)
                os.chdir("/")
                os.execve(sys.executable, argv, dict(os.environ))
        finally:
            os._exit(0)
    os.close(write_fd)
    os.waitpid(pid, 0)
    deadline = time.monotonic() + timeout
    got = b""
    try:
        while b"\n" not in got:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                return False
            chunk = os.read(read_fd, 64)
            if not chunk:
                return False
            got += chunk
    finally:
        os.close(read_fd)
    return got.startswith(b"ready")


def say_ready() -> None:
    """In the daemon: tell the command that started it that it serves now."""
    try:
        os.write(READY_FD, b"ready\n")
        os.close(READY_FD)
    except OSError:
        pass  # started by hand, not by spawn()


def alive(pid: int, tag: str) -> bool:
    """Whether ``pid`` is a daemon with ``tag`` still (a reused PID is not)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return tag.encode() in f.read().split(b"\0")
    except OSError:
        return False
