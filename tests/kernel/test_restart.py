"""Restart policies of lightweight hosts, stop and start: the holder supervises the command.

Each test runs netplumb in a throwaway "machine" namespace (``Machine`` of test_hosts.py).
The oracles are real traffic (curl from the machine to the host's address), ``ip -j`` in the
host, the host's log (one line per start of its command) and ``/proc``. Waits are bounded
polls, never assertions about time. Every test runs with both holder programs, the C one
(``hosts/holder.c``) and the Python one (``hosts/holder.py``), chosen with ``NETPLUMB_HOLDER``.
"""

from __future__ import annotations

import json
import marshal
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kernel.test_hosts import Machine
from netplumb.hosts import supervise

pytestmark = pytest.mark.kernel


@pytest.fixture(params=["c", "python"], autouse=True)
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which holder program the hosts' holders exec (netplumb reads ``NETPLUMB_HOLDER``)."""
    monkeypatch.setenv("NETPLUMB_HOLDER", request.param)
    if request.param == "c" and supervise.c_holder() is None:
        pytest.skip("the C holder is not built (scripts/setup.sh, with a C compiler)")
    return str(request.param)


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    if os.geteuid() != 0:
        pytest.skip("kernel tests need root")
    m = Machine(tmp_path)
    try:
        yield m
    finally:
        m.close()


def wait(cond: Callable[[], object], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def row(m: Machine, name: str) -> dict[str, object]:
    return next(r for r in m.ps() if r["name"] == name)


def running(pid: int) -> bool:
    """The process exists and is not a zombie (a killed holder may wait a moment for its
    reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def inspect(m: Machine, name: str) -> dict[str, object]:
    docs: list[dict[str, object]] = json.loads(m.np("inspect", name).stdout)
    return docs[0]


def answers(m: Machine, ip: str) -> bool:
    out = m.run(
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://{ip}:8080/", check=False
    )
    return out.stdout == "200"


def web(m: Machine, *options: str) -> None:
    m.np(
        "run",
        "--name",
        "web",
        *options,
        "--",
        "python3",
        "-m",
        "http.server",
        "8080",
        "--bind",
        "0.0.0.0",
    )


def state_of(doc: dict[str, object]) -> dict[str, object]:
    st = doc["State"]
    assert isinstance(st, dict)
    return st


def test_always_restarts_a_command_that_dies_on_the_same_address(
    machine: Machine, kind: str
) -> None:
    web(machine, "--restart", "always")
    assert wait(lambda: answers(machine, "10.89.0.2"))
    before = inspect(machine, "web")
    pid = int(str(row(machine, "web")["pid"]))
    os.kill(pid, signal.SIGKILL)
    assert wait(lambda: inspect(machine, "web")["RestartCount"] == 1)
    assert wait(lambda: answers(machine, "10.89.0.2"))
    after = inspect(machine, "web")
    assert state_of(after)["Status"] == "running"
    assert state_of(after)["ExitCode"] == 137  # what the last exit was: SIGKILL
    assert state_of(after)["Pid"] != pid
    assert after["NetworkSettings"] == before["NetworkSettings"]  # addresses, MACs
    assert after["HostConfig"]["RestartPolicy"] == {  # type: ignore[index]
        "Name": "always",
        "MaximumRetryCount": 0,
    }
    assert row(machine, "web")["addresses"] == ["10.89.0.2/16", "fd89:6e70:6c62::2/64"]
    # the holder is the restarted command's parent, named as before
    ppid = int(Path(f"/proc/{state_of(after)['Pid']}/stat").read_text().rsplit(")")[1].split()[1])
    assert Path(f"/proc/{ppid}/cmdline").read_bytes().rstrip(b"\0") == b"netplumb-hold web"
    exe = os.path.basename(os.readlink(f"/proc/{ppid}/exe"))
    if kind == "python":
        assert exe.startswith("python")
    else:  # what a host costs: its holder's private memory (a Python's: ~2.8 MB)
        assert exe == supervise.C_HOLDER
        rollup = Path(f"/proc/{ppid}/smaps_rollup").read_text().splitlines()[1:]
        assert {ln.split()[0]: int(ln.split()[1]) for ln in rollup}["Private_Dirty:"] < 1024


def test_on_failure_2_stops_after_two_restarts(machine: Machine) -> None:
    machine.np(
        "run", "--restart", "on-failure:2", "--name", "f", "--", "sh", "-c", "echo run; exit 3"
    )
    assert wait(
        lambda: (
            row(machine, "f")["state"] == "exited" and inspect(machine, "f")["RestartCount"] == 2
        )
    )
    doc = inspect(machine, "f")
    assert state_of(doc)["ExitCode"] == 3
    assert doc["HostConfig"]["RestartPolicy"] == {  # type: ignore[index]
        "Name": "on-failure",
        "MaximumRetryCount": 2,
    }
    assert machine.np("logs", "f").stdout == "run\n" * 3  # the first start and two restarts


@pytest.mark.parametrize(
    ("policy", "code"), [("on-failure", "0"), ("no", "1"), ("on-failure:5", "0")]
)
def test_no_restart_where_the_policy_says_none(machine: Machine, policy: str, code: str) -> None:
    machine.np(
        "run", "--restart", policy, "--name", "once", "--", "sh", "-c", f"echo run; exit {code}"
    )
    # the holder writes its decision with the exit: exited means no restart is coming
    assert wait(lambda: row(machine, "once")["state"] == "exited")
    doc = inspect(machine, "once")
    assert (doc["RestartCount"], state_of(doc)["ExitCode"]) == (0, int(code))
    assert machine.np("logs", "once").stdout == "run\n"


def test_stop_keeps_the_network_and_start_brings_the_command_back(machine: Machine) -> None:
    web(machine, "--restart", "always")
    assert wait(lambda: answers(machine, "10.89.0.2"))
    assert machine.np("stop", "web").stdout == "web\n"
    r = row(machine, "web")
    assert r["state"] == "exited"
    assert r["addresses"] == ["10.89.0.2/16", "fd89:6e70:6c62::2/64"]
    addrs = json.loads(machine.np("exec", "web", "--", "ip", "-j", "addr", "show", "eth0").stdout)
    assert "10.89.0.2" in [a["local"] for a in addrs[0]["addr_info"]]
    doc = inspect(machine, "web")
    assert (state_of(doc)["ExitCode"], doc["RestartCount"]) == (143, 0)  # SIGTERM
    assert not answers(machine, "10.89.0.2")
    assert machine.np("stop", "web").stdout == "web\n"  # again: nothing to do
    assert row(machine, "web")["state"] == "exited"  # the policy did not undo it
    assert machine.np("start", "web").stdout == "web\n"
    assert row(machine, "web")["state"] == "running"
    assert wait(lambda: answers(machine, "10.89.0.2"))
    assert machine.np("start", "web").stdout == "web\n"  # again: it runs
    # after start, the policy holds again
    os.kill(int(str(row(machine, "web")["pid"])), signal.SIGKILL)
    assert wait(lambda: inspect(machine, "web")["RestartCount"] == 1)
    assert wait(lambda: answers(machine, "10.89.0.2"))


def test_stop_kills_after_the_grace_period(machine: Machine) -> None:
    machine.np(
        "run", "--restart", "unless-stopped", "--name", "stubborn", "--",
        "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done",
    )  # fmt: skip
    assert wait(lambda: machine.np("logs", "stubborn").stdout == "ready\n")
    machine.np("stop", "-t", "1", "stubborn")
    doc = inspect(machine, "stubborn")
    assert (state_of(doc)["Status"], state_of(doc)["ExitCode"]) == ("exited", 137)


def test_a_host_with_no_policy_stops_and_starts_too(machine: Machine) -> None:
    machine.np("run", "--name", "plain", "--", "sh", "-c", "echo run; exec sleep 1000")
    assert wait(lambda: machine.np("logs", "plain").stdout == "run\n")
    machine.np("stop", "plain")
    assert row(machine, "plain")["state"] == "exited"
    machine.np("start", "plain")
    assert row(machine, "plain")["state"] == "running"
    assert wait(lambda: machine.np("logs", "plain").stdout == "run\nrun\n")


def test_ps_shows_restarting_during_the_back_off_and_rm_removes_it(machine: Machine) -> None:
    machine.np("run", "--restart", "always", "--name", "crash", "--", "false")
    # the delay doubles from 100 ms: soon it is seconds long, and ps shows it
    assert wait(lambda: row(machine, "crash")["state"] == "restarting")
    # one snapshot for both: between two commands the back-off may end and the command run
    # (and fail) again, so ps's "restarting" and inspect's fields are not read together
    snapshot: dict[str, object] | None = None
    deadline = time.monotonic() + 15
    while snapshot is None and time.monotonic() < deadline:
        st = state_of(inspect(machine, "crash"))
        snapshot = st if st["Restarting"] else None
        time.sleep(0.05)
    assert snapshot is not None and snapshot["ExitCode"] == 1
    # this host's holder, from its record (a machine-wide pgrep for "crash" would also see
    # another run's host of that name)
    holder = int(marshal.loads((machine.state / "hosts" / "crash").read_bytes())["holder"])
    machine.np("rm", "crash")
    assert machine.ps() == []
    assert wait(lambda: not running(holder))


def test_stop_during_the_back_off_ends_the_restarts(machine: Machine) -> None:
    machine.np("run", "--restart", "always", "--name", "crash", "--", "sh", "-c", "echo run; false")
    assert wait(lambda: row(machine, "crash")["state"] == "restarting")
    machine.np("stop", "crash")
    assert row(machine, "crash")["state"] == "exited"
    starts = machine.np("logs", "crash").stdout
    machine.np("start", "crash")
    assert wait(lambda: machine.np("logs", "crash").stdout.count("run") > starts.count("run"))
    assert inspect(machine, "crash")["RestartCount"] in (0, 1, 2, 3)  # counted afresh
    machine.np("rm", "-f", "crash")


def test_errors_are_one_line_and_change_nothing(machine: Machine) -> None:
    cases = [
        (
            ["run", "--restart", "sometimes", "--name", "x", "--", "true"],
            "netplumb: invalid restart policy: unknown policy 'sometimes'; use one of 'no', "
            "'always', 'on-failure', or 'unless-stopped'",
        ),
        (
            ["run", "--restart", "always:3", "--name", "x", "--", "true"],
            "netplumb: invalid restart policy: maximum retry count can only be used with "
            "'on-failure'",
        ),
        (
            ["run", "--restart", "on-failure:x", "--name", "x", "--", "true"],
            "netplumb: invalid restart policy format: maximum retry count must be an integer",
        ),
        (["stop", "x"], "netplumb stop: No such host: x"),
        (["start", "x"], "netplumb start: No such host: x"),
        (
            ["stop", "-t", "-1", "x"],
            "netplumb stop: invalid time -1: seconds must be 0 or more",
        ),
    ]
    for argv, message in cases:
        out = machine.np(*argv, check=False)
        assert out.returncode != 0
        assert out.stderr == message + "\n", argv
        assert machine.ps() == []
    links = [ln["ifname"] for ln in json.loads(machine.run("ip", "-j", "link").stdout)]
    assert links == ["lo"]


def test_a_topology_file_with_restart_always(machine: Machine, tmp_path: Path) -> None:
    topo = tmp_path / "r.yaml"
    topo.write_text(
        "services:\n  flaky:\n    command: sh -c 'echo run; exit 1'\n    restart: always\n"
    )
    machine.np("up", "-f", str(topo))
    assert wait(lambda: int(str(inspect(machine, "flaky")["RestartCount"])) >= 2)
    doc = inspect(machine, "flaky")
    assert doc["HostConfig"]["RestartPolicy"]["Name"] == "always"  # type: ignore[index]
    machine.np("down", "-f", str(topo))
    assert machine.ps() == []
