"""A dead-man timer: a process that outlives the command and the terminal that started it
(``daemon.detached``): the SSH session that ran ``netplumb lan bridge`` can drop (SIGHUP to its
process group) and the timer still fires.
"""

from __future__ import annotations

import os

TAG = "netplumb-lan-deadman"


def spawn(args: list[str], env: dict[str, str]) -> int:
    """Start the timer (``netplumb.ops.lanbridge.deadman_main`` with ``args``); its PID, once
    it runs under its own name (a ``stop()`` right after finds it: a race seen under load)."""
    from netplumb.kernel import daemon

    argv = daemon.python_argv(TAG, "netplumb.ops.lanbridge:deadman_main", args)
    return daemon.detached(argv, env)


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
