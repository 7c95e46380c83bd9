"""A dead-man timer: a process that outlives the command and the terminal that started it.

Double fork with ``setsid`` in between: the timer is in a session of its own, with no
controlling terminal, re-parented to init; the SSH session that ran ``netplumb lan bridge``
can drop (SIGHUP to its process group) and the timer still fires. Its standard streams are
/dev/null: a caller capturing the command's output is not kept waiting by them.
"""

from __future__ import annotations

import os
import sys

TAG = "netplumb-lan-deadman"


def spawn(args: list[str], env: dict[str, str]) -> int:
    """Start ``python -m``-like ``netplumb.ops.lanbridge`` timer main with ``args``; its PID."""
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (
        f"import sys; sys.path.insert(0, {src!r}); "
        "from netplumb.ops.lanbridge import deadman_main; deadman_main(sys.argv[2:])"
    )
    argv = [sys.executable, "-S", "-c", code, TAG, *args]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(read_fd)
            os.setsid()
            grandchild = os.fork()
            if grandchild == 0:
                # write_fd stays open until the exec closes it (close-on-exec): the caller
                # reads to EOF, so it returns only once the timer runs under its own name,
                # and a stop() right after spawn() finds it (a race seen under load).
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                os.closerange(3, write_fd)
                os.closerange(write_fd + 1, 1 << 16)
                os.chdir("/")
                os.execve(sys.executable, argv, env)
            os.write(write_fd, str(grandchild).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return int(data or b"0")


def alive(pid: int) -> bool:
    """Whether ``pid`` is a dead-man timer still (a reused PID is not)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return TAG.encode() in f.read()
    except OSError:
        return False


def stop(pid: int) -> None:
    if pid > 0 and alive(pid):
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass
