"""The agent started on demand (the default install: the compiled client, no agent running):
the first call starts one and is served by the Python plugin with the same results; the agent
keeps none of the caller's descriptors; it exits when idle; a killed agent's socket is
replaced; many first calls at once start one agent; a broken agent (it closes without an
answer, or hangs) leaves the call to the Python plugin; an upgraded netplumb is noticed.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kernel.attachlab import Lab, wait_for
from kernel.cnilab import Cni, agent_pid, agents_of, install_plugin, stop_agent

pytestmark = pytest.mark.kernel

STARTING = "no agent, starting one, at"


@pytest.fixture
def cni(lab: Lab, tmp_path: Path) -> Iterator[Cni]:
    """The default install (``netplumb cni install``: the client, agent mode auto)."""
    plugin_dir = tmp_path / "cni-bin"
    install_plugin(plugin_dir, client=True)
    c = Cni(lab, plugin_dir, f"npt{lab.id}")
    c.path = ("agent at", "no agent at", STARTING, "no answer,", "agent off:")
    try:
        yield c
        assert c.leftovers() == [], "the test left CNI objects behind"
    finally:
        stop_agent(lab.state)  # and the losers of a start race, once they are gone


def listening(lab: Lab) -> bool:
    return agent_pid(lab.state) is not None and (lab.state / "cni-agent.sock").exists()


def normalized(out: dict[str, Any]) -> dict[str, Any]:
    """A result with the host end's name and MAC left out (random per attachment)."""
    ifs = [dict(i) for i in out["interfaces"]]
    ifs[1] = {}
    return {**out, "interfaces": ifs}


def test_first_call_starts_an_agent_and_results_equal_the_plain_path(lab: Lab, cni: Cni) -> None:
    g = lab.netns("g1")
    conf = cni.config(
        runtimeConfig={
            "mac": "02:00:00:77:00:09",
            "portMappings": [{"hostPort": 18095, "containerPort": 80}],
        }
    )
    assert agent_pid(lab.state) is None
    first = cni.add(g, "c1", conf)
    assert cni.paths_taken[0].startswith(f"netplumb-cni: {STARTING} ")
    assert wait_for(lambda: listening(lab), 15)
    cni.delete(g, "c1", conf)
    assert cni.paths_taken[0].startswith("netplumb-cni: agent at ")
    assert cni.leftovers() == []
    second = cni.add(g, "c1", conf)  # through the agent
    assert cni.paths_taken[0].startswith("netplumb-cni: agent at ")
    assert normalized(second) == normalized(first)
    cni.delete(g, "c1", conf)
    plain = cni.add(g, "c1", conf, extra_env={"NETPLUMB_CNI_AGENT": "off"})
    assert cni.paths_taken[0].startswith("netplumb-cni: agent off:")
    assert normalized(plain) == normalized(first)
    cni.delete(g, "c1", conf)


def test_the_started_agent_keeps_none_of_the_callers_descriptors(lab: Lab, cni: Cni) -> None:
    """A runtime reads the plugin's stdout and stderr to EOF: the agent the call started must
    not hold them (nor anything else of the caller's) while it keeps running."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NETPLUMB_STATE_DIR": str(lab.state),
        "CNI_COMMAND": "STATUS",
    }
    extra_r, extra_w = os.pipe()  # an inherited descriptor of the caller's, beyond 0-2
    try:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.host, str(cni.plugin)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=(extra_w,),
        )
        conf = json.dumps({**cni.config(), "cniVersion": "1.1.0"}).encode()
        out, err = proc.communicate(conf, timeout=60)  # EOF on both
        assert (proc.returncode, out, err) == (0, b"", b"")
        os.close(extra_w)
        extra_w = -1
        assert os.read(extra_r, 1) == b""  # EOF: nobody else holds the write end either
    finally:
        if extra_w >= 0:
            os.close(extra_w)
        os.close(extra_r)
    assert wait_for(lambda: listening(lab), 15)
    pid = agent_pid(lab.state)
    assert pid is not None
    fds = {fd: os.readlink(f"/proc/{pid}/fd/{fd}") for fd in sorted(os.listdir(f"/proc/{pid}/fd"))}
    assert {fds["0"], fds["1"], fds["2"]} == {"/dev/null"}
    assert fds["3"] == str(lab.state / "cni-agent.lock")
    assert all(t.startswith("socket:") for fd, t in fds.items() if int(fd) > 3), fds
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # a session of its own (not the caller's), no controlling terminal
    assert int(stat[3]) not in (os.getsid(0), 0) and stat[4] == "0"


def test_idle_agent_exits_and_removes_its_socket(lab: Lab, cni: Cni) -> None:
    conf = cni.config()
    cni.call("STATUS", {**conf, "cniVersion": "1.1.0"}, extra_env={"NETPLUMB_CNI_AGENT_IDLE": "1"})
    assert wait_for(lambda: listening(lab), 15)
    pid = agent_pid(lab.state)
    assert pid is not None
    assert wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30)
    assert not (lab.state / "cni-agent.sock").exists()
    g = lab.netns("g1")
    cni.add(g, "c1", conf)  # and the next call starts a new one
    assert cni.paths_taken[0].startswith(f"netplumb-cni: {STARTING} ")
    cni.delete(g, "c1", conf)


def test_killed_agent_socket_falls_back_and_is_replaced(lab: Lab, cni: Cni) -> None:
    g = lab.netns("g1")
    conf = cni.config()
    cni.call("STATUS", {**conf, "cniVersion": "1.1.0"})
    assert wait_for(lambda: listening(lab), 15)
    old = agent_pid(lab.state)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    assert wait_for(lambda: not Path(f"/proc/{old}").exists(), 15)
    assert (lab.state / "cni-agent.sock").exists()  # stale: nobody listens
    out = cni.add(g, "c1", conf)  # ECONNREFUSED: the plain path, and a new agent
    assert cni.paths_taken[0].startswith(f"netplumb-cni: {STARTING} ")
    assert out["ips"][0]["address"] == "10.77.0.2/24"
    assert wait_for(lambda: listening(lab) and agent_pid(lab.state) != old, 15)
    cni.delete(g, "c1", conf)
    assert cni.paths_taken[0].startswith("netplumb-cni: agent at ")


def test_concurrent_first_calls_start_one_agent(lab: Lab, cni: Cni) -> None:
    conf = cni.config()
    guests = [lab.netns(f"r{i}") for i in range(12)]
    with ThreadPoolExecutor(12) as pool:
        outs = list(pool.map(lambda ig: cni.add(ig[1], f"r{ig[0]}", conf), enumerate(guests)))
    assert sorted(o["ips"][0]["address"] for o in outs) == sorted(
        f"10.77.0.{n}/24" for n in range(2, 14)
    )
    assert wait_for(lambda: listening(lab), 15)
    assert wait_for(lambda: len(agents_of(lab.state)) == 1, 15), agents_of(lab.state)
    assert agents_of(lab.state) == [agent_pid(lab.state)]
    with ThreadPoolExecutor(12) as pool:
        list(pool.map(lambda ig: cni.delete(ig[1], f"r{ig[0]}", conf), enumerate(guests)))


def _broken_agent(lab: Lab, behaviour: str) -> Generator[None, None, None]:
    """A process that holds the agent lock and listens on the socket, then ``close``s each
    connection at once or ``hang``s (never reads, never answers)."""
    lab.state.mkdir(parents=True, exist_ok=True)
    lock = os.open(lab.state / "cni-agent.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(lab.state / "cni-agent.sock"))
    srv.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            if behaviour == "close":
                conn.close()
            else:
                held.append(conn)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        srv.shutdown(socket.SHUT_RDWR)
        srv.close()
        for c in held:
            c.close()
        os.unlink(lab.state / "cni-agent.sock")
        os.close(lock)


@pytest.mark.parametrize("behaviour", ["close", "hang"])
def test_broken_agent_leaves_the_call_to_the_python_plugin(
    lab: Lab, cni: Cni, behaviour: str
) -> None:
    """Decided: an agent that gives no answer (closes, or says nothing within
    NETPLUMB_CNI_AGENT_TIMEOUT) is not trusted with the call; the Python plugin serves it with
    the same stdin, so ADD and DEL succeed with their usual results and DEL stays complete."""
    g = lab.netns("g1")
    conf = cni.config(runtimeConfig={"portMappings": [{"hostPort": 18096, "containerPort": 80}]})
    timeout = {"NETPLUMB_CNI_AGENT_TIMEOUT": "1"}
    gen = _broken_agent(lab, behaviour)
    next(gen)
    try:
        out = cni.add(g, "c1", conf, extra_env=timeout)
        assert [ln.split(" at ")[0] for ln in cni.paths_taken] == [
            "netplumb-cni: agent",
            "netplumb-cni: no answer, the Python plugin serves the call, from the agent",
        ]
        assert out["ips"][0]["address"] == "10.77.0.2/24"
        assert lab.addrs(g, "eth0", "4") == ["10.77.0.2/24"]
        assert cni.port_rules() == ["netplumb:cni:c1:eth0"]
        cni.delete(
            g, "c1", {k: v for k, v in conf.items() if k != "runtimeConfig"}, extra_env=timeout
        )
        assert len(cni.paths_taken) == 2
        assert cni.leftovers() == []
        assert lab.link(g, "eth0") is None
    finally:
        gen.close()
    assert agent_pid(lab.state) is None  # the broken one held the lock: no other started


def test_an_upgraded_netplumb_is_noticed(lab: Lab, tmp_path: Path) -> None:
    """The agent compares its modules' files before each call: a reinstalled plugin (here the
    standalone one, which the client's agent runs from) makes it step aside; the call is served
    by the new plain plugin and a new agent starts."""
    plugin_dir = tmp_path / "cni-bin"
    install_plugin(plugin_dir, client=True, standalone=True)
    cni = Cni(lab, plugin_dir, f"npt{lab.id}")
    cni.path = ("agent at", STARTING, "no answer,")
    try:
        status = {**cni.config(), "cniVersion": "1.1.0"}
        cni.ok("STATUS", status)
        assert wait_for(lambda: listening(lab), 15)
        old = agent_pid(lab.state)
        cni.ok("STATUS", status)
        assert cni.paths_taken[0].startswith("netplumb-cni: agent at ")
        install_plugin(plugin_dir, client=True, standalone=True)  # the upgrade
        cni.ok("STATUS", status)
        assert [ln.split(" at ")[0] for ln in cni.paths_taken] == [
            "netplumb-cni: agent",
            "netplumb-cni: no answer, the Python plugin serves the call, from the agent",
        ]
        assert wait_for(lambda: old is not None and not Path(f"/proc/{old}").exists(), 15)
        assert wait_for(lambda: listening(lab) and agent_pid(lab.state) != old, 15)
        cni.ok("STATUS", status)
        assert cni.paths_taken[0].startswith("netplumb-cni: agent at ")
    finally:
        stop_agent(lab.state)
