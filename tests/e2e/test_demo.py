"""`netplumb demo` end to end: the article's system in a throwaway "machine" namespace.

The machine namespace carries dockerd's firewall (FORWARD policy DROP, DOCKER-USER,
``bridge-nf-call-iptables``), as every machine that runs ``make demo`` has: the README's
command starts dockerd. One test lets that firewall appear only after the demo is up.
``test_demo_machine.py`` runs the README's ``make demo`` in the machine's own namespace.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lab import Lab
from netns_helpers import docker_firewall, docker_user_rules

pytestmark = pytest.mark.kernel


class Machine(Lab):
    """A throwaway namespace playing the machine, with a state directory of its own."""

    def __init__(self, tmp: Path, firewall: bool = True) -> None:
        super().__init__(tmp, host="demo")
        self.ns = self.host
        if firewall:
            with self.closed_on_error():
                docker_firewall(self.ns)

    def np(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.netplumb(*args, check=False, timeout=600)


def test_demo_brings_up_the_article_and_down_again(tmp_path: Path) -> None:
    machine = Machine(tmp_path)
    ns, np = machine.ns, machine.np
    try:
        up = np("demo", "--data", str(tmp_path / "db"))
        assert up.returncode == 0, up.stdout + up.stderr
        out = up.stdout
        # the article's output, byte for byte, after the GET
        assert (
            out.split("> curl -s -m 10 http://", 1)[1]
            .split("\n", 1)[1]
            .startswith(
                "name = James Clerk Maxwell, birthday = 13.06.1831\n"
                "name = Albert Einstein, birthday = 14.03.1879\n"
                "name = Werner Heisenberg, birthday = 05.12.1901\n"
            )
        )
        assert "MONGO_PORT_27017_TCP_ADDR=10.89.0.2" in out
        assert "> netplumb port webserver2 8080\n0.0.0.0:8081\n" in out
        # the article's last section: another machine on the (simulated) LAN reaches webserver1
        lan = out.split(
            "> netplumb exec lan-router -- curl -s -m 10 http://192.168.77.200:8080\n", 1
        )
        assert lan[1].startswith("name = James Clerk Maxwell, birthday = 13.06.1831\n")
        assert "> netplumb lan confirm\n" in out
        rows = {r["name"]: r for r in json.loads(np("ps", "--json").stdout)}
        assert sorted(rows) == ["lan-router", "mongodb", "webserver1", "webserver2", "webserver3"]
        assert "192.168.77.200/24" in rows["webserver1"]["addresses"]
        assert all(r["state"] == "running" for r in rows.values())
        assert "10.2.0.11/16" in rows["webserver3"]["addresses"]
        down = np("demo", "--down")
        assert down.returncode == 0, down.stderr
        assert json.loads(np("ps", "--json").stdout) == []
        holders = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
        assert holders.strip() == ""
    finally:
        machine.close()  # the hosts left, the namespace


def test_demo_on_docker_brings_up_the_same_system_as_containers(tmp_path: Path) -> None:
    """``netplumb demo --runtime docker``: the article's system as containers of the birthday
    service's image, wired by netplumb in a throwaway machine namespace."""
    names = ["mongodb", "webserver1", "webserver2", "webserver3"]
    taken = subprocess.run(
        ["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert not set(names) & set(taken), f"containers named {names} exist: remove them first"
    machine = Machine(tmp_path)
    np = machine.np
    try:
        up = np("demo", "--runtime", "docker")
        assert up.returncode == 0, up.stdout + up.stderr
        out = up.stdout
        assert "> netplumb up -f " in out and "birthdays-docker.yaml\n" in out
        assert (
            out.split("> curl -s -m 10 http://", 1)[1]
            .split("\n", 1)[1]
            .startswith(
                "name = James Clerk Maxwell, birthday = 13.06.1831\n"
                "name = Albert Einstein, birthday = 14.03.1879\n"
                "name = Werner Heisenberg, birthday = 05.12.1901\n"
            )
        )
        assert "MONGO_PORT_27017_TCP_ADDR=10.89.0.2" in out
        assert "> netplumb port webserver2 8080\n0.0.0.0:8081\n" in out
        assert "10.2.0.11/16" in out  # webserver3's pipework-style interface, from inside it
        # the article's last section: another machine on the (simulated) LAN reaches webserver1
        lan = out.split(
            "> netplumb exec lan-router -- curl -s -m 10 http://192.168.77.200:8080\n", 1
        )
        assert lan[1].startswith("name = James Clerk Maxwell, birthday = 13.06.1831\n")
        assert "> netplumb lan confirm\n" in out
        rows = {r["name"]: r for r in json.loads(np("ps", "--json").stdout)}
        assert sorted(rows) == ["lan-router", *names]
        assert all(r["state"] == "running" for r in rows.values())
        assert all(
            rows[n]["command"].startswith("[docker netplumb/birthdays:local]") for n in names
        )
        assert "192.168.77.200/24" in rows["webserver1"]["addresses"]
        down = np("demo", "--down")
        assert down.returncode == 0, down.stderr
        assert json.loads(np("ps", "--json").stdout) == []
        left = subprocess.run(
            ["docker", "ps", "-a", "--format", "{{.Names}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert not set(names) & set(left)
    finally:
        np("down", "-p", "birthdays")
        machine.close()


ARTICLE = (
    "name = James Clerk Maxwell, birthday = 13.06.1831\n"
    "name = Albert Einstein, birthday = 14.03.1879\n"
    "name = Werner Heisenberg, birthday = 05.12.1901\n"
)
LAN_STEP = "> netplumb exec lan-router -- curl -s -m 10 http://192.168.77.200:8080\n"


def test_dockerd_appearing_after_the_demo_is_up(tmp_path: Path) -> None:
    """A dockerd started after the demo: its FORWARD DROP cuts the LAN (and the networks'
    routed traffic) until ``netplumb reconcile`` adds netplumb's rules."""
    machine = Machine(tmp_path, firewall=False)
    ns, np = machine.ns, machine.np
    lan_get = ["exec", "lan-router", "--", "curl", "-s", "-m", "3", "http://192.168.77.200:8080"]
    try:
        up = np("demo", "--data", str(tmp_path / "db"))
        assert up.returncode == 0, up.stdout + up.stderr
        assert np(*lan_get).stdout == ARTICLE
        docker_firewall(ns)
        cut = np(*lan_get)
        assert cut.returncode == 28, cut  # curl: timed out, the SYN dropped by FORWARD
        assert docker_user_rules(ns) == []
        assert np("reconcile").returncode == 0
        assert np(*lan_get).stdout == ARTICLE
        assert {r.split()[3] for r in docker_user_rules(ns)} == {"br-np-lan0", "br1", "np0"}
        down = np("demo", "--down")
        assert down.returncode == 0, down.stderr
        assert {r.split()[3] for r in docker_user_rules(ns)} == {"np0"}
    finally:
        machine.close()  # the hosts left, the namespace


def test_a_step_that_does_not_answer_stops_the_demo_with_one_line(tmp_path: Path) -> None:
    """The LAN step under a firewall that drops everything bridged (as the missing DOCKER-USER
    rule did): the demo stops with one line naming the step and exits 1, instead of hanging."""
    machine = Machine(tmp_path, firewall=False)
    ns, np = machine.ns, machine.np
    try:
        # a firewall that drops what is bridged to and from the LAN bridge, and that netplumb
        # knows nothing of (no DOCKER-USER chain): the LAN step cannot answer
        for cmd in (
            ["iptables", "-I", "FORWARD", "-i", "br-np-lan0", "-j", "DROP"],
            ["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"],
        ):
            subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True)
        up = np("demo", "--data", str(tmp_path / "db"))
        assert up.returncode == 1
        assert up.stdout.endswith(LAN_STEP)
        assert up.stderr == (
            "netplumb: demo step failed: netplumb exec lan-router -- curl -s -m 10 "
            "http://192.168.77.200:8080: no answer within 10 s (a firewall dropping packets?)\n"
        )
    finally:
        np("demo", "--down")
        machine.close()  # the hosts left, the namespace
