"""netplumb's long-running helper processes (the name server, the LAN's dead-man timer):
started detached, a daemon waited for until it says it is ready.

Double fork with ``setsid`` in between: the process is in a session of its own, with no
controlling terminal, re-parented to init (the SSH session that started it can drop), its
standard streams on /dev/null (or a log), so the command that started it returns and a caller
capturing its output is not kept waiting. A daemon gets the write end of a pipe as file
descriptor 3 and writes one line to it once it serves (``ready``), or exits, which closes it:
the caller returns then, in both cases.
"""

from __future__ import annotations

import os
import select
import sys
import time

READY_FD = 3


def detached(
    argv: list[str],
    env: dict[str, str],
    *,
    log: str | None = None,
    ready: int | None = None,
    keep: tuple[int, ...] = (),
) -> int:
    """Exec ``argv`` as a grandchild in a session of its own (re-parented to init, its
    standard streams /dev/null or ``log``, ``ready`` given as its fd 3, or else the
    descriptors ``keep`` open at their numbers); its PID, returned once it runs ``argv`` (the
    pipe that carries the PID closes at the exec)."""
    if keep and (ready is not None or min(keep) <= 2):
        raise ValueError("kept descriptors: above 2, and not with a ready pipe")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(read_fd)
            os.setsid()
            grandchild = os.fork()
            if grandchild == 0:
                null = os.open(os.devnull, os.O_RDWR)
                out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600) if log else null
                os.dup2(null, 0)
                os.dup2(out, 1)
                os.dup2(out, 2)
                pid_fd = write_fd
                if ready is not None:
                    if pid_fd == READY_FD:  # out of the way of the daemon's fd 3
                        pid_fd = os.dup(pid_fd)
                    if ready == READY_FD:
                        os.set_inheritable(READY_FD, True)
                    else:
                        os.dup2(ready, READY_FD)
                lo = READY_FD + 1 if ready is not None else 3
                kept = {pid_fd, *keep} | ({READY_FD} if ready is not None else set())
                for fd in sorted(kept):
                    if fd >= lo:
                        os.closerange(lo, fd)
                        lo = fd + 1
                os.closerange(lo, 1 << 16)
                for fd in keep:
                    os.set_inheritable(fd, True)
                os.set_inheritable(pid_fd, False)  # closed by the exec: the caller returns
                os.chdir("/")
                os.execve(argv[0], argv, env)
            os.write(write_fd, str(grandchild).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return int(data or b"0")


def python_argv(tag: str, entry: str, args: list[str]) -> list[str]:
    """``python -S`` calling ``entry`` (``module:function``) with ``args``, ``tag`` on its
    command line (for ``pgrep`` and ``alive``)."""
    module, _, func = entry.partition(":")
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (
        f"import sys; sys.path.insert(0, {src!r}); "
        f"from {module} import {func}; {func}(sys.argv[2:])"
    )
    return [sys.executable, "-S", "-c", code, tag, *args]


def spawn(tag: str, entry: str, args: list[str], log: str | None, timeout: float = 5.0) -> bool:
    """Start ``entry`` as a daemon (``python_argv``); True once it said it is ready, False if
    it exited first or said nothing within ``timeout`` seconds."""
    read_fd, write_fd = os.pipe()
    try:
        detached(python_argv(tag, entry, args), dict(os.environ), log=log, ready=write_fd)
    finally:
        os.close(write_fd)
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
