"""A reboot, the way this machine allows one: a Docker container with a pipework interface
comes back with it after its dockerd went down, netplumb's ``/run`` records were wiped and the
kernel objects netplumb made were gone (issue 13 §5).

The machine's dockerd is never touched (other tests use it): each test has a private dockerd in
a throwaway "machine" namespace (``engine``, privatedockerd.py), runs a ``--restart always``
container there, and netplumb in that namespace pointed at it, its state under the test's
directories: ``NETPLUMB_STATE_ROOT`` (what ``/run`` holds), ``NETPLUMB_DURABLE_ROOT``
(``/var/lib``).

The "reboot": dockerd stopped with SIGTERM (as a shutdown does: it stops its containers, whose
namespaces and interfaces go with them; a SIGKILL would leave them running under their shims),
the bridge netplumb made deleted, the state root removed; then dockerd started again, whose
restart policy starts the same container, in a new network namespace. The oracle is ``ip -j``
in that namespace.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from docker_engine.privatedockerd import Engine
from netns_helpers import BUSYBOX_IMAGE

pytestmark = [pytest.mark.kernel, pytest.mark.docker]

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
NET = "10.84.0"


def _eth1(
    eng: Engine, pid: int, ifname: str = "eth1"
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The container's interface (``ip -j addr``) and its routes (``ip -j route``), or None."""
    where = ["nsenter", "-t", str(pid), "-n", "ip", "-j"]
    addr = subprocess.run([*where, "addr", "show", "dev", ifname], capture_output=True, text=True)
    if addr.returncode != 0 or not json.loads(addr.stdout or "[]"):
        return None
    routes = subprocess.run(
        [*where, "route", "show", "dev", ifname], capture_output=True, text=True
    )
    return json.loads(addr.stdout)[0], json.loads(routes.stdout or "[]")


def _what(found: tuple[dict[str, Any], list[dict[str, Any]]]) -> dict[str, Any]:
    link, routes = found
    return {
        "ifname": link["ifname"],
        "mac": link["address"],
        "up": "UP" in link["flags"],
        "addresses": sorted(
            f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a["scope"] == "global"
        ),
        "routes": sorted((r["dst"], r.get("gateway", "")) for r in routes),
    }


def _reboot(eng: Engine, name: str, bridge: str = "br-rb") -> int:
    """Shut the machine down as far as this test can, and note the container's old PID."""
    old = eng.pid(name)
    eng.stop()
    assert not os.path.exists(f"/proc/{old}")  # the container died with its dockerd
    eng.sh("ip", "link", "del", bridge)  # what netplumb made dies with the machine
    shutil.rmtree(eng.top / "run")  # /run is a tmpfs
    return old


def _attached(eng: Engine) -> tuple[str, dict[str, Any]]:
    name = f"npt-{secrets.token_hex(3)}-web"
    eng.docker(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "--restart",
        "always",
        BUSYBOX_IMAGE,
        "sleep",
        "3600",
    )
    eng.sh(str(BIN / "pipework"), "br-rb", name, f"{NET}.2/24@{NET}.1")
    found = _eth1(eng, eng.pid(name))
    assert found is not None
    before = _what(found)
    assert before["addresses"] == [f"{NET}.2/24"]
    assert ("default", f"{NET}.1") in before["routes"]
    return name, before


def _back(
    eng: Engine, name: str, old: int, timeout: float, want: dict[str, Any], ifname: str = "eth1"
) -> dict[str, Any] | None:
    """Poll (bounded) for the container's interface in its new namespace until it is as
    ``want`` says; the last state seen otherwise (None: never there). Not the first state
    with an address: the link, its addresses and its routes are read one after another while
    the repair is still under way (a run saw the address and routes of a link read as down a
    moment before, when the address came before the link was set up)."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        pid = eng.pid(name)
        found = _eth1(eng, pid, ifname) if pid and pid != old else None
        if found is not None:
            seen = _what(found)
            if seen == want:
                return seen
        time.sleep(0.1)
    return seen


def test_watch_started_at_boot_reattaches_a_container_its_restart_policy_brings_back(
    engine: Engine,
) -> None:
    name, before = _attached(engine)
    old = _reboot(engine, name)
    # At boot, netplumb-watch may start before dockerd: it waits for it.
    watch = subprocess.Popen(
        ["ip", "netns", "exec", engine.ns, str(BIN / "netplumb"), "watch"],
        env=engine.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        first = [watch.stdout.readline()]  # the first pass's repairs come before its signal
        while first[-1] not in ("watching\n", ""):
            first.append(watch.stdout.readline())
        assert first[-1] == "watching\n", first
        assert "restored 2 netplumb records kept in" in first[0]  # the attach record, scope id
        engine.start()
        assert _back(engine, name, old, 60, before) == before
        engine.sh("ip", "addr", "add", f"{NET}.1/24", "dev", "br-rb")
        assert engine.sh("ping", "-c1", "-W2", f"{NET}.2", check=False).returncode == 0
    finally:
        watch.send_signal(signal.SIGTERM)
        out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    assert f"restored eth1 of {name}" in out, out


def test_reconcile_after_boot_reattaches_and_leases_nothing_twice(engine: Engine) -> None:
    name, before = _attached(engine)
    old = _reboot(engine, name)
    engine.start()
    deadline = time.monotonic() + 60
    while engine.pid(name) in (0, old):
        assert time.monotonic() < deadline, "the restart policy did not start the container"
        time.sleep(0.1)
    out = engine.sh(str(BIN / "netplumb"), "reconcile").stdout
    assert f"restored eth1 of {name}" in out
    assert _back(engine, name, old, 10, before) == before
    assert engine.sh(str(BIN / "netplumb"), "reconcile").stdout == ""  # in step, restored once


def test_an_up_docker_service_gets_its_network_lease_and_ports_back_after_a_reboot(
    engine: Engine,
) -> None:
    """``up``'s Docker service on a netplumb network: after the reboot the network's bridge is
    made again with its gateway, the container's address is leased to it again (the same),
    and its published port is there again."""
    tag = secrets.token_hex(2)
    web = f"npt-web{tag}"
    path = engine.top / "web.yaml"
    path.write_text(
        f"name: npt-rb{tag}\n"
        "networks:\n"
        "  back:\n"
        "    bridge: br-rbn\n"
        "    subnet: 10.85.0.0/24\n"
        "services:\n"
        f"  {web}:\n"
        "    runtime: docker\n"
        f"    image: {BUSYBOX_IMAGE}\n"
        "    command: httpd -f -p 80 -h /etc\n"
        "    restart: always\n"
        "    expose: [80]\n"
        '    ports: ["18300:80"]\n'
        "    networks: [back]\n"
    )
    engine.sh(str(BIN / "netplumb"), "up", "-f", str(path))
    try:
        found = _eth1(engine, engine.pid(web), "eth0")
        assert found is not None
        before = _what(found)
        (address,) = before["addresses"]
        ports = engine.sh(str(BIN / "netplumb"), "port", web).stdout
        assert ports.splitlines() == ["80/tcp -> 0.0.0.0:18300"]
        old = _reboot(engine, web, "br-rbn")
        engine.start()
        deadline = time.monotonic() + 60
        while engine.pid(web) in (0, old):
            assert time.monotonic() < deadline, "the restart policy did not start the container"
            time.sleep(0.1)
        out = engine.sh(str(BIN / "netplumb"), "reconcile").stdout
        assert f"restored eth0 of {web}" in out, out
        assert _back(engine, web, old, 10, before, ifname="eth0") == before
        gateway = json.loads(engine.sh("ip", "-j", "addr", "show", "dev", "br-rbn").stdout)[0]
        assert "10.85.0.1" in [a["local"] for a in gateway["addr_info"]]
        assert engine.sh(str(BIN / "netplumb"), "port", web).stdout == ports
        assert (
            engine.sh("ping", "-c1", "-W2", address.partition("/")[0], check=False).returncode == 0
        )
        # the address is the container's again: nobody else gets it
        taken = engine.sh(
            str(BIN / "netplumb"), "run", "--name", f"npt-x{tag}", "--network", "back",
            "--ip", address.partition("/")[0], "--", "sleep", "1", check=False,
        )  # fmt: skip
        assert taken.returncode == 1
        assert "already in use in network back (by docker:" in taken.stderr, taken.stderr
    finally:
        engine.sh(str(BIN / "netplumb"), "down", "-f", str(path), check=False)


def _hosts_lines(eng: Engine, host: str, alias: str) -> list[str]:
    """The lines naming ``alias`` in the host's /etc/hosts, as its processes read it."""
    text = eng.sh(str(BIN / "netplumb"), "exec", host, "--", "cat", "/etc/hosts").stdout
    return [line for line in text.splitlines() if alias in line.split()]


def test_a_hosts_link_to_a_docker_container_follows_its_new_address_on_restart(
    engine: Engine,
) -> None:
    """A netplumb host linked to a Docker container on a Docker network: the container
    restarts with another address, and ``watch`` puts the host's link line right. (The private
    engine: a Docker network on the machine's dockerd would change the machine's firewall.)"""
    tag = secrets.token_hex(2)
    target, squatter, host = f"npt-t{tag}", f"npt-s{tag}", f"npt-h{tag}"
    engine.docker("network", "create", "--subnet", "10.87.0.0/24", f"npt-n{tag}")
    engine.docker("run", "-d", "--name", target, "--network", f"npt-n{tag}", BUSYBOX_IMAGE,
                  "sleep", "3600")  # fmt: skip

    def ip() -> str:
        fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
        return engine.docker("inspect", "-f", fmt, target).stdout.strip()

    first = ip()
    engine.sh(str(BIN / "netplumb"), "run", "--name", host, "--link", f"{target}:db", "--",
              "sleep", "infinity")  # fmt: skip
    try:
        assert [ln.split()[0] for ln in _hosts_lines(engine, host, "db")] == [first]
        watch = subprocess.Popen(
            ["ip", "netns", "exec", engine.ns, str(BIN / "netplumb"), "watch"],
            env=engine.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert watch.stdout is not None
            assert watch.stdout.readline() == "watching\n"
            engine.docker("stop", "-t", "0", target)
            # another container takes its address: it gets another one when it starts
            engine.docker("run", "-d", "--name", squatter, "--network", f"npt-n{tag}",
                          "--ip", first, BUSYBOX_IMAGE, "sleep", "3600")  # fmt: skip
            engine.docker("start", target)
            second = ip()
            assert second not in ("", first)
            deadline = time.monotonic() + 30
            while [ln.split()[0] for ln in _hosts_lines(engine, host, "db")] != [second]:
                assert time.monotonic() < deadline, _hosts_lines(engine, host, "db")
                time.sleep(0.1)
        finally:
            watch.send_signal(signal.SIGTERM)
            out, err = watch.communicate(timeout=30)
        assert watch.returncode == 0, err
        assert f"restored /etc/hosts link lines of {host}" in out, out
    finally:
        engine.sh(str(BIN / "netplumb"), "rm", "-f", host, check=False)
