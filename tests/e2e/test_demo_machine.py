"""The README's ``make demo``, run the way a user runs it: in the machine's own namespace,
where dockerd runs with its FORWARD DROP firewall, then ``netplumb demo --down``.

Every other demo test runs in a namespace of its own; a demo that passed all of them once hung
for a new user at its last step, because only the machine's namespace had dockerd's firewall.
What may remain after ``demo --down`` is what Docker leaves behind too: the default network
(bridge ``np0``, its part of netplumb's nftables table, its DOCKER-USER rules).

A user runs the README's first command before the second: the demo may be up when this test
starts, or its records may outlive its processes (a reboot, a killed session: ``lost`` hosts, a
LAN bridge whose card went with the LAN router's namespace). ``make demo`` must work from there
too. The test compares with what the machine had without the demo, and leaves the machine as
it found it: the demo up again if it was running, the default network removed if it was not.
A demo found ``lost`` stays down: its processes were gone before the test, and bringing them
back would leave this run's processes and veths on the machine.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.docker]

ROOT = Path(__file__).resolve().parents[2]
NETPLUMB = str(ROOT / ".venv" / "bin" / "netplumb")
ARTICLE = (
    "name = James Clerk Maxwell, birthday = 13.06.1831\n"
    "name = Albert Einstein, birthday = 14.03.1879\n"
    "name = Werner Heisenberg, birthday = 05.12.1901\n"
)


def _np(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NETPLUMB, *args], capture_output=True, text=True, timeout=300)


def _netplumb_links() -> set[str]:
    out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
    return {
        f"{ln['ifname']} ({ln['ifalias']})"
        for ln in json.loads(out)
        if str(ln.get("ifalias", "")).startswith("netplumb:")
    }


def _docker_user() -> list[str]:
    out = subprocess.run(
        ["iptables", "-S", "DOCKER-USER"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if "netplumb" in line]


def _nft_comments() -> set[str]:
    proc = subprocess.run(
        ["nft", "-j", "list", "table", "inet", "netplumb"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return set()
    items = json.loads(proc.stdout)["nftables"]
    out = {str(i["rule"].get("comment")) for i in items if "rule" in i}
    for i in items:  # published ports: elements of the DNAT maps, commented with their owner
        for elem in i.get("map", {}).get("elem", []):
            out.add(
                str((elem[0] if isinstance(elem, list) else elem).get("elem", {}).get("comment"))
            )
    return out


DEMO_HOSTS = {"mongodb", "webserver1", "webserver2", "webserver3", "lan-router"}
DEFAULT_RULES = [
    f'-A DOCKER-USER {side} np0 -m comment --comment "netplumb:network:np0" -j ACCEPT'
    for side in ("-i", "-o")
]


def _hosts() -> dict[str, str]:
    return {r["name"]: r["state"] for r in json.loads(_np("ps", "--json").stdout or "[]")}


def _networks() -> set[str]:
    return {line.split("\t", 1)[0] for line in _np("network", "ls").stdout.splitlines()}


def _make_demo() -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    demo = subprocess.run(
        ["make", "-s", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    return demo, time.monotonic() - start


def test_make_demo_in_the_machines_namespace_with_dockerd_running() -> None:
    # dockerd's firewall is what this test is about: it must be there
    policy = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout
    assert "-P FORWARD DROP" in policy and "-j DOCKER-USER" in policy, policy
    found = _hosts()
    demo_was_there = bool(DEMO_HOSTS & set(found))
    demo_was_running = all(found.get(name) == "running" for name in DEMO_HOSTS)
    if demo_was_there:  # the README's first command ran before: see the machine without it
        first = _np("demo", "--down")
        assert first.returncode == 0, first.stdout + first.stderr
    others = {name: st for name, st in _hosts().items() if name not in DEMO_HOSTS}
    networks, links = _networks(), _netplumb_links()
    rules, comments = _docker_user(), _nft_comments()
    try:
        demo, took = _make_demo()
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        print(f"make demo: {took:.1f} s")
        lan = demo.stdout.split("# Another machine on the LAN reaches the web server directly\n")
        assert len(lan) == 2, demo.stdout[-3000:]
        assert lan[1].split("\n", 2)[2].startswith(ARTICLE), lan[1]
        ours = {r.split()[3] for r in _docker_user() if r not in rules}
        assert ours | {"np0"} == {"br-np-lan0", "br1", "np0"}, ours

        down = _np("demo", "--down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert _hosts() == others
        assert _networks() == networks | {"netplumb"}
        assert _netplumb_links() == links | {"np0 (netplumb:network:netplumb)"}
        assert sorted(_docker_user()) == sorted(set(rules) | set(DEFAULT_RULES))
        assert _nft_comments() <= comments | {
            "netplumb:network:netplumb",
            "netplumb: loopback only from lo",
            "None",
        }
    finally:
        _np("demo", "--down")
        if "netplumb" not in networks:
            _np("network", "rm", "netplumb")
    if demo_was_running:  # leave the machine as it was found: the demo up
        again, _ = _make_demo()
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
