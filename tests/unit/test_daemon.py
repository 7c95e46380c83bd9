"""netplumb's detached processes (the name server, the LAN's dead-man timer): a session of
their own, nothing of the caller's kept open but the readiness pipe, which they get as fd 3."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from netplumb.kernel import daemon


def _fds_settle(pid: int, want: list[str]) -> list[str]:
    """The process's open descriptors once they are ``want`` (or after 5 s, whatever they are):
    a program starting up holds a few briefly (the loader opens its libraries)."""
    deadline = time.monotonic() + 5
    while True:
        fds = sorted(os.listdir(f"/proc/{pid}/fd"))
        if fds == want or time.monotonic() > deadline:
            return fds
        time.sleep(0.01)


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1][0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.01)


def test_detached_runs_in_a_session_of_its_own_and_returns_once_it_execs() -> None:
    pid = daemon.detached(["/bin/sleep", "30"], {})
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[:2] == [b"/bin/sleep", b"30"]  # exec'd already
        assert os.getsid(pid) != os.getsid(0)
        assert _fds_settle(pid, ["0", "1", "2"]) == ["0", "1", "2"]  # nothing of ours
    finally:
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)


def test_a_daemon_gets_the_readiness_pipe_as_fd_3_and_keeps_only_it() -> None:
    r, w = os.pipe()
    filler = os.open(os.devnull, os.O_RDONLY)  # an fd of ours it must not inherit
    try:
        script = "echo ready >&3; exec sleep 30"  # sleep keeps what the shell was given
        pid = daemon.detached(["/bin/sh", "-c", script], {"PATH": "/usr/bin:/bin"}, ready=w)
        os.close(w)
        try:
            with os.fdopen(r, "rb") as f:
                assert f.readline() == b"ready\n"
            deadline = time.monotonic() + 5
            # until sleep runs (the shell's own command line has "sleep" in it too)
            while not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep\0"):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert _fds_settle(pid, ["0", "1", "2", "3"]) == ["0", "1", "2", "3"]
        finally:
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)
    finally:
        os.close(filler)


def test_a_daemon_keeps_the_descriptors_it_is_given_at_their_numbers() -> None:
    # how a command hands the name server its lock and the sockets it bound (ops/dns.py)
    kept_a = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    filler = os.open(os.devnull, os.O_RDONLY)  # an fd of ours it must not inherit
    kept_b = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        pid = daemon.detached(["/bin/sleep", "30"], {}, keep=(kept_a, kept_b))
        try:
            want = sorted(["0", "1", "2", str(kept_a), str(kept_b)])
            assert _fds_settle(pid, want) == want
        finally:
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)
    finally:
        for fd in (kept_a, filler, kept_b):
            os.close(fd)


def test_kept_descriptors_and_a_readiness_pipe_do_not_go_together() -> None:
    with pytest.raises(ValueError, match="not with a ready pipe"):
        daemon.detached(["/bin/true"], {}, ready=5, keep=(7,))


def test_spawn_says_false_when_the_daemon_ends_without_a_word() -> None:
    # an entry that does not exist: the daemon's python fails at once, the pipe closes
    assert not daemon.spawn("netplumb-test-marker", "netplumb.nosuch:main", [], None, 10)
