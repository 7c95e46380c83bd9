"""The holder's supervision loop (``hosts/supervise.py``) on real processes, without
namespaces: a forked holder runs ``sh`` commands, orders go through its ``control`` file and
SIGUSR1, and its ``status`` file is read back; the holder re-execs its own small program as
in a host, and is killed and reaped here. Every test runs against both holder programs, the
C one (``hosts/holder.c``, built by scripts/setup.sh) and the Python one (``hosts/holder.py``),
chosen with ``NETPLUMB_HOLDER``. Waits are bounded polls; the kernel tests
(tests/kernel/test_restart.py) do the same through the CLI, in namespaces."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netplumb.hosts import holderfile, supervise
from netplumb.model import restart


class Holder:
    def __init__(self, tmp: Path, policy: str, script: str, argv: list[str] | None = None) -> None:
        self.files = str(tmp)
        self.log = str(tmp / "log")
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.close(rfd)
                os.setsid()
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD, signal.SIGUSR1})
                supervise.run(
                    wfd,
                    self.files,
                    self.log,
                    argv or ["sh", "-c", script],
                    {"PATH": os.environ["PATH"]},
                    restart.parse(policy),
                )
            finally:
                os._exit(1)
        os.close(wfd)
        self.pid = pid
        with os.fdopen(rfd, "rb") as f:
            self.report = f.read().decode()

    def status(self) -> dict[str, object]:
        return holderfile.read_status(self.files) or {}

    def order(self, words: str) -> None:
        path = os.path.join(self.files, holderfile.CONTROL)
        Path(path + ".tmp").write_text(words)
        os.replace(path + ".tmp", path)
        os.kill(self.pid, signal.SIGUSR1)

    def starts(self) -> int:
        try:
            return Path(self.log).read_text().count("run")
        except FileNotFoundError:
            return 0

    def close(self) -> None:
        st = self.status()
        if st.get("pid"):
            try:
                os.kill(-int(str(st["pid"])), signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


@pytest.fixture(params=["c", "python"])
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which holder program the holders exec (the fork reads ``NETPLUMB_HOLDER``)."""
    monkeypatch.setenv("NETPLUMB_HOLDER", request.param)
    if request.param == "c" and supervise.c_holder() is None:
        pytest.skip("the C holder is not built (scripts/setup.sh, with a C compiler)")
    return str(request.param)


def program(pid: int) -> str:
    """What a holder execs: the C holder, or Python."""
    exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    return "c" if exe == supervise.C_HOLDER else "python" if exe.startswith("python") else exe


@pytest.fixture
def holders(tmp_path: Path, kind: str) -> Iterator[Callable[[str, str], Holder]]:
    made: list[Holder] = []

    def make(policy: str, script: str) -> Holder:
        d = tmp_path / str(len(made))
        d.mkdir()
        made.append(Holder(d, policy, script))
        return made[-1]

    yield make
    for h in made:
        h.close()


def wait(cond: Callable[[], object], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_the_first_start_is_reported_and_recorded(
    holders: Callable[[str, str], Holder], kind: str
) -> None:
    h = holders("no", "echo run; exec sleep 1000")
    assert h.report.startswith("pid ")
    # the holder goes on as its own small program, under its own title
    title = f"netplumb-hold {os.path.basename(h.files)}".encode()
    assert wait(lambda: Path(f"/proc/{h.pid}/cmdline").read_bytes().startswith(title))
    assert b"holder.py" not in Path(f"/proc/{h.pid}/cmdline").read_bytes()
    assert Path(f"/proc/{h.pid}/cmdline").read_bytes().rstrip(b"\0") == title  # nothing more
    assert program(h.pid) == kind
    # the command inherits no descriptor but its standard ones
    pid = int(h.report.split()[1])
    assert wait(lambda: os.readlink(f"/proc/{pid}/exe").endswith("sleep"))
    assert sorted(os.listdir(f"/proc/{pid}/fd")) == ["0", "1", "2"]
    st = h.status()
    assert (st["state"], st["pid"], st["restart_count"]) == ("running", pid, 0)
    assert os.stat(os.path.join(h.files, holderfile.STATUS)).st_mode & 0o777 == 0o600
    assert os.getpgid(pid) == pid  # a session and process group of its own
    assert wait(lambda: h.starts() == 1)


def test_a_command_that_cannot_start_is_reported(tmp_path: Path) -> None:
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(rfd)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD, signal.SIGUSR1})
            supervise.run(
                wfd,
                str(tmp_path),
                str(tmp_path / "log"),
                ["/nonexistent"],
                {},
                restart.parse("always"),
            )
        finally:
            os._exit(1)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        assert f.read() == b"error No such file or directory\n"
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 127


def test_always_restarts_and_counts(holders: Callable[[str, str], Holder]) -> None:
    h = holders("always", "echo run; exec sleep 1000")
    first = int(str(h.status()["pid"]))
    assert wait(lambda: h.starts() == 1)  # killed before its echo, it would not count
    os.kill(first, signal.SIGKILL)
    assert wait(lambda: h.status()["restart_count"] == 1 and h.status()["state"] == "running")
    st = h.status()
    assert st["pid"] != first and st["exit_code"] == 137
    assert wait(lambda: h.starts() == 2)
    # started by the holder program: it inherits no descriptor but its standard ones
    fds = f"/proc/{st['pid']}/fd"
    assert wait(lambda: os.readlink(f"/proc/{st['pid']}/exe").endswith("sleep"))
    assert sorted(os.listdir(fds)) == ["0", "1", "2"]


def test_on_failure_2_gives_up_after_two_restarts(holders: Callable[[str, str], Holder]) -> None:
    h = holders("on-failure:2", "echo run; exit 3")
    assert wait(lambda: h.status().get("state") == "exited" and h.starts() == 3)
    st = h.status()
    assert (st["restart_count"], st["exit_code"]) == (2, 3)


@pytest.mark.parametrize(("policy", "code"), [("on-failure", 0), ("no", 1)])
def test_no_restart_where_none_is_due(
    holders: Callable[[str, str], Holder], policy: str, code: int
) -> None:
    h = holders(policy, f"echo run; exit {code}")
    assert wait(lambda: h.status().get("state") == "exited")  # decided with the exit
    st = h.status()
    assert (st["restart_count"], st["exit_code"]) == (0, code)
    assert h.starts() == 1


def test_restarting_during_the_back_off_then_stop_and_start(
    holders: Callable[[str, str], Holder],
) -> None:
    h = holders("always", "echo run; exit 1")
    assert wait(lambda: h.status().get("state") == "restarting")
    h.order("stop t1 10")
    assert wait(lambda: h.status().get("ack") == "t1")
    assert h.status()["state"] == "exited"
    n = h.starts()
    h.order("start t2")
    assert wait(lambda: h.status().get("ack") == "t2")
    assert wait(lambda: h.starts() > n)


def test_stop_terms_then_kills_after_the_grace(holders: Callable[[str, str], Holder]) -> None:
    h = holders("unless-stopped", "trap '' TERM; echo run; while :; do sleep 1; done")
    assert wait(lambda: h.starts() == 1)
    h.order("stop t1 0.2")
    assert wait(lambda: h.status().get("ack") == "t1")
    st = h.status()
    assert (st["state"], st["exit_code"], st["pid"]) == ("exited", 137, 0)
    h.order("start t2")
    assert wait(lambda: h.status().get("ack") == "t2")
    assert h.status()["state"] == "running"
    assert h.status()["restart_count"] == 0
    h.order("stop t3 0")  # no grace: SIGKILL at once
    assert wait(lambda: h.status().get("ack") == "t3")
    assert h.status()["exit_code"] == 137


def test_the_c_holder_is_small(holders: Callable[[str, str], Holder], kind: str) -> None:
    """A host's cost is its holder's private memory: ~2.8 MB for a Python, ~0.1 MB in C."""
    h = holders("always", "exec sleep 1000")
    title = f"netplumb-hold {os.path.basename(h.files)}".encode()
    assert wait(lambda: Path(f"/proc/{h.pid}/cmdline").read_bytes().startswith(title))
    rollup = Path(f"/proc/{h.pid}/smaps_rollup").read_text().splitlines()
    kb = {ln.split()[0].rstrip(":"): int(ln.split()[1]) for ln in rollup[1:]}
    if kind == "c":
        assert kb["Private_Dirty"] < 1024
    else:
        assert kb["Private_Dirty"] > 1024  # the difference this test is about is real


def test_the_status_format_round_trips() -> None:
    status: dict[str, object] = {
        "state": "restarting",
        "pid": 0,
        "start": None,
        "restart_count": 3,
        "exit_code": 137,
        "error": "No such\nfile",
        "ack": "1.2",
        "started_at": 1.5,
        "finished_at": 2.25,
    }
    assert holderfile.load_status(holderfile.dump_status(status)) == {
        **status,
        "error": "No such file",  # one line
    }
    assert holderfile.load_status(b"state running\n") is None  # not all fields
    assert holderfile.load_status(holderfile.dump_status({**status, "pid": "x"})) is None
    data = holderfile.dump_handover(
        "/f", "/l", ["sh", "-c", "a b\nc"], {"K": "V=W", "E": ""}, ("on-failure", 2), 7.5, status
    )
    state = holderfile.load_handover(data)
    assert (state.files, state.log, state.policy, state.retries, state.started) == (
        "/f",
        "/l",
        "on-failure",
        2,
        7.5,
    )
    assert state.argv == ["sh", "-c", "a b\nc"] and state.env == {"K": "V=W", "E": ""}
    assert state.status["restart_count"] == 3 and state.status["start"] is None


@pytest.mark.parametrize("kind", ["c"], indirect=True)  # a C holder's case only
def test_a_c_holder_that_cannot_read_the_hand_over_leaves_it_to_python(
    holders: Callable[[str, str], Holder],
    kind: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A C holder built from another holder.c (another hand-over version) execs the Python
    holder rather than leave the host without one."""
    import shutil
    import subprocess

    cc = shutil.which("cc")
    assert cc is not None, "no C compiler (make setup installs gcc)"
    source = Path(supervise.__file__).with_name("holder.c")
    binary = tmp_path / "np-holder-v0"
    subprocess.run([cc, "-O2", '-DVERSION="0"', "-o", str(binary), str(source)], check=True)
    monkeypatch.setattr(supervise, "c_holder", lambda: str(binary))
    h = holders("always", "echo run; exec sleep 1000")
    assert wait(lambda: program(h.pid) == "python")
    title = f"netplumb-hold {os.path.basename(h.files)}".encode()
    assert wait(lambda: Path(f"/proc/{h.pid}/cmdline").read_bytes().startswith(title))
    first = int(str(h.status()["pid"]))
    assert wait(lambda: h.starts() == 1)
    os.kill(first, signal.SIGKILL)  # and it supervises
    assert wait(lambda: h.status()["restart_count"] == 1 and h.status()["state"] == "running")


def test_a_start_that_cannot_exec_is_an_exit_127_with_its_reason(tmp_path: Path, kind: str) -> None:
    """The command's program is gone when ``start`` comes: the holder says why (what
    ``netplumb start`` prints) and shows the host exited with 127, as a shell would."""
    import shutil

    gone = tmp_path / "prog"
    shutil.copy("/bin/sh", gone)
    d = tmp_path / "h"
    d.mkdir()
    h = Holder(d, "no", "", argv=[str(gone), "-c", "echo run"])
    try:
        assert wait(lambda: h.status().get("state") == "exited" and h.starts() == 1)
        title = f"netplumb-hold {os.path.basename(h.files)}".encode()
        assert wait(lambda: Path(f"/proc/{h.pid}/cmdline").read_bytes().startswith(title))
        assert program(h.pid) == kind
        gone.unlink()
        h.order("start t1")
        assert wait(lambda: h.status().get("ack") == "t1")
        st = h.status()
        assert (st["state"], st["exit_code"], st["pid"]) == ("exited", 127, 0)
        assert st["error"] == "No such file or directory"
        assert h.starts() == 1
    finally:
        h.close()
